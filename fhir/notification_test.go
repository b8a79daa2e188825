package fhir_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// Payloads in the forms docs/upstreams/fhir-subscriptions.md §2 records.
const (
	// Aidbox zen $events (seed 001 S001:137-220): numeric counters,
	// "YYYY-MM-DD hh:mm:ss.ffffff+03" timestamps, id-only entries with
	// fullUrl and request but no resource.
	aidboxZenEvents = `{"resourceType":"Bundle","type":"history","timestamp":"2023-09-06T07:40:59.527416959Z","entry":[
	 {"resource":{"resourceType":"SubscriptionStatus","status":"active","type":"query-event","eventsSinceSubscriptionStart":19,
	   "subscription":{"reference":"http://localhost:8765/fhir/Subscription/subscription-patient-test-1"},
	   "topic":"http://aidbox.app/SubscriptionTopic/patient-test-1",
	   "notificationEvent":[
	    {"eventNumber":1,"timestamp":"2023-09-04 10:38:43.020984+03","focus":{"reference":"http://localhost:8765/fhir/Patient/c868fc6f-0631-43cc-940a-c43177fe6567"}},
	    {"eventNumber":2,"timestamp":"2023-09-04 10:38:44.382835+03","focus":{"reference":"http://localhost:8765/fhir/Patient/fe174a4e-e3ba-4d75-98b6-17fea275dda1"}}]}},
	 {"fullUrl":"http://localhost:8765/fhir/Patient/c868fc6f-0631-43cc-940a-c43177fe6567","request":{"method":"POST","url":"Patient/c868fc6f-0631-43cc-940a-c43177fe6567"},"response":{"status":"201"}},
	 {"fullUrl":"http://localhost:8765/fhir/Patient/fe174a4e-e3ba-4d75-98b6-17fea275dda1","request":{"method":"POST","url":"Patient/fe174a4e-e3ba-4d75-98b6-17fea275dda1"},"response":{"status":"201"}}]}`

	// Aidbox ≥ 2601 R4B event-notification (§2.1, §2.3): string counters,
	// the full resource, focus and fullUrl absolute on the server's own
	// host, the subscription reference without /fhir.
	aidboxR4BEvent = `{"resourceType":"Bundle","type":"history","entry":[
	 {"fullUrl":"http://localhost:8765/Subscription/pas-subscription-r4b/$status",
	  "resource":{"resourceType":"SubscriptionStatus","status":"active","type":"event-notification","eventsSinceSubscriptionStart":"2",
	   "subscription":{"reference":"http://localhost:8765/Subscription/pas-subscription-r4b"},
	   "topic":"http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic",
	   "notificationEvent":[{"eventNumber":"2","timestamp":"2025-01-10T10:00:00Z","focus":{"reference":"http://localhost:8765/fhir/ClaimResponse/4e45"}}]}},
	 {"fullUrl":"http://localhost:8765/fhir/ClaimResponse/4e45","resource":{"resourceType":"ClaimResponse","id":"4e45","outcome":"complete"}}]}`

	// R4 backport (§2.1): Parameters first, valueString counters; HAPI's
	// date timestamp and its doubled focus ClaimResponse/ClaimResponse/1
	// (§2.3); the status entry without request (HAPI's collection entry).
	hapiR4Event = `{"resourceType":"Bundle","type":"history","entry":[
	 {"resource":{"resourceType":"Parameters","parameter":[
	   {"name":"subscription","valueReference":{"reference":"http://hapi:8080/fhir/Subscription/7"}},
	   {"name":"topic","valueCanonical":"http://example.org/topic/claim"},
	   {"name":"status","valueCode":"active"},
	   {"name":"type","valueCode":"event-notification"},
	   {"name":"events-since-subscription-start","valueString":"5"},
	   {"name":"notification-event","part":[
	     {"name":"event-number","valueString":"5"},
	     {"name":"timestamp","valueDate":"2025-01-10"},
	     {"name":"focus","valueReference":{"reference":"ClaimResponse/ClaimResponse/1"}}]}]}},
	 {"fullUrl":"http://hapi:8080/fhir/ClaimResponse/1","resource":{"resourceType":"ClaimResponse","id":"1"}}]}`

	// Aidbox ≥ 2512 R4 $events answer as its R4 tutorial shows it (§4,
	// trap 19): the status Parameters with a relative subscription, no
	// notification-event part, the resource alone in its entry.
	aidboxR4Events = `{"resourceType":"Bundle","type":"history","entry":[
	 {"resource":{"resourceType":"Parameters","parameter":[
	   {"name":"subscription","valueReference":{"reference":"Subscription/pas-subscription-1"}},
	   {"name":"status","valueCode":"active"},
	   {"name":"type","valueCode":"query-event"},
	   {"name":"events-since-subscription-start","valueString":"1"}]}},
	 {"resource":{"resourceType":"ClaimResponse","id":"a1b2c3d4","outcome":"complete"}}]}`

	handshakeR4B = `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus",
	  "status":"requested","type":"handshake","eventsSinceSubscriptionStart":"0",
	  "subscription":{"reference":"Subscription/s1"},"topic":"http://example.org/topic/claim"}}]}`

	// R5 (§2.1): Bundle subscription-notification, numeric counter, empty
	// content: an event without focus.
	heartbeatR5 = `{"resourceType":"Bundle","type":"subscription-notification","entry":[{"resource":{"resourceType":"SubscriptionStatus",
	  "status":"error","type":"heartbeat","eventsSinceSubscriptionStart":12,"subscription":{"reference":"Subscription/s5"},
	  "error":[{"text":"delivery failed"}]}}]}`
	emptyContentR5 = `{"resourceType":"Bundle","type":"subscription-notification","entry":[{"resource":{"resourceType":"SubscriptionStatus",
	  "status":"active","type":"event-notification","eventsSinceSubscriptionStart":13,"subscription":{"reference":"Subscription/s5"},
	  "notificationEvent":[{"eventNumber":13}]}}]}`

	// openIMIS and R4 criteria with payload: a bare ClaimResponse (§2.1).
	bareClaimResponse = `{"resourceType":"ClaimResponse","id":"0a9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d","outcome":"complete",
	  "identifier":[{"value":"CLM-001"}],"patient":{"reference":"Patient/77"},"created":"2025-06-30","meta":{"lastUpdated":"2025-06-30T10:00:00.123+05:45"}}`
)

func TestParseNotification(t *testing.T) {
	t.Parallel()
	ts := func(s string) time.Time { return fhir.ParseTime(s) }
	for _, tc := range []struct {
		name                      string
		method, path, contentType string
		body                      string
		want                      fhir.Notification
		resources                 []bool // per event: carries its resource
	}{
		{
			name: "AidboxZenEventsIDOnly", method: "POST", contentType: "application/fhir+json", body: aidboxZenEvents,
			want: fhir.Notification{
				Kind: fhir.KindEvent, Type: "query-event", Status: "active",
				SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "subscription-patient-test-1"},
				Topic:           "http://aidbox.app/SubscriptionTopic/patient-test-1", EventsSinceStart: 19, HasEventsSinceStart: true,
				Events: []fhir.Event{
					{Number: 1, Timestamp: time.Date(2023, 9, 4, 7, 38, 43, 20984000, time.UTC), Focus: fhir.Reference{Type: "Patient", ID: "c868fc6f-0631-43cc-940a-c43177fe6567"}},
					{Number: 2, Timestamp: time.Date(2023, 9, 4, 7, 38, 44, 382835000, time.UTC), Focus: fhir.Reference{Type: "Patient", ID: "fe174a4e-e3ba-4d75-98b6-17fea275dda1"}},
				},
			},
			resources: []bool{false, false},
		},
		{
			name: "AidboxR4BFullResource", method: "POST", contentType: "application/fhir+json; charset=utf-8", body: aidboxR4BEvent,
			want: fhir.Notification{
				Kind: fhir.KindEvent, Type: "event-notification", Status: "active",
				SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "pas-subscription-r4b"},
				Topic:           "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic", EventsSinceStart: 2, HasEventsSinceStart: true,
				Events: []fhir.Event{{Number: 2, Timestamp: ts("2025-01-10T10:00:00Z"), Focus: fhir.Reference{Type: "ClaimResponse", ID: "4e45"}}},
			},
			resources: []bool{true},
		},
		{
			name: "HAPIR4ParametersDoubledFocus", method: "POST", contentType: "application/fhir+json", body: hapiR4Event,
			want: fhir.Notification{
				Kind: fhir.KindEvent, Type: "event-notification", Status: "active",
				SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "7"},
				Topic:           "http://example.org/topic/claim", EventsSinceStart: 5, HasEventsSinceStart: true,
				Events: []fhir.Event{{Number: 5, Timestamp: time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), Focus: fhir.Reference{Type: "ClaimResponse", ID: "1"}}},
			},
			resources: []bool{true},
		},
		{
			// No event numbers: the caller cannot tell which events these
			// are, and searches (trap 19).
			name: "AidboxR4EventsWithoutParts", method: "POST", contentType: "application/fhir+json", body: aidboxR4Events,
			want: fhir.Notification{
				Kind: fhir.KindEvent, Type: "query-event", Status: "active",
				SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "pas-subscription-1"}, EventsSinceStart: 1, HasEventsSinceStart: true,
				Events: []fhir.Event{{Focus: fhir.Reference{Type: "ClaimResponse", ID: "a1b2c3d4"}}},
			},
			resources: []bool{true},
		},
		{
			name: "Handshake", method: "POST", contentType: "application/fhir+json", body: handshakeR4B,
			want: fhir.Notification{
				Kind: fhir.KindHandshake, Type: "handshake", Status: "requested", SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "s1"},
				Topic: "http://example.org/topic/claim", HasEventsSinceStart: true,
			},
		},
		{
			name: "R5HeartbeatWithError", method: "POST", contentType: "application/fhir+json", body: heartbeatR5,
			want: fhir.Notification{
				Kind: fhir.KindHeartbeat, Type: "heartbeat", Status: "error", SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "s5"},
				EventsSinceStart: 12, HasEventsSinceStart: true, Error: "delivery failed",
			},
		},
		{
			name: "R5EmptyContent", method: "POST", contentType: "application/fhir+json", body: emptyContentR5,
			want: fhir.Notification{
				Kind: fhir.KindEvent, Type: "event-notification", Status: "active", SubscriptionRef: fhir.Reference{Type: "Subscription", ID: "s5"},
				EventsSinceStart: 13, HasEventsSinceStart: true, Events: []fhir.Event{{Number: 13}},
			},
			resources: []bool{false},
		},
		{
			name: "OpenIMISBareResource", method: "POST", contentType: "application/json", body: bareClaimResponse,
			want:      fhir.Notification{Kind: fhir.KindResource, Events: []fhir.Event{{Focus: fhir.Reference{Type: "ClaimResponse", ID: "0a9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"}}}},
			resources: []bool{true},
		},
		{
			// HAPI with a payload: PUT <endpoint>/<Type>/<id> (§1.1).
			name: "HAPIPutTypeID", method: "PUT", path: "/ClaimResponse/0a9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d", contentType: "application/fhir+json", body: bareClaimResponse,
			want:      fhir.Notification{Kind: fhir.KindResource, Events: []fhir.Event{{Focus: fhir.Reference{Type: "ClaimResponse", ID: "0a9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"}}}},
			resources: []bool{true},
		},
		{
			// R4 criteria without payload: empty POST, with any or no
			// Content-Type (trap 7).
			name: "EmptyPostFormContentType", method: "POST", contentType: "application/x-www-form-urlencoded", body: "",
			want: fhir.Notification{Kind: fhir.KindPing},
		},
		{
			name: "EmptyPutWithPath", method: "PUT", path: "/ClaimResponse/9", body: " \n",
			want:      fhir.Notification{Kind: fhir.KindPing, Events: []fhir.Event{{Focus: fhir.Reference{Type: "ClaimResponse", ID: "9"}}}},
			resources: []bool{false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := fhir.ParseNotification(tc.method, tc.path, tc.contentType, []byte(tc.body))
			require.NoError(t, err)
			require.Len(t, got.Events, len(tc.resources))
			for i := range got.Events {
				require.Equal(t, tc.resources[i], got.Events[i].Resource != nil, "event %d resource", i)
				if got.Events[i].Resource != nil {
					var head struct{ ResourceType, ID string }
					require.NoError(t, json.Unmarshal(got.Events[i].Resource, &head))
					require.Equal(t, got.Events[i].Focus, fhir.Reference{Type: head.ResourceType, ID: head.ID})
				}
				got.Events[i].Resource = nil
				require.True(t, tc.want.Events[i].Timestamp.Equal(got.Events[i].Timestamp), "event %d timestamp %s", i, got.Events[i].Timestamp)
				got.Events[i].Timestamp = tc.want.Events[i].Timestamp
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseNotification_Refuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, path, contentType, body, want string
	}{
		{"Get", "GET", "", "", "", "POST or PUT"},
		{"XML", "POST", "", "application/fhir+xml", "<Bundle/>", "not supported"},
		{"NotJSON", "POST", "", "application/json", "{", "not a JSON resource"},
		{"NoResourceType", "POST", "", "application/json", `{"id":"1"}`, "no resourceType"},
		{"BundleWithoutStatus", "POST", "", "application/json", `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"ClaimResponse","id":"1"}}]}`, "no SubscriptionStatus"},
		{"UnknownType", "POST", "", "application/json", `{"resourceType":"SubscriptionStatus","type":"surprise"}`, "unknown notification type"},
		{"ResourceWithoutID", "POST", "", "application/json", `{"resourceType":"ClaimResponse"}`, "without a usable id"},
		{"PathMismatch", "PUT", "/ClaimResponse/2", "application/json", `{"resourceType":"ClaimResponse","id":"1"}`, "sent to ClaimResponse/2"},
		{"BadPath", "PUT", "/a/b/c", "", "", "want /<Type>/<id>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := fhir.ParseNotification(tc.method, tc.path, tc.contentType, []byte(tc.body))
			var ne *fhir.NotificationError
			require.ErrorAs(t, err, &ne)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestParseReference(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ClaimResponse/1": "ClaimResponse/1",
		"http://localhost:8765/fhir/ClaimResponse/4e45": "ClaimResponse/4e45",
		"http://localhost:8765/Subscription/pas-sub":    "Subscription/pas-sub",
		"ClaimResponse/ClaimResponse/1":                 "ClaimResponse/1",
		"https://h/fhir/ClaimResponse/1/_history/3":     "ClaimResponse/1",
		"https://h/fhir/Subscription/s1/$status":        "",
		"urn:uuid:0a9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d": "",
		"1":                     "",
		"claimresponse/1":       "",
		"ClaimResponse/../../x": "",
	} {
		got, _ := fhir.ParseReference(in)
		require.Equal(t, want, got.String(), in)
	}
}

func TestParseClaimResponse(t *testing.T) {
	t.Parallel()
	cr, err := fhir.ParseClaimResponse([]byte(bareClaimResponse))
	require.NoError(t, err)
	require.Equal(t, "CLM-001", cr.Identifier[0].Value)
	require.Equal(t, "Patient/77", cr.Patient.Reference)
	require.Equal(t, "2025-06-30", cr.Created)
	require.True(t, cr.LastUpdated().Equal(time.Date(2025, 6, 30, 4, 15, 0, 123e6, time.UTC)))
	_, err = fhir.ParseClaimResponse([]byte(`{"resourceType":"Claim","id":"1"}`))
	require.ErrorContains(t, err, "not a ClaimResponse")
}

func FuzzParseNotification(f *testing.F) {
	for _, body := range []string{aidboxZenEvents, aidboxR4BEvent, hapiR4Event, handshakeR4B, heartbeatR5, emptyContentR5, bareClaimResponse, "", "{}", "null", "[]"} {
		f.Add("POST", "", "application/fhir+json", []byte(body))
	}
	f.Add("PUT", "/ClaimResponse/1", "", []byte(bareClaimResponse))
	f.Fuzz(func(t *testing.T, method, path, contentType string, body []byte) {
		n, err := fhir.ParseNotification(method, path, contentType, body)
		if err != nil {
			return
		}
		for _, ev := range n.Events {
			if ev.Resource != nil && !json.Valid(ev.Resource) {
				t.Fatalf("event resource is not JSON: %q", ev.Resource)
			}
		}
	})
}
