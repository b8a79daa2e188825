package chttest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
)

// receiver is an outbound destination that records what it receives and
// answers status, or holds the answer while hold is set.
type receiver struct {
	mu     sync.Mutex
	status int
	hold   chan struct{}
	got    []*http.Request
	bodies []string
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	t.Helper()
	rc := &receiver{status: http.StatusAccepted}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, r)
		rc.bodies = append(rc.bodies, string(body))
		status, hold := rc.status, rc.hold
		rc.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) set(status int, hold chan struct{}) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.status, rc.hold = status, hold
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bodies...)
}

var feedbackReport = chttest.ClaimsFeedback{
	ID: "0b7e2d36-report", ClaimUUID: "claim-1", InsureeUUID: "insuree-1",
	CareRendered: "yes", PaymentAsked: "no", DrugPrescribed: "yes", DrugReceived: "no", AssessmentRating: "4",
}

func TestOutboundPusher_PushesTheMappedReport(t *testing.T) {
	t.Parallel()
	rc, srv := newReceiver(t)
	p, err := chttest.NewOutboundPusher(chttest.OutboundOptions{BaseURL: srv.URL, Password: "s3cret"})
	require.NoError(t, err)
	require.Equal(t, chttest.OutboundPeriod, p.Period(), "the schedule's real period by default")

	push, ok := p.Save(context.Background(), feedbackReport.Doc())
	require.True(t, ok)
	require.True(t, push.OK(), "%v", push.Err)
	require.Equal(t, http.StatusAccepted, push.Status)
	require.Empty(t, p.Queued())

	require.Len(t, rc.got, 1)
	r := rc.got[0]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/mediator/claims-feedback", r.URL.Path, "the config's destination.path")
	user, pass, ok := r.BasicAuth()
	require.True(t, ok)
	require.Equal(t, "interop-client", user, "the config's auth.username")
	require.Equal(t, "s3cret", pass)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, "application/json", r.Header.Get("Accept"))
	require.JSONEq(t, `{"doc":{"_id":"0b7e2d36-report"},"care_rendered":"yes","payment_asked":"no",
		"drug_prescribed":"yes","drug_received":"no","assessment_rating":"4",
		"claimUUID":"claim-1","insureeUUID":"insuree-1"}`, rc.received()[0])

	other := feedbackReport.Doc()
	other["_id"], other["form"] = "other-form", "pregnancy"
	_, ok = p.Save(context.Background(), other)
	require.False(t, ok, "relevant_to selects claims_feedback reports only")
	require.Len(t, rc.received(), 1)
}

func TestOutboundPusher_FailedPushesWaitForTheSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc, srv := newReceiver(t)
	p, err := chttest.NewOutboundPusher(chttest.OutboundOptions{BaseURL: srv.URL, Password: "s3cret", Timeout: 100 * time.Millisecond})
	require.NoError(t, err)

	t.Run("Abort", func(t *testing.T) {
		hold := make(chan struct{})
		rc.set(http.StatusAccepted, hold)
		push, _ := p.Save(ctx, feedbackReport.Doc())
		require.ErrorIs(t, push.Err, context.DeadlineExceeded)
		require.Zero(t, push.Status)
		require.Equal(t, []string{feedbackReport.ID}, p.Queued())
		close(hold)
		rc.set(http.StatusAccepted, nil)

		pushes := p.RunSchedule(ctx)
		require.Len(t, pushes, 1)
		require.True(t, pushes[0].OK(), "%v", pushes[0].Err)
		require.Empty(t, p.Queued())
		require.Empty(t, p.RunSchedule(ctx), "nothing left to push")
	})
	t.Run("NonSuccessStatus", func(t *testing.T) {
		edited := feedbackReport
		edited.AssessmentRating = "2"
		rc.set(http.StatusServiceUnavailable, nil)
		push, _ := p.Edit(ctx, edited.Doc())
		require.Equal(t, http.StatusServiceUnavailable, push.Status)
		require.ErrorContains(t, push.Err, "503")
		require.Equal(t, []string{feedbackReport.ID}, p.Queued())
		require.False(t, p.RunSchedule(ctx)[0].OK(), "still refused: still queued")
		require.Equal(t, []string{feedbackReport.ID}, p.Queued())

		edited.AssessmentRating = "3" // edited again while queued
		rc.set(http.StatusBadRequest, nil)
		_, _ = p.Edit(ctx, edited.Doc())
		require.Equal(t, []string{feedbackReport.ID}, p.Queued(), "one task per report")

		rc.set(http.StatusOK, nil)
		require.True(t, p.RunSchedule(ctx)[0].OK())
		require.Empty(t, p.Queued())
		bodies := rc.received()
		var last map[string]any
		require.NoError(t, json.Unmarshal([]byte(bodies[len(bodies)-1]), &last))
		require.Equal(t, "3", last["assessment_rating"], "the schedule pushes the current revision")
	})
	t.Run("IdenticalPayloadNotSentAgain", func(t *testing.T) {
		n := len(rc.received())
		edited := feedbackReport
		edited.AssessmentRating = "3"
		doc := edited.Doc()
		doc["fields"].(map[string]any)["unmapped"] = "changed" // a revision no mapped value sees
		push, _ := p.Edit(ctx, doc)
		require.True(t, push.Skipped)
		require.True(t, push.OK())
		require.Len(t, rc.received(), n, "nothing sent")

		push, _ = p.Edit(ctx, feedbackReport.Doc()) // back to the first values: A→B→A
		require.False(t, push.Skipped)
		require.Len(t, rc.received(), n+1, "a payload other than the last one sent is sent")
	})
}

func TestOutboundPusher_FailsWithoutSending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc, srv := newReceiver(t)
	p, err := chttest.NewOutboundPusher(chttest.OutboundOptions{BaseURL: srv.URL})
	require.NoError(t, err)

	push, _ := p.Save(ctx, feedbackReport.Doc())
	require.ErrorContains(t, push.Err, "password_key", "no credential stored")
	require.Equal(t, []string{feedbackReport.ID}, p.Queued())
	p.SetPassword("s3cret")

	doc := feedbackReport.Doc()
	delete(doc["fields"].(map[string]any)["inputs"].(map[string]any), "op_claim_uuid")
	push, _ = p.Edit(ctx, doc)
	require.ErrorContains(t, push.Err, "cannot find 'doc.fields.inputs.op_claim_uuid'", "a required mapping resolved to nothing")
	require.False(t, p.RunSchedule(ctx)[0].OK(), "and it fails at every run")
	require.Empty(t, rc.received())

	push, _ = p.Edit(ctx, feedbackReport.Doc())
	require.True(t, push.OK())
	require.Len(t, rc.received(), 1)
	require.Equal(t, []string{feedbackReport.ID}, p.Queued(), "a push by the transition leaves the task queued")
	pushes := p.RunSchedule(ctx)
	require.True(t, pushes[0].Skipped, "the schedule finds it pushed already")
	require.Empty(t, p.Queued())
	require.Len(t, rc.received(), 1)
}

func TestOutboundPusher_RefusesWhatItDoesNotModel(t *testing.T) {
	t.Parallel()
	for name, config := range map[string]string{
		"Expression":  `{"c":{"relevant_to":"doc.type === 'data_record' && doc.form","destination":{"auth":{"type":"basic"}},"mapping":{}}}`,
		"HeaderAuth":  `{"c":{"relevant_to":"doc.form === 'x'","destination":{"auth":{"type":"header"}},"mapping":{}}}`,
		"MappingExpr": `{"c":{"relevant_to":"doc.form === 'x'","destination":{"auth":{"type":"basic"}},"mapping":{"a":{"expr":"1+1"}}}}`,
		"TwoConfigs":  `{"a":{},"b":{}}`,
	} {
		_, err := chttest.NewOutboundPusher(chttest.OutboundOptions{Outbound: json.RawMessage(config)})
		require.Error(t, err, name)
	}
}
