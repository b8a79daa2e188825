package fhirtest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

// transactionResponse is the answer HAPI's transaction client reads.
const transactionResponse = `{"resourceType":"Bundle","type":"transaction-response","entry":[]}`

// hapiTopic starts a HAPI fake in topic mode on a fixed clock and a
// subscriber answering a transaction-response, and creates a topic
// subscription with content.
func hapiTopic(t *testing.T, opts fhirtest.Options, content string) (*fhirtest.Server, *subscriber, string) {
	t.Helper()
	opts.Vendor, opts.TopicMode = fhirtest.HAPI, true
	opts.Clock = fhirtest.NewFixedClock(time.Date(2025, 3, 1, 23, 30, 0, 0, time.UTC))
	s := fhirtest.NewServer(t, opts)
	sub := newSubscriber(t)
	sub.answer(http.StatusOK, transactionResponse)
	id := subscribe(t, s, "/fhir/Subscription", backportJSON("", topicURL, sub.URL+"/cb", content, 1, 60))
	return s, sub, id
}

// r4Status returns the status Parameters of an R4 backport notification
// (HAPI's, or the newer Aidbox's in R4), by parameter name, after checking
// the envelope: a history Bundle whose first entry is the Parameters,
// without request (C§2.1).
func r4Status(t *testing.T, body []byte) map[string]map[string]any {
	t.Helper()
	b := decode(t, body)
	require.Equal(t, "history", b["type"], string(body))
	first := b["entry"].([]any)[0].(map[string]any)
	require.NotContains(t, first, "request", "the status without request (C§2.1)")
	p := first["resource"].(map[string]any)
	require.Equal(t, "Parameters", p["resourceType"])
	out := map[string]map[string]any{}
	for _, v := range p["parameter"].([]any) {
		par := v.(map[string]any)
		out[par["name"].(string)] = par
	}
	return out
}

// eventParts returns the parts of the notification-event parameter by name.
func eventParts(t *testing.T, st map[string]map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, v := range st["notification-event"]["part"].([]any) {
		part := v.(map[string]any)
		out[part["name"].(string)] = part
	}
	return out
}

func TestHAPITopic_Metadata(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, TopicMode: true})
	_, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
	cs := decode(t, b)
	require.Equal(t, "4.0.1", cs["fhirVersion"])
	require.Equal(t, "HAPI FHIR Server", cs["software"].(map[string]any)["name"])
	require.Equal(t, []any{"http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4"}, cs["instantiates"])
	require.Contains(t, string(b), `"supportedProfile":["`+backport+`backport-subscription"]`)
	require.Contains(t, string(b), `"valueCanonical":"`+topicURL+`"`)
	require.NotContains(t, string(b), "backport-subscription-status\"", "no $status advertised")

	plain := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
	_, b = call(t, plain, http.MethodGet, "/fhir/metadata", "")
	require.NotContains(t, string(b), "subscriptions-backport", "criteria-only HAPI has no backport marker")
}

func TestHAPITopic_SubscriptionRules(t *testing.T) {
	t.Parallel()

	t.Run("ActiveAtOnceNoHandshake", func(t *testing.T) {
		t.Parallel()
		s, sub, id := hapiTopic(t, fhirtest.Options{}, "full-resource")
		got, ok := s.Subscription(id)
		require.True(t, ok)
		require.Equal(t, "active", got.Status, "HAPI activates without a handshake (C§3)")
		require.Equal(t, topicURL, got.Criteria)
		s.Flush()
		s.Clock.Advance(10 * time.Minute)
		s.Tick()
		require.Empty(t, sub.received(), "no handshake, no heartbeat")
		require.Empty(t, s.Deliveries())
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, TopicMode: true})
		good := backportJSON("", topicURL, "http://cb.example/x", "full-resource", 1, 20)
		for name, tc := range map[string]struct {
			body, text string
		}{
			"UnknownTopic": {backportJSON("", "http://example.org/SubscriptionTopic/other", "http://cb.example/x", "", 1, 20), "SubscriptionTopic"},
			"NoPayload":    {strings.Replace(good, `"payload":"application/fhir+json",`, "", 1), "channel.payload"},
			"BadContent":   {backportJSON("", topicURL, "http://cb.example/x", "everything", 1, 20), "content"},
			"StatusOff":    {strings.Replace(good, `"status":"active"`, `"status":"off"`, 1), "requested or active"},
			// Without the profile the topic canonical is a criteria (C-trap 5).
			"NoProfile": {strings.Replace(good, `"profile"`, `"tag"`, 1), "must be in the form"},
		} {
			resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", tc.body)
			requireOutcome(t, resp, b, http.StatusUnprocessableEntity, tc.text)
			require.Empty(t, s.Subscriptions(), name)
		}
		// A criteria subscription is still one (C§1.1).
		subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""))
	})

	t.Run("NotWithoutTopicMode", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", backportJSON("", topicURL, "http://cb.example/x", "full-resource", 1, 20))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "must be in the form")
	})

	t.Run("UpdateKeepsTheCounter", func(t *testing.T) {
		t.Parallel()
		s, sub, id := hapiTopic(t, fhirtest.Options{}, "full-resource")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		body := strings.Replace(backportJSON(id, topicURL, sub.URL+"/cb", "id-only", 1, 60), `"active"`, `"requested"`, 1)
		resp, b := call(t, s, http.MethodPut, "/fhir/Subscription/"+id, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.Equal(t, "active", decode(t, b)["status"])
		s.CreateClaimResponse(claimJSON("c2", "complete"))
		got := sub.received()
		require.Len(t, got, 2)
		st := r4Status(t, got[1].Body)
		require.Equal(t, "2", st["events-since-subscription-start"]["valueString"])
		entry := decode(t, got[1].Body)["entry"].([]any)[1].(map[string]any)
		require.NotContains(t, entry, "resource", "the update's id-only content applies")
	})
}

func TestHAPITopic_Notifications(t *testing.T) {
	t.Parallel()

	t.Run("R4ParametersPostedAsTransaction", func(t *testing.T) {
		t.Parallel()
		s, sub, id := hapiTopic(t, fhirtest.Options{}, "full-resource")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		s.UpdateClaimResponse("c1", claimJSON("c1", "error"))
		got := sub.received()
		require.Len(t, got, 2)
		for i, r := range got {
			require.Equal(t, http.MethodPost, r.Method, "a transaction is POSTed to the endpoint itself")
			require.Equal(t, "/cb", r.Path)
			require.Equal(t, "application/fhir+json; charset=UTF-8", r.ContentType)
			require.Equal(t, "Basic bWU6cHc=", r.Authorization)
			st := r4Status(t, r.Body)
			p := decode(t, r.Body)["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
			require.Equal(t, []any{backport + "backport-subscription-status-r4"}, p["meta"].(map[string]any)["profile"])
			n := []string{"1", "2"}[i]
			require.Equal(t, "Subscription/"+id, st["subscription"]["valueReference"].(map[string]any)["reference"])
			require.Equal(t, topicURL, st["topic"]["valueCanonical"])
			require.Equal(t, "active", st["status"]["valueCode"])
			require.Equal(t, "event-notification", st["type"]["valueCode"])
			require.Equal(t, n, st["events-since-subscription-start"]["valueString"], "counters are valueString (C§2.1)")
			parts := eventParts(t, st)
			require.Equal(t, n, parts["event-number"]["valueString"])
			require.Equal(t, "2025-03-01", parts["timestamp"]["valueDate"], "a date, not an instant (C-trap 14)")
			require.Equal(t, "ClaimResponse/c1", parts["focus"]["valueReference"].(map[string]any)["reference"])
		}
		create := decode(t, got[0].Body)["entry"].([]any)[1].(map[string]any)
		require.Equal(t, map[string]any{"method": "POST", "url": "ClaimResponse"}, create["request"])
		require.Equal(t, "ClaimResponse/c1/_history/1", create["fullUrl"])
		require.Equal(t, "complete", create["resource"].(map[string]any)["outcome"])
		update := decode(t, got[1].Body)["entry"].([]any)[1].(map[string]any)
		require.Equal(t, map[string]any{"method": "PUT", "url": "ClaimResponse/c1"}, update["request"])
		require.Equal(t, "error", update["resource"].(map[string]any)["outcome"])
		d := s.Deliveries()
		require.Len(t, d, 2)
		require.Equal(t, "event-notification", d[0].Type)
		require.Equal(t, "ClaimResponse/c1", d[0].Resource)
		require.True(t, d[0].Success)
	})

	t.Run("ContentLevels", func(t *testing.T) {
		t.Parallel()
		for content, entries := range map[string]int{"empty": 1, "id-only": 2} {
			s, sub, _ := hapiTopic(t, fhirtest.Options{}, content)
			s.CreateClaimResponse(claimJSON("c1", "complete"))
			got := sub.received()
			require.Len(t, got, 1, content)
			all := decode(t, got[0].Body)["entry"].([]any)
			require.Len(t, all, entries, content)
			parts := eventParts(t, r4Status(t, got[0].Body))
			if content == "empty" {
				require.NotContains(t, parts, "focus", "empty content names no focus (C§2.2)")
				continue
			}
			require.Contains(t, parts, "focus")
			require.NotContains(t, all[1], "resource", "id-only")
			require.Equal(t, "ClaimResponse/c1/_history/1", all[1].(map[string]any)["fullUrl"])
		}
	})

	t.Run("DoubledFocus", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := hapiTopic(t, fhirtest.Options{DoubledFocus: true}, "id-only")
		s.CreateClaimResponse(claimJSON("c9", "complete"))
		parts := eventParts(t, r4Status(t, sub.received()[0].Body))
		require.Equal(t, "ClaimResponse/ClaimResponse/c9", parts["focus"]["valueReference"].(map[string]any)["reference"], "old HAPI (C-trap 13)")
	})

	t.Run("FiltersAndNeverFire", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, TopicMode: true})
		sub := newSubscriber(t)
		subscribe(t, s, "/fhir/Subscription", backportJSON("", topicURL, sub.URL, "id-only", 1, 20, "ClaimResponse?outcome=complete"))
		s.CreateClaimResponse(claimJSON("c1", "error"))
		s.CreateClaimResponse(claimJSON("c2", "complete"))
		got := sub.received()
		require.Len(t, got, 1, "the filter leaves c1 out")
		require.Equal(t, "1", r4Status(t, got[0].Body)["events-since-subscription-start"]["valueString"], "HAPI counts what matched")

		silent := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, TopicMode: true, NeverFire: true})
		id := subscribe(t, silent, "/fhir/Subscription", backportJSON("", topicURL, sub.URL, "id-only", 1, 20))
		silent.CreateClaimResponse(claimJSON("c3", "complete"))
		got3, _ := silent.Subscription(id)
		require.Equal(t, "active", got3.Status)
		require.Empty(t, silent.Deliveries(), "accepted, active, never fires (C-trap 25)")
	})
}

// HAPI sends a topic notification as a transaction and reads the answer as
// its Bundle (C§6.4, C-trap 8): anything else fails, is retried for the
// retry window, then dropped; the subscription stays active.
func TestHAPITopic_AnswerRule(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		status int
		body   string
		ok     bool
	}{
		"TransactionResponse": {http.StatusOK, transactionResponse, true},
		"EmptyJSON":           {http.StatusOK, `{}`, false},
		"OperationOutcome":    {http.StatusOK, `{"resourceType":"OperationOutcome","issue":[]}`, false},
		"Empty":               {http.StatusOK, ``, false},
		"Text":                {http.StatusOK, `ok`, false},
		"BundleWith500":       {http.StatusInternalServerError, transactionResponse, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, sub, id := hapiTopic(t, fhirtest.Options{}, "id-only")
			sub.answer(tc.status, tc.body)
			s.CreateClaimResponse(claimJSON("c1", "complete"))
			d := s.Deliveries()
			require.Len(t, d, 1)
			require.Equal(t, tc.ok, d[0].Success)
			if tc.ok {
				require.Zero(t, s.PendingRetries())
				return
			}
			for range 6 {
				s.Clock.Advance(10 * time.Second)
				s.Tick()
			}
			require.Len(t, s.Deliveries(), 7, "retried every 10 s for a minute")
			require.Equal(t, sub.received()[0].Body, sub.received()[6].Body, "the same Bundle, the same event number")
			require.Equal(t, 1, s.Dropped())
			got, _ := s.Subscription(id)
			require.Equal(t, "active", got.Status, "HAPI does not change the status")
		})
	}
}

// HAPI's counter lives in memory (C§0.4, C-trap 10): after a restart the
// next event is number 1 again.
func TestHAPITopic_RestartResetsTheCounter(t *testing.T) {
	t.Parallel()
	s, sub, id := hapiTopic(t, fhirtest.Options{}, "full-resource")
	s.CreateClaimResponse(claimJSON("c1", "complete"))
	s.CreateClaimResponse(claimJSON("c2", "complete"))
	s.Restart()
	s.CreateClaimResponse(claimJSON("c3", "complete"))
	var counters []any
	for _, r := range sub.received() {
		counters = append(counters, r4Status(t, r.Body)["events-since-subscription-start"]["valueString"])
	}
	require.Equal(t, []any{"1", "2", "1"}, counters)
	got, ok := s.Subscription(id)
	require.True(t, ok, "the subscription is stored, not in memory")
	require.Equal(t, "active", got.Status)
	require.Len(t, s.ClaimResponses(), 3)

	// Faults shared with Aidbox: a dropped event is counted, not sent.
	s.DropEvents(id, 1)
	s.CreateClaimResponse(claimJSON("c4", "complete"))
	s.CreateClaimResponse(claimJSON("c5", "complete"))
	last := sub.received()[len(sub.received())-1]
	require.Len(t, sub.received(), 4)
	require.Equal(t, "3", r4Status(t, last.Body)["events-since-subscription-start"]["valueString"])
}
