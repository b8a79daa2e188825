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
// A report received before is not queued again; one whose answers changed
// since (an edit) is logged at warn and counted (feedback_edit.go).
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
		digest := feedbackDigest(fb)
		inserted, previous, err := a.store.EnqueueDigest(ctx, kindFeedback, fb.DocID, digest, feedbackArgs{Feedback: fb})
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("store feedback")
			a.fail(c, http.StatusServiceUnavailable, "the feedback could not be stored; send it again")
			return
		}
		// The answer is the spec's {"status":"accepted"} for a repeat and an
		// edit too: CHT outbound pushes a report again after an abort or a
		// non-2xx, and after an edit, and retries anything but a 2xx every 5
		// minutes forever (docs/upstreams/cht.md §4); the log says which it
		// was.
		switch changed, known := changedFields(previous, digest); {
		case inserted:
			zerolog.Ctx(ctx).Info().Str("status", "accepted").Msg("feedback received")
		case known && len(changed) > 0:
			// Field names only: the values are a patient's answers.
			a.metrics.feedbackEdit()
			zerolog.Ctx(ctx).Warn().Str("status", "edited").Strs("changed_fields", changed).
				Msg("claims feedback edited after it was received; the edit is not delivered again")
		default:
			// The same report again (the CHT lost the answer to an earlier
			// push, or the report was edited back), or a report received
			// before receipts kept a digest: a normal event of at-least-once
			// delivery, at info so that every push of a report id can be
			// traced; it is as rare as the CHT's retries.
			zerolog.Ctx(ctx).Info().Str("status", "duplicate").Msg("feedback received")
		}
		a.respond(c, http.StatusAccepted, feedbackAnswer{Status: "accepted", ID: fb.DocID})
	}
}
