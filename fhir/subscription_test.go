package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

var end = time.Date(2025, 8, 9, 10, 0, 0, 0, time.UTC)

func spec(d fhir.Dialect) fhir.SubscriptionSpec {
	return fhir.SubscriptionSpec{
		Dialect: d, Endpoint: "https://mediator.example.org/mediator/fhir/aidbox", Reason: "cht-openimis-mediator aidbox", End: end,
		Headers:  []fhir.Header{{Name: "Authorization", Value: "Basic bWVkOnB3"}},
		Criteria: "ClaimResponse?", Payload: "application/fhir+json",
		Topic: "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic", Filters: []string{"orgIdentifier=Organization/org-1"},
		Content: fhir.ContentFullResource, Heartbeat: 5 * time.Minute, Timeout: 30 * time.Second, MaxCount: 1,
	}
}

func TestSubscriptionSpec_Build(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		d    fhir.Dialect
		want string
	}{
		// R4 criteria (§1.1): requested, a search string, "Name: value" headers.
		{"R4Criteria", fhir.DialectR4Criteria, `{"resourceType":"Subscription","status":"requested","reason":"cht-openimis-mediator aidbox",
		  "end":"2025-08-09T10:00:00Z","criteria":"ClaimResponse?","channel":{"type":"rest-hook",
		  "endpoint":"https://mediator.example.org/mediator/fhir/aidbox","payload":"application/fhir+json","header":["Authorization: Basic bWVkOnB3"]}}`},
		// R4B backport as Aidbox wants it (S001:14 and its example, §1.2, trap 3).
		{"R4BBackport", fhir.DialectR4BBackport, `{"resourceType":"Subscription",
		  "meta":{"profile":["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
		  "status":"requested","reason":"cht-openimis-mediator aidbox","end":"2025-08-09T10:00:00Z",
		  "criteria":"http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic",
		  "_criteria":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria","valueString":"orgIdentifier=Organization/org-1"}]},
		  "channel":{"type":"rest-hook","endpoint":"https://mediator.example.org/mediator/fhir/aidbox","payload":"application/fhir+json",
		    "_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"full-resource"}]},
		    "header":["Authorization: Basic bWVkOnB3"],
		    "extension":[
		      {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period","valueUnsignedInt":300},
		      {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout","valueUnsignedInt":30},
		      {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count","valuePositiveInt":1}]}}`},
		// R5 native fields (§1.3).
		{"R5", fhir.DialectR5, `{"resourceType":"Subscription","status":"requested","reason":"cht-openimis-mediator aidbox","end":"2025-08-09T10:00:00Z",
		  "topic":"http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic",
		  "filterBy":[{"filterParameter":"orgIdentifier","value":"Organization/org-1"}],
		  "channelType":{"system":"http://terminology.hl7.org/CodeSystem/subscription-channel-type","code":"rest-hook"},
		  "endpoint":"https://mediator.example.org/mediator/fhir/aidbox","parameter":[{"name":"Authorization","value":"Basic bWVkOnB3"}],
		  "heartbeatPeriod":300,"timeout":30,"contentType":"application/fhir+json","content":"full-resource","maxCount":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub, err := spec(tc.d).Build()
			require.NoError(t, err)
			got, err := json.Marshal(sub)
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got))
			// What was asked reads back through Settings (trap 16).
			st := sub.Settings()
			require.Equal(t, "https://mediator.example.org/mediator/fhir/aidbox", st.Endpoint)
			require.Equal(t, []fhir.Header{{Name: "Authorization", Value: "Basic bWVkOnB3"}}, st.Headers)
			if tc.d.Topic() {
				require.Equal(t, fhir.ContentFullResource, st.Content)
				require.Equal(t, 5*time.Minute, st.Heartbeat)
				require.Equal(t, 1, st.MaxCount)
				require.Equal(t, []string{"orgIdentifier=Organization/org-1"}, st.Filters)
			}
		})
	}
	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		s := spec(fhir.DialectR4BBackport)
		s.Endpoint, s.Content, s.Headers = "mediator:8080/cb", "everything", []fhir.Header{{Name: "X: y", Value: "v"}}
		_, err := s.Build()
		require.ErrorContains(t, err, "absolute")
		require.ErrorContains(t, err, "content")
		require.ErrorContains(t, err, "header")
	})
}

func TestSubscription_R5Filters(t *testing.T) {
	t.Parallel()
	// R5 filterBy needs filterParameter and value (§1.3); the backport
	// form's "Type?" and several "&"-joined criteria are read into one
	// entry each.
	s := spec(fhir.DialectR5)
	s.Filters = []string{"ClaimResponse?outcome=complete&patient:missing=false", "insurer=Organization%2Forg-1"}
	sub, err := s.Build()
	require.NoError(t, err)
	require.Equal(t, []fhir.FilterBy{
		{FilterParameter: "outcome", Value: "complete"},
		{FilterParameter: "patient", Modifier: "missing", Value: "false"},
		{FilterParameter: "insurer", Value: "Organization/org-1"},
	}, sub.FilterBy)
	require.Equal(t, []string{"outcome=complete", "patient:missing=false", "insurer=Organization/org-1"}, sub.Settings().Filters)
	for _, bad := range []string{"complete", "outcome=", "=complete", "outcome=complete&", "outcome=%zz"} {
		s.Filters = []string{bad}
		_, err := s.Build()
		require.ErrorContains(t, err, "R5 needs param=value", bad)
	}
	s.Dialect = fhir.DialectR4BBackport
	_, err = s.Build()
	require.NoError(t, err, "backport filters are sent as given")
}

func TestSubscription_SettingsOfAidboxAnswer(t *testing.T) {
	t.Parallel()
	// Seed 001's stored answer to a request of maxCount 2 and heartbeat 60
	// (S001:60-91): the read-back is what counts (trap 16).
	var sub fhir.Subscription
	require.NoError(t, json.Unmarshal([]byte(`{"meta":{"profile":["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"],
	  "lastUpdated":"2023-09-06T07:03:26.763869Z","versionId":"735"},"criteria":"http://aidbox.app/SubscriptionTopic/patient-test-1",
	  "channel":{"type":"rest-hook","payload":"application/fhir+json","extension":[
	    {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout","valueUnsignedInt":1},
	    {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count","valuePositiveInt":4},
	    {"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period","valueUnsignedInt":120}],
	  "_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"id-only"}]},
	  "endpoint":"http://localhost:27193/patient-test-1"},"resourceType":"Subscription","status":"requested","id":"subscription-patient-test-1"}`), &sub))
	st := sub.Settings()
	require.Equal(t, "http://aidbox.app/SubscriptionTopic/patient-test-1", st.Topic)
	require.Empty(t, st.Criteria)
	require.Equal(t, fhir.ContentIDOnly, st.Content)
	require.Equal(t, 4, st.MaxCount)
	require.Equal(t, 2*time.Minute, st.Heartbeat)
	require.Equal(t, time.Second, st.Timeout)
}

func TestClient_Subscriptions(t *testing.T) {
	t.Parallel()
	t.Run("CreateReturnsStored", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			var sub map[string]any
			if r.Method != http.MethodPost || r.URL.Path != basePath+"/Subscription" || json.NewDecoder(r.Body).Decode(&sub) != nil || sub["status"] != "requested" {
				writeJSON(w, 422, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad"}]}`)
				return
			}
			sub["id"], sub["status"] = "s1", "active" // Kodjin activates by itself (S004:44)
			out, _ := json.Marshal(sub)
			writeJSON(w, 201, string(out))
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorKodjin})
		sub, err := spec(fhir.DialectR4Criteria).Build()
		require.NoError(t, err)
		got, err := c.CreateSubscription(context.Background(), sub)
		require.NoError(t, err)
		require.Equal(t, "s1", got.ID)
		require.Equal(t, "active", got.Status)
		require.Equal(t, "application/fhir+json", srv.recorded()[0].ContentType)
	})
	t.Run("HeyDontoDelete", func(t *testing.T) {
		t.Parallel()
		// 200 {"statusText":"OK","status":200} (S003:1197-1203, trap 23).
		status := 200
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodDelete || r.URL.Path != basePath+"/subscription/s1" {
				writeJSON(w, 404, `{}`)
				return
			}
			writeJSON(w, 200, fmt.Sprintf(`{"statusText":%q,"status":%d}`, http.StatusText(status), status))
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorHeyDonto})
		require.NoError(t, c.DeleteSubscription(context.Background(), "s1"))
		require.NoError(t, c.DeleteSubscription(context.Background(), "gone"), "a 404 is gone, not a failure")
		status = 500
		err := c.DeleteSubscription(context.Background(), "s1")
		require.True(t, fhir.HasStatus(err, 500), "%v", err)
	})
	t.Run("FindPagesThroughHeyDontoLinks", func(t *testing.T) {
		t.Parallel()
		// 250 subscriptions of others, ours on the last page, next links
		// without /site/<id> (§6.3, trap 21).
		const total = 250
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != basePath+"/subscription" {
				writeJSON(w, 404, `{}`)
				return
			}
			start := 0
			fmt.Sscanf(r.URL.Query().Get("_page_token"), "p%d", &start)
			var entries []string
			for i := start; i < min(start+100, total); i++ {
				endpoint := fmt.Sprintf("https://other.example.org/hook/%d", i)
				if i == total-1 {
					endpoint = "https://mediator.example.org/mediator/fhir/heydonto/"
				}
				entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Subscription","id":"s%d","status":"requested","criteria":"ClaimResponse?","channel":{"type":"rest-hook","endpoint":%q}}}`, i, endpoint))
			}
			links := "[]"
			if start+100 < total {
				links = fmt.Sprintf(`[{"relation":"next","url":"https://api.heydonto.com/fhir/subscription/?_count=100&_page_token=p%d"}]`, start+100)
			}
			writeJSON(w, 200, fmt.Sprintf(`{"resourceType":"Bundle","type":"searchset","link":%s,"entry":[%s]}`, links, strings.Join(entries, ",")))
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorHeyDonto})
		found, err := c.FindSubscriptions(context.Background(), "https://mediator.example.org/mediator/fhir/heydonto")
		require.NoError(t, err)
		require.Len(t, found, 1)
		require.Equal(t, "s249", found[0].ID)
		require.Len(t, srv.recorded(), 3)
	})
}
