package fhir_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

func TestClient_Status(t *testing.T) {
	t.Parallel()
	// Aidbox zen: GET …/$status → Bundle history with a query-status
	// SubscriptionStatus, numeric counter (S001:98-131, §4).
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != basePath+"/Subscription/subscription-patient-test-1/$status" {
			writeJSON(w, 404, `{}`)
			return
		}
		writeJSON(w, 200, `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus",
		  "status":"active","type":"query-status","eventsSinceSubscriptionStart":0,
		  "subscription":{"reference":"http://localhost:8765/fhir/Subscription/subscription-patient-test-1"},
		  "topic":"http://aidbox.app/SubscriptionTopic/patient-test-1"}}]}`)
	})
	c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorAidboxZen})
	st, err := c.Status(context.Background(), "subscription-patient-test-1")
	require.NoError(t, err)
	require.Equal(t, fhir.KindStatus, st.Kind)
	require.Equal(t, "active", st.Status)
	require.True(t, st.HasEventsSinceStart)
	require.Equal(t, fhir.Reference{Type: "Subscription", ID: "subscription-patient-test-1"}, st.SubscriptionRef)
}

func TestClient_Events(t *testing.T) {
	t.Parallel()
	answer := `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus","status":"active",
	  "type":"query-event","eventsSinceSubscriptionStart":"3","notificationEvent":[{"eventNumber":"2","focus":{"reference":"ClaimResponse/b"}},
	  {"eventNumber":"3","focus":{"reference":"ClaimResponse/c"}}]}}]}`
	t.Run("PostParameters", func(t *testing.T) {
		t.Parallel()
		// Aidbox ≥ 2512 and the IG: POST Parameters with string numbers (§4).
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			var p struct {
				ResourceType string
				Parameter    []struct{ Name, ValueString string }
			}
			if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&p) != nil || p.ResourceType != "Parameters" ||
				len(p.Parameter) != 2 || p.Parameter[0].Name != "eventsSinceNumber" || p.Parameter[0].ValueString != "2" ||
				p.Parameter[1].Name != "eventsUntilNumber" || p.Parameter[1].ValueString != "3" {
				writeJSON(w, 400, `{}`)
				return
			}
			writeJSON(w, 200, answer)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorAidbox})
		n, err := c.Events(context.Background(), "s1", 2, 3)
		require.NoError(t, err)
		require.Equal(t, fhir.KindEvent, n.Kind)
		require.Len(t, n.Events, 2)
		require.Equal(t, int64(3), n.Events[1].Number)
		require.Equal(t, basePath+"/Subscription/s1/$events", srv.recorded()[0].Path)
	})
	t.Run("GetAfter405", func(t *testing.T) {
		t.Parallel()
		// Aidbox zen knows only GET $events (S001:137, trap 19): one 405,
		// then GET from then on.
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			if r.URL.Query().Get("eventsSinceNumber") != "2" {
				writeJSON(w, 400, `{}`)
				return
			}
			writeJSON(w, 200, answer)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorAidbox})
		_, err := c.Events(context.Background(), "s1", 2, 0)
		require.NoError(t, err)
		require.Equal(t, http.MethodGet, c.EventsMethod())
		_, err = c.Events(context.Background(), "s1", 2, 0)
		require.NoError(t, err)
		require.Len(t, srv.recorded(), 3, "the second call tried POST again")
	})
	t.Run("AnswerWithoutStatus", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, `{"resourceType":"Bundle","type":"history"}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Events(context.Background(), "s1", 1, 0)
		require.ErrorContains(t, err, "no SubscriptionStatus")
	})
}
