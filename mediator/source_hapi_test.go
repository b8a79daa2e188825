package mediator_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// metricValue returns the value of the series (name with its labels, as
// exposed) in a scrape; it fails the test when the series is absent.
func metricValue(t *testing.T, scrape, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(scrape))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, sc.Text())
			return f
		}
	}
	require.NoError(t, sc.Err())
	require.Failf(t, "no such series", "%s", series)
	return 0
}

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
	first := metricValue(t, b.scrape(t), polled)
	require.Positive(t, first)
	require.Eventually(t, func() bool { return metricValue(t, b.scrape(t), polled) > first },
		15*time.Second, 10*time.Millisecond, "the catch-up timestamp advances")
	scrape := b.scrape(t)
	require.Zero(t, metricValue(t, scrape, `mediator_source_silent{source="hapi"}`))
	require.Equal(t, 1.0, metricValue(t, scrape, `mediator_source_subscription_state{source="hapi",state="active"}`))
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
