package fhirtest_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

// r5JSON is an R5 Subscription as the newer Aidbox's R5 tutorial shows it
// (C§1.3). Non-positive maxCount or heartbeat leave the field out; an empty
// content too. Filters are "param=value".
func r5JSON(topic, endpoint, content string, maxCount, heartbeat int, filters ...string) string {
	sub := map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "test", "topic": topic,
		"channelType": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
		"endpoint":    endpoint, "contentType": "application/fhir+json",
		"parameter": []any{map[string]any{"name": "Authorization", "value": "Basic bWU6cHc="}},
	}
	var fs []any
	for _, f := range filters {
		name, value, _ := strings.Cut(f, "=")
		fs = append(fs, map[string]any{"filterParameter": name, "comparator": "eq", "value": value})
	}
	if fs != nil {
		sub["filterBy"] = fs
	}
	if content != "" {
		sub["content"] = content
	}
	if maxCount > 0 {
		sub["maxCount"] = maxCount
	}
	if heartbeat > 0 {
		sub["heartbeatPeriod"] = heartbeat
	}
	b, _ := json.Marshal(sub)
	return string(b)
}

// requestedJSON is backportJSON posted requested, as the newer Aidbox wants
// it (C§1.2).
func requestedJSON(topic, endpoint, content string, maxCount, heartbeat int, filters ...string) string {
	return strings.Replace(backportJSON("", topic, endpoint, content, maxCount, heartbeat, filters...), `"status":"active"`, `"status":"requested"`, 1)
}

// eventsParams is a $events Parameters body with string bounds (C§4); 0
// leaves a bound out.
func eventsParams(since, until int, content string) string {
	var ps []string
	if since > 0 {
		ps = append(ps, `{"name":"eventsSinceNumber","valueString":"`+strconv.Itoa(since)+`"}`)
	}
	if until > 0 {
		ps = append(ps, `{"name":"eventsUntilNumber","valueString":"`+strconv.Itoa(until)+`"}`)
	}
	if content != "" {
		ps = append(ps, `{"name":"content","valueCode":"`+content+`"}`)
	}
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
}

// firstEvent is the first notificationEvent of a SubscriptionStatus.
func firstEvent(st map[string]any) map[string]any {
	return st["notificationEvent"].([]any)[0].(map[string]any)
}

var (
	newR4  = fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R4}
	newR4B = fhirtest.Options{Vendor: fhirtest.Aidbox}
	newR5  = fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R5}
)

func TestAidboxNew_Metadata(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, newR4B)
	_, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
	cs := decode(t, b)
	require.Equal(t, "4.3.0", cs["fhirVersion"])
	require.Equal(t, "Aidbox", cs["software"].(map[string]any)["name"])
	require.Contains(t, string(b), `"valueCanonical":"`+topicURL+`"`)

	s = fhirtest.NewServer(t, newR5)
	_, b = call(t, s, http.MethodGet, "/fhir/metadata", "")
	cs = decode(t, b)
	require.Equal(t, "5.0.0", cs["fhirVersion"])
	require.Equal(t, "Aidbox", cs["software"].(map[string]any)["name"])
	require.NotContains(t, cs, "instantiates", "R5 needs no backport marker")
	require.Contains(t, string(b), "OperationDefinition/Subscription-events")
}

func TestAidboxNew_SubscriptionRules(t *testing.T) {
	t.Parallel()
	idOnly := fhirtest.Topic{URL: "http://aidbox.app/SubscriptionTopic/ids", Resource: "ClaimResponse", CanFilterBy: []string{"outcome"}, MaxContent: "id-only"}
	topics := []fhirtest.Topic{fhirtest.DefaultTopic, idOnly}

	t.Run("R4BCreatedRequested", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Aidbox, Topics: topics})
		active := backportJSON("", topicURL, "http://cb.example/x", "id-only", 1, 20)
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", active)
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "status must be requested")
		resp, b = call(t, s, http.MethodPost, "/fhir/Subscription", r5JSON(topicURL, "http://cb.example/x", "id-only", 1, 20))
		requireOutcome(t, resp, b, http.StatusBadRequest, "not an R4B Subscription")
		resp, b = call(t, s, http.MethodPost, "/fhir/Subscription",
			requestedJSON(idOnly.URL, "http://cb.example/x", "full-resource", 1, 20))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "maxContent")
		require.Empty(t, s.Subscriptions())
		created := createdRequested(t, s, requestedJSON(topicURL, "http://cb.example/x", "id-only", 1, 20))
		_, ok := s.Subscription(created["id"].(string))
		require.True(t, ok)
	})

	t.Run("R5", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R5, Topics: topics})
		good := r5JSON(idOnly.URL, "http://cb.example/x", "id-only", 1, 20, "outcome=complete")
		for name, tc := range map[string]struct {
			body   string
			status int
			text   string
		}{
			"R4BShape":         {requestedJSON(topicURL, "http://cb.example/x", "", 1, 20), http.StatusBadRequest, "not an R5 Subscription"},
			"R4ChannelAdded":   {strings.Replace(good, `"endpoint"`, `"channel":{"type":"rest-hook"},"endpoint"`, 1), http.StatusBadRequest, "not an R5 Subscription"},
			"Active":           {strings.Replace(good, `"requested"`, `"active"`, 1), http.StatusUnprocessableEntity, "status must be requested"},
			"UnknownTopic":     {r5JSON("http://aidbox.app/SubscriptionTopic/other", "http://cb.example/x", "", 1, 20), http.StatusUnprocessableEntity, "known SubscriptionTopic"},
			"FilterNotAllowed": {r5JSON(idOnly.URL, "http://cb.example/x", "", 1, 20, "status=active"), http.StatusUnprocessableEntity, "canFilterBy"},
			"Comparator":       {strings.Replace(good, `"comparator":"eq"`, `"comparator":"gt"`, 1), http.StatusUnprocessableEntity, "comparator"},
			"NoFilterValue":    {strings.Replace(good, `"value":"complete"`, `"value":""`, 1), http.StatusUnprocessableEntity, "filterParameter and value"},
			"ChannelTypeCode":  {strings.Replace(good, `"code":"rest-hook"`, `"code":"websocket"`, 1), http.StatusUnprocessableEntity, "rest-hook"},
			"ChannelSystem":    {strings.Replace(good, `,"system":"http://terminology.hl7.org/CodeSystem/subscription-channel-type"`, "", 1), http.StatusUnprocessableEntity, "channelType"},
			"ContentType":      {strings.Replace(good, `"contentType":"application/fhir+json"`, `"contentType":"application/fhir+xml"`, 1), http.StatusUnprocessableEntity, "contentType"},
			"AboveMaxContent":  {r5JSON(idOnly.URL, "http://cb.example/x", "full-resource", 1, 20), http.StatusUnprocessableEntity, "maxContent"},
			"MaxCountString":   {strings.Replace(good, `"maxCount":1`, `"maxCount":"1"`, 1), http.StatusUnprocessableEntity, "maxCount"},
			"HeaderNoName":     {strings.Replace(good, `"name":"Authorization"`, `"name":""`, 1), http.StatusUnprocessableEntity, "Name: value"},
			"NoEndpoint":       {strings.Replace(good, `"endpoint":"http://cb.example/x"`, `"endpoint":"x"`, 1), http.StatusUnprocessableEntity, "absolute"},
		} {
			resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", tc.body)
			require.Equal(t, tc.status, resp.StatusCode, name+": "+string(b))
			require.Contains(t, string(b), tc.text, name)
		}
		require.Empty(t, s.Subscriptions())
		id := createdRequested(t, s, good)["id"].(string)
		got, _ := s.Subscription(id)
		require.Equal(t, idOnly.URL, got.Topic)
		require.Equal(t, "http://cb.example/x", got.Endpoint)
		require.Equal(t, []string{"Authorization: Basic bWU6cHc="}, got.Header, "parameters are the headers (C§1.3)")
		resp, b := call(t, s, http.MethodPut, "/fhir/Subscription/"+id, strings.Replace(good, `{`, `{"id":"`+id+`",`, 1))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "cannot be modified")
	})
}

// createdRequested creates a subscription, requires a 201 answer that
// says requested, and returns it. The answer is read, not the stored
// status: the handshake that follows at once may already have turned it
// error (the tests' endpoints do not listen, C§3).
func createdRequested(t *testing.T, s *fhirtest.Server, body string) map[string]any {
	t.Helper()
	resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
	created := decode(t, b)
	require.Equal(t, "requested", created["status"])
	return created
}

func TestAidboxNew_Handshake(t *testing.T) {
	t.Parallel()

	t.Run("Any2xxActivates", func(t *testing.T) {
		t.Parallel()
		for _, opts := range []fhirtest.Options{newR4B, newR5} {
			s := fhirtest.NewServer(t, opts)
			sub := newSubscriber(t)
			sub.answer(http.StatusNoContent, "")
			body := requestedJSON(topicURL, sub.URL, "id-only", 1, 20)
			bundleType, zero := "history", any("0")
			if opts.FHIRVersion == fhirtest.R5 {
				body, bundleType, zero = r5JSON(topicURL, sub.URL, "id-only", 1, 20), "subscription-notification", float64(0)
			}
			id := subscribe(t, s, "/fhir/Subscription", body)
			s.Flush()
			got, _ := s.Subscription(id)
			require.Equal(t, "active", got.Status, "a 204 is a 2xx (C§2.4)")
			hs := sub.received()[0]
			require.Equal(t, "Basic bWU6cHc=", hs.Authorization)
			st := statusIn(t, hs.Body, bundleType)
			require.Equal(t, "handshake", st["type"])
			require.Equal(t, zero, st["eventsSinceSubscriptionStart"], "R4B strings, R5 numbers (C-trap 10)")
			ref := "http://localhost:8765/Subscription/" + id
			require.Equal(t, ref, st["subscription"].(map[string]any)["reference"], "without /fhir (C§2.3)")
			entry := decode(t, hs.Body)["entry"].([]any)[0].(map[string]any)
			require.Equal(t, "urn:uuid:"+st["id"].(string), entry["fullUrl"])
			require.Equal(t, ref+"/$status", entry["request"].(map[string]any)["url"])
		}
	})

	t.Run("FailureIsErrorAtOnce", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Aidbox, Clock: fhirtest.NewFixedClock(time.Now())})
		sub := newSubscriber(t)
		sub.answer(http.StatusServiceUnavailable, "")
		id := subscribe(t, s, "/fhir/Subscription",
			requestedJSON(topicURL, sub.URL, "id-only", 1, 20))
		s.Flush()
		got, _ := s.Subscription(id)
		require.Equal(t, "error", got.Status, "no retries are documented (C§3)")
		s.Clock.Advance(time.Minute)
		s.Tick()
		require.Len(t, sub.received(), 1)
	})
}

func TestAidboxNew_Events(t *testing.T) {
	t.Parallel()

	t.Run("R4B", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := aidbox(t, fhirtest.Options{Vendor: fhirtest.Aidbox, InternalOrigin: "http://aidbox.internal:8080"}, "full-resource", 1, 20)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		s.UpdateClaimResponse("c1", claimJSON("c1", "complete"))
		got := sub.received()
		require.Len(t, got, 3)
		st := status(t, got[1].Body)
		require.Equal(t, "event-notification", st["type"])
		require.Equal(t, "1", st["eventsSinceSubscriptionStart"], "R4B counters are strings (C§2.1)")
		ev := firstEvent(st)
		require.Equal(t, "1", ev["eventNumber"])
		_, err := time.Parse(time.RFC3339Nano, ev["timestamp"].(string))
		require.NoError(t, err, "an instant (C§2.3)")
		require.Equal(t, "http://aidbox.internal:8080/fhir/ClaimResponse/c1", ev["focus"].(map[string]any)["reference"])
		entries := decode(t, got[1].Body)["entry"].([]any)
		require.Len(t, entries, 2)
		created := entries[1].(map[string]any)
		require.Equal(t, map[string]any{"method": "POST", "url": "http://aidbox.internal:8080/fhir/ClaimResponse"}, created["request"])
		require.Equal(t, "c1", created["resource"].(map[string]any)["id"])
		updated := decode(t, got[2].Body)["entry"].([]any)[1].(map[string]any)
		require.Equal(t, map[string]any{"method": "PUT", "url": "http://aidbox.internal:8080/fhir/ClaimResponse/c1"}, updated["request"])
		require.Equal(t, "2", status(t, got[2].Body)["eventsSinceSubscriptionStart"])
	})

	t.Run("R5", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := aidbox(t, newR5, "id-only", 1, 20, "outcome=complete")
		s.CreateClaimResponse(claimJSON("q", "queued"))
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		got := sub.received()
		require.Len(t, got, 2, "filterBy outcome=complete")
		st := statusIn(t, got[1].Body, "subscription-notification")
		require.Equal(t, float64(1), st["eventsSinceSubscriptionStart"], "R5 counters are numbers (C§2.1)")
		require.Equal(t, "http://localhost:8765/fhir/ClaimResponse/c1", firstEvent(st)["focus"].(map[string]any)["reference"])
		entries := decode(t, got[1].Body)["entry"].([]any)
		require.Len(t, entries, 2)
		require.NotContains(t, entries[1], "resource", "id-only")
	})

	t.Run("NoHeartbeatsOrEventsAfterEnd", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Aidbox, Clock: fhirtest.NewFixedClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))})
		sub := newSubscriber(t)
		body := strings.Replace(requestedJSON(topicURL, sub.URL, "id-only", 1, 30), `"status":"requested"`,
			`"status":"requested","end":"2025-03-01T10:00:00Z"`, 1)
		id := subscribe(t, s, "/fhir/Subscription", body)
		s.Flush()
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Len(t, sub.received(), 2)
		s.Clock.Advance(time.Hour)
		s.Tick()
		got, _ := s.Subscription(id)
		require.Equal(t, "off", got.Status, "end honoured (C§6.1, C-trap 27)")
		s.CreateClaimResponse(claimJSON("c2", "complete"))
		s.Clock.Advance(time.Hour)
		s.Tick()
		require.Len(t, sub.received(), 2, "nothing after the end")
	})
}

func TestAidboxNew_Operations(t *testing.T) {
	t.Parallel()

	t.Run("R4B", func(t *testing.T) {
		t.Parallel()
		s, _, id := aidbox(t, newR4B, "id-only", 1, 20)
		s.StopDelivering(id)
		for i := range 102 {
			s.CreateClaimResponse(claimJSON("c"+strconv.Itoa(i+1), "complete"))
		}
		op := "/fhir/Subscription/" + id
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			resp, b := call(t, s, method, op+"/$status", "")
			require.Equal(t, http.StatusOK, resp.StatusCode, method+" $status: "+string(b))
			st := status(t, b)
			require.Equal(t, "query-status", st["type"])
			require.Equal(t, "102", st["eventsSinceSubscriptionStart"])
		}
		resp, _ := call(t, s, http.MethodPut, op+"/$status", "{}")
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		resp, _ = call(t, s, http.MethodGet, op+"/$events?eventsSinceNumber=2", "")
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "POST only (C§4, C-trap 19)")

		resp, b := call(t, s, http.MethodPost, op+"/$events", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		evs := status(t, b)["notificationEvent"].([]any)
		require.Len(t, evs, 100, "the last 100 by default")
		require.Equal(t, "3", evs[0].(map[string]any)["eventNumber"])

		resp, b = call(t, s, http.MethodPost, op+"/$events", eventsParams(2, 3, ""))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		st := status(t, b)
		require.Equal(t, "query-event", st["type"])
		require.Len(t, st["notificationEvent"], 2)
		entries := decode(t, b)["entry"].([]any)
		require.Len(t, entries, 3)
		require.NotContains(t, entries[1], "resource", "the subscription's content, id-only")
		_, b = call(t, s, http.MethodPost, op+"/$events", eventsParams(2, 2, "full-resource"))
		require.Equal(t, "c2", decode(t, b)["entry"].([]any)[1].(map[string]any)["resource"].(map[string]any)["id"])

		for name, body := range map[string]string{
			"Integer":       `{"resourceType":"Parameters","parameter":[{"name":"eventsSinceNumber","valueInteger":2}]}`,
			"Zero":          `{"resourceType":"Parameters","parameter":[{"name":"eventsSinceNumber","valueString":"0"}]}`,
			"Unknown":       `{"resourceType":"Parameters","parameter":[{"name":"since","valueString":"2"}]}`,
			"NotANumber":    `{"resourceType":"Parameters","parameter":[{"name":"eventsSinceNumber","valueString":"two"}]}`,
			"BadContent":    eventsParams(1, 1, "everything"),
			"NotParameters": `{"resourceType":"Bundle"}`,
		} {
			resp, b := call(t, s, http.MethodPost, op+"/$events", body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, name+": "+string(b))
		}
	})

	t.Run("R5", func(t *testing.T) {
		t.Parallel()
		s, _, id := aidbox(t, newR5, "full-resource", 1, 20)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription/"+id+"/$status", `{"resourceType":"Parameters"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.Equal(t, float64(1), statusIn(t, b, "subscription-notification")["eventsSinceSubscriptionStart"])
		_, b = call(t, s, http.MethodPost, "/fhir/Subscription/"+id+"/$events", eventsParams(1, 1, ""))
		st := statusIn(t, b, "subscription-notification")
		require.Equal(t, float64(1), firstEvent(st)["eventNumber"])
		require.Equal(t, "c1", decode(t, b)["entry"].([]any)[1].(map[string]any)["resource"].(map[string]any)["id"])
	})

	t.Run("Retention", func(t *testing.T) {
		t.Parallel()
		s, _, id := aidbox(t, fhirtest.Options{Vendor: fhirtest.Aidbox, Retention: time.Hour}, "id-only", 1, 20)
		s.CreateClaimResponse(claimJSON("old", "complete"))
		s.Clock.Advance(90 * time.Minute)
		s.CreateClaimResponse(claimJSON("new", "complete"))
		_, b := call(t, s, http.MethodPost, "/fhir/Subscription/"+id+"/$events", "")
		st := status(t, b)
		require.Equal(t, "2", st["eventsSinceSubscriptionStart"], "counted still")
		evs := st["notificationEvent"].([]any)
		require.Len(t, evs, 1, "the event older than the retention is deleted (C§4)")
		require.Equal(t, "2", evs[0].(map[string]any)["eventNumber"])
	})
}

// The newer Aidbox's R4 backport (subscription-specification-version
// R4-backported, C§6.1): R4 metadata with the backport markers, the
// backport Subscription as in R4B, and every status as Parameters with
// valueString counters (C§2.1, C-trap 10); its $status and $events answers
// name the subscription relatively and no topic, and $events leaves the
// notification-event parts out unless R4EventParts (C§4, C-trap 19).
func TestAidboxNew_R4(t *testing.T) {
	t.Parallel()

	t.Run("Metadata", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, newR4)
		_, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
		cs := decode(t, b)
		require.Equal(t, "4.0.1", cs["fhirVersion"])
		require.Equal(t, "Aidbox", cs["software"].(map[string]any)["name"])
		require.Equal(t, []any{"http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4"}, cs["instantiates"])
		require.Contains(t, string(b), `"supportedProfile":["`+backport+`backport-subscription"]`)
		require.Contains(t, string(b), `"valueCanonical":"`+topicURL+`"`)
		require.Contains(t, string(b), "OperationDefinition/backport-subscription-events")
	})

	t.Run("Notifications", func(t *testing.T) {
		t.Parallel()
		s, sub, id := aidbox(t, fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R4, InternalOrigin: "http://aidbox.internal:8080"}, "full-resource", 1, 20)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		got := sub.received()
		require.Len(t, got, 2)
		hs := r4Status(t, got[0].Body)
		require.Equal(t, "handshake", hs["type"]["valueCode"])
		require.Equal(t, "requested", hs["status"]["valueCode"])
		require.Equal(t, "0", hs["events-since-subscription-start"]["valueString"])
		require.NotContains(t, hs, "notification-event")

		st := r4Status(t, got[1].Body)
		require.Equal(t, "Subscription/"+id, st["subscription"]["valueReference"].(map[string]any)["reference"])
		require.Equal(t, topicURL, st["topic"]["valueCanonical"])
		require.Equal(t, "active", st["status"]["valueCode"])
		require.Equal(t, "event-notification", st["type"]["valueCode"])
		require.Equal(t, "1", st["events-since-subscription-start"]["valueString"], "valueString (C§2.1)")
		parts := eventParts(t, st)
		require.Equal(t, "1", parts["event-number"]["valueString"])
		_, err := time.Parse(time.RFC3339Nano, parts["timestamp"]["valueInstant"].(string))
		require.NoError(t, err, "an instant")
		require.Equal(t, "http://aidbox.internal:8080/fhir/ClaimResponse/c1", parts["focus"]["valueReference"].(map[string]any)["reference"])
		entries := decode(t, got[1].Body)["entry"].([]any)
		require.Len(t, entries, 2)
		require.Equal(t, "c1", entries[1].(map[string]any)["resource"].(map[string]any)["id"])
		require.NotContains(t, string(got[1].Body), "SubscriptionStatus")
	})

	t.Run("Operations", func(t *testing.T) {
		t.Parallel()
		s, _, id := aidbox(t, newR4, "full-resource", 1, 20)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		s.CreateClaimResponse(claimJSON("c2", "complete"))
		op := "/fhir/Subscription/" + id
		_, b := call(t, s, http.MethodGet, op+"/$status", "")
		st := r4Status(t, b)
		require.Equal(t, "query-status", st["type"]["valueCode"])
		require.Equal(t, "2", st["events-since-subscription-start"]["valueString"])
		require.Equal(t, "Subscription/"+id, st["subscription"]["valueReference"].(map[string]any)["reference"])
		require.NotContains(t, st, "topic", "as its tutorial shows the answer")

		resp, b := call(t, s, http.MethodPost, op+"/$events", eventsParams(2, 2, ""))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		st = r4Status(t, b)
		require.Equal(t, "query-event", st["type"]["valueCode"])
		require.NotContains(t, st, "notification-event", "left out, as its R4 tutorial shows (C§4, C-trap 19)")
		entries := decode(t, b)["entry"].([]any)
		require.Len(t, entries, 2)
		require.Equal(t, map[string]any{"resource": entries[1].(map[string]any)["resource"]}, entries[1], "the resource alone")
		require.Equal(t, "c2", entries[1].(map[string]any)["resource"].(map[string]any)["id"])

		parts, _, id2 := aidbox(t, fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R4, R4EventParts: true}, "id-only", 1, 20)
		parts.CreateClaimResponse(claimJSON("c3", "complete"))
		_, b = call(t, parts, http.MethodPost, "/fhir/Subscription/"+id2+"/$events", eventsParams(1, 1, ""))
		ev := eventParts(t, r4Status(t, b))
		require.Equal(t, "1", ev["event-number"]["valueString"])
		require.Equal(t, "http://localhost:8765/fhir/ClaimResponse/c3", ev["focus"]["valueReference"].(map[string]any)["reference"])
		require.NotContains(t, decode(t, b)["entry"].([]any)[1], "resource", "id-only")
	})
}
