package mediator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// routeFHIRSource is the callback route of the FHIR sources (spec §8).
const routeFHIRSource = "/mediator/fhir/"

// handleFHIRNotification receives a notification from a FHIR source, in any
// of the shapes its dialect sends (docs/upstreams/fhir-subscriptions.md
// §2.1, trap 7): a claim outcome it carries, or names, is stored as a job
// before the answer; an empty ping queues the source's catch-up search (one
// for a burst); handshakes and heartbeats are only noted. The answer is 200
// with FHIR JSON, which HAPI parses (trap 8); a 4xx would turn the
// subscription to error, so only what is unreadable gets one, and a store
// failure a 503 (the server sends again).
func (a *api) handleFHIRNotification() gin.HandlerFunc {
	return func(c *gin.Context) {
		src := a.sources.get(c.Param("source"))
		if src == nil {
			a.fail(c, http.StatusNotFound, "no such FHIR source; FHIR_SOURCES names the sources")
			return
		}
		log := zerolog.Ctx(c.Request.Context()).With().Str("source", src.Name).Logger()
		ctx := log.WithContext(c.Request.Context())
		if c.Request.Method == http.MethodDelete {
			// A server that tells of a deleted resource: a claim outcome
			// once reported stays reported.
			log.Info().Str("path", c.Param("rest")).Msg("FHIR source: delete notification ignored")
			a.respondFHIR(c, http.StatusOK, fhirOutcome("information", "ignored"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxClaimBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			a.fail(c, http.StatusRequestEntityTooLarge, "body larger than the limit of "+byteSize(maxClaimBody))
			return
		case err != nil:
			a.fail(c, http.StatusBadRequest, "could not read the body")
			return
		}
		// An empty ping may come with any Content-Type (HAPI sends a form
		// type); a body must be JSON.
		if len(bytes.TrimSpace(body)) > 0 && !isJSON(c.GetHeader("Content-Type")) {
			a.fail(c, http.StatusUnsupportedMediaType, "Content-Type must be application/fhir+json or application/json")
			return
		}
		n, err := fhir.ParseNotification(c.Request.Method, c.Param("rest"), c.GetHeader("Content-Type"), body)
		if err != nil {
			log.Warn().Str("problem", err.Error()).Msg("FHIR source: notification refused")
			a.fail(c, http.StatusBadRequest, err.Error())
			return
		}
		src.heard(a.sources.now())
		received, err := a.takeNotification(ctx, src, n)
		if err != nil {
			log.Error().Err(err).Msg("store FHIR notification")
			a.fail(c, http.StatusServiceUnavailable, "the notification could not be stored; send it again")
			return
		}
		ev := log.Info()
		if received == 0 && (n.Kind == fhir.KindHeartbeat || n.Kind == fhir.KindHandshake || n.Kind == fhir.KindPing) {
			ev = log.Debug()
		}
		ev.Str("kind", string(n.Kind)).Int("events", len(n.Events)).Int("claims_received", received).Msg("FHIR notification received")
		if n.Type != "" { // a topic notification: HAPI parses the answer as a Bundle
			a.respondFHIR(c, http.StatusOK, json.RawMessage(`{"resourceType":"Bundle","type":"transaction-response","entry":[]}`))
			return
		}
		a.respondFHIR(c, http.StatusOK, fhirOutcome("information", "accepted"))
	}
}

// takeNotification stores what a notification brings: a claim job per
// event about the source's claim resource (mapped now when the event
// carries the resource, read by the job when it names it only), the
// source's catch-up search for a ping that names nothing (trap 12), and,
// for a topic notification, its numbers in the event tracking (traps 10,
// 11). It returns how many claims were new.
func (a *api) takeNotification(ctx context.Context, src *source, n fhir.Notification) (int, error) {
	switch n.Kind {
	case fhir.KindHandshake, fhir.KindHeartbeat, fhir.KindStatus:
		return 0, a.sources.track(ctx, src, n)
	case fhir.KindPing:
		if len(n.Events) == 0 {
			return 0, a.sources.searchSoon(ctx, src)
		}
	}
	received, _, err := a.sources.enqueueEvents(ctx, src, n.Events)
	if err != nil {
		return received, err
	}
	return received, a.sources.track(ctx, src, n)
}

// sourceClaimOf maps a claim outcome resource of src.
func sourceClaimOf(src *source, raw json.RawMessage) (mapping.SourceClaim, error) {
	var cr fhir.ClaimResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return mapping.SourceClaim{}, mapping.FieldErrors{{Field: "body", Message: "not a JSON resource"}}
	}
	return mapping.ClaimFromFHIR(src.Name, src.Resource, cr, src.ClaimCodeSystem)
}

// fhirOutcome is an OperationOutcome of one issue.
func fhirOutcome(severity, text string) outcome {
	i := outcomeIssue{Severity: severity, Code: "informational"}
	i.Details.Text = text
	return outcome{ResourceType: "OperationOutcome", Issue: []outcomeIssue{i}}
}

// respondFHIR answers a FHIR source in application/fhir+json.
func (a *api) respondFHIR(c *gin.Context, status int, body any) {
	writeAnswerAs(c.Writer, c.Request, a.urn, status, "application/fhir+json", body)
}
