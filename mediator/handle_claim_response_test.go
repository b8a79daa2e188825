package mediator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestClaimResponse_FixtureYieldsOnePersonAndOneReport(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})

	resp := b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30"))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	require.JSONEq(t, `{"status":"accepted","claim":"`+fixtureClaimUUID+`"}`, string(resp.body))

	reportID := b.waitDelivered(t, fixtureClaimUUID)
	reports := b.reportsFor(fixtureClaimUUID)
	require.Len(t, reports, 1)
	r := reports[0]
	require.Equal(t, reportID, r.ID)
	require.Equal(t, "OP", r.Form)
	require.Empty(t, r.Errors, "the CHT found the report valid")

	people := b.peopleFor(fixtureInsureeUUID)
	require.Len(t, people, 1)
	person := people[0]
	require.Equal(t, "TEST_OTHER_NAME TEST_LAST_NAME", person.Doc["name"])
	require.Equal(t, "male", person.Doc["sex"])
	require.Equal(t, "1990-03-24", person.Doc["date_of_birth"])
	require.Equal(t, "813-996-476", person.Doc["phone"])

	require.Equal(t, person.ID, r.Fields["patient_id"])
	require.Equal(t, "codeTest", r.Fields["op_claim_id"])
	require.Equal(t, "2082", r.Fields["op_year"])
	require.Equal(t, "03", r.Fields["op_month"])
	require.Equal(t, "16", r.Fields["op_day"])
	require.EqualValues(t, 1751220900000, r.Fields["op_date"])
}

// openIMIS's own test fixture, posted as it is (no id: the claim UUID is its
// identifier of type UUID), is accepted and delivered.
func TestClaimResponse_FixtureAsItIs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	resp := b.postClaim(t, readFixture(t, "openimis/test_claimResponse.json"))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.JSONEq(t, `{"status":"accepted","claim":"`+fixtureClaimUUID+`"}`, string(resp.body))
	b.waitDelivered(t, fixtureClaimUUID)
	require.Len(t, b.reportsFor(fixtureClaimUUID), 1)
}

// The OpenHIM channels match a trailing slash, and a sender may add one: the
// slash form is the same route, with the same answers and the same metrics.
func TestClaimResponse_TrailingSlash(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	const path = "/mediator/claim-response/"
	resp := b.post(t, path, "application/json", claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30"), true)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.JSONEq(t, `{"status":"accepted","claim":"`+fixtureClaimUUID+`"}`, string(resp.body))
	b.waitDelivered(t, fixtureClaimUUID)

	// A refused body is a FHIR OperationOutcome, as without the slash.
	resp = b.post(t, path, "application/json", []byte(`{"resourceType":"Claim"}`), true)
	require.Equal(t, http.StatusBadRequest, resp.status)
	var oo struct{ ResourceType string }
	require.NoError(t, json.Unmarshal(resp.body, &oo), string(resp.body))
	require.Equal(t, "OperationOutcome", oo.ResourceType)
	resp = b.post(t, path, "application/json", []byte(`{}`), false)
	require.Equal(t, http.StatusUnauthorized, resp.status)
	require.NoError(t, json.Unmarshal(resp.body, &oo), string(resp.body))
	require.Equal(t, "OperationOutcome", oo.ResourceType)

	out := b.scrape(t)
	require.Contains(t, out, `mediator_http_requests_total{route="/mediator/claim-response",status="200"} 1`)
	require.Contains(t, out, `mediator_http_requests_total{route="/mediator/claim-response",status="400"} 1`)
	require.NotContains(t, out, `route="/mediator/claim-response/"`)
	// Every answer is timed by route, whatever its status: 200, 400 and 401.
	require.Contains(t, out, `mediator_http_request_duration_seconds_count{route="/mediator/claim-response"} 3`)
}

// HEAD answers like GET, without a body (probes that use HEAD).
func TestHealth_Head(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, path := range []string{"/health", "/ready", "/metrics"} {
		get, err := b.srv.Client().Get(b.srv.URL + path)
		require.NoError(t, err)
		get.Body.Close()
		head, err := b.srv.Client().Head(b.srv.URL + path)
		require.NoError(t, err)
		body, err := io.ReadAll(head.Body)
		require.NoError(t, err)
		head.Body.Close()
		require.Equal(t, get.StatusCode, head.StatusCode, path)
		require.Empty(t, body, path)
	}
}

// openIMIS answers an insuree it does not show the mediator's user (unknown,
// or outside the user's area) with a 500 "matching query does not exist":
// the claim is parked for an operator at once, not retried for a day.
func TestClaimResponse_UnknownInsureeIsParked(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	const hidden = "00000000-0000-4000-8000-0000000000aa"
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, hidden, "2025-06-30")).status)
	b.waitLog(t, "job failed permanently", "outside the area of the mediator's openIMIS user")
	require.Empty(t, b.peopleFor(hidden))
	require.Empty(t, b.reportsFor(fixtureClaimUUID))
	n := 0
	for _, r := range b.oi.Requests() {
		if r.Path == openimistest.FHIRPath+"Patient/"+hidden+"/" {
			n++
		}
	}
	require.Equal(t, 1, n, "a permanent error is not retried")
}

// The CHT may answer a records POST whose report it failed to save with a
// 200 {success:true} and no id (docs/upstreams/cht.md trap 1): the job tries again, and the
// claim is delivered once.
func TestClaimResponse_SaveFailedBehindA200IsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.cht.LoseNextSaves(1)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	reportID := b.waitDelivered(t, fixtureClaimUUID)
	reports := b.reportsFor(fixtureClaimUUID)
	require.Len(t, reports, 1)
	require.Equal(t, reportID, reports[0].ID)
	require.Contains(t, b.logs.String(), "answer without report id")
}

func TestClaimResponse_RepeatedNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	body := claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")

	var wg sync.WaitGroup
	statuses := make([]string, 5)
	for i := range 5 {
		wg.Go(func() {
			resp := b.postClaim(t, body)
			require.Equal(t, http.StatusOK, resp.status)
			var a struct{ Status string }
			require.NoError(t, json.Unmarshal(resp.body, &a))
			statuses[i] = a.Status
		})
	}
	wg.Wait()
	accepted := 0
	for _, s := range statuses {
		if s == "accepted" {
			accepted++
		} else {
			require.Equal(t, "duplicate", s)
		}
	}
	require.Equal(t, 1, accepted, "exactly one of the concurrent notifications is new")

	b.waitDelivered(t, fixtureClaimUUID)
	resp := b.postClaim(t, body)
	require.JSONEq(t, `{"status":"duplicate","claim":"`+fixtureClaimUUID+`"}`, string(resp.body))

	// A second claim for the same insuree: same person, a second report.
	second := "0b3f9c52-6a0e-4b8e-9f63-3c2d5d0f1a77"
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, second, fixtureInsureeUUID, "2025-07-01")).status)
	b.waitDelivered(t, second)

	require.Len(t, b.reportsFor(fixtureClaimUUID), 1)
	require.Len(t, b.reportsFor(second), 1)
	require.Len(t, b.peopleFor(fixtureInsureeUUID), 1)
}

func TestClaimResponse_ConcurrentClaimsOfOneNewInsuree(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	var wg sync.WaitGroup
	var claims []string
	for i := range 6 {
		claim := fmt.Sprintf("1d6e4f1c-0000-4000-8000-%012d", i)
		claims = append(claims, claim)
		wg.Go(func() {
			require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, claim, fixtureInsureeUUID, "2025-06-30")).status)
		})
	}
	wg.Wait()
	for _, c := range claims {
		b.waitDelivered(t, c)
		require.Len(t, b.reportsFor(c), 1)
	}
	require.Len(t, b.peopleFor(fixtureInsureeUUID), 1, "one person however many workers raced for it")
}

func TestClaimResponse_Refused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	good := claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")
	edit := func(f func(map[string]any)) []byte {
		var doc map[string]any
		require.NoError(t, json.Unmarshal(good, &doc))
		f(doc)
		out, err := json.Marshal(doc)
		require.NoError(t, err)
		return out
	}

	tests := []struct {
		name        string
		contentType string
		body        []byte
		auth        bool
		user, pass  string
		status      int
		expression  string
	}{
		{name: "NoCredentials", contentType: "application/json", body: good, status: http.StatusUnauthorized},
		{name: "WrongPassword", contentType: "application/json", body: good, auth: true, user: mediatorUser, pass: "nope", status: http.StatusUnauthorized},
		{name: "WrongUser", contentType: "application/json", body: good, auth: true, user: "someone", pass: mediatorPass, status: http.StatusUnauthorized},
		{name: "MalformedJSON", contentType: "application/json", body: []byte(`{"resourceType":`), auth: true, status: http.StatusBadRequest, expression: "body"},
		{name: "EmptyBody", contentType: "application/json", body: nil, auth: true, status: http.StatusBadRequest, expression: "body"},
		{name: "WrongResourceType", contentType: "application/json", body: edit(func(d map[string]any) { d["resourceType"] = "Claim" }), auth: true, status: http.StatusBadRequest, expression: "resourceType"},
		{name: "MissingID", contentType: "application/json", body: edit(func(d map[string]any) { delete(d, "id"); d["identifier"] = d["identifier"].([]any)[1:] }), auth: true, status: http.StatusBadRequest, expression: "id"},
		{name: "MissingPatient", contentType: "application/json", body: edit(func(d map[string]any) { delete(d, "patient") }), auth: true, status: http.StatusBadRequest, expression: "patient"},
		{name: "Oversize", contentType: "application/json", body: []byte(`{"resourceType":"ClaimResponse","pad":"` + strings.Repeat("x", 5<<20) + `"}`), auth: true, status: http.StatusRequestEntityTooLarge},
		{name: "WrongContentType", contentType: "text/plain", body: good, auth: true, status: http.StatusUnsupportedMediaType},
		{name: "NoContentType", body: good, auth: true, status: http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/mediator/claim-response", strings.NewReader(string(tt.body)))
			require.NoError(t, err)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.auth {
				user, pass := tt.user, tt.pass
				if user == "" {
					user, pass = mediatorUser, mediatorPass
				}
				req.SetBasicAuth(user, pass)
			}
			resp, err := b.srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tt.status, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var oo struct {
				ResourceType string
				Issue        []struct {
					Severity, Code string
					Expression     []string
					Details        struct{ Text string }
				}
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&oo))
			require.Equal(t, "OperationOutcome", oo.ResourceType)
			require.NotEmpty(t, oo.Issue)
			require.NotEmpty(t, oo.Issue[0].Details.Text)
			if tt.expression != "" {
				require.Equal(t, []string{tt.expression}, oo.Issue[0].Expression)
			}
			if tt.status == http.StatusUnauthorized {
				require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
			}
		})
	}
	t.Run("NothingEnqueued", func(t *testing.T) {
		_, ok, err := b.store.Delivered(context.Background(), "claim", fixtureClaimUUID)
		require.NoError(t, err)
		require.False(t, ok)
		// The receipt does not exist either: the same claim, sent right, is new.
		resp := b.postClaim(t, good)
		require.JSONEq(t, `{"status":"accepted","claim":"`+fixtureClaimUUID+`"}`, string(resp.body))
	})
}

func TestClaimResponse_CHTDownThenRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	b.cht.SetDown(http.StatusServiceUnavailable)

	claims := []string{fixtureClaimUUID, "2c0e5e0a-1111-4111-8111-111111111111", "2c0e5e0a-2222-4222-8222-222222222222"}
	for _, c := range claims {
		require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, c, fixtureInsureeUUID, "2025-06-30")).status)
	}
	// The workers meet the outage and retry.
	require.Eventually(t, func() bool { return strings.Count(b.logs.String(), "will retry") >= 3 },
		15*time.Second, 10*time.Millisecond)
	require.Empty(t, b.cht.Reports())

	b.cht.SetDown(0)
	for _, c := range claims {
		b.waitDelivered(t, c)
		require.Len(t, b.reportsFor(c), 1)
	}
	require.Len(t, b.peopleFor(fixtureInsureeUUID), 1)
}

func TestClaimResponse_DateOutsideCalendarIsParked(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2099-01-01")).status)
	b.waitLog(t, "job failed permanently", mapping.ErrDateOutOfRange.Error())
	require.Empty(t, b.reportsFor(fixtureClaimUUID))
}

func TestClaimResponse_InsureeUUIDKeptAsReceived(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	// A ClaimResponse with an upper-case insuree UUID (openIMIS itself
	// looks insurees up by UUID value, whatever the case).
	insuree := "A11CE0FF-0000-4000-8000-00000000C0DE"
	b.oi.AddPatient(strings.ToLower(insuree), openimistest.PatientFixture(strings.ToLower(insuree), "900001"))
	claim := "C1A1AC0D-0000-4000-8000-000000000001"
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, claim, insuree, "2025-06-30")).status)
	b.waitDelivered(t, claim)
	people := b.peopleFor(insuree)
	require.Len(t, people, 1)
	require.Equal(t, insuree, people[0].Doc["openimis_id"], "the CHT person carries the insuree UUID as openIMIS sent it")
	reports := b.reportsFor(claim)
	require.Len(t, reports, 1)
	require.Equal(t, claim, reports[0].Fields["op_claim_uuid"])
}
