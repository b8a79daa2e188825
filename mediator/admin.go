package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// jobStateNames maps the states an operator names to River's. "failed" is
// every job kept for an operator: cancelled (a permanent error) and
// discarded (out of attempts).
var jobStateNames = map[string][]rivertype.JobState{
	"failed":    {rivertype.JobStateCancelled, rivertype.JobStateDiscarded},
	"retrying":  {rivertype.JobStateRetryable},
	"available": {rivertype.JobStateAvailable},
	"running":   {rivertype.JobStateRunning},
	"scheduled": {rivertype.JobStateScheduled},
	"pending":   {rivertype.JobStatePending},
	"completed": {rivertype.JobStateCompleted},
	"all":       nil,
}

// JobStateNames lists the states Jobs.List accepts.
func JobStateNames() []string {
	names := make([]string, 0, len(jobStateNames))
	for n := range jobStateNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Job is one job as an operator sees it.
type Job struct {
	ID          int64
	Kind        string
	State       string // the operator's word: failed (permanent error), retrying…
	Subject     string // what it is about: the claim or the CHT report
	Attempt     int
	MaxAttempts int
	CreatedAt   time.Time
	// NextTry is when a retrying or scheduled job runs next; zero otherwise.
	NextTry time.Time
	// FinishedAt is when the job ended; zero while it has not.
	FinishedAt time.Time
	// Errors holds every failed attempt's error, oldest first.
	Errors []rivertype.AttemptError
	// Payload is the job's arguments (claims and feedback only: no secret).
	Payload json.RawMessage
}

// LastError returns the last attempt's error, or "".
func (j Job) LastError() string {
	if len(j.Errors) == 0 {
		return ""
	}
	return j.Errors[len(j.Errors)-1].Error
}

func jobOf(r *rivertype.JobRow) Job {
	j := Job{
		ID: r.ID, Kind: r.Kind, State: stateName(r.State), Subject: jobSubject(r),
		Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt,
		Errors: r.Errors, Payload: json.RawMessage(r.EncodedArgs),
	}
	if r.State == rivertype.JobStateRetryable || r.State == rivertype.JobStateScheduled {
		j.NextTry = r.ScheduledAt
	}
	if r.FinalizedAt != nil {
		j.FinishedAt = *r.FinalizedAt
	}
	return j
}

// Jobs is the operator's view of the queue: it lists, shows and retries jobs,
// and works beside a serving mediator.
type Jobs struct {
	store storetype.Store
}

// OpenJobs readies st for the job commands: a queue client that lists and
// retries jobs but works none, so it may run beside a serving mediator. st
// must be a store handle of its own (store.OpenExisting), never the one a
// running Mediator works jobs with: its queue client would be replaced.
func OpenJobs(ctx context.Context, st storetype.Store) (*Jobs, error) {
	if err := st.StartQueue(ctx, &river.Config{}); err != nil {
		return nil, err
	}
	return &Jobs{store: st}, nil
}

// List returns the jobs in the named state (see JobStateNames), newest
// first; by default every job not completed.
func (js *Jobs) List(ctx context.Context, state string, limit int) ([]Job, error) {
	states := []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateDiscarded,
		rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}
	if state != "" {
		var ok bool
		if states, ok = jobStateNames[state]; !ok {
			return nil, fmt.Errorf("unknown state %q; use one of %s", state, strings.Join(JobStateNames(), ", "))
		}
	}
	rows, err := js.store.ListJobs(ctx, storetype.JobFilter{States: states, Limit: limit})
	if err != nil {
		return nil, err
	}
	jobs := make([]Job, len(rows))
	for i, r := range rows {
		jobs[i] = jobOf(r)
	}
	return jobs, nil
}

// Get returns one job.
func (js *Jobs) Get(ctx context.Context, id int64) (Job, error) {
	r, err := js.store.GetJob(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, fmt.Errorf("no job %d", id)
	}
	if err != nil {
		return Job{}, err
	}
	return jobOf(r), nil
}

// Retry makes one job run again at once, however it ended, and returns it.
func (js *Jobs) Retry(ctx context.Context, id int64) (Job, error) {
	r, err := js.store.RetryJob(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, fmt.Errorf("no job %d", id)
	}
	if err != nil {
		return Job{}, err
	}
	return jobOf(r), nil
}

// RetryFailed makes every failed claim and feedback job (see JobStateNames)
// run again, each once: a job that fails again while this runs is left for
// the next call, so a running server cannot keep it going forever. Failed
// upkeep jobs of earlier versions are left alone (their next periodic run
// replaces them), and a job that cannot be retried is reported without
// stopping the others. It returns how many jobs it made available.
func (js *Jobs) RetryFailed(ctx context.Context) (int, error) {
	f := storetype.JobFilter{States: jobStateNames["failed"], Kinds: []string{kindClaim, kindFeedback}, Limit: 100}
	retried := 0
	var errs []error
	// Newest first, a page after the other: a job retried here that fails
	// again keeps its id and is not met twice.
	for {
		rows, err := js.store.ListJobs(ctx, f)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, r := range rows {
			if _, err := js.store.RetryJob(ctx, r.ID); err != nil {
				errs = append(errs, fmt.Errorf("retry job %d: %w", r.ID, err))
				continue
			}
			retried++
		}
		if len(rows) < f.Limit {
			break
		}
		f.Before = rows[len(rows)-1].ID
	}
	return retried, errors.Join(errs...)
}

// stateName is the operator's word for a River state.
func stateName(s rivertype.JobState) string {
	switch s {
	case rivertype.JobStateCancelled:
		return "failed (permanent error)"
	case rivertype.JobStateDiscarded:
		return "failed (out of attempts)"
	case rivertype.JobStateRetryable:
		return "retrying"
	}
	return string(s)
}

// jobSubject names what a job is about: the claim or the CHT report.
func jobSubject(j *rivertype.JobRow) string {
	switch j.Kind {
	case kindClaim:
		var a claimArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil {
			return "claim " + a.Claim.UUID
		}
	case kindFeedback:
		var a feedbackArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil {
			return "report " + a.Feedback.DocID
		}
	}
	return "-"
}

// SubscriptionReport is what "mediator subscription show" tells: whether an
// operator disabled the subscription, and the Claim subscriptions of this
// mediator's endpoint, their header's credentials masked.
type SubscriptionReport struct {
	Disabled      bool
	Endpoint      string
	Subscriptions []openimis.Subscription
}

// Subscription reports the Claim subscriptions this mediator owns.
func (m *Mediator) Subscription(ctx context.Context) (SubscriptionReport, error) {
	s := m.subscriptions
	disabled, err := s.disabled(ctx)
	if err != nil {
		return SubscriptionReport{}, err
	}
	own, err := s.own(ctx)
	if err != nil {
		return SubscriptionReport{}, err
	}
	for i := range own {
		own[i].Channel.Header = []string{maskHeader(own[i].Channel.Header)}
	}
	return SubscriptionReport{Disabled: disabled, Endpoint: s.endpoint, Subscriptions: own}, nil
}

// DeleteSubscription unsubscribes for decommissioning: it first marks the
// subscription disabled in the store, so that no running server recreates
// it, then deletes every Claim subscription of this endpoint (only their
// creator may, docs/upstreams/openimis.md §2.4). It returns the ids it
// deleted, and an error for each it could not.
func (m *Mediator) DeleteSubscription(ctx context.Context) ([]string, error) {
	s := m.subscriptions
	if err := s.store.SetSetting(ctx, settingSubscriptionDisabled, "true"); err != nil {
		return nil, err
	}
	own, err := s.own(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, sub := range own {
		if err := s.oi.DeleteSubscription(ctx, sub.ID); err != nil {
			if isForbidden(err) {
				err = fmt.Errorf("%w (only the openIMIS user who created it may delete it)", err)
			}
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, sub.ID)
	}
	return deleted, errors.Join(errs...)
}

// RenewSubscription re-enables the subscription and replaces it now with one
// that ends SUBSCRIPTION_END from now. It returns the new subscription's id.
func (m *Mediator) RenewSubscription(ctx context.Context) (string, error) {
	s := m.subscriptions
	if err := s.store.SetSetting(ctx, settingSubscriptionDisabled, "false"); err != nil {
		return "", err
	}
	if err := s.ensure(ctx, true); err != nil {
		return "", err
	}
	id, _, err := s.store.Setting(ctx, settingSubscriptionID)
	return id, err
}
