package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
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

// JobStateNames lists the states ListJobs accepts.
func JobStateNames() []string {
	names := make([]string, 0, len(jobStateNames))
	for n := range jobStateNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ListJobs prints the jobs in the named state (see JobStateNames), newest
// first; by default every job not completed.
func ListJobs(ctx context.Context, st Store, w io.Writer, state string, limit int) error {
	states := []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateDiscarded,
		rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}
	if state != "" {
		var ok bool
		if states, ok = jobStateNames[state]; !ok {
			return fmt.Errorf("unknown state %q; use one of %s", state, strings.Join(JobStateNames(), ", "))
		}
	}
	jobs, err := st.ListJobs(ctx, JobFilter{States: states, Limit: limit})
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "no jobs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPTS\tSUBJECT\tCREATED\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Kind, stateName(j.State), j.Attempt, j.MaxAttempts,
			jobSubject(j), j.CreatedAt.UTC().Format(time.RFC3339), oneLine(lastError(j), 100))
	}
	return tw.Flush()
}

// ShowJob prints one job: its subject, state, attempts, every error with its
// time, and its payload (which holds no secret: claims and feedback only).
func ShowJob(ctx context.Context, st Store, w io.Writer, id int64) error {
	j, err := st.GetJob(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("no job %d", id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "id:        %d\nkind:      %s\nstate:     %s\nsubject:   %s\nattempts:  %d of %d\ncreated:   %s\n",
		j.ID, j.Kind, stateName(j.State), jobSubject(j), j.Attempt, j.MaxAttempts, j.CreatedAt.UTC().Format(time.RFC3339))
	if !j.ScheduledAt.IsZero() && (j.State == rivertype.JobStateRetryable || j.State == rivertype.JobStateScheduled) {
		fmt.Fprintf(w, "next try:  %s\n", j.ScheduledAt.UTC().Format(time.RFC3339))
	}
	if j.FinalizedAt != nil {
		fmt.Fprintf(w, "finished:  %s\n", j.FinalizedAt.UTC().Format(time.RFC3339))
	}
	if len(j.Errors) > 0 {
		fmt.Fprintln(w, "errors:")
		for _, e := range j.Errors {
			fmt.Fprintf(w, "  attempt %d at %s: %s\n", e.Attempt, e.At.UTC().Format(time.RFC3339), e.Error)
		}
	}
	var payload any
	if json.Unmarshal(j.EncodedArgs, &payload) == nil {
		b, _ := json.MarshalIndent(payload, "", "  ")
		fmt.Fprintf(w, "payload:\n%s\n", b)
	}
	return nil
}

// RetryJob makes one job run again at once, however it ended.
func RetryJob(ctx context.Context, st Store, w io.Writer, id int64) error {
	j, err := st.RetryJob(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("no job %d", id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "job %d (%s %s) is %s\n", j.ID, j.Kind, jobSubject(j), stateName(j.State))
	return nil
}

// RetryFailedJobs makes every failed claim and feedback job (see
// JobStateNames) run again, each once: a job that fails again while this
// runs is left for the next call, so a running server cannot keep it going
// forever. Failed upkeep jobs of earlier versions are left alone (their next
// periodic run replaces them), and a job that cannot be retried is reported
// without stopping the others.
func RetryFailedJobs(ctx context.Context, st Store, w io.Writer) error {
	f := JobFilter{States: jobStateNames["failed"], Kinds: []string{kindClaim, kindFeedback}, Limit: 100}
	retried := 0
	var errs []error
	// Newest first, a page after the other: a job retried here that fails
	// again keeps its id and is not met twice.
	for {
		jobs, err := st.ListJobs(ctx, f)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, j := range jobs {
			if _, err := st.RetryJob(ctx, j.ID); err != nil {
				errs = append(errs, fmt.Errorf("retry job %d: %w", j.ID, err))
				continue
			}
			retried++
		}
		if len(jobs) < f.Limit {
			break
		}
		f.Before = jobs[len(jobs)-1].ID
	}
	fmt.Fprintf(w, "%d failed jobs made available again\n", retried)
	return errors.Join(errs...)
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

func lastError(j *rivertype.JobRow) string {
	if len(j.Errors) == 0 {
		return ""
	}
	return j.Errors[len(j.Errors)-1].Error
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// OpenForAdmin readies st for the job commands: a queue client that lists
// and retries jobs but works none, so it may run beside a serving mediator.
func OpenForAdmin(ctx context.Context, st Store) error {
	return st.StartQueue(ctx, &river.Config{})
}
