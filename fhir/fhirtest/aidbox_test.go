package fhirtest_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

const (
	backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	topicURL = "http://aidbox.app/SubscriptionTopic/claim-response"
)

// backportJSON is an R4B backport Subscription as seed 001 shows it.
// Non-positive maxCount or heartbeat leave the extension out; an empty
// content leaves _payload out.
func backportJSON(id, topic, endpoint, content string, maxCount, heartbeat int, filters ...string) string {
	sub := map[string]any{
		"resourceType": "Subscription", "status": "active", "reason": "test",
		"meta":     map[string]any{"profile": []string{backport + "backport-subscription"}},
		"criteria": topic,
	}
	if id != "" {
		sub["id"] = id
	}
	var fs []any
	for _, f := range filters {
		fs = append(fs, map[string]any{"url": backport + "backport-filter-criteria", "valueString": f})
	}
	if fs != nil {
		sub["_criteria"] = map[string]any{"extension": fs}
	}
	ch := map[string]any{
		"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
		"header": []string{"Authorization: Basic bWU6cHc="},
	}
	var ext []any
	if heartbeat > 0 {
		ext = append(ext, map[string]any{"url": backport + "backport-heartbeat-period", "valueUnsignedInt": heartbeat})
	}
	if maxCount > 0 {
		ext = append(ext, map[string]any{"url": backport + "backport-max-count", "valuePositiveInt": maxCount})
	}
	if ext != nil {
		ch["extension"] = ext
	}
	if content != "" {
		ch["_payload"] = map[string]any{"extension": []any{map[string]any{"url": backport + "backport-payload-content", "valueCode": content}}}
	}
	sub["channel"] = ch
	b, _ := json.Marshal(sub)
	return string(b)
}

// status returns the SubscriptionStatus of a history notification Bundle.
func status(t *testing.T, body []byte) map[string]any {
	t.Helper()
	return statusIn(t, body, "history")
}

// statusIn returns the SubscriptionStatus of a notification Bundle of
// bundleType.
func statusIn(t *testing.T, body []byte, bundleType string) map[string]any {
	t.Helper()
	b := decode(t, body)
	require.Equal(t, bundleType, b["type"], string(body))
	st := b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	require.Equal(t, "SubscriptionStatus", st["resourceType"])
	return st
}

// aidbox starts an Aidbox fake (aidbox-zen unless opts.Vendor says
// otherwise) and a subscriber answering 200, and creates an active
// subscription whose handshake succeeded: an R4B backport one, or an R5 one
// on the newer Aidbox in R5.
func aidbox(t *testing.T, opts fhirtest.Options, content string, maxCount, heartbeat int, filters ...string) (*fhirtest.Server, *subscriber, string) {
	t.Helper()
	opts.Vendor = cmp.Or(opts.Vendor, fhirtest.AidboxZen)
	opts.Clock = fhirtest.NewFixedClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	s := fhirtest.NewServer(t, opts)
	sub := newSubscriber(t)
	body := backportJSON("", topicURL, sub.URL+"/cb", content, maxCount, heartbeat, filters...)
	switch {
	case opts.FHIRVersion == fhirtest.R5:
		body = r5JSON(topicURL, sub.URL+"/cb", content, maxCount, heartbeat, filters...)
	case opts.Vendor == fhirtest.Aidbox:
		body = requestedJSON(topicURL, sub.URL+"/cb", content, maxCount, heartbeat, filters...)
	}
	id := subscribe(t, s, "/fhir/Subscription", body)
	s.Flush()
	got, _ := s.Subscription(id)
	require.Equal(t, "active", got.Status)
	return s, sub, id
}

func TestAidbox_Metadata(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen})
	_, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
	cs := decode(t, b)
	require.Equal(t, "4.3.0", cs["fhirVersion"])
	require.Equal(t, "Aidbox", cs["software"].(map[string]any)["name"])
	require.Equal(t, []any{"http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server"}, cs["instantiates"])
	require.Contains(t, string(b), `"supportedProfile":["`+backport+`backport-subscription"]`)
	require.Contains(t, string(b), `"valueCanonical":"`+topicURL+`"`)
}

func TestAidbox_SubscriptionRules(t *testing.T) {
	t.Parallel()
	idOnly := fhirtest.Topic{URL: "http://aidbox.app/SubscriptionTopic/ids", Resource: "ClaimResponse", MaxContent: "id-only"}
	zenDefault := fhirtest.Topic{URL: "http://aidbox.app/SubscriptionTopic/bare", Resource: "ClaimResponse"}
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen, Topics: []fhirtest.Topic{fhirtest.DefaultTopic, idOnly, zenDefault}})
	good := backportJSON("", topicURL, "http://cb.example/x", "full-resource", 1, 20)
	for name, tc := range map[string]struct {
		body, text string
	}{
		"NoProfile":         {strings.Replace(good, `"profile"`, `"tag"`, 1), "meta.profile"},
		"UnknownTopic":      {backportJSON("", "http://aidbox.app/SubscriptionTopic/other", "http://cb.example/x", "", 1, 20), "SubscriptionTopic"},
		"CriteriaSearch":    {backportJSON("", "ClaimResponse?", "http://cb.example/x", "", 1, 20), "SubscriptionTopic"},
		"FilterNotAllowed":  {backportJSON("", topicURL, "http://cb.example/x", "", 1, 20, "ClaimResponse?use=claim"), "canFilterBy"},
		"NoPayload":         {strings.Replace(good, `"payload":"application/fhir+json",`, "", 1), "channel.payload"},
		"AboveMaxContent":   {backportJSON("", idOnly.URL, "http://cb.example/x", "full-resource", 1, 20), "maxContent"},
		"ZenDefaultIsEmpty": {backportJSON("", zenDefault.URL, "http://cb.example/x", "id-only", 1, 20), "maxContent"},
		"BadContent":        {backportJSON("", topicURL, "http://cb.example/x", "everything", 1, 20), "content"},
		"MaxCountNotInt":    {strings.Replace(good, `"valuePositiveInt":1`, `"valuePositiveInt":"1"`, 1), "max count"},
	} {
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", tc.body)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, name+": "+string(b))
		require.Contains(t, string(b), tc.text, name)
	}
	// A filter placed on criteria itself is no string: not a Subscription.
	resp, _ := call(t, s, http.MethodPost, "/fhir/Subscription", strings.Replace(good, `"criteria":"`+topicURL+`"`,
		`"criteria":{"extension":[{"url":"`+backport+`backport-filter-criteria","valueString":"outcome=complete"}]}`, 1))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Empty(t, s.Subscriptions())

	resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", backportJSON("my-sub", topicURL, "http://cb.example/x", "id-only", 1, 20, "ClaimResponse?outcome=complete"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
	require.Equal(t, "requested", decode(t, b)["status"], "posted active, stored requested")
	require.Equal(t, "my-sub", decode(t, b)["id"])
	resp, _ = call(t, s, http.MethodPost, "/fhir/Subscription", backportJSON("my-sub", topicURL, "http://cb.example/x", "id-only", 1, 20))
	require.Equal(t, http.StatusConflict, resp.StatusCode)
}

func TestAidbox_Handshake(t *testing.T) {
	t.Parallel()

	t.Run("OnlyHTTP200Activates", func(t *testing.T) {
		t.Parallel()
		s, sub, id := aidbox(t, fhirtest.Options{}, "id-only", 1, 20)
		got := sub.received()
		require.Len(t, got, 1)
		require.Equal(t, http.MethodPost, got[0].Method)
		require.Equal(t, "/cb", got[0].Path)
		require.Equal(t, "Basic bWU6cHc=", got[0].Authorization)
		st := status(t, got[0].Body)
		require.Equal(t, "handshake", st["type"])
		require.Equal(t, "requested", st["status"])
		require.Equal(t, float64(0), st["eventsSinceSubscriptionStart"])
		require.Equal(t, "http://localhost:8765/fhir/Subscription/"+id, st["subscription"].(map[string]any)["reference"])
		require.Equal(t, "handshake", s.Deliveries()[0].Type)
	})

	t.Run("NoContentFailsThreeTimesThenErrorForGood", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen, Clock: fhirtest.NewFixedClock(time.Now())})
		sub := newSubscriber(t)
		sub.answer(http.StatusNoContent, "")
		id := subscribe(t, s, "/fhir/Subscription", backportJSON("", topicURL, sub.URL, "id-only", 1, 20))
		s.Flush()
		got, _ := s.Subscription(id)
		require.Equal(t, "requested", got.Status, "a 204 is not the 200 zen expects")
		s.Tick()
		require.Len(t, sub.received(), 1, "the retry waits 10 s")
		for range 3 {
			s.Clock.Advance(10 * time.Second)
			s.Tick()
		}
		require.Len(t, sub.received(), 3, "three tries")
		got, _ = s.Subscription(id)
		require.Equal(t, "error", got.Status)
		sub.answer(http.StatusOK, `{"resourceType":"Bundle","type":"transaction-response"}`)
		s.Clock.Advance(time.Hour)
		s.Tick()
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Len(t, sub.received(), 3, "an errored subscription stays silent")
		body := strings.Replace(backportJSON(id, topicURL, sub.URL, "id-only", 1, 20), `"active"`, `"requested"`, 1)
		resp, b := call(t, s, http.MethodPut, "/fhir/Subscription/"+id, body)
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "cannot be modified")
	})
}

func TestAidbox_Events(t *testing.T) {
	t.Parallel()

	t.Run("ContentLevels", func(t *testing.T) {
		t.Parallel()
		for _, content := range []string{"empty", "id-only", "full-resource"} {
			s, sub, _ := aidbox(t, fhirtest.Options{InternalOrigin: "http://aidbox.internal:8080"}, content, 1, 20)
			s.CreateClaimResponse(claimJSON("c1", "complete"))
			got := sub.received()
			require.Len(t, got, 2, content)
			st := status(t, got[1].Body)
			require.Equal(t, "event-notification", st["type"])
			require.Equal(t, float64(1), st["eventsSinceSubscriptionStart"], "zen counters are JSON numbers")
			ev := st["notificationEvent"].([]any)[0].(map[string]any)
			require.Equal(t, float64(1), ev["eventNumber"])
			require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+03$`, ev["timestamp"], "zen timestamps are no instants")
			entries := decode(t, got[1].Body)["entry"].([]any)
			switch content {
			case "empty":
				require.NotContains(t, ev, "focus")
				require.Len(t, entries, 1)
			case "id-only":
				require.Equal(t, "http://aidbox.internal:8080/fhir/ClaimResponse/c1", ev["focus"].(map[string]any)["reference"])
				require.Len(t, entries, 2)
				require.NotContains(t, entries[1], "resource")
				require.Equal(t, "POST", entries[1].(map[string]any)["request"].(map[string]any)["method"])
			case "full-resource":
				require.Len(t, entries, 2)
				require.Equal(t, "c1", entries[1].(map[string]any)["resource"].(map[string]any)["id"])
			}
		}
	})

	t.Run("BatchesWaitForTheHeartbeatPeriod", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := aidbox(t, fhirtest.Options{}, "id-only", 2, 60)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Len(t, sub.received(), 1, "one event waits for a second or the period")
		s.CreateClaimResponse(claimJSON("c2", "complete"))
		require.Len(t, sub.received(), 2)
		require.Len(t, status(t, sub.received()[1].Body)["notificationEvent"], 2)
		s.CreateClaimResponse(claimJSON("c3", "complete"))
		s.Clock.Advance(60 * time.Second)
		s.Tick()
		require.Len(t, sub.received(), 3)
		require.Equal(t, float64(3), status(t, sub.received()[2].Body)["notificationEvent"].([]any)[0].(map[string]any)["eventNumber"])
	})

	t.Run("HeartbeatsAfterSilence", func(t *testing.T) {
		t.Parallel()
		s, sub, id := aidbox(t, fhirtest.Options{}, "id-only", 1, 30)
		s.Clock.Advance(29 * time.Second)
		s.Tick()
		require.Len(t, sub.received(), 1)
		s.Clock.Advance(time.Second)
		s.Tick()
		require.Len(t, sub.received(), 2)
		require.Equal(t, "heartbeat", status(t, sub.received()[1].Body)["type"])
		s.StopHeartbeats(id)
		s.Clock.Advance(time.Minute)
		s.Tick()
		require.Len(t, sub.received(), 2)
	})

	t.Run("FilterCriteria", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := aidbox(t, fhirtest.Options{}, "id-only", 1, 20, "ClaimResponse?outcome=complete")
		s.CreateClaimResponse(claimJSON("q", "queued"))
		require.Len(t, sub.received(), 1)
		s.CreateClaimResponse(claimJSON("c", "complete"))
		require.Len(t, sub.received(), 2)
		require.Equal(t, float64(1), status(t, sub.received()[1].Body)["eventsSinceSubscriptionStart"])
	})

	t.Run("FailedNotificationTurnsItError", func(t *testing.T) {
		t.Parallel()
		s, sub, id := aidbox(t, fhirtest.Options{}, "id-only", 1, 20)
		sub.answer(http.StatusAccepted, "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		got, _ := s.Subscription(id)
		require.Equal(t, "error", got.Status)
		require.False(t, s.Deliveries()[1].Success)
	})
}

// Parallel deliverers deliver out of event order (C§3, C§6.1, C-trap 11):
// with Deliverers 4 the fake sends each round of 4 batches newest first,
// and a round not full at the next Tick; the handshake and the counters
// are as without them.
func TestAidbox_Deliverers(t *testing.T) {
	t.Parallel()
	for _, vendor := range []fhirtest.Vendor{fhirtest.AidboxZen, fhirtest.Aidbox} {
		t.Run(string(vendor), func(t *testing.T) {
			t.Parallel()
			s, sub, _ := aidbox(t, fhirtest.Options{Vendor: vendor, Deliverers: 4}, "id-only", 1, 60)
			numbers := func() []string {
				var out []string
				for _, r := range sub.received()[1:] {
					st := status(t, r.Body)
					require.Equal(t, "event-notification", st["type"])
					out = append(out, fmt.Sprint(firstEvent(st)["eventNumber"]))
				}
				return out
			}
			for i := 1; i <= 3; i++ {
				s.CreateClaimResponse(claimJSON("c"+strconv.Itoa(i), "complete"))
			}
			require.Empty(t, numbers(), "the deliverers wait for a round of 4")
			s.CreateClaimResponse(claimJSON("c4", "complete"))
			require.Equal(t, []string{"4", "3", "2", "1"}, numbers(), "newest first")
			for i := 5; i <= 6; i++ {
				s.CreateClaimResponse(claimJSON("c"+strconv.Itoa(i), "complete"))
			}
			s.Tick()
			require.Equal(t, []string{"4", "3", "2", "1", "6", "5"}, numbers(), "a round not full goes at the next Tick")
			for _, d := range s.Deliveries() {
				require.True(t, d.Success, "%+v", d)
			}
		})
	}
}

func TestAidbox_Operations(t *testing.T) {
	t.Parallel()
	s, sub, id := aidbox(t, fhirtest.Options{}, "id-only", 1, 20)
	s.CreateClaimResponse(claimJSON("c1", "complete"))
	s.DropEvents(id, 1)
	s.CreateClaimResponse(claimJSON("c2", "complete"))
	s.CreateClaimResponse(claimJSON("c3", "complete"))
	got := sub.received()
	require.Len(t, got, 3, "event 2 is lost")
	require.Equal(t, float64(3), status(t, got[2].Body)["notificationEvent"].([]any)[0].(map[string]any)["eventNumber"])

	resp, b := call(t, s, http.MethodGet, "/fhir/Subscription/"+id+"/$status", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	st := status(t, b)
	require.Equal(t, "query-status", st["type"])
	require.Equal(t, float64(3), st["eventsSinceSubscriptionStart"])

	resp, b = call(t, s, http.MethodGet, "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=2&eventsUntilNumber=2", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	st = status(t, b)
	require.Equal(t, "query-event", st["type"])
	evs := st["notificationEvent"].([]any)
	require.Len(t, evs, 1)
	require.Equal(t, "http://localhost:8765/fhir/ClaimResponse/c2", evs[0].(map[string]any)["focus"].(map[string]any)["reference"])
	resp, b = call(t, s, http.MethodGet, "/fhir/Subscription/"+id+"/$events", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, status(t, b)["notificationEvent"], 3)
	resp, _ = call(t, s, http.MethodPost, "/fhir/Subscription/"+id+"/$events", `{"resourceType":"Parameters"}`)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "zen answers $events on GET only")
	resp, _ = call(t, s, http.MethodGet, "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=zero", "")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	s.StopDelivering(id)
	s.CreateClaimResponse(claimJSON("c4", "complete"))
	s.Clock.Advance(time.Hour)
	s.Tick()
	require.Len(t, sub.received(), 3, "nothing is sent, heartbeats neither")
	_, b = call(t, s, http.MethodGet, "/fhir/Subscription/"+id+"/$status", "")
	require.Equal(t, float64(4), status(t, b)["eventsSinceSubscriptionStart"], "events are still counted")

	// Deleted, its events are gone; recreated, it counts from 0 again.
	resp, b = call(t, s, http.MethodDelete, "/fhir/Subscription/"+id, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "Subscription", decode(t, b)["resourceType"])
	resp, _ = call(t, s, http.MethodGet, "/fhir/Subscription/"+id+"/$status", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	id2 := subscribe(t, s, "/fhir/Subscription", backportJSON("", topicURL, sub.URL, "id-only", 1, 20))
	s.Flush()
	s.CreateClaimResponse(claimJSON("c5", "complete"))
	last := sub.received()[len(sub.received())-1]
	require.Equal(t, float64(1), status(t, last.Body)["eventsSinceSubscriptionStart"], id2)
}

func TestAidbox_PageLinks(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen})
	for i := range 3 {
		s.CreateClaimResponse(claimJSON("c"+strconv.Itoa(i), "complete"))
	}
	_, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse?_count=2", "")
	page, next := ids(t, b)
	require.Equal(t, []string{"c0", "c1"}, page)
	require.Equal(t, s.BaseURL+"/ClaimResponse?_count=2&page=2", next)
	_, b = call(t, s, http.MethodGet, strings.TrimPrefix(next, s.URL), "")
	page, next = ids(t, b)
	require.Equal(t, []string{"c2"}, page)
	require.Empty(t, next)
}
