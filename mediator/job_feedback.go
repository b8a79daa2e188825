package mediator

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// kindFeedback is the receipt kind and job kind of a feedback.
const kindFeedback = "feedback"

// Feedback resources, as FEEDBACK_RESOURCE names them.
const (
	FeedbackAuto                  = "auto"
	FeedbackQuestionnaireResponse = "QuestionnaireResponse"
	FeedbackCommunication         = "Communication"
)

// feedbackArgs is the job that brings one CHT feedback report to openIMIS.
type feedbackArgs struct {
	Feedback mapping.Feedback `json:"feedback"`
}

// Kind implements river.JobArgs.
func (feedbackArgs) Kind() string { return kindFeedback }

// feedbackWorker delivers a feedback to openIMIS, exactly once per CHT
// report id.
type feedbackWorker struct {
	river.WorkerDefaults[feedbackArgs]
	d       *delivery
	sources *sources
}

// Work implements river.Worker. openIMIS keeps one feedback per claim and
// refuses a second with "Feedback exists for this claim": after a lost
// answer, that refusal is the proof of delivery.
func (w *feedbackWorker) Work(ctx context.Context, job *river.Job[feedbackArgs]) error {
	d, fb := w.d, job.Args.Feedback
	log := jobLog(d.log, job.JobRow).Str("doc_id", fb.DocID).Str("claim_uuid", fb.ClaimUUID).Logger()
	ctx = log.WithContext(ctx)

	if done, err := d.delivered(ctx, job.Attempt, kindFeedback, fb.DocID); err != nil || done {
		return err
	}
	if source, err := w.sources.claimSource(ctx, fb.ClaimUUID); err != nil {
		return err
	} else if source != "" {
		// Kept for an operator with its reason, not sent to an openIMIS
		// that does not know the claim (design of FHIR sources §8.3).
		return jobOutcome(ctx, permanentError{fmt.Errorf(
			"the claim came from the FHIR source %q, which has no feedback destination: claims feedback goes to openIMIS only; the answers stay in the CHT report %s", source, fb.DocID)})
	}
	var result string
	err := d.withUpstream(ctx, func() (err error) {
		if fb.InsureeUUID == "" {
			// The CHT person lacked openimis_id; the claim names the insuree.
			cr, err := d.oi.GetClaimResponse(ctx, fb.ClaimUUID)
			if err != nil {
				return fmt.Errorf("find the insuree of the claim: %w", err)
			}
			if fb.InsureeUUID = mapping.ClaimInsuree(*cr); fb.InsureeUUID == "" {
				return fmt.Errorf("claim %s names no insuree: %w", fb.ClaimUUID, mapping.ErrNoInsuree)
			}
		}
		result, err = d.deliverFeedback(ctx, mapping.QuestionnaireResponse(fb))
		if openimis.FeedbackExists(err) {
			log.Info().Msg("openIMIS already holds feedback for this claim; counted as delivered")
			result, err = "exists", nil
		}
		return err
	})
	if err != nil {
		return jobOutcome(ctx, err)
	}
	if err := d.store.MarkDelivered(ctx, kindFeedback, fb.DocID, result); err != nil {
		return err
	}
	log.Info().Str("result", result).Msg("feedback delivered to openIMIS")
	return nil
}

// deliverFeedback posts the QuestionnaireResponse, or the equivalent
// Communication, as FEEDBACK_RESOURCE says. In auto mode a 404 or 405 to the
// QuestionnaireResponse means openIMIS has no such endpoint (docs/upstreams/openimis.md
// §5); the mediator remembers that until it restarts.
func (d *delivery) deliverFeedback(ctx context.Context, qr openimis.QuestionnaireResponse) (string, error) {
	mode := d.feedbackResource
	if mode == FeedbackQuestionnaireResponse || mode == FeedbackAuto && !d.noQuestionnaireResponse.Load() {
		id, err := d.oi.CreateQuestionnaireResponse(ctx, qr)
		switch {
		case err == nil:
			return created("QuestionnaireResponse", id), nil
		case mode == FeedbackAuto && openimis.NoQuestionnaireResponse(err):
			if !d.noQuestionnaireResponse.Swap(true) {
				zerolog.Ctx(ctx).Info().Msg("openIMIS has no QuestionnaireResponse endpoint; sending feedback as Communication")
			}
		default:
			return "", fmt.Errorf("post QuestionnaireResponse: %w", err)
		}
	}
	comm, err := mapping.Communication(qr)
	if err != nil {
		return "", err
	}
	id, err := d.oi.CreateCommunication(ctx, comm)
	if err != nil {
		return "", fmt.Errorf("post Communication: %w", err)
	}
	return created("Communication", id), nil
}

// created names what a feedback became in openIMIS: type/id, or the type
// alone when the answer named no id.
func created(typ, id string) string {
	if id == "" {
		return typ
	}
	return typ + "/" + id
}
