package mediator

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// queueMaintenance runs the mediator's own upkeep, apart from the claim and
// feedback jobs so that a backlog cannot delay it.
const queueMaintenance = "maintenance"

// jobOutcome is the one classifier of job errors (style rule 6): permanent
// problems cancel the job, kept with its reason for an operator; a server's
// Retry-After snoozes it; anything else is retried with backoff (and logged
// by errorHandler). River does not pass cancelled jobs to the error handler,
// so a permanent failure is logged here, with the job's logger from ctx.
func jobOutcome(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if out := classify(err); out != err {
		var cancel *rivertype.JobCancelError
		var snooze *rivertype.JobSnoozeError
		switch {
		case errors.As(out, &cancel):
			zerolog.Ctx(ctx).Error().Err(err).Msg("job failed permanently; kept for an operator")
		case errors.As(out, &snooze):
			// Why it waits (a paused upstream, a 429's Retry-After) is in
			// the error; one line per job would flood the log in a pause.
			zerolog.Ctx(ctx).Debug().Err(err).Dur("wait", snooze.Duration).Msg("job waits; no attempt used")
		}
		return out
	}
	return err
}

// periodicOutcome is jobOutcome for the periodic upkeep jobs (subscription,
// catch-up poll). Their next run tries again anyway, so a failure that would
// end one (a permanent error, or the last attempt) is logged as an error and
// the job completes: a failed upkeep job kept for an operator would only pile
// up, one per period, and block the retry of the next one. jobMiddleware
// counts it as failed and completes it.
func periodicOutcome(ctx context.Context, attempt, maxAttempts int, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	out := classify(err)
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case errors.As(out, &snooze):
		return out
	case errors.As(out, &cancel), attempt >= maxAttempts:
		zerolog.Ctx(ctx).Error().Err(err).Msg("periodic job failed; its next run tries again")
		return &periodicFailure{err: err}
	}
	return out
}

// periodicFailure is a periodic job's failure that ends the job, completed:
// its next run tries again.
type periodicFailure struct{ err error }

func (e *periodicFailure) Error() string { return e.err.Error() }
func (e *periodicFailure) Unwrap() error { return e.err }

// permanentError is a job's problem that no retry can solve: classify
// cancels the job, kept for an operator with it.
type permanentError struct{ error }

// Permanent marks the error for classify.
func (permanentError) Permanent() bool { return true }

func (e permanentError) Unwrap() error { return e.error }

func classify(err error) error {
	var perm interface{ Permanent() bool }
	var fe mapping.FieldErrors
	// A job that met a client waiting (openIMIS's login backoff or its
	// pause after a 429) contacted nobody: it waits too, whatever the error
	// that started the wait.
	var ra interface{ RetryAfterDuration() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfterDuration() > 0 {
		return river.JobSnooze(min(ra.RetryAfterDuration(), time.Hour))
	}
	// A request that waited for its upstream's concurrency limit was not
	// sent: the job waits its turn without using an attempt.
	if errors.Is(err, ErrUpstreamBusy) {
		return river.JobSnooze(time.Second)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &perm) && perm.Permanent(),
		errors.Is(err, mapping.ErrDateOutOfRange),
		errors.Is(err, mapping.ErrNoInsuree),
		errors.As(err, &fe):
		return river.JobCancel(err)
	}
	return err
}

// jobLog starts the logger of one job attempt: the base logger with the
// job's id, kind and attempt.
func jobLog(base zerolog.Logger, job *rivertype.JobRow) zerolog.Context {
	return base.With().Int64("job_id", job.ID).Str("job_kind", job.Kind).Int("attempt", job.Attempt)
}

// retryPolicy is exponential backoff with ±10% jitter: base doubled per
// attempt, at most max.
type retryPolicy struct {
	base, max time.Duration
}

// NextRetry implements river.ClientRetryPolicy.
func (p *retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.delay(job.Attempt))
}

func (p *retryPolicy) delay(attempt int) time.Duration {
	d := p.max
	if attempt < 30 {
		d = min(p.base<<max(attempt-1, 0), p.max)
	}
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return d + jitter
}

// errorHandler logs each failed attempt once, where it is handled.
type errorHandler struct {
	log zerolog.Logger
}

// HandleError implements river.ErrorHandler.
func (h *errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	ev, msg := h.log.Warn(), "job attempt failed; will retry"
	if job.Attempt >= job.MaxAttempts {
		ev, msg = h.log.Error(), "job failed after its last attempt; kept for an operator"
	}
	ev.Int64("job_id", job.ID).Str("job_kind", job.Kind).Int("attempt", job.Attempt).Err(err).Msg(msg)
	return nil
}

// HandlePanic implements river.ErrorHandler.
func (h *errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.log.Error().Int64("job_id", job.ID).Str("job_kind", job.Kind).Int("attempt", job.Attempt).
		Interface("panic", panicVal).Str("trace", trace).Msg("job panicked")
	return nil
}
