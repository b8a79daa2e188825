package mediator

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
)

// routeClaimResponse answers errors as FHIR OperationOutcomes: its caller is
// openIMIS.
const routeClaimResponse = "/mediator/claim-response"

// respond answers a request handled by the api.
func (a *api) respond(c *gin.Context, status int, body any) {
	writeAnswer(c.Writer, c.Request, a.urn, status, body)
}

// writeAnswer writes status and body as JSON. It is the one place answers
// are written, by the api and by the server while it starts: a request
// OpenHIM forwarded (X-OpenHIM-TransactionID) gets the same status and body
// inside the mediator envelope of urn.
func writeAnswer(w http.ResponseWriter, r *http.Request, urn string, status int, body any) {
	writeAnswerAs(w, r, urn, status, "application/json", body)
}

// writeAnswerAs is writeAnswer with the body's content type (a FHIR source
// is answered in application/fhir+json).
func writeAnswerAs(w http.ResponseWriter, r *http.Request, urn string, status int, contentType string, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("encode answer")
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	if r.Header.Get(headerTransactionID) != "" {
		contentType = openhim.ContentTypeEnvelope
		if b, err = json.Marshal(openhim.NewEnvelope(urn, status, b, w.Header())); err != nil {
			zerolog.Ctx(r.Context()).Error().Err(err).Msg("encode envelope")
			status, contentType, b = http.StatusInternalServerError, "application/json", []byte(`{"error":"internal error"}`)
		}
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// errorBody is the JSON error answer of the non-FHIR routes.
type errorBody struct {
	Error  string               `json:"error"`
	Fields []mapping.FieldError `json:"fields,omitempty"`
}

// fail answers an error: an OperationOutcome on the openIMIS route, a JSON
// errorBody elsewhere. msg is shown to the caller; it must hold no secret.
func (a *api) fail(c *gin.Context, status int, msg string, fields ...mapping.FieldError) {
	switch {
	case strings.TrimSuffix(c.Request.URL.Path, "/") == routeClaimResponse: // also a 405 there
		a.respond(c, status, operationOutcome(status, msg, fields))
		return
	case strings.HasPrefix(c.Request.URL.Path, routeFHIRSource):
		a.respondFHIR(c, status, operationOutcome(status, msg, fields))
		return
	}
	a.respond(c, status, errorBody{Error: msg, Fields: fields})
}

// outcome is the FHIR OperationOutcome the claim route answers errors with.
type outcome struct {
	Issue        []outcomeIssue `json:"issue"`
	ResourceType string         `json:"resourceType"`
}

// outcomeIssue is one issue of an OperationOutcome.
type outcomeIssue struct {
	Code    string `json:"code"`
	Details struct {
		Text string `json:"text"`
	} `json:"details"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
	Severity    string   `json:"severity"`
}

func operationOutcome(status int, msg string, fields []mapping.FieldError) outcome {
	code := issueCode(status)
	issue := func(text string, expression []string) outcomeIssue {
		i := outcomeIssue{Severity: "error", Code: code, Expression: expression}
		i.Details.Text = text
		return i
	}
	oo := outcome{ResourceType: "OperationOutcome"}
	for _, f := range fields {
		oo.Issue = append(oo.Issue, issue(f.Field+": "+f.Message, []string{f.Field}))
	}
	if len(oo.Issue) == 0 {
		oo.Issue = []outcomeIssue{issue(msg, nil)}
	}
	return oo
}

// issueCode maps an HTTP status to a FHIR issue-type code.
func issueCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "login"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return "not-supported"
	case http.StatusRequestEntityTooLarge:
		return "too-costly"
	case http.StatusServiceUnavailable:
		return "transient"
	}
	return "exception"
}
