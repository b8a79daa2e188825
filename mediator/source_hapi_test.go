package mediator_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// HAPI that accepts and activates a subscription and never notifies
// (G3, docs/upstreams/fhir-subscriptions.md trap 25): the claims arrive by
// the catch-up search, whose timestamp advances, and the source is not
// called silent: a criteria subscription has no heartbeat to miss, so
// nothing tells silence from quiet.
func TestSource_HAPINeverFiringPolls(t *testing.T) {
	t.Parallel()
	hapi := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, NeverFire: true})
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		withSources(t, sourceSetup{name: "hapi", fake: hapi, vendor: fhir.VendorHAPI,
			edit: func(s *mediator.Source) { s.PollInterval = 200 * time.Millisecond }})(o)
		o.SourceWatchdog = 100 * time.Millisecond
	}})
	waitSubscription(t, hapi, "active")
	hapi.AddPatient(sourcePatient("pat-1", "Asha", "Rai"))
	hapi.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
	hapi.CreateClaimResponse(sourceClaim("cr-2", "pat-1", "CLM-2", "2025-06-30"))
	b.waitReports(t, "cr-1", 1)
	b.waitReports(t, "cr-2", 1)
	require.Empty(t, hapi.Deliveries(), "the server never notified")

	const polled = `mediator_source_catchup_last_success_timestamp_seconds{source="hapi"}`
	first, ok := gaugeValue(b.scrape(t), polled)
	require.True(t, ok, polled)
	require.Positive(t, first)
	require.Eventually(t, func() bool { v, ok := gaugeValue(b.scrape(t), polled); return ok && v > first },
		15*time.Second, 10*time.Millisecond, "the catch-up timestamp advances")
	requireActiveNotSilent(t, b, "hapi")
	require.Len(t, b.reportsFor("cr-1"), 1)
	require.Len(t, b.reportsFor("cr-2"), 1)
}

// HAPI parses the subscriber's answer as FHIR and counts any other answer
// as a failed delivery (G3, docs/upstreams/fhir-subscriptions.md §2.4,
// trap 8): the mediator's answers to both of its criteria forms, the PUT of
// the resource and the empty POST (with HAPI's form Content-Type), pass.
func TestSource_HAPIAcceptsTheAnswers(t *testing.T) {
	t.Parallel()
	put := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
	ping := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, EmptyPostContentType: "application/x-www-form-urlencoded"})
	b := setup(t, setupOpts{edit: withSources(t,
		sourceSetup{name: "put", fake: put, vendor: fhir.VendorHAPI},
		sourceSetup{name: "ping", fake: ping, vendor: fhir.VendorHAPI, edit: func(s *mediator.Source) { s.Content = fhir.ContentEmpty }},
	)})
	waitSubscription(t, put, "active")
	waitSubscription(t, ping, "active")

	put.CreateClaimResponse(sourceClaim("cr-put", "pat-1", "CLM-P", "2025-06-30"))
	ping.CreateClaimResponse(sourceClaim("cr-ping", "pat-1", "CLM-E", "2025-06-30"))
	b.waitReports(t, "cr-put", 1)
	b.waitReports(t, "cr-ping", 1)
	for name, fake := range map[string]*fhirtest.Server{"put": put, "ping": ping} {
		deliveries := fake.Deliveries()
		require.Len(t, deliveries, 1, name)
		d := deliveries[0]
		require.Equal(t, http.StatusOK, d.Status, "%s: %s", name, d.Answer)
		require.True(t, d.Success, "%s: HAPI read the answer as FHIR: %s", name, d.Answer)
		require.Contains(t, d.AnswerContentType, "application/fhir+json", name)
		require.Zero(t, fake.PendingRetries(), name)
	}
	require.Equal(t, http.MethodPut, put.Deliveries()[0].Method)
	require.Equal(t, http.MethodPost, ping.Deliveries()[0].Method)
	require.Empty(t, ping.Deliveries()[0].Body)
	time.Sleep(200 * time.Millisecond) // any duplicate would be under way by now
	require.Len(t, b.reportsFor("cr-put"), 1)
	require.Len(t, b.reportsFor("cr-ping"), 1)
}

// hapiTopicSetup is a mediator with one source "hapi" on a HAPI fake in R4
// backport topic mode; edit changes the source.
func hapiTopicSetup(t *testing.T, opts fhirtest.Options, edit func(*mediator.Source)) (*testBundle, *fhirtest.Server) {
	t.Helper()
	opts.Vendor, opts.TopicMode = fhirtest.HAPI, true
	hapi := fhirtest.NewServer(t, opts)
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "hapi", fake: hapi, vendor: fhir.VendorHAPI, edit: edit})})
	return b, hapi
}

// catchupSearches are the fake's catch-up searches of claim outcomes.
func catchupSearches(fake *fhirtest.Server) int {
	var n int
	for _, r := range requests(fake, http.MethodGet, "/fhir/ClaimResponse") {
		if strings.Contains(r.RawQuery, "_lastUpdated") {
			n++
		}
	}
	return n
}

// HAPI's R4 backport topic mode (G3, docs/upstreams/fhir-subscriptions.md
// §6.4, traps 10 and 14): the dialect is detected as r4-backport, HAPI
// activates the subscription without a handshake and POSTs one Bundle per
// event with the R4 Parameters status (valueString counters, a date
// timestamp), answered with a Bundle; one report per claim. HAPI's counter
// is in memory: after a restart it starts at 1 again, below what the
// mediator has seen, and the mediator runs one catch-up search, which
// brings the claim whose notification was lost with the restart and
// reports no claim twice.
func TestSource_HAPITopicCounterReset(t *testing.T) {
	t.Parallel()
	b, hapi := hapiTopicSetup(t, fhirtest.Options{}, nil)
	sub := waitSubscription(t, hapi, "active")
	require.Equal(t, fhirtest.DefaultTopic.URL, sub.Criteria, "the one advertised topic")
	require.Contains(t, string(b.get(t, "/ready").body), `"dialect":"r4-backport"`)
	const polled = `mediator_source_catchup_last_success_timestamp_seconds{source="hapi"}`
	require.Eventually(t, func() bool { v, ok := gaugeValue(b.scrape(t), polled); return ok && v > 0 },
		15*time.Second, 10*time.Millisecond, "the search at start")

	hapi.AddPatient(sourcePatient("pat-1", "Asha", "Rai"))
	hapi.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
	hapi.CreateClaimResponse(sourceClaim("cr-2", "pat-1", "CLM-2", "2025-06-30"))
	b.waitReports(t, "cr-1", 1)
	b.waitReports(t, "cr-2", 1)
	for _, d := range hapi.Deliveries() {
		require.Equal(t, "event-notification", d.Type)
		require.True(t, d.Success, "HAPI read the answer as its transaction's Bundle: %s", d.Answer)
		require.Contains(t, string(d.Body), `"valueDate"`, "HAPI's timestamp is a date")
	}
	searches := catchupSearches(hapi)
	before, ok := gaugeValue(b.scrape(t), polled)
	require.True(t, ok, polled)

	// Event 3 is lost with the restart; after it HAPI counts from 1 again.
	hapi.DropEvents(sub.ID, 1)
	hapi.CreateClaimResponse(sourceClaim("cr-lost", "pat-1", "CLM-L", "2025-06-30"))
	hapi.Restart()
	hapi.CreateClaimResponse(sourceClaim("cr-3", "pat-1", "CLM-3", "2025-06-30"))
	last := hapi.Deliveries()[len(hapi.Deliveries())-1]
	require.Contains(t, string(last.Body), `{"name":"events-since-subscription-start","valueString":"1"}`)

	b.waitReports(t, "cr-3", 1)
	b.waitReports(t, "cr-lost", 1)
	b.waitLog(t, "event counter went down")
	require.Eventually(t, func() bool { v, ok := gaugeValue(b.scrape(t), polled); return ok && v > before },
		15*time.Second, 10*time.Millisecond, "the reset's search finished")
	require.Equal(t, searches+1, catchupSearches(hapi), "one search")
	for _, id := range []string{"cr-1", "cr-2", "cr-lost", "cr-3"} {
		require.Len(t, b.reportsFor(id), 1, id)
	}
	require.Len(t, b.cht.Reports(), 4)
}

// Old HAPI doubled the focus, ClaimResponse/ClaimResponse/<id>
// (docs/upstreams/fhir-subscriptions.md §2.3, trap 13): with id-only
// content and the dialect configured, the mediator reads ClaimResponse/<id>
// from its configured base and reports it once.
func TestSource_HAPITopicDoubledFocus(t *testing.T) {
	t.Parallel()
	b, hapi := hapiTopicSetup(t, fhirtest.Options{DoubledFocus: true}, func(s *mediator.Source) {
		s.Dialect, s.Content = fhir.DialectR4Backport, fhir.ContentIDOnly
	})
	waitSubscription(t, hapi, "active")
	hapi.AddPatient(sourcePatient("pat-1", "Asha", "Rai"))
	hapi.CreateClaimResponse(sourceClaim("cr-d", "pat-1", "CLM-D", "2025-06-30"))
	reports := b.waitReports(t, "cr-d", 1)
	require.Equal(t, "CLM-D", reports[0].Fields["op_claim_id"])

	deliveries := hapi.Deliveries()
	require.Len(t, deliveries, 1)
	require.Contains(t, string(deliveries[0].Body), `"reference":"ClaimResponse/ClaimResponse/cr-d"`)
	require.NotContains(t, string(deliveries[0].Body), `"outcome"`, "id-only: no resource in the Bundle")
	require.True(t, deliveries[0].Success, "%s", deliveries[0].Answer)
	require.NotEmpty(t, requests(hapi, http.MethodGet, "/fhir/ClaimResponse/cr-d"), "read on the configured base")
	require.Empty(t, requests(hapi, http.MethodGet, "/fhir/ClaimResponse/ClaimResponse/cr-d"))
	b.waitLog(t, `"claim_id":"cr-d"`, "claim delivered to the CHT")
	require.Len(t, b.reportsFor("cr-d"), 1)
}

// HAPI in topic mode that never fires (G3, docs/upstreams/fhir-subscriptions.md
// traps 25): the claims arrive by the catch-up search, and since HAPI sends
// no heartbeats whatever period it stores (§3), a quiet subscription is
// neither probed with $status nor called silent, however long it is quiet.
func TestSource_HAPITopicNeverFiring(t *testing.T) {
	t.Parallel()
	hapi := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, TopicMode: true, NeverFire: true})
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		withSources(t, sourceSetup{name: "hapi", fake: hapi, vendor: fhir.VendorHAPI, edit: func(s *mediator.Source) {
			s.Heartbeat, s.NotifyTimeout, s.PollInterval = time.Minute, 10*time.Second, 200*time.Millisecond
		}})(o)
		o.Now = hapi.Clock.Now
		o.SourceWatchdog = 50 * time.Millisecond
	}})
	sub := waitSubscription(t, hapi, "active")
	require.Contains(t, string(sub.JSON), "backport-heartbeat-period", "a heartbeat is stored")
	hapi.AddPatient(sourcePatient("pat-1", "Asha", "Rai"))
	hapi.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
	b.waitReports(t, "cr-1", 1)
	require.Empty(t, hapi.Deliveries(), "the server never notified")

	hapi.Clock.Advance(10 * time.Minute) // many heartbeat periods of quiet
	const rounds = `mediator_job_duration_seconds_count{kind="fhir_watchdog"}`
	from, ok := gaugeValue(b.scrape(t), rounds)
	require.True(t, ok, rounds)
	require.Eventually(t, func() bool { v, ok := gaugeValue(b.scrape(t), rounds); return ok && v >= from+3 },
		15*time.Second, 10*time.Millisecond, "the watchdog looked after the quiet")
	require.Empty(t, requests(hapi, http.MethodGet, "/$status"), "no heartbeat to miss")
	requireActiveNotSilent(t, b, "hapi")
	require.Len(t, b.reportsFor("cr-1"), 1)
}

// requireActiveNotSilent checks in /metrics that source is active and not
// called silent.
func requireActiveNotSilent(t *testing.T, b *testBundle, source string) {
	t.Helper()
	scrape := b.scrape(t)
	silent, ok := gaugeValue(scrape, fmt.Sprintf(`mediator_source_silent{source=%q}`, source))
	require.True(t, ok, "the silent series")
	require.Zero(t, silent)
	active, ok := gaugeValue(scrape, fmt.Sprintf(`mediator_source_subscription_state{source=%q,state="active"}`, source))
	require.True(t, ok, "the active state series")
	require.Equal(t, 1.0, active)
}
