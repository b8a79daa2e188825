package fhirtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

func TestSubscription_HAPI(t *testing.T) {
	t.Parallel()

	t.Run("BareCriteriaRefused", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse", "http://cb.example/x", ""))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "must be in the form")
		require.Empty(t, s.Subscriptions())
	})

	t.Run("CriteriaWithQuestionMarkAcceptedAndActivated", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		for i, status := range []string{"requested", "active"} {
			id := subscribe(t, s, "/fhir/Subscription", subscriptionJSON(status, "ClaimResponse?", "http://cb.example/x", "application/fhir+json"))
			require.Equal(t, []string{"1", "2"}[i], id, "HAPI numbers its ids")
			sub, ok := s.Subscription(id)
			require.True(t, ok)
			require.Equal(t, "active", sub.Status)
		}
	})

	t.Run("StatusOffOrErrorOnCreateRefused", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		for _, status := range []string{"off", "error", ""} {
			resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON(status, "ClaimResponse?", "http://cb.example/x", ""))
			requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "status")
		}
	})

	t.Run("UnknownCriteriaParameterRefused", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?colour=red", "http://cb.example/x", ""))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "unknown search parameter colour")
		resp, b = call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON("requested", "Claim?", "http://cb.example/x", ""))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "does not support")
	})

	t.Run("ChannelChecked", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		for body, text := range map[string]string{
			subscriptionJSON("requested", "ClaimResponse?", "mediator:8080/cb", ""):                                                  "endpoint",
			subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", "application/xml"):                                "payload",
			strings.Replace(subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""), "rest-hook", "websocket", 1): "rest-hook",
			`{"resourceType":"Patient","status":"requested"}`:                                                                        "resourceType",
		} {
			resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", body)
			require.GreaterOrEqual(t, resp.StatusCode, 400, body)
			require.Contains(t, string(b), text)
		}
	})

	t.Run("UpdateAndDelete", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		id := subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""))
		body := strings.Replace(subscriptionJSON("off", "ClaimResponse?", "http://cb.example/x", ""), "{", `{"id":"`+id+`",`, 1)
		resp, b := call(t, s, http.MethodPut, "/fhir/Subscription/"+id, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		sub, _ := s.Subscription(id)
		require.Equal(t, "off", sub.Status)
		require.Equal(t, "2", sub.VersionID)
		resp, b = call(t, s, http.MethodPut, "/fhir/Subscription/other", body)
		requireOutcome(t, resp, b, http.StatusBadRequest, "id")
		resp, b = call(t, s, http.MethodDelete, "/fhir/Subscription/"+id, "")
		requireOutcome(t, resp, b, http.StatusOK, "Successfully deleted")
		resp, _ = call(t, s, http.MethodGet, "/fhir/Subscription/"+id, "")
		require.Equal(t, http.StatusGone, resp.StatusCode)
		resp, _ = call(t, s, http.MethodDelete, "/fhir/Subscription/"+id, "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestSubscription_Kodjin(t *testing.T) {
	t.Parallel()

	t.Run("ActiveOnCreateRefused", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON("active", "ClaimResponse?", "http://cb.example/x", ""))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "status must be requested")
		require.Empty(t, s.Subscriptions())
	})

	t.Run("RequestedActivated", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		// Kodjin takes any search string, a bare type included.
		id := subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse", "http://cb.example/x", "application/fhir+json", "Authorization: Basic bWU6cHc="))
		require.Len(t, id, 36, "Kodjin ids are UUIDs")
		sub, _ := s.Subscription(id)
		require.Equal(t, "active", sub.Status)
		require.Equal(t, []string{"Authorization: Basic bWU6cHc="}, sub.Header)
	})

	t.Run("PayloadOnlyFHIRJSON", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", "application/json"))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "only application/fhir+json")
	})

	t.Run("HeaderWithoutColonRefused", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", "", `{"Authorization":"Basic x"}`))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "header[0] is not in the form Name: value")
		require.NotContains(t, string(b), "Basic x", "a header value may be a secret")
	})

	t.Run("EndMustBeAnInstant", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		body := strings.Replace(subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""), "{", `{"end":"2030-01-01 00:00",`, 1)
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", body)
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "end")
	})

	t.Run("RequestedAgainReactivatesAnOffSubscription", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		id := subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""))
		s.SetStatus(id, "off", "")
		withID := func(status string) string {
			return strings.Replace(subscriptionJSON(status, "ClaimResponse?", "http://cb.example/x", ""), "{", `{"id":"`+id+`",`, 1)
		}
		resp, b := call(t, s, http.MethodPut, "/fhir/Subscription/"+id, withID("active"))
		requireOutcome(t, resp, b, http.StatusUnprocessableEntity, "status must be requested")
		resp, b = call(t, s, http.MethodPut, "/fhir/Subscription/"+id, withID("requested"))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.Equal(t, "active", decode(t, b)["status"])
		resp, _ = call(t, s, http.MethodDelete, "/fhir/Subscription/"+id, "")
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	})
}

func TestSubscription_HeyDonto(t *testing.T) {
	t.Parallel()

	t.Run("StaysRequested", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
		auth := login(t, s)
		id := subscribe(t, s, "/site/1/fhir/subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""), "Authorization", auth)
		sub, _ := s.Subscription(id)
		require.Equal(t, "requested", sub.Status)
		resp, _ := call(t, s, http.MethodPost, "/site/1/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""), "Authorization", auth)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "PascalCase paths do not exist")
	})

	t.Run("ActivateKnob", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, Activate: true})
		auth := login(t, s)
		id := subscribe(t, s, "/site/1/fhir/subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""), "Authorization", auth)
		sub, _ := s.Subscription(id)
		require.Equal(t, "active", sub.Status)
	})

	t.Run("DeleteAnswersStatusText", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
		auth := login(t, s)
		id := subscribe(t, s, "/site/1/fhir/subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/x", ""), "Authorization", auth)
		resp, b := call(t, s, http.MethodDelete, "/site/1/fhir/subscription/"+strings.ToUpper(id), "", "Authorization", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"statusText":"OK","status":200}`, string(b))
		require.Empty(t, s.Subscriptions())
	})
}

func TestAuth_HeyDonto(t *testing.T) {
	t.Parallel()

	t.Run("BearerFromLoginRequired", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
		resp, b := call(t, s, http.MethodGet, "/site/1/fhir/claim-response", "")
		requireOutcome(t, resp, b, http.StatusUnauthorized, "Bearer")
		resp, _ = call(t, s, http.MethodGet, "/site/1/fhir/claim-response", "", "Authorization", "Bearer made-up")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		resp, _ = call(t, s, http.MethodPost, "/auth/login", `{"email":"mediator@example.org","password":"wrong"}`)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		resp, _ = call(t, s, http.MethodPost, "/auth/login", `{"username":"mediator@example.org","password":"password"}`)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "HeyDonto logs in with an email")
		auth := login(t, s)
		resp, _ = call(t, s, http.MethodGet, "/site/1/fhir/claim-response", "", "Authorization", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 1, s.Logins())
	})

	t.Run("ExpireTokens", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
		auth := login(t, s)
		s.ExpireTokens()
		resp, _ := call(t, s, http.MethodGet, "/site/1/fhir/claim-response", "", "Authorization", auth)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		resp, _ = call(t, s, http.MethodGet, "/site/1/fhir/claim-response", "", "Authorization", login(t, s))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("AccessTokenField", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, LoginField: "accessToken"})
		resp, b := call(t, s, http.MethodPost, "/auth/login", `{"email":"mediator@example.org","password":"password"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		v := decode(t, b)
		require.NotContains(t, v, "token")
		resp, _ = call(t, s, http.MethodGet, "/site/1/fhir/claim-response", "", "Authorization", "Bearer "+v["accessToken"].(string))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

func TestAuth_StaticToken(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, Token: "s3cret"})
	resp, _ := call(t, s, http.MethodGet, "/fhir/ClaimResponse", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = call(t, s, http.MethodGet, "/fhir/ClaimResponse", "", "Authorization", "Bearer wrong")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = call(t, s, http.MethodGet, "/fhir/ClaimResponse", "", "Authorization", "Bearer s3cret")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
