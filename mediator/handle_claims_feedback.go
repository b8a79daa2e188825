package mediator

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// feedbackAnswer is the 202 answer to CHT outbound push.
type feedbackAnswer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// handleClaimsFeedback receives a claims_feedback report from CHT outbound
// push, stores its job durably and answers 202 at once (CHT aborts after
// 10 s and retries anything but 2xx every 5 minutes, docs/upstreams/cht.md §4).
//
// A 400 is deliberate for input that is not usable: the push stays in the
// CHT's outbound queue and heals once the form or the mediator is fixed.
func (a *api) handleClaimsFeedback() gin.HandlerFunc {
	return func(c *gin.Context) {
		body, ok := a.readJSONBody(c, maxFeedbackBody)
		if !ok {
			return
		}
		log := zerolog.Ctx(c.Request.Context())
		fb, err := mapping.ParseFeedback(body)
		if err != nil {
			var fe mapping.FieldErrors
			errors.As(err, &fe)
			log.Warn().Str("problems", err.Error()).Msg("claims feedback refused")
			a.fail(c, http.StatusBadRequest, "not a usable claims_feedback report", fe...)
			return
		}
		ctx := log.With().Str("doc_id", fb.DocID).Str("claim_uuid", fb.ClaimUUID).Logger().WithContext(c.Request.Context())
		inserted, err := a.store.Enqueue(ctx, kindFeedback, fb.DocID, feedbackArgs{Feedback: fb})
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("store feedback")
			a.fail(c, http.StatusServiceUnavailable, "the feedback could not be stored; send it again")
			return
		}
		// The answer is the spec's {"status":"accepted"} for a repeat too:
		// CHT outbound pushes a report again after a timeout or an edit, and
		// the push is accepted either way; the log says which it was.
		received := "accepted"
		if !inserted {
			received = "duplicate"
		}
		zerolog.Ctx(ctx).Info().Str("status", received).Msg("feedback received")
		a.respond(c, http.StatusAccepted, feedbackAnswer{Status: "accepted", ID: fb.DocID})
	}
}
