package mediator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

func TestDeliverableEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint string
		want     bool
	}{
		{"https://him.example.org:5001/mediator/claim-response", true},
		{"http://localhost:6000/mediator/claim-response", true},
		{"http://127.0.0.1:6000/mediator/claim-response", true},
		{"http://[::1]:6000/mediator/claim-response", true},
		{"http://mediator.local./x", true},
		{"http://openhim-core:5001/mediator/claim-response", false},
		{"http://mediator:6000/x", false},
		{"http://host.x1/x", false},
		{"http://my_host.example.org/x", false},
		{"http://-bad.example.org/x", false},
		{"http://010.0.0.1/x", false},
		{"::not a url", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, deliverableEndpoint(tt.endpoint) == nil, tt.endpoint)
	}
}

func TestOperationPath_HidesIdentifiers(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/api/api_fhir_r4/Patient/a11ce000-0000-4000-8000-000000000001/": "/api/api_fhir_r4/Patient/:id/",
		"/api/api_fhir_r4/Subscription/":                                 "/api/api_fhir_r4/Subscription/",
		"/mediators/urn:mediator:cht-openimis/heartbeat":                 "/mediators/:id/heartbeat",
		"/authenticate/root@openhim.org":                                 "/authenticate/:id",
		"/authenticate/admin":                                            "/authenticate/:id",
		"/api/v1/contact/uuid":                                           "/api/v1/contact/uuid",
		"/medic/5f1b2c3d4e5f6a7b8c9d0e1f":                                "/medic/:id",
	} {
		if got := operationPath(path); got != want {
			t.Errorf("operationPath(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestClassify_WaitingIsNeverPermanent(t *testing.T) {
	t.Parallel()
	// The login that started the backoff failed permanently (a wrong FHIR
	// path): jobs that merely wait for the next login still wait.
	err := classify(&openimis.LoginBackoffError{Left: 4 * time.Second, Last: &openimis.APIError{Status: http.StatusNotFound}})
	var snooze *rivertype.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	require.Equal(t, 4*time.Second, snooze.Duration)
	// The failed request itself is permanent.
	var cancel *rivertype.JobCancelError
	require.ErrorAs(t, classify(&openimis.APIError{Status: http.StatusNotFound}), &cancel)
}

func TestRiverConfig_KeepsFailedJobs(t *testing.T) {
	t.Parallel()
	m := &Mediator{opts: Options{Workers: 2, UpstreamTimeout: time.Second, FetchInterval: time.Second, SubscriptionCheck: time.Hour}}
	cfg := m.riverConfig()
	// -1 is River's "never delete": a failed claim waits for an operator.
	require.Equal(t, time.Duration(-1), cfg.CancelledJobRetentionPeriod)
	require.Equal(t, time.Duration(-1), cfg.DiscardedJobRetentionPeriod)
	require.Zero(t, cfg.CompletedJobRetentionPeriod, "completed jobs keep River's default; the receipts record deliveries")
}

func TestMissingFormFields(t *testing.T) {
	t.Parallel()
	missing, err := missingFormFields([]byte(`{"fields":{"patient_id":{},"op_claim_id":{},"op_year":{},"op_month":{},"op_day":{}}}`), "OP")
	require.NoError(t, err)
	require.Equal(t, []string{"op_claim_uuid", "op_date"}, missing)
	for _, def := range []string{`{"meta":{}}`, `{"fields":[]}`, `not json`} {
		_, err := missingFormFields([]byte(def), "OP")
		require.EqualError(t, err, "the form definition has no fields object", def)
	}
}

func TestPeriodicOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	transient := errors.New("connection refused")
	var failure *periodicFailure
	var snooze *rivertype.JobSnoozeError

	require.NoError(t, periodicOutcome(ctx, 1, 3, nil))
	require.ErrorIs(t, periodicOutcome(ctx, 3, 3, context.Canceled), context.Canceled, "a stop is not a failure")
	require.Equal(t, transient, periodicOutcome(ctx, 1, 3, transient), "retried while attempts remain")
	require.ErrorAs(t, periodicOutcome(ctx, 3, 3, transient), &failure, "the last attempt ends it, completed")
	require.ErrorAs(t, periodicOutcome(ctx, 1, 3, &openimis.APIError{Status: http.StatusForbidden}), &failure, "a permanent error ends it")
	require.ErrorAs(t, periodicOutcome(ctx, 3, 3, river.JobSnooze(time.Minute)), &snooze, "a snooze stays a snooze")
}

// After a report POST without an answer, the retry waits two upstream
// timeouts as they are now: runtime configuration may have raised them.
func TestLateSaveWait_FollowsTheUpstreamTimeout(t *testing.T) {
	t.Parallel()
	failed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := &rivertype.JobRow{Attempt: 2, Errors: []rivertype.AttemptError{
		{At: failed, Attempt: 1, Error: errPostReportNoAnswer + "cht POST /api/v2/records: context deadline exceeded"},
	}}
	d := &delivery{}
	d.timeout.Store(int64(5 * time.Second))
	require.Equal(t, 9*time.Second, d.lateSaveWait(job, failed.Add(time.Second)))
	d.timeout.Store(int64(30 * time.Second))
	require.Equal(t, 59*time.Second, d.lateSaveWait(job, failed.Add(time.Second)))

	answered := &rivertype.JobRow{Attempt: 2, Errors: []rivertype.AttemptError{
		{At: failed, Attempt: 1, Error: "post claim report: cht POST /api/v2/records: 500: Server error"},
	}}
	require.Zero(t, d.lateSaveWait(answered, failed.Add(time.Second)), "an answered POST saved nothing later")
	require.Zero(t, d.lateSaveWait(&rivertype.JobRow{Attempt: 1}, failed), "a first attempt posted nothing before")
}

func TestOperation_OneNamePerEndpoint(t *testing.T) {
	for _, tc := range []struct{ method, url, want string }{
		{"GET", "http://h/api/api_fhir_r4/Patient/7b00e6ec-7fb7-4e15-9b0c-5b3d9d8a2bca/", "GET /api/api_fhir_r4/Patient/:id/"},
		{"GET", "http://h/api/v1/contact/uuid?freetext=openimis_id:abc", "GET /api/v1/contact/uuid"},
		{"POST", "http://h/api/v2/records", "POST /api/v2/records"},
		{"GET", "http://h", "GET "},
		{"GET", "http://h/", "GET /"},
	} {
		r, err := http.NewRequest(tc.method, tc.url, nil)
		require.NoError(t, err)
		require.Equal(t, tc.want, operation(r), tc.url)
	}
}

// TestIsIDSegment checks the id test against the pattern it replaced.
func TestIsIDSegment(t *testing.T) {
	pattern := regexp.MustCompile(`^([0-9a-fA-F-]{32,36}|[0-9]+|[0-9a-f]{24})$`)
	for _, s := range []string{
		"", "0", "42", "v1", "api_fhir_r4", "Patient", "uuid",
		"7b00e6ec-7fb7-4e15-9b0c-5b3d9d8a2bca", "7B00E6EC-7FB7-4E15-9B0C-5B3D9D8A2BCA", "7b00e6ec7fb74e159b0c5b3d9d8a2bca",
		"5f1b2c3d4e5f6a7b8c9d0e1f", "5F1B2C3D4E5F6A7B8C9D0E1F", "5f1b2c3d4e5f6a7b8c9d0e1", strings.Repeat("-", 32),
		strings.Repeat("a", 31), strings.Repeat("a", 37), "9f0c2e61",
	} {
		require.Equal(t, pattern.MatchString(s), isIDSegment(s), "%q", s)
	}
}

func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 100)
	got, err := readBody(strings.NewReader(body), 100, 1000)
	require.NoError(t, err)
	require.Equal(t, body, string(got))

	_, err = readBody(strings.NewReader(body[:40]), 100, 1000)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a body shorter than its Content-Length")

	got, err = readBody(strings.NewReader(body), -1, 1000)
	require.NoError(t, err, "no Content-Length")
	require.Equal(t, body, string(got))

	big := strings.Repeat("y", exactBodyUpTo+1)
	got, err = readBody(strings.NewReader(big), int64(len(big)), 1<<20)
	require.NoError(t, err, "a large body grows with what arrives")
	require.Equal(t, big, string(got))
}
