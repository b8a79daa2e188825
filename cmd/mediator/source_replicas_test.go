package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// TestReplicas_OneFHIRSourceOnPostgres (design G5) runs two mediator
// processes on one PostgreSQL database with one Kodjin source whose
// callback is a round-robin proxy in front of both, as a load balancer
// would be: the fake holds exactly one subscription, the upkeeps (which
// search the server's subscriptions) and the catch-up searches never
// overlap, and the notifications, spread over both replicas while the
// catch-up search also runs, give one report per claim.
func TestReplicas_OneFHIRSourceOnPostgres(t *testing.T) {
	t.Parallel()
	const claims = 30
	dbURL := storetest.PostgresURL(t)
	bin := buildBinary(t)

	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass})
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, DeliveryTimeout: 5 * time.Second, SearchLatency: 50 * time.Millisecond})
	for i := range 5 {
		kodjin.AddPatient(fmt.Appendf(nil, `{"resourceType":"Patient","id":"p%d","name":[{"family":"Rai","given":["P%d"]}]}`, i, i))
	}

	ports, bases := twoReplicaPorts(t)
	lb, hits := roundRobin(t, bases)

	env := func(port int) []string {
		return binaryEnv(t, port, bases[0], oi.URL, ch.URL,
			"DATABASE_URL="+dbURL,
			"WORKERS=4",
			"FHIR_SOURCES=kodjin",
			"FHIR_KODJIN_URL="+kodjin.BaseURL,
			"FHIR_KODJIN_VENDOR=kodjin",
			"FHIR_KODJIN_CALLBACK_ENDPOINT="+lb.URL+"/mediator/fhir/kodjin",
			"FHIR_KODJIN_POLL_INTERVAL=1s",
		)

	}
	a := startBinary(t, bin, env(ports[0]), bases[0])
	b := startBinary(t, bin, env(ports[1]), bases[1])
	require.Eventually(t, func() bool {
		subs := kodjin.Subscriptions()
		return len(subs) == 1 && subs[0].Status == "active"
	}, 20*time.Second, 10*time.Millisecond, "the replicas subscribe")
	require.Equal(t, lb.URL+"/mediator/fhir/kodjin", kodjin.Subscriptions()[0].Endpoint)

	var ids []string
	for i := range claims {
		id := fmt.Sprintf("r-%03d", i)
		ids = append(ids, id)
		kodjin.CreateClaimResponse(fmt.Appendf(nil, `{"resourceType":"ClaimResponse","id":%q,"status":"active",
			"identifier":[{"value":"R-%d"}],"patient":{"reference":"Patient/p%d"},"created":"2025-06-30"}`, id, i, i%5))
	}
	requireDeliveredOnce(t, ch, ids, 60*time.Second)
	require.GreaterOrEqual(t, hits[0].Load(), int64(claims/2-1), "replica a answered its share")
	require.GreaterOrEqual(t, hits[1].Load(), int64(claims/2-1), "replica b answered its share")
	for _, d := range kodjin.Deliveries() {
		require.True(t, d.Success, "%+v", d)
	}
	people := map[any]int{}
	for _, p := range ch.People() {
		people[p.Doc["source_patient_id"]]++
	}
	require.Len(t, people, 5, "one person per patient: %v", people)

	time.Sleep(2 * time.Second) // two more upkeeps and searches on the leader
	require.Len(t, kodjin.Subscriptions(), 1, "one subscription for both replicas")
	requireDeliveredOnce(t, ch, ids, time.Second)
	require.Zero(t, kodjin.SearchOverlaps("ClaimResponse"), "one catch-up search at a time")
	require.Zero(t, kodjin.SearchOverlaps("Subscription"), "one upkeep at a time")

	stopReplicas(t, a, b)
}

// TestReplicas_OneFHIRSourcePingsOnPostgres (design G5: one poll at a time)
// runs two replicas on one PostgreSQL database with a HAPI source that pings
// (an empty POST per claim, docs/upstreams/fhir-subscriptions.md trap 12)
// through a round-robin callback, with the periodic catch-up search past
// the test's end (only the search at start runs): each ping asks for a
// search on the replica it reached, and the searches, made slow, never
// overlap; every claim still arrives, once, so that a ping that came during
// a search led to a search after it.
func TestReplicas_OneFHIRSourcePingsOnPostgres(t *testing.T) {
	t.Parallel()
	const claims = 20
	r := startPingReplicas(t, 600*time.Millisecond)
	hapi, ch, hits := r.hapi, r.ch, r.hits

	var ids []string
	for i := range claims {
		id := fmt.Sprintf("p-%03d", i)
		ids = append(ids, id)
		hapi.CreateClaimResponse(fmt.Appendf(nil, `{"resourceType":"ClaimResponse","id":%q,"status":"active",
			"identifier":[{"value":"P-%d"}],"patient":{"reference":"Patient/p1"},"created":"2025-06-30"}`, id, i))
		time.Sleep(150 * time.Millisecond) // pings spread over several seconds, as claims are adjudicated
	}
	requireDeliveredOnce(t, ch, ids, 60*time.Second)
	require.GreaterOrEqual(t, hits[0].Load(), int64(claims/2-1), "replica a took its share of the pings")
	require.GreaterOrEqual(t, hits[1].Load(), int64(claims/2-1), "replica b took its share of the pings")
	for _, d := range hapi.Deliveries() {
		require.True(t, d.Success, "%+v", d)
		require.Empty(t, d.Body, "pings")
	}
	searches := 0
	for _, r := range hapi.Requests() {
		if r.Method == http.MethodGet && r.Path == "/fhir/ClaimResponse" {
			searches++
		}
	}
	require.Greater(t, searches, 1, "the pings asked for searches after the one at start")
	require.Zero(t, hapi.SearchOverlaps("ClaimResponse"), "one search at a time among the replicas (of %d)", searches)
	stopReplicas(t, r.a, r.b)
}

// TestReplicas_PingDuringAnotherSearchOnPostgres (design G5): a ping that
// comes while a search of the same source holds its lock, on another
// replica or another connection of this one, leads to a search after that
// one ends: the search for the second claim finds the lock taken and must
// wait for it, not drop it. The first search answers as of its start, before
// the second claim exists, and the periodic search is past the test's end,
// so nothing else would bring that claim.
func TestReplicas_PingDuringAnotherSearchOnPostgres(t *testing.T) {
	t.Parallel()
	// Longer than River takes to schedule the second ping's search.
	const searchLatency = 8 * time.Second
	r := startPingReplicas(t, searchLatency, "UPSTREAM_TIMEOUT=30s") // the last value of a name wins
	hapi, ch := r.hapi, r.ch
	searches := func() (n int, last time.Time) {
		for _, req := range hapi.Requests() {
			if req.Method == http.MethodGet && req.Path == "/fhir/ClaimResponse" {
				n, last = n+1, req.Time
			}
		}
		return n, last
	}
	// The searches at start, and after the subscription was made, end.
	var settled int
	require.Eventually(t, func() bool {
		n, last := searches()
		settled = n
		return n > 0 && !hapi.Searching("ClaimResponse") && time.Since(last) > searchLatency+2*time.Second
	}, 6*searchLatency, 100*time.Millisecond, "the searches at start")

	claim := func(id string) {
		hapi.CreateClaimResponse(fmt.Appendf(nil, `{"resourceType":"ClaimResponse","id":%q,"status":"active",
			"identifier":[{"value":%q}],"patient":{"reference":"Patient/p1"},"created":"2025-06-30"}`, id, id))
	}
	claim("first")
	require.Eventually(t, func() bool { n, _ := searches(); return n > settled }, 2*searchLatency, 10*time.Millisecond, "the first ping's search")
	claim("second") // its ping's search is due while the first's still runs
	requireDeliveredOnce(t, ch, []string{"first", "second"}, 4*searchLatency)
	require.Zero(t, hapi.SearchOverlaps("ClaimResponse"), "one search at a time among the replicas")
	stopReplicas(t, r.a, r.b)
}

// pingReplicas are two replicas on one PostgreSQL database with a HAPI
// source that pings (an empty POST per claim, trap 12) through a round-robin
// callback, polling hourly so that only pings bring searches after the one
// at start; hits counts the pings each replica took.
type pingReplicas struct {
	hapi *fhirtest.Server
	ch   *chttest.Server
	a, b *exec.Cmd
	hits *[2]atomic.Int64
}

// startPingReplicas starts them, each search answered after searchLatency,
// with extraEnv, and waits until they subscribed.
func startPingReplicas(t *testing.T, searchLatency time.Duration, extraEnv ...string) pingReplicas {
	t.Helper()
	dbURL := storetest.PostgresURL(t)
	bin := buildBinary(t)
	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass})
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	hapi := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, SearchLatency: searchLatency})
	hapi.AddPatient([]byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Rai","given":["Asha"]}]}`))

	ports, bases := twoReplicaPorts(t)
	lb, hits := roundRobin(t, bases)
	env := func(port int) []string {
		return binaryEnv(t, port, bases[0], oi.URL, ch.URL, append([]string{
			"DATABASE_URL=" + dbURL,
			"FHIR_SOURCES=hapi",
			"FHIR_HAPI_URL=" + hapi.BaseURL,
			"FHIR_HAPI_VENDOR=hapi",
			"FHIR_HAPI_CONTENT=empty",
			"FHIR_HAPI_CALLBACK_ENDPOINT=" + lb.URL + "/mediator/fhir/hapi",
			"FHIR_HAPI_POLL_INTERVAL=1h",
		}, extraEnv...)...)
	}
	r := pingReplicas{hapi: hapi, ch: ch, hits: hits}
	r.a = startBinary(t, bin, env(ports[0]), bases[0])
	r.b = startBinary(t, bin, env(ports[1]), bases[1])
	require.Eventually(t, func() bool {
		subs := hapi.Subscriptions()
		return len(subs) == 1 && subs[0].Status == "active"
	}, 20*time.Second+4*searchLatency, 10*time.Millisecond, "the replicas subscribe")
	return r
}

// twoReplicaPorts are the ports and base URLs of two replicas.
func twoReplicaPorts(t *testing.T) ([]int, []string) {
	ports := []int{freePort(t), freePort(t)}
	return ports, []string{"http://127.0.0.1:" + strconv.Itoa(ports[0]), "http://127.0.0.1:" + strconv.Itoa(ports[1])}
}

// roundRobin is a load balancer in front of the replicas at bases, taking
// turns; hits counts the requests each answered with a 2xx status.
func roundRobin(t *testing.T, bases []string) (*httptest.Server, *[2]atomic.Int64) {
	t.Helper()
	var (
		turn atomic.Int64
		hits [2]atomic.Int64
	)
	proxies := make([]*httputil.ReverseProxy, 2)
	for i, base := range bases {
		u, err := url.Parse(base)
		require.NoError(t, err)
		proxies[i] = httputil.NewSingleHostReverseProxy(u)
	}
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(turn.Add(1) % 2)
		sw := &statusWriter{ResponseWriter: w}
		proxies[i].ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK // nothing written: net/http answers 200
		}
		if sw.status >= 200 && sw.status < 300 {
			hits[i].Add(1)
		}
	}))
	t.Cleanup(lb.Close)
	return lb, &hits
}

// statusWriter records the status of the answer written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// stopReplicas stops the replicas with SIGTERM; each must exit cleanly.
func stopReplicas(t *testing.T, replicas ...*exec.Cmd) {
	t.Helper()
	for _, r := range replicas {
		require.NoError(t, r.Process.Signal(syscall.SIGTERM))
	}
	for _, r := range replicas {
		require.NoError(t, r.Wait())
	}
}
