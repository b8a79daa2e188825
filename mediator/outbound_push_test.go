package mediator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// These tests push feedback to the real mediator the way the CHT does
// (chttest.OutboundPusher, docs/upstreams/cht.md §4): a 10 s abort (shorter
// here), a queue retried by the 5-minute schedule (each RunSchedule is one
// period), and the same doc._id pushed again after an edit.

// seedFeedback is a claims_feedback report about the fake openIMIS's seeded
// claim.
func seedFeedback(id string) chttest.ClaimsFeedback {
	return chttest.ClaimsFeedback{
		ID: id, ClaimUUID: openimistest.SeedClaimID, InsureeUUID: openimistest.SeedPatientID,
		CareRendered: "yes", PaymentAsked: "no", DrugPrescribed: "yes", DrugReceived: "no", AssessmentRating: "4",
	}
}

// outboundPusher returns the CHT's outbound push to the bundle's mediator,
// configured with the reference claims_feedback config and the mediator's
// credentials.
func (b *testBundle) outboundPusher(t *testing.T, opts chttest.OutboundOptions) *chttest.OutboundPusher {
	t.Helper()
	opts.BaseURL, opts.Username = b.srv.URL, mediatorUser
	if opts.Password == "" {
		opts.Password = mediatorPass
	}
	p, err := chttest.NewOutboundPusher(opts)
	require.NoError(t, err)
	return p
}

// requireOneFeedback checks that openIMIS received exactly one feedback,
// and the mediator queued one feedback job.
func (b *testBundle) requireOneFeedback(t *testing.T) {
	t.Helper()
	require.Len(t, b.oi.Communications(), 1)
	require.Equal(t, 1, b.requestsTo("Communication/"), "one delivery, no second attempt")
	jobs, err := b.store.ListJobs(t.Context(), storetype.JobFilter{Kinds: []string{"feedback"}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
}

// logLines returns the mediator's log lines with the message msg, decoded.
func (b *testBundle) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == msg {
			lines = append(lines, line)
		}
	}
	require.NoError(t, sc.Err())
	return lines
}

const editMessage = "claims feedback edited after it was received; the edit is not delivered again"

// heldStore commits an intake at once but holds its answer until hold is
// closed: a mediator slower to answer than the CHT waits.
type heldStore struct {
	storetype.Store
	hold chan struct{}
}

func (s heldStore) EnqueueDigest(ctx context.Context, kind, key, digest string, args river.JobArgs) (bool, string, error) {
	inserted, previous, err := s.Store.EnqueueDigest(context.WithoutCancel(ctx), kind, key, digest, args)
	<-s.hold
	return inserted, previous, err
}

// The CHT aborts a push after 10 s and queues it although the mediator
// stored it: the schedule pushes the same report again, the mediator answers
// 202 for the repeat, and openIMIS gets one feedback.
func TestOutbound_AbortedPushIsPushedAgainAndDeliveredOnce(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	b := setup(t, setupOpts{wrapStore: func(st storetype.Store) storetype.Store { return heldStore{Store: st, hold: hold} }})
	p := b.outboundPusher(t, chttest.OutboundOptions{Timeout: 300 * time.Millisecond})
	report := seedFeedback("a807ed00-abort")

	push, _ := p.Save(t.Context(), report.Doc())
	require.ErrorIs(t, push.Err, context.DeadlineExceeded, "the CHT gave up waiting")
	require.Equal(t, []string{report.ID}, p.Queued())
	b.waitFeedbackDelivered(t, report.ID) // stored before the answer: the work goes on

	close(hold) // the mediator answers at once again
	pushes := p.RunSchedule(t.Context())
	require.Len(t, pushes, 1)
	require.True(t, pushes[0].OK(), "%v", pushes[0].Err)
	require.Equal(t, http.StatusAccepted, pushes[0].Status)
	require.Empty(t, p.Queued())

	b.requireOneFeedback(t)
	// The held answer of the first push is written after the hold ends.
	require.Eventually(t, func() bool { return len(b.logLines(t, "feedback received")) == 2 },
		15*time.Second, 10*time.Millisecond, "both pushes were received")
	require.Contains(t, b.logs.String(), `"status":"duplicate"`)
	require.Empty(t, b.logLines(t, editMessage), "the same report again is no edit")
	require.Contains(t, b.scrape(t), "mediator_feedback_edits_total 0\n")
}

// refusingStore cannot commit while down is set, as a full disk or a
// PostgreSQL in recovery: the mediator answers 503.
type refusingStore struct {
	storetype.Store
	down *atomic.Bool
}

func (s refusingStore) EnqueueDigest(ctx context.Context, kind, key, digest string, args river.JobArgs) (bool, string, error) {
	if s.down.Load() {
		return false, "", errors.New("database or disk is full (13)")
	}
	return s.Store.EnqueueDigest(ctx, kind, key, digest, args)
}

// A push the mediator refuses stays queued in the CHT and is pushed again
// every 5 minutes until it is accepted; then openIMIS gets one feedback.
func TestOutbound_RefusedPushIsDeliveredOnceAfterRecovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		// refuse makes the mediator refuse the pusher's pushes, beside a
		// store that cannot commit for a 503, and returns the fix.
		refuse func(p *chttest.OutboundPusher) (fix func())
	}{
		{
			name:   "StoreUnavailable",
			status: http.StatusServiceUnavailable,
			refuse: func(*chttest.OutboundPusher) func() { return nil },
		},
		{
			name:   "WrongCredentials",
			status: http.StatusUnauthorized,
			refuse: func(p *chttest.OutboundPusher) func() {
				p.SetPassword("an-old-password")
				return func() { p.SetPassword(mediatorPass) } // PUT /api/v1/credentials/<key>
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			down := &atomic.Bool{}
			down.Store(tt.status == http.StatusServiceUnavailable)
			b := setup(t, setupOpts{wrapStore: func(st storetype.Store) storetype.Store { return refusingStore{Store: st, down: down} }})
			p := b.outboundPusher(t, chttest.OutboundOptions{})
			fix := tt.refuse(p)
			report := seedFeedback("a807ed00-" + strings.ToLower(tt.name))

			push, _ := p.Save(t.Context(), report.Doc())
			require.Equal(t, tt.status, push.Status)
			require.Error(t, push.Err)
			pushes := p.RunSchedule(t.Context()) // 5 minutes later, still refused
			require.Len(t, pushes, 1)
			require.Equal(t, tt.status, pushes[0].Status)
			require.Equal(t, []string{report.ID}, p.Queued(), "queued in the CHT, nothing lost")
			require.Empty(t, b.oi.Communications())

			down.Store(false)
			if fix != nil {
				fix()
			}
			pushes = p.RunSchedule(t.Context())
			require.Equal(t, http.StatusAccepted, pushes[0].Status)
			require.Empty(t, p.Queued())
			b.waitFeedbackDelivered(t, report.ID)
			b.requireOneFeedback(t)
			require.Empty(t, p.RunSchedule(t.Context()), "nothing left to push")
		})
	}
}

// An edit in the CHT pushes the same doc._id with changed answers: the
// mediator accepts it, delivers nothing more (openIMIS keeps one feedback
// per claim), and logs at warn which fields changed, without their values;
// mediator_feedback_edits_total counts it. An edit back to the first
// answers is the report received first: a duplicate, not an edit.
func TestOutbound_EditIsLoggedNotDeliveredAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	p := b.outboundPusher(t, chttest.OutboundOptions{})
	report := seedFeedback("a807ed00-edit")
	push, _ := p.Save(t.Context(), report.Doc())
	require.True(t, push.OK(), "%v", push.Err)
	b.waitFeedbackDelivered(t, report.ID)

	edited := report
	edited.CareRendered, edited.AssessmentRating = "no", "2"
	push, _ = p.Edit(t.Context(), edited.Doc())
	require.False(t, push.Skipped, "the CHT pushes an edit that changes mapped values")
	require.Equal(t, http.StatusAccepted, push.Status, "accepted, or the CHT would push it forever")

	lines := b.logLines(t, editMessage)
	require.Len(t, lines, 1)
	line := lines[0]
	require.Equal(t, "warn", line["level"])
	require.Equal(t, report.ID, line["doc_id"])
	require.Equal(t, openimistest.SeedClaimID, line["claim_uuid"])
	require.Equal(t, []any{"care_rendered", "assessment_rating"}, line["changed_fields"])
	for k, v := range line {
		if s, ok := v.(string); ok {
			require.NotContains(t, []string{"yes", "no", "true", "false", "2", "4"}, s, "field %s holds an answer", k)
		}
	}
	require.Contains(t, b.scrape(t), "mediator_feedback_edits_total 1\n")

	// Edited back to the first answers (A→B→A): the CHT pushes it, since it
	// differs from its last push, and the mediator has received it before.
	push, _ = p.Edit(t.Context(), report.Doc())
	require.Equal(t, http.StatusAccepted, push.Status)
	require.Len(t, b.logLines(t, editMessage), 1, "no second edit")
	require.Contains(t, b.scrape(t), "mediator_feedback_edits_total 1\n")

	b.requireOneFeedback(t)
	jobs, err := b.store.ListJobs(t.Context(), storetype.JobFilter{Kinds: []string{"feedback"}, Limit: 10})
	require.NoError(t, err)
	var args struct {
		Feedback struct {
			CareRendered bool `json:"care_rendered"`
			Rating       int  `json:"rating"`
		} `json:"feedback"`
	}
	require.NoError(t, json.Unmarshal(jobs[0].EncodedArgs, &args))
	require.True(t, args.Feedback.CareRendered, "the first answers were delivered")
	require.Equal(t, 4, args.Feedback.Rating)
}
