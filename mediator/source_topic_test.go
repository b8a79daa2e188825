package mediator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// The topic tests (A1-A7) run the real mediator against each Aidbox
// generation's fake, zen and the newer one in R4B, with the mediator on the
// fake's clock: a test moves time forward with Clock.Advance and makes the
// fake send what is due with Tick, never by sleeping. The watchdog looks
// every 50 ms of real time.
const (
	topicHeartbeat = time.Minute
	topicTimeout   = 10 * time.Second
	// silence is past the watchdog's deadline: 2 heartbeats and the
	// timeout.
	silence = 2*topicHeartbeat + topicTimeout + time.Second
)

// topicVendor is one Aidbox generation the topic tests run against.
type topicVendor struct {
	fake   fhirtest.Vendor
	client fhir.Vendor
	// events is the verb of $events: GET on zen, POST on the newer Aidbox
	// (docs/upstreams/fhir-subscriptions.md §4, trap 19).
	events string
	// eventsIDOnly says $events answers name the resources only (zen); the
	// newer Aidbox's carry them as the subscription's content says (§4).
	eventsIDOnly bool
}

var topicVendors = []topicVendor{
	{fake: fhirtest.AidboxZen, client: fhir.VendorAidboxZen, events: http.MethodGet, eventsIDOnly: true},
	{fake: fhirtest.Aidbox, client: fhir.VendorAidbox, events: http.MethodPost},
}

// aidbox is the newer Aidbox's entry in topicVendors.
func aidbox() topicVendor { return topicVendors[1] }

// eachTopicVendor runs test against each Aidbox generation, in parallel
// subtests named after the fake's vendor.
func eachTopicVendor(t *testing.T, test func(t *testing.T, v topicVendor)) {
	t.Helper()
	for _, v := range topicVendors {
		t.Run(string(v.fake), func(t *testing.T) {
			t.Parallel()
			test(t, v)
		})
	}
}

// counter is n as the vendor writes an R4B event counter: a JSON number on
// zen, a string on the newer Aidbox (trap 10).
func (v topicVendor) counter(n int) string {
	if v.fake == fhirtest.AidboxZen {
		return strconv.Itoa(n)
	}
	return strconv.Quote(strconv.Itoa(n))
}

// topicSetup is a mediator with one Aidbox source "box" of vendor v, whose
// fake opts.Vendor is set to; dialect and topic detected unless edit sets
// them.
func topicSetup(t *testing.T, v topicVendor, opts fhirtest.Options, edit func(*mediator.Source)) (*testBundle, *fhirtest.Server) {
	t.Helper()
	opts.Vendor = v.fake
	box := fhirtest.NewServer(t, opts)
	t.Cleanup(func() { requireAidboxRules(t, box) })
	b := setup(t, setupOpts{edit: topicSource(t, box, v.client, edit)})
	return b, box
}

// topicSource is the setup edit of topicSetup: the source "box" of vendor
// on the fake, the mediator on its clock.
func topicSource(t *testing.T, box *fhirtest.Server, vendor fhir.Vendor, edit func(*mediator.Source)) func(*mediator.Options) {
	t.Helper()
	return func(o *mediator.Options) {
		withSources(t, sourceSetup{name: "box", fake: box, vendor: vendor, edit: func(s *mediator.Source) {
			s.Heartbeat, s.NotifyTimeout, s.MaxCount = topicHeartbeat, topicTimeout, 1
			if edit != nil {
				edit(s)
			}
		}})(o)
		o.Now = box.Clock.Now
		o.SourceWatchdog = 50 * time.Millisecond
	}
}

// requireAidboxRules fails a test whose mediator broke Aidbox's rules: a
// handshake that reached the mediator must be answered 200 with FHIR JSON
// (only 200 activates, docs/upstreams/fhir-subscriptions.md trap 9), and a
// Subscription is never PUT (Aidbox refuses updates, trap 17).
func requireAidboxRules(t *testing.T, box *fhirtest.Server) {
	t.Helper()
	for _, r := range box.Requests() {
		if r.Method == http.MethodPut {
			t.Errorf("the mediator sent PUT %s to Aidbox, which refuses updates", r.Path)
		}
	}
	for _, d := range box.Deliveries() {
		if d.Type == "handshake" && d.Err == "" && (d.Status != http.StatusOK || !strings.Contains(d.AnswerContentType, "application/fhir+json")) {
			t.Errorf("a handshake was answered %d %q, not 200 FHIR JSON", d.Status, d.AnswerContentType)
		}
	}
}

// waitActive waits until the fake's only subscription is active (the
// handshake answered) and returns it.
func waitActive(t *testing.T, box *fhirtest.Server) fhirtest.Subscription {
	t.Helper()
	box.Flush()
	return waitSubscription(t, box, "active")
}

// requests returns the fake's requests with method whose path ends with
// suffix; an empty method matches any.
func requests(box *fhirtest.Server, method, suffix string) []fhirtest.Request {
	var out []fhirtest.Request
	for _, r := range box.Requests() {
		if (method == "" || r.Method == method) && strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// eventsRange is the range a $events request asked for: its query on a
// GET, its Parameters (valueString, §4) on a POST.
func eventsRange(t *testing.T, r fhirtest.Request) (since, until string) {
	t.Helper()
	if r.Method == http.MethodGet {
		q, err := url.ParseQuery(r.RawQuery)
		require.NoError(t, err)
		return q.Get("eventsSinceNumber"), q.Get("eventsUntilNumber")
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name        string `json:"name"`
			ValueString string `json:"valueString"`
		} `json:"parameter"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &p), "%s", r.Body)
	require.Equal(t, "Parameters", p.ResourceType)
	for _, par := range p.Parameter {
		switch par.Name {
		case "eventsSinceNumber":
			since = par.ValueString
		case "eventsUntilNumber":
			until = par.ValueString
		}
	}
	return since, until
}

// sourceState waits until /metrics shows the box source in state.
func (b *testBundle) waitSourceState(t *testing.T, state string) {
	t.Helper()
	want := fmt.Sprintf(`mediator_source_subscription_state{source="box",state=%q} 1`, state)
	require.Eventually(t, func() bool { return strings.Contains(string(b.get(t, "/metrics").body), want) },
		15*time.Second, 10*time.Millisecond, "metric %s", want)
}

// A1 and A2: with the dialect left to detection the mediator reads the
// metadata, picks r4b-backport and the one advertised ClaimResponse topic,
// creates one Subscription as the backport profile wants it, answers the
// handshake 200 with FHIR JSON, and reports the subscription active once
// the server says so; a restart creates none.
func TestSourceTopic_SubscribeAndHandshake(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{}, nil)
		sub := waitActive(t, box)

		posts := requests(box, http.MethodPost, "/fhir/Subscription")
		require.Len(t, posts, 1)
		var sent fhir.Subscription
		require.NoError(t, json.Unmarshal(posts[0].Body, &sent))
		require.Equal(t, "requested", sent.Status, "created requested (trap 4)")
		require.Equal(t, []string{fhir.ProfileBackport}, sent.Meta.Profile)
		require.Equal(t, fhirtest.DefaultTopic.URL, sent.Criteria, "the one advertised topic")
		st := sent.Settings()
		require.Equal(t, fhir.ContentFullResource, st.Content)
		require.Equal(t, topicHeartbeat, st.Heartbeat)
		require.Equal(t, topicTimeout, st.Timeout)
		require.Equal(t, 1, st.MaxCount)
		require.Equal(t, "application/fhir+json", sent.Channel.Payload)
		require.Equal(t, b.srv.URL+"/mediator/fhir/box", sub.Endpoint)

		var handshakes int
		for _, d := range box.Deliveries() {
			if d.Type == "handshake" {
				handshakes++
				require.True(t, d.Success, "%+v", d)
				require.Equal(t, http.StatusOK, d.Status)
				require.Contains(t, d.AnswerContentType, "application/fhir+json")
				require.True(t, json.Valid(d.Answer), "%s", d.Answer)
			}
		}
		require.Equal(t, 1, handshakes)

		// A heartbeat says active: the mediator reports it.
		box.Clock.Advance(topicHeartbeat)
		box.Tick()
		b.waitSourceState(t, "active")
		require.Contains(t, string(b.get(t, "/ready").body), `"dialect":"r4b-backport"`)

		b.restart(t)
		b.waitSourceState(t, "active") // the restarted upkeep read the subscription back
		require.Len(t, box.Subscriptions(), 1)
		require.Len(t, requests(box, http.MethodPost, "/fhir/Subscription"), 1, "a restart creates none")
	})
}

// A3: each new claim's event brings one report; every bundle delivered
// twice more still gives one report per claim, and nothing is missing, so
// $events is never called.
func TestSourceTopic_EventsBecomeReports(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{}, nil)
		waitActive(t, box)
		for i := 1; i <= 3; i++ {
			box.CreateClaimResponse(sourceClaim(fmt.Sprintf("cr-%d", i), "pat-1", fmt.Sprintf("CLM-%d", i), "2025-06-30"))
		}
		for i := 1; i <= 3; i++ {
			b.waitReports(t, fmt.Sprintf("cr-%d", i), 1)
		}
		var events int
		for _, d := range box.Deliveries() {
			if d.Type != "event-notification" {
				continue
			}
			events++
			require.True(t, d.Success, "%+v", d)
			for range 2 {
				r := b.do(t, http.MethodPost, "/mediator/fhir/box", "application/fhir+json", d.Body, true)
				require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			}
		}
		require.Equal(t, 3, events, "maxCount 1: one notification per event")
		for i := 1; i <= 3; i++ {
			b.waitLog(t, fmt.Sprintf(`"claim_id":"cr-%d"`, i), "claim delivered to the CHT")
			require.Len(t, b.reportsFor(fmt.Sprintf("cr-%d", i)), 1)
		}
		require.Len(t, b.cht.Reports(), 3)
		require.Empty(t, requests(box, "", "/$events"))
	})
}

// A4: the fake's 4 deliverers send batches a round at a time, newest first
// (Deliverers 4, docs/upstreams/fhir-subscriptions.md trap 11): events that
// merely arrive late fill their gaps and are never fetched, even past the
// grace; an event lost for good is fetched with $events (GET on zen, POST
// on the newer Aidbox) once the grace has passed, and its claim is
// reported once.
func TestSourceTopic_GapFetchedWithEvents(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{Deliverers: 4}, nil)
		waitActive(t, box)
		claim := func(id string) { box.CreateClaimResponse(sourceClaim(id, "pat-1", "CLM-"+id, "2025-06-30")) }

		// Events 1 to 4 are one round: 4 arrives first, 1 to 3 after it.
		for i := 1; i <= 4; i++ {
			claim(fmt.Sprintf("cr-%d", i))
		}
		require.Equal(t, []int64{4, 3, 2, 1}, eventNumbers(t, box), "out of order")
		for i := 1; i <= 4; i++ {
			b.waitReports(t, fmt.Sprintf("cr-%d", i), 1)
		}
		box.Clock.Advance(31 * time.Second) // past the grace, max(2×timeout, 30 s): nothing is missing

		// Event 6 is lost; 5, 7 and 8 go newest first at the next Tick.
		claim("cr-5")
		box.DropEvents(waitActive(t, box).ID, 1)
		claim("cr-lost")
		claim("cr-7")
		claim("cr-8")
		box.Tick()
		require.Equal(t, []int64{4, 3, 2, 1, 8, 7, 5}, eventNumbers(t, box))
		for _, id := range []string{"cr-5", "cr-7", "cr-8"} {
			b.waitReports(t, id, 1)
		}
		require.Empty(t, b.reportsFor("cr-lost"))

		box.Clock.Advance(31 * time.Second) // past the grace of event 6
		b.waitReports(t, "cr-lost", 1)
		requireEventsFetched(t, box, v.events, 6) // only the lost event, never the late ones
		if v.eventsIDOnly {
			require.NotEmpty(t, requests(box, http.MethodGet, "/fhir/ClaimResponse/cr-lost"), "the id-only $events answer is read on the configured base")
		} else {
			require.Empty(t, requests(box, http.MethodGet, "/fhir/ClaimResponse/cr-lost"), "the full-resource $events answer carries the claim")
		}
		b.waitLog(t, `"claim_id":"cr-lost"`, "claim delivered to the CHT")
		require.Len(t, b.reportsFor("cr-lost"), 1)
		require.Len(t, b.cht.Reports(), 8)
	})
}

// eventNumbers are the event numbers of the fake's event notifications, in
// the order they were sent.
func eventNumbers(t *testing.T, box *fhirtest.Server) []int64 {
	t.Helper()
	var out []int64
	for _, d := range box.Deliveries() {
		if d.Type != "event-notification" {
			continue
		}
		n, err := fhir.ParseNotification(d.Method, "", "application/fhir+json", d.Body)
		require.NoError(t, err)
		for _, e := range n.Events {
			out = append(out, e.Number)
		}
	}
	return out
}

// A5: a subscription that turns error and goes silent is noticed past two
// heartbeats and the timeout: $status, then a new subscription made before
// the old is deleted (no PUT: Aidbox refuses updates), a new handshake, and
// the claims whose events died with the old one arrive by the search.
func TestSourceTopic_SilenceRepaired(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{}, nil)
		old := waitActive(t, box)
		box.CreateClaimResponse(sourceClaim("cr-before", "pat-1", "CLM-B", "2025-06-30"))
		b.waitReports(t, "cr-before", 1)

		box.StopDelivering(old.ID)
		box.SetStatus(old.ID, "error", "delivery failed")
		box.CreateClaimResponse(sourceClaim("cr-s1", "pat-1", "CLM-S1", "2025-06-30"))
		box.CreateClaimResponse(sourceClaim("cr-s2", "pat-2", "CLM-S2", "2025-06-30"))
		require.Empty(t, requests(box, http.MethodGet, "/$status"), "not before the deadline")

		box.Clock.Advance(silence)
		b.waitReports(t, "cr-s1", 1)
		b.waitReports(t, "cr-s2", 1)
		require.NotEmpty(t, requests(box, http.MethodGet, "/fhir/Subscription/"+old.ID+"/$status"))
		box.Flush()
		repl := waitSubscription(t, box, "active")
		require.NotEqual(t, old.ID, repl.ID)
		_, exists := box.Subscription(old.ID)
		require.False(t, exists, "the old subscription is deleted")
		posts := requests(box, http.MethodPost, "/fhir/Subscription")
		deletes := requests(box, http.MethodDelete, "/fhir/Subscription/"+old.ID)
		require.Len(t, posts, 2)
		require.Len(t, deletes, 1)
		require.True(t, posts[1].Time.Before(deletes[0].Time) || posts[1].Time.Equal(deletes[0].Time), "created before the old one is deleted")
		b.waitLog(t, "source subscription replaced")
		require.Len(t, b.cht.Reports(), 3)
	})
}

// A5, the server alive but nothing reaching the callback: $status says
// active with no event missed, so the mediator names
// FHIR_BOX_CALLBACK_ENDPOINT, sets mediator_source_silent, and clears it
// when a notification arrives again.
func TestSourceTopic_SilentButActive(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{}, nil)
		sub := waitActive(t, box)
		box.StopHeartbeats(sub.ID)
		box.Clock.Advance(silence)
		require.Eventually(t, func() bool {
			return strings.Contains(string(b.get(t, "/metrics").body), `mediator_source_silent{source="box"} 1`)
		}, 15*time.Second, 10*time.Millisecond)
		require.Contains(t, string(b.get(t, "/ready").body), "FHIR_BOX_CALLBACK_ENDPOINT")
		b.waitLog(t, "nothing reached")
		require.Len(t, box.Subscriptions(), 1, "an active subscription is not replaced")

		box.CreateClaimResponse(sourceClaim("cr-after", "pat-1", "CLM-A", "2025-06-30"))
		b.waitReports(t, "cr-after", 1)
		require.Eventually(t, func() bool {
			return strings.Contains(string(b.get(t, "/metrics").body), `mediator_source_silent{source="box"} 0`)
		}, 15*time.Second, 10*time.Millisecond)
	})
}

// G5, the watchdog of replicas: a silent subscription is probed with
// $status once per silence window, however many watchdog rounds run in it
// and whichever replica runs them (two on PostgreSQL, sharing the store;
// one on SQLite, which one process works).
func TestSourceTopic_SilenceProbedOncePerWindow(t *testing.T) {
	t.Parallel()
	zen := topicVendors[0]
	b, box := topicSetup(t, zen, fhirtest.Options{}, nil)
	sub := waitActive(t, box)
	replicas := []*testBundle{b}
	if storetest.Postgres() {
		endpoint := fmt.Sprintf("%s/mediator/fhir/box", strings.TrimSuffix(b.opts.CallbackEndpoint, "/mediator/claim-response"))
		replicas = append(replicas, setup(t, setupOpts{dbURL: b.dbURL, edit: topicSource(t, box, zen.client, func(s *mediator.Source) {
			s.Endpoint = endpoint // one callback behind both, as a load balancer would be
		})}))
	}
	box.StopHeartbeats(sub.ID)
	status := func() int { return len(requests(box, http.MethodGet, "/fhir/Subscription/"+sub.ID+"/$status")) }
	for window := 1; window <= 2; window++ {
		after := lastJobID(t, b, "fhir_watchdog")
		box.Clock.Advance(silence)
		require.Eventually(t, func() bool { return status() >= window }, 15*time.Second, 10*time.Millisecond, "window %d probed", window)
		// Every replica runs watchdog rounds in the window after the probe.
		require.Eventually(t, func() bool {
			by := map[string]int{}
			for _, j := range listJobs(t, b, "fhir_watchdog") {
				if j.ID > after && j.State == rivertype.JobStateCompleted && len(j.AttemptedBy) > 0 {
					by[j.AttemptedBy[len(j.AttemptedBy)-1]]++
				}
			}
			for _, n := range by {
				if n < 5 {
					return false
				}
			}
			return len(by) == len(replicas)
		}, 30*time.Second, 10*time.Millisecond, "window %d: watchdog rounds on every replica", window)
		require.Equal(t, window, status(), "window %d: one $status", window)
	}
	require.Len(t, box.Subscriptions(), 1, "an active subscription is not replaced")
}

// listJobs returns the jobs of kind in b's store, newest first.
func listJobs(t *testing.T, b *testBundle, kind string) []*rivertype.JobRow {
	t.Helper()
	jobs, err := b.store.ListJobs(t.Context(), storetype.JobFilter{Kinds: []string{kind}, Limit: 10_000})
	require.NoError(t, err)
	return jobs
}

// lastJobID is the id of the newest job of kind, 0 when none.
func lastJobID(t *testing.T, b *testBundle, kind string) int64 {
	t.Helper()
	if jobs := listJobs(t, b, kind); len(jobs) > 0 {
		return jobs[0].ID
	}
	return 0
}

// A6: a topic whose maxContent is id-only refuses full-resource; the
// mediator asks again with id-only, and each notification leads to a read
// of the claim on the configured base (never the notification's internal
// origin) and one report.
func TestSourceTopic_ContentDowngrade(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		topic := fhirtest.DefaultTopic
		topic.MaxContent = fhir.ContentIDOnly
		b, box := topicSetup(t, v, fhirtest.Options{Topics: []fhirtest.Topic{topic}}, nil)
		waitActive(t, box)
		posts := requests(box, http.MethodPost, "/fhir/Subscription")
		require.Len(t, posts, 2)
		var first, second fhir.Subscription
		require.NoError(t, json.Unmarshal(posts[0].Body, &first))
		require.NoError(t, json.Unmarshal(posts[1].Body, &second))
		require.Equal(t, fhir.ContentFullResource, first.Settings().Content)
		require.Equal(t, fhir.ContentIDOnly, second.Settings().Content)

		box.AddPatient(sourcePatient("pat-6", "Maya", "Gurung"))
		box.CreateClaimResponse(sourceClaim("cr-6", "pat-6", "CLM-6", "2025-06-30"))
		reports := b.waitReports(t, "cr-6", 1)
		require.Equal(t, "CLM-6", reports[0].Fields["op_claim_id"])
		require.NotEmpty(t, requests(box, http.MethodGet, "/fhir/ClaimResponse/cr-6"))
		b.waitLog(t, `"claim_id":"cr-6"`, "claim delivered to the CHT")
		require.Len(t, b.reportsFor("cr-6"), 1)
	})
}

// A7: the server cannot reach the callback: after its 3 handshake tries
// (zen; the newer Aidbox tries once) the subscription is error; the mediator logs that the handshake never
// reached the callback, names FHIR_BOX_CALLBACK_ENDPOINT in /ready, makes a
// new subscription (made before the old is deleted, never PUT), and the
// claims still arrive by the search.
func TestSourceTopic_HandshakeNeverArrives(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{}, func(s *mediator.Source) {
			s.Endpoint = "http://127.0.0.1:1/mediator/fhir/box" // nothing listens there
		})
		var first fhirtest.Subscription
		require.Eventually(t, func() bool {
			subs := box.Subscriptions()
			if len(subs) == 1 {
				first = subs[0]
			}
			return len(subs) == 1
		}, 15*time.Second, 10*time.Millisecond)
		box.Flush() // the first handshake try, made after the create's answer
		for range 2 {
			box.Clock.Advance(10 * time.Second)
			box.Tick()
		}
		require.Equal(t, "error", waitSubscriptionStatus(t, box, first.ID, "error").Status, "zen's 3 tries, or the newer one's one, then error for good")

		box.CreateClaimResponse(sourceClaim("cr-7", "pat-1", "CLM-7", "2025-06-30"))
		box.Clock.Advance(silence)
		b.waitReports(t, "cr-7", 1)
		b.waitLog(t, "the handshake never reached http://127.0.0.1:1/mediator/fhir/box")
		require.Eventually(t, func() bool {
			_, exists := box.Subscription(first.ID)
			return !exists
		}, 15*time.Second, 10*time.Millisecond, "the errored subscription is replaced")
		require.Len(t, box.Subscriptions(), 1)
		require.Contains(t, string(b.get(t, "/ready").body), "FHIR_BOX_CALLBACK_ENDPOINT")
	})
}

// waitSubscriptionStatus waits for subscription id to reach status.
func waitSubscriptionStatus(t *testing.T, box *fhirtest.Server, id, status string) fhirtest.Subscription {
	t.Helper()
	var sub fhirtest.Subscription
	require.Eventually(t, func() bool {
		var ok bool
		sub, ok = box.Subscription(id)
		return ok && sub.Status == status
	}, 15*time.Second, 10*time.Millisecond, "subscription %s %s", id, status)
	return sub
}

// A counter that goes down on Aidbox, which keeps its events and their
// numbers: a late or repeated delivery, not a restart (the restart of
// HAPI's in-memory counter is TestSource_HAPITopicCounterReset). The
// tracking keeps its numbers, so the event that never came is still
// noticed by the next counter and fetched with $events.
func TestSourceTopic_LowerCounterIsOldNews(t *testing.T) {
	t.Parallel()
	eachTopicVendor(t, func(t *testing.T, v topicVendor) {
		b, box := topicSetup(t, v, fhirtest.Options{}, nil)
		sub := waitActive(t, box)
		box.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
		box.CreateClaimResponse(sourceClaim("cr-2", "pat-1", "CLM-2", "2025-06-30"))
		b.waitReports(t, "cr-2", 1)
		box.StopDelivering(sub.ID)
		box.CreateClaimResponse(sourceClaim("cr-hidden", "pat-1", "CLM-H", "2025-06-30"))

		heartbeat := func(n int) {
			t.Helper()
			body := fmt.Sprintf(`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus",
			"status":"active","type":"heartbeat","eventsSinceSubscriptionStart":%s,"subscription":{"reference":"Subscription/%s"}}}]}`, v.counter(n), sub.ID)
			r := b.do(t, http.MethodPost, "/mediator/fhir/box", "application/fhir+json", []byte(body), true)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		}
		heartbeat(1) // a late heartbeat from before event 2
		heartbeat(3) // event 3 never came
		box.Clock.Advance(time.Minute)
		b.waitReports(t, "cr-hidden", 1)
		require.NotEmpty(t, requests(box, v.events, "/$events"), "the gap is fetched with $events")
		require.NotContains(t, b.logs.String(), "event counter went down")
	})
}

// R5 on the newer Aidbox, with FHIR_BOX_DIALECT=r5, FHIR_BOX_TOPIC set (the
// fake's R5 CapabilityStatement lists no topics,
// docs/upstreams/fhir-subscriptions.md §5) and a filter in the backport
// form: the mediator creates an R5 Subscription the fake accepts (native
// fields, filterBy on the topic's parameters, headers as parameters, §1.3,
// trap 6), answers its handshake, turns each
// event of the subscription-notification Bundles into one report, and
// fetches a lost event with POST $events once the grace has passed.
func TestSourceTopic_R5(t *testing.T) {
	t.Parallel()
	v := aidbox()
	b, box := topicSetup(t, v, fhirtest.Options{FHIRVersion: fhirtest.R5}, func(s *mediator.Source) {
		s.Dialect, s.Topic = fhir.DialectR5, fhirtest.DefaultTopic.URL
		s.Filters = []string{"ClaimResponse?outcome=complete&status=active"} // the backport form
	})
	sub := waitActive(t, box)

	posts := requests(box, http.MethodPost, "/fhir/Subscription")
	require.Len(t, posts, 1)
	var sent fhir.Subscription
	require.NoError(t, json.Unmarshal(posts[0].Body, &sent))
	require.Equal(t, "requested", sent.Status)
	require.Equal(t, fhirtest.DefaultTopic.URL, sent.Topic)
	require.Empty(t, sent.Criteria)
	require.Nil(t, sent.Channel, "no R4 channel in R5")
	require.Equal(t, "rest-hook", sent.ChannelType.Code)
	require.Equal(t, []fhir.FilterBy{{FilterParameter: "outcome", Value: "complete"}, {FilterParameter: "status", Value: "active"}},
		sent.FilterBy, "the backport form read into R5 filters")
	st := sent.Settings()
	require.Equal(t, fhir.ContentFullResource, st.Content)
	require.Equal(t, topicHeartbeat, st.Heartbeat)
	require.Equal(t, topicTimeout, st.Timeout)
	require.Equal(t, 1, st.MaxCount)
	require.Equal(t, b.srv.URL+"/mediator/fhir/box", sub.Endpoint)
	require.Len(t, sub.Header, 1)
	require.True(t, strings.HasPrefix(sub.Header[0], "Authorization: Basic "), "the callback's credentials, as a parameter")
	require.Contains(t, string(b.get(t, "/ready").body), `"dialect":"r5"`)

	box.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
	b.waitReports(t, "cr-1", 1)
	var types []string
	for _, d := range box.Deliveries() {
		require.True(t, d.Success, "%+v", d)
		require.Contains(t, string(d.Body), `"type":"subscription-notification"`)
		types = append(types, d.Type)
	}
	require.Equal(t, []string{"handshake", "event-notification"}, types)

	requireLostEventFetched(t, b, box, v.events, sub.ID, "cr-3", 2)
	b.waitLog(t, `"claim_id":"cr-lost"`, "claim delivered to the CHT")
	require.Len(t, b.cht.Reports(), 3)
}

// The newer Aidbox deletes events older than its retention
// (keep-events-for-period, docs/upstreams/fhir-subscriptions.md §4, trap
// 19): a lost event already deleted when the grace has passed is missing
// from the $events answer, so the mediator searches and the claim arrives
// once all the same.
func TestSourceTopic_EventPastRetentionSearched(t *testing.T) {
	t.Parallel()
	v := aidbox()
	b, box := topicSetup(t, v, fhirtest.Options{Retention: 20 * time.Second}, nil)
	sub := waitActive(t, box)
	box.DropEvents(sub.ID, 1)
	box.CreateClaimResponse(sourceClaim("cr-lost", "pat-1", "CLM-X", "2025-06-30"))
	box.Clock.Advance(21 * time.Second) // the lost event is past the retention
	box.CreateClaimResponse(sourceClaim("cr-2", "pat-1", "CLM-2", "2025-06-30"))
	b.waitReports(t, "cr-2", 1)

	box.Clock.Advance(31 * time.Second) // past the grace, max(2×timeout, 30 s)
	b.waitReports(t, "cr-lost", 1)
	b.waitLog(t, "did not give event 1", "missed events: searching instead")
	calls := requests(box, http.MethodPost, "/$events")
	require.NotEmpty(t, calls)
	since, until := eventsRange(t, calls[0])
	require.Equal(t, []string{"1", "1"}, []string{since, until})
	require.Len(t, b.cht.Reports(), 2)
}

// The newer Aidbox's R4 backport (subscription-specification-version
// R4-backported, docs/upstreams/fhir-subscriptions.md §6.1), its dialect
// detected: r4-backport from the R4 metadata's marker, one backport
// Subscription, and each event of its Parameters notifications one report
// (valueString counters, §2.1, trap 10). A lost event is asked for with
// POST $events once the grace has passed: when the answer has the
// notification-event parts, the claim comes from it; when it leaves them
// out, as Aidbox's R4 tutorial shows it, the answer does not say which
// events it holds, and the catch-up search brings the claim (§4, trap 19).
func TestSourceTopic_AidboxR4Backport(t *testing.T) {
	t.Parallel()
	v := aidbox()
	for _, parts := range []bool{true, false} {
		t.Run(fmt.Sprintf("EventParts=%t", parts), func(t *testing.T) {
			t.Parallel()
			b, box := topicSetup(t, v, fhirtest.Options{FHIRVersion: fhirtest.R4, R4EventParts: parts}, nil)
			sub := waitActive(t, box)
			require.Contains(t, string(b.get(t, "/ready").body), `"dialect":"r4-backport"`)
			posts := requests(box, http.MethodPost, "/fhir/Subscription")
			require.Len(t, posts, 1)
			var sent fhir.Subscription
			require.NoError(t, json.Unmarshal(posts[0].Body, &sent))
			require.Equal(t, []string{fhir.ProfileBackport}, sent.Meta.Profile)
			require.Equal(t, fhirtest.DefaultTopic.URL, sent.Criteria)

			box.CreateClaimResponse(sourceClaim("cr-1", "pat-1", "CLM-1", "2025-06-30"))
			box.CreateClaimResponse(sourceClaim("cr-2", "pat-1", "CLM-2", "2025-06-30"))
			b.waitReports(t, "cr-1", 1)
			b.waitReports(t, "cr-2", 1)
			for _, d := range box.Deliveries() {
				require.True(t, d.Success, "%+v", d)
				require.Contains(t, string(d.Body), `"resourceType":"Parameters"`)
			}

			requireLostEventFetched(t, b, box, v.events, sub.ID, "cr-4", 3)
			if parts {
				b.waitLog(t, "missed events fetched with $events", `"claim_id":"cr-lost"`, "claim delivered to the CHT")
				require.NotContains(t, b.logs.String(), "missed events: searching instead", "the $events answer named event 3")
			} else {
				b.waitLog(t, "did not give event 3", "missed events: searching instead", `"claim_id":"cr-lost"`, "claim delivered to the CHT")
			}
			require.Len(t, b.reportsFor("cr-lost"), 1)
			require.Len(t, b.cht.Reports(), 4)
		})
	}
}

// requireLostEventFetched drops the next event of subscription id, creates
// the claim "cr-lost" it would have carried and then next, and checks that
// once next is reported and the gap's grace has passed, cr-lost is
// reported too, fetched with $events by method for event n alone.
func requireLostEventFetched(t *testing.T, b *testBundle, box *fhirtest.Server, method, id, next string, n int) {
	t.Helper()
	box.DropEvents(id, 1)
	box.CreateClaimResponse(sourceClaim("cr-lost", "pat-1", "CLM-X", "2025-06-30"))
	box.CreateClaimResponse(sourceClaim(next, "pat-1", "CLM-"+next, "2025-06-30"))
	b.waitReports(t, next, 1)
	require.Empty(t, b.reportsFor("cr-lost"))
	box.Clock.Advance(31 * time.Second) // past the grace, max(2×timeout, 30 s)
	b.waitReports(t, "cr-lost", 1)
	requireEventsFetched(t, box, method, n)
}

// requireEventsFetched checks that the fake was asked for $events, by
// method only (GET on zen, POST on the newer Aidbox,
// docs/upstreams/fhir-subscriptions.md §4, trap 19), and for event n alone
// each time.
func requireEventsFetched(t *testing.T, box *fhirtest.Server, method string, n int) {
	t.Helper()
	calls := requests(box, "", "/$events")
	require.NotEmpty(t, calls)
	for _, c := range calls {
		require.Equal(t, method, c.Method, "$events by %s only", method)
		since, until := eventsRange(t, c)
		require.Equal(t, []string{strconv.Itoa(n), strconv.Itoa(n)}, []string{since, until}, "only event %d is asked for", n)
	}
}
