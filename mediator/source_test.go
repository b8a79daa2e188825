package mediator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// sourceSetup is a mediator with one FHIR source, name, against fake.
type sourceSetup struct {
	name   string
	fake   *fhirtest.Server
	vendor fhir.Vendor
	auth   fhir.Authenticator
	edit   func(*mediator.Source)
}

// withSources returns a setup edit that adds the sources, each with its
// callback on the mediator under test.
func withSources(t *testing.T, list ...sourceSetup) func(*mediator.Options) {
	t.Helper()
	return func(o *mediator.Options) {
		origin := strings.TrimSuffix(o.CallbackEndpoint, "/mediator/claim-response")
		for _, s := range list {
			client, err := fhir.New(fhir.Options{BaseURL: s.fake.BaseURL, Vendor: s.vendor, Auth: s.auth, Timeout: 5 * time.Second})
			require.NoError(t, err)
			src := mediator.Source{
				Name: s.name, Client: client, ManageSubscription: true,
				Endpoint:     origin + "/mediator/fhir/" + s.name,
				PollInterval: time.Hour,
			}
			if s.edit != nil {
				s.edit(&src)
			}
			o.Sources = append(o.Sources, src)
		}
	}
}

func sourceClaim(id, patient, code, created string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"ClaimResponse","id":%q,"status":"active","outcome":"complete",
		"identifier":[{"system":"http://clinic.example/claims","value":%q}],
		"patient":{"reference":"Patient/%s"},"created":%q}`, id, code, patient, created)
}

func sourcePatient(id, given, family string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"gender":"female","birthDate":"1991-02-03",
		"name":[{"family":%q,"given":[%q]}]}`, id, family, given)
}

// waitSubscription waits for the fake's only subscription to reach status.
func waitSubscription(t *testing.T, fake *fhirtest.Server, status string) fhirtest.Subscription {
	t.Helper()
	var sub fhirtest.Subscription
	require.Eventually(t, func() bool {
		subs := fake.Subscriptions()
		if len(subs) != 1 {
			return false
		}
		sub = subs[0]
		return sub.Status == status
	}, 15*time.Second, 10*time.Millisecond, "one subscription %s on the fake", status)
	return sub
}

// waitReports waits until the CHT holds n reports about claim id.
func (b *testBundle) waitReports(t *testing.T, id string, n int) []chttest.Report {
	t.Helper()
	require.Eventually(t, func() bool { return len(b.reportsFor(id)) >= n }, 15*time.Second, 10*time.Millisecond,
		"%d report(s) about claim %s", n, id)
	return b.reportsFor(id)
}

// Kodjin (K1, K2, K5): the mediator creates its subscription as requested,
// the server activates it and PUTs each claim outcome to the callback; one
// report per claim whatever the versions, the person from the source's
// Patient; a restart finds the subscription again.
func TestSource_KodjinPayload(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin})})

	sub := waitSubscription(t, kodjin, "active")
	require.Equal(t, "ClaimResponse?", sub.Criteria, "HAPI and Kodjin want Type?")
	require.Equal(t, "application/fhir+json", sub.Payload)
	require.Equal(t, b.srv.URL+"/mediator/fhir/kodjin", sub.Endpoint)
	require.Len(t, sub.Header, 1)
	require.True(t, strings.HasPrefix(sub.Header[0], "Authorization: Basic "), "the callback's credentials")

	kodjin.AddPatient(sourcePatient("pat-1", "Asha", "Rai"))
	kodjin.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
	reports := b.waitReports(t, "cr-1", 1)
	require.Equal(t, "CLM-1", reports[0].Fields["op_claim_id"])
	require.Equal(t, "2082", reports[0].Fields["op_year"])
	people := b.cht.People()
	require.Len(t, people, 1)
	require.Equal(t, "Asha Rai", people[0].Doc["name"])
	require.Equal(t, "kodjin/Patient/pat-1", people[0].Doc["source_patient_id"])
	require.Equal(t, people[0].Doc["_id"], reports[0].Fields["patient_id"])

	var deliveries []fhirtest.Delivery
	for _, d := range kodjin.Deliveries() {
		deliveries = append(deliveries, d)
		require.True(t, d.Success, "delivery %+v", d)
		require.Equal(t, http.StatusOK, d.Status)
		require.Contains(t, d.AnswerContentType, "application/fhir+json")
	}
	require.NotEmpty(t, deliveries)

	// A newer version, and a second claim for the same patient.
	kodjin.UpdateClaimResponse("cr-1", sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
	kodjin.CreateClaimResponse(sourceClaim("cr-2", "pat-1", "CLM-2", "2025-07-01"))
	b.waitReports(t, "cr-2", 1)
	b.waitLog(t, `"claim_id":"cr-2"`, "claim delivered to the CHT")
	require.Len(t, b.reportsFor("cr-1"), 1, "one report per claim, whatever its versions")
	require.Len(t, b.cht.People(), 1, "one person per patient")

	b.restart(t)
	time.Sleep(300 * time.Millisecond) // the upkeep runs at start
	require.Len(t, kodjin.Subscriptions(), 1, "the restarted mediator finds its subscription")
}

// Kodjin without payload (K3): an empty POST makes the mediator search.
func TestSource_EmptyPingSearches(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
		edit: func(s *mediator.Source) { s.Content = fhir.ContentEmpty }})})
	sub := waitSubscription(t, kodjin, "active")
	require.Empty(t, sub.Payload, "no payload: empty pings")

	kodjin.AddPatient(sourcePatient("pat-9", "Bina", "KC"))
	kodjin.CreateClaimResponse(sourceClaim("cr-9", "pat-9", "CLM-9", "2025-06-30"))
	b.waitReports(t, "cr-9", 1)
	require.NotEmpty(t, kodjin.Deliveries())
	require.Empty(t, kodjin.Deliveries()[0].Body, "the fake pinged with an empty body")

	// A burst of pings is one search, not one each.
	searches := func() int {
		n := 0
		for _, r := range kodjin.Requests() {
			if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/ClaimResponse") {
				n++
			}
		}
		return n
	}
	before := searches()
	time.Sleep(1100 * time.Millisecond) // past the second of the last search
	first := time.Now()
	for range 20 {
		require.Equal(t, http.StatusOK, b.do(t, http.MethodPost, "/mediator/fhir/kodjin", "", nil, true).status)
	}
	seconds := int(time.Now().Unix()-first.Unix()) + 1
	require.Eventually(t, func() bool { return searches() > before }, 15*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // any other search the burst queued
	require.LessOrEqual(t, searches()-before, seconds,
		"20 pings are one search per second they span (%d), not one each", seconds)
}

// Kodjin's error → off → repair (K4): the upkeep PUTs the subscription back
// to requested, and the claims created meanwhile arrive by the search.
func TestSource_RepairsASubscriptionTurnedOff(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
		edit: func(s *mediator.Source) { s.PollInterval = 200 * time.Millisecond }})})
	sub := waitSubscription(t, kodjin, "active")
	kodjin.SetStatus(sub.ID, "off", "notification retries exhausted")
	kodjin.CreateClaimResponse(sourceClaim("cr-off", "pat-1", "CLM-OFF", "2025-06-30"))
	require.Empty(t, kodjin.Deliveries(), "an off subscription notifies nobody")

	repaired := waitSubscription(t, kodjin, "active")
	require.Equal(t, sub.ID, repaired.ID, "repaired in place by PUT, not replaced")
	b.waitReports(t, "cr-off", 1)
	b.waitLog(t, "source subscription repaired")
}

// HeyDonto (H1, H3): JSON login with an e-mail, kebab-case paths under
// /site/<id>/fhir, search pages by _page_token with next links that lack
// the site; every claim once, with the subscription off (polling only).
func TestSource_HeyDontoPolling(t *testing.T) {
	t.Parallel()
	hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, LoginField: "accessToken"})
	login, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{
		URL: fhir.DefaultLoginURL(fhir.VendorHeyDonto, hd.BaseURL), UserField: "email",
		Username: fhirtest.DefaultEmail, Password: fhirtest.DefaultPassword,
	})
	require.NoError(t, err)
	for i := range 130 {
		hd.CreateClaimResponse(sourceClaim(fmt.Sprintf("hd-%03d", i), fmt.Sprintf("p-%d", i%7), fmt.Sprintf("H-%d", i), "2025-06-30"))
	}
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: login,
		edit: func(s *mediator.Source) { s.ManageSubscription = false; s.PollInterval = time.Hour }})})
	for i := range 130 {
		b.waitReports(t, fmt.Sprintf("hd-%03d", i), 1)
	}
	require.Len(t, b.cht.Reports(), 130)
	require.Len(t, b.cht.People(), 7, "one person per patient")
	require.Empty(t, hd.Subscriptions(), "subscription off: none made")

	ready := b.get(t, "/ready")
	var body struct {
		Sources map[string]struct {
			Subscription string `json:"subscription"`
			LastPoll     string `json:"last_poll"`
		} `json:"sources"`
	}
	require.NoError(t, json.Unmarshal(ready.body, &body), "%s", ready.body)
	require.Equal(t, "polling-only", body.Sources["heydonto"].Subscription)
	require.NotEmpty(t, body.Sources["heydonto"].LastPoll)
}

// A server without a usable CapabilityStatement (G2) and a topic-based
// server that advertises two topics: neither dialect nor topic is guessed
// at, /ready names what to set (and the candidate topics), and the search
// still brings their claims.
func TestSource_UndetectedAndTopicServersPoll(t *testing.T) {
	t.Parallel()
	hapi := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, MetadataNotFound: true})
	other := fhirtest.Topic{URL: "http://aidbox.app/SubscriptionTopic/claim-response-2", Resource: "ClaimResponse", MaxContent: "full-resource"}
	box := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen, Topics: []fhirtest.Topic{fhirtest.DefaultTopic, other}})
	hapi.CreateClaimResponse(sourceClaim("same-id", "p1", "A-1", "2025-06-30"))
	box.CreateClaimResponse(sourceClaim("same-id", "p1", "B-1", "2025-06-30"))
	b := setup(t, setupOpts{edit: withSources(t,
		sourceSetup{name: "hapi", fake: hapi, vendor: fhir.VendorHAPI},
		sourceSetup{name: "box", fake: box, vendor: fhir.VendorAidboxZen},
	)})
	reports := b.waitReports(t, "same-id", 2)
	codes := []any{reports[0].Fields["op_claim_id"], reports[1].Fields["op_claim_id"]}
	require.ElementsMatch(t, []any{"A-1", "B-1"}, codes, "the same id from two sources is two claims")
	require.Len(t, b.cht.People(), 2, "the same patient id on two servers is two people")
	require.Empty(t, hapi.Subscriptions())
	require.Eventually(t, func() bool {
		r := string(b.get(t, "/ready").body)
		return strings.Contains(r, "FHIR_HAPI_DIALECT") && strings.Contains(r, "FHIR_BOX_TOPIC") &&
			strings.Contains(r, fhirtest.DefaultTopic.URL) && strings.Contains(r, other.URL)
	}, 15*time.Second, 10*time.Millisecond)
	require.Empty(t, box.Subscriptions(), "no topic is guessed: no subscription made")
	metrics := string(b.get(t, "/metrics").body)
	require.Contains(t, metrics, `mediator_source_subscription_state{source="box",state="polling-only"} 1`)
	require.Contains(t, metrics, `mediator_source_subscription_state{source="hapi",state="failing"} 1`)
}

// A server whose dialect cannot be detected (trap 2): /ready names the
// source's own variable, FHIR_AIDBOX_DIALECT, once, with the values it
// takes, and no placeholder.
func TestSource_ReadyNamesTheDialectVariableOnce(t *testing.T) {
	t.Parallel()
	box := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen, MetadataNotFound: true})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "aidbox", fake: box, vendor: fhir.VendorAidboxZen})})
	var body struct {
		Sources map[string]struct {
			Subscription string `json:"subscription"`
			Problem      string `json:"problem"`
		} `json:"sources"`
	}
	require.Eventually(t, func() bool {
		ready := b.get(t, "/ready")
		require.NoError(t, json.Unmarshal(ready.body, &body), "%s", ready.body)
		return body.Sources["aidbox"].Subscription == "failing"
	}, 15*time.Second, 10*time.Millisecond)
	problem := body.Sources["aidbox"].Problem
	require.Equal(t, 1, strings.Count(problem, "FHIR_AIDBOX_DIALECT"), problem)
	require.Contains(t, problem, "cannot detect dialect (metadata: 404)", problem)
	require.Contains(t, problem, "set FHIR_AIDBOX_DIALECT (r4-criteria, r4-backport, r4b-backport or r5)", problem)
	require.NotContains(t, problem, "<N>", problem)
	require.Empty(t, box.Subscriptions(), "no dialect guessed")
}

// Two sources carry the same ClaimResponse id (two claims, spec §8). The
// second source's first report POST is lost by the CHT (answered without an
// id, docs/upstreams/cht.md trap 1) or saved only after the mediator gave up
// (§1): its retry looks for an earlier report of its own, not the first
// source's, so each source has its report, exactly one.
func TestSource_RetriedReportIsTheSourcesOwn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// fail makes the second source's first POST fail; done ends the fault.
		fail func(b *testBundle) (done func())
	}{
		{"NotSaved", func(b *testBundle) func() { b.cht.LoseNextSaves(1); return func() {} }},
		{"SavedAfterTheTimeout", func(b *testBundle) func() { return b.cht.HoldSaves() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
			second := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
			b := setup(t, setupOpts{edit: func(o *mediator.Options) {
				withSources(t,
					sourceSetup{name: "first", fake: first, vendor: fhir.VendorKodjin},
					sourceSetup{name: "second", fake: second, vendor: fhir.VendorKodjin})(o)
				o.UpstreamTimeout = 300 * time.Millisecond
				o.LateSaveWait = time.Second
			}})
			waitSubscription(t, first, "active")
			waitSubscription(t, second, "active")
			first.AddPatient(sourcePatient("p1", "Asha", "Rai"))
			second.AddPatient(sourcePatient("p1", "Bina", "Gurung"))
			first.CreateClaimResponse(sourceClaim("same-id", "p1", "A-1", "2025-06-30"))
			b.waitReports(t, "same-id", 1)

			done := tc.fail(b)
			second.CreateClaimResponse(sourceClaim("same-id", "p1", "B-1", "2025-06-30"))
			b.waitLog(t, "job attempt failed; will retry")
			done()
			b.waitReports(t, "same-id", 2)
			// Each source's claim is recorded as delivered by its own report.
			byCode := map[any]string{}
			for _, r := range b.reportsFor("same-id") {
				byCode[r.Fields["op_claim_id"]] = r.ID
			}
			for source, code := range map[string]string{"first": "A-1", "second": "B-1"} {
				require.Eventually(t, func() bool {
					result, ok, err := b.store.Delivered(context.Background(), "fhir_claim", source+"/claimresponse/same-id")
					require.NoError(t, err)
					return ok && result == byCode[code]
				}, 15*time.Second, 10*time.Millisecond, "%s delivered by its report %s", source, byCode[code])
			}
			require.Len(t, b.reportsFor("same-id"), 2, "one report per source")
		})
	}
}

// The callback's edges: an unknown source is a 404, a caller without the
// credentials a 401, a body that is not JSON a 415, an unreadable one a
// 400 OperationOutcome; a Bundle is answered with a Bundle (HAPI parses it).
func TestSource_CallbackAnswers(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
		edit: func(s *mediator.Source) { s.ManageSubscription = false }})})
	for _, tc := range []struct {
		name, path, contentType, body string
		auth                          bool
		status                        int
		want                          string
	}{
		{"UnknownSource", "/mediator/fhir/nope", "application/fhir+json", "", true, 404, "no such FHIR source"},
		{"NoCredentials", "/mediator/fhir/kodjin", "application/fhir+json", "", false, 401, ""},
		{"NotJSON", "/mediator/fhir/kodjin", "text/plain", "hello", true, 415, "OperationOutcome"},
		{"Unreadable", "/mediator/fhir/kodjin", "application/fhir+json", `{"id":"x"}`, true, 400, "resourceType"},
		{"Ping", "/mediator/fhir/kodjin", "", "", true, 200, `"OperationOutcome"`},
		{"Heartbeat", "/mediator/fhir/kodjin", "application/fhir+json",
			`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus","type":"heartbeat","status":"active","subscription":{"reference":"Subscription/1"}}}]}`,
			true, 200, `"transaction-response"`},
		{"ResourcePut", "/mediator/fhir/kodjin/ClaimResponse/cr-put", "application/fhir+json",
			string(sourceClaim("cr-put", "pat-2", "CLM-P", "2025-06-30")), true, 200, `"accepted"`},
	} {
		method := http.MethodPost
		if strings.Contains(tc.path, "/ClaimResponse/") {
			method = http.MethodPut
		}
		r := b.do(t, method, tc.path, tc.contentType, []byte(tc.body), tc.auth)
		require.Equal(t, tc.status, r.status, "%s: %s", tc.name, r.body)
		require.Contains(t, string(r.body), tc.want, tc.name)
		if tc.status == 200 {
			require.Contains(t, r.header.Get("Content-Type"), "application/fhir+json", tc.name)
		}
	}
	b.waitReports(t, "cr-put", 1)
	// The report is saved before the delivery is recorded.
	require.Eventually(t, func() bool {
		_, ok, err := b.store.Delivered(context.Background(), "fhir_claim", "kodjin/claimresponse/cr-put")
		require.NoError(t, err)
		return ok
	}, 15*time.Second, 10*time.Millisecond, "the delivery is recorded under the source's key")
}

// do sends a request to the mediator under test.
func (b *testBundle) do(t testing.TB, method, path, contentType string, body []byte, auth bool) response {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.SetBasicAuth(mediatorUser, mediatorPass)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

// get is an unauthenticated GET of the mediator under test.
func (b *testBundle) get(t testing.TB, path string) response {
	t.Helper()
	return b.do(t, http.MethodGet, path, "", nil, false)
}

// Kodjin (K7): a subscription that ends within 30 days is renewed, by PUT,
// before it ends.
func TestSource_RenewsBeforeTheEnd(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
			edit: func(s *mediator.Source) { s.PollInterval = 200 * time.Millisecond }})(o)
		o.Now = now
		o.SubscriptionEnd = func(t time.Time) time.Time { return t.Add(40 * 24 * time.Hour) }
	}})
	sub := waitSubscription(t, kodjin, "active")
	require.WithinDuration(t, time.Now().Add(40*24*time.Hour), sub.End, time.Minute)

	offset.Store(int64(11 * 24 * time.Hour)) // 29 days left
	require.Eventually(t, func() bool {
		s, ok := kodjin.Subscription(sub.ID)
		return ok && s.End.After(sub.End.Add(10*24*time.Hour))
	}, 15*time.Second, 10*time.Millisecond, "renewed in place with a later end")
	require.Len(t, kodjin.Subscriptions(), 1)
	b.waitLog(t, "source subscription repaired", "it ends")
}

// Kodjin (K6): an operator edits our subscription's header on the server;
// the next delivery reaches the callback without our credentials and is
// answered 401, which the server counts as a failure. The next upkeep
// (here the one a restart runs) sees the header is not ours and PUTs ours
// back; the claim of the refused delivery arrives by the search, later
// ones by notification, each once. The repair names both reasons: the
// error status and the header.
func TestSource_RestoresAnEditedCallbackHeader(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin})})
	sub := waitSubscription(t, kodjin, "active")
	ours := sub.Header
	require.Len(t, ours, 1)

	// The operator's edit, through the server's API.
	client, err := fhir.New(fhir.Options{BaseURL: kodjin.BaseURL, Vendor: fhir.VendorKodjin, Timeout: 5 * time.Second})
	require.NoError(t, err)
	edited, err := client.GetSubscription(context.Background(), sub.ID)
	require.NoError(t, err)
	edited.Status = "requested" // Kodjin takes no other status on a PUT
	edited.Channel.Header = []string{"Authorization: Basic b3BlcmF0b3I6Z3Vlc3M="}
	_, err = client.UpdateSubscription(context.Background(), edited)
	require.NoError(t, err)
	waitSubscription(t, kodjin, "active")

	kodjin.CreateClaimResponse(sourceClaim("cr-k6", "pat-1", "CLM-K6", "2025-06-30"))
	deliveries := kodjin.Deliveries()
	require.Len(t, deliveries, 1)
	require.Equal(t, http.StatusUnauthorized, deliveries[0].Status, "the callback refuses the operator's credentials")
	require.False(t, deliveries[0].Success)
	failed, ok := kodjin.Subscription(sub.ID)
	require.True(t, ok)
	require.Equal(t, "error", failed.Status, "the server counted the failure")
	require.Empty(t, b.reportsFor("cr-k6"))

	b.restart(t)
	require.Eventually(t, func() bool {
		s, ok := kodjin.Subscription(sub.ID)
		return ok && s.Status == "active" && assert.ObjectsAreEqual(ours, s.Header)
	}, 15*time.Second, 10*time.Millisecond, "our header is back, on the same subscription")
	b.waitLog(t, "source subscription repaired", "its status is error", "its channel header is not ours any more")
	b.waitReports(t, "cr-k6", 1) // by the search

	kodjin.CreateClaimResponse(sourceClaim("cr-k6b", "pat-1", "CLM-K6B", "2025-07-01"))
	b.waitReports(t, "cr-k6b", 1)
	last := kodjin.Deliveries()[len(kodjin.Deliveries())-1]
	require.Equal(t, "ClaimResponse/cr-k6b", last.Resource)
	require.True(t, last.Success, "%+v", last)
	time.Sleep(200 * time.Millisecond) // any duplicate would be under way by now
	require.Len(t, b.reportsFor("cr-k6"), 1)
	require.Len(t, b.reportsFor("cr-k6b"), 1)
	require.Len(t, kodjin.Subscriptions(), 1)
}
