package fhirtest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

func TestDelivery_HAPI(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T, opts fhirtest.Options, payload string) (*fhirtest.Server, *subscriber, string) {
		t.Helper()
		opts.Vendor = fhirtest.HAPI
		opts.Clock = fhirtest.NewFixedClock(time.Now())
		s := fhirtest.NewServer(t, opts)
		sub := newSubscriber(t)
		id := subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", sub.URL+"/mediator/fhir/hapi", payload, "Authorization: Basic bWU6cHc="))
		return s, sub, id
	}

	t.Run("PayloadIsPutToTypeAndID", func(t *testing.T) {
		t.Parallel()
		s, sub, id := setup(t, fhirtest.Options{}, "application/fhir+json")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		got := sub.received()
		require.Len(t, got, 1)
		require.Equal(t, http.MethodPut, got[0].Method)
		require.Equal(t, "/mediator/fhir/hapi/ClaimResponse/c1", got[0].Path)
		require.Equal(t, "application/fhir+json; charset=UTF-8", got[0].ContentType)
		require.Equal(t, "Basic bWU6cHc=", got[0].Authorization)
		require.Equal(t, "c1", decode(t, got[0].Body)["id"])
		d := s.Deliveries()
		require.Len(t, d, 1)
		require.Equal(t, id, d[0].SubscriptionID)
		require.Equal(t, "ClaimResponse/c1", d[0].Resource)
		require.Equal(t, http.StatusOK, d[0].Status)
		require.True(t, d[0].Success)
	})

	t.Run("NoPayloadIsAnEmptyPost", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := setup(t, fhirtest.Options{}, "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		got := sub.received()
		require.Len(t, got, 1)
		require.Equal(t, http.MethodPost, got[0].Method)
		require.Equal(t, "/mediator/fhir/hapi", got[0].Path)
		require.Empty(t, got[0].Body)
		require.Empty(t, got[0].ContentType)

		s2, sub2, _ := setup(t, fhirtest.Options{EmptyPostContentType: "application/x-www-form-urlencoded"}, "")
		s2.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Equal(t, "application/x-www-form-urlencoded", sub2.received()[0].ContentType)
	})

	t.Run("NonFHIRAnswerFailsAndIsRetriedThenDropped", func(t *testing.T) {
		t.Parallel()
		s, sub, id := setup(t, fhirtest.Options{RetryInterval: 20 * time.Second, RetryWindow: time.Minute}, "application/fhir+json")
		sub.answer(http.StatusOK, `{}`)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.False(t, s.Deliveries()[0].Success, "HAPI parses the answer as FHIR")
		require.Equal(t, 1, s.PendingRetries())
		s.Tick()
		require.Len(t, s.Deliveries(), 1, "the retry is not due yet")
		for range 3 {
			s.Clock.Advance(20 * time.Second)
			s.Tick()
		}
		require.Len(t, s.Deliveries(), 4)
		require.Equal(t, 0, s.PendingRetries())
		require.Equal(t, 1, s.Dropped())
		got, _ := s.Subscription(id)
		require.Equal(t, "active", got.Status, "HAPI does not change the status")
	})

	t.Run("TextAnswerFailsFHIRAnswerSucceeds", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := setup(t, fhirtest.Options{}, "application/fhir+json")
		sub.answer(http.StatusOK, `OK`)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		sub.answer(http.StatusOK, `{"resourceType":"Bundle","type":"transaction-response"}`)
		s.Clock.Advance(10 * time.Second)
		s.Tick()
		d := s.Deliveries()
		require.Len(t, d, 2)
		require.False(t, d[0].Success)
		require.True(t, d[1].Success)
		require.Equal(t, 2, d[1].Attempt)
		require.Equal(t, 0, s.PendingRetries())
	})

	t.Run("ServerErrorAndNoAnswerFail", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := setup(t, fhirtest.Options{}, "application/fhir+json")
		sub.answer(http.StatusServiceUnavailable, `{"resourceType":"OperationOutcome"}`)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.False(t, s.Deliveries()[0].Success)

		gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		gone.Close()
		s2 := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		subscribe(t, s2, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", gone.URL, ""))
		s2.CreateClaimResponse(claimJSON("c1", "complete"))
		d := s2.Deliveries()
		require.Len(t, d, 1)
		require.Zero(t, d[0].Status)
		require.NotEmpty(t, d[0].Err)
		require.False(t, d[0].Success)
	})

	t.Run("CriteriaFilter", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		sub := newSubscriber(t)
		subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?outcome=complete", sub.URL, ""))
		s.CreateClaimResponse(claimJSON("q", "queued"))
		require.Empty(t, sub.received())
		s.UpdateClaimResponse("q", claimJSON("q", "complete"))
		require.Len(t, sub.received(), 1)
		s.AddPatient([]byte(`{"resourceType":"Patient","id":"p1"}`))
		require.Len(t, sub.received(), 1, "a Patient does not match ClaimResponse criteria")
	})

	t.Run("NeverFire", func(t *testing.T) {
		t.Parallel()
		s, sub, id := setup(t, fhirtest.Options{NeverFire: true}, "application/fhir+json")
		got, _ := s.Subscription(id)
		require.Equal(t, "active", got.Status)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Empty(t, sub.received())
		require.Empty(t, s.Deliveries())
	})

	t.Run("OffIsNotNotified", func(t *testing.T) {
		t.Parallel()
		s, sub, id := setup(t, fhirtest.Options{}, "")
		s.SetStatus(id, "off", "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Empty(t, sub.received())
	})
}

func TestDelivery_Kodjin(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T, opts fhirtest.Options, payload string) (*fhirtest.Server, *subscriber, string) {
		t.Helper()
		opts.Vendor = fhirtest.Kodjin
		opts.Clock = fhirtest.NewFixedClock(time.Now())
		s := fhirtest.NewServer(t, opts)
		sub := newSubscriber(t)
		id := subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", sub.URL+"/cb", payload))
		return s, sub, id
	}

	t.Run("PutToTypeAndIDOrToEndpoint", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := setup(t, fhirtest.Options{}, "application/fhir+json")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Equal(t, "/cb/ClaimResponse/c1", sub.received()[0].Path)
		require.Equal(t, http.MethodPut, sub.received()[0].Method)

		s2, sub2, _ := setup(t, fhirtest.Options{PutToEndpoint: true}, "application/fhir+json")
		s2.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Equal(t, "/cb", sub2.received()[0].Path)
		require.Equal(t, http.MethodPut, sub2.received()[0].Method)
		require.Equal(t, "c1", decode(t, sub2.received()[0].Body)["id"])
	})

	t.Run("NoPayloadIsAnEmptyPost", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := setup(t, fhirtest.Options{}, "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Equal(t, http.MethodPost, sub.received()[0].Method)
		require.Empty(t, sub.received()[0].Body)
	})

	t.Run("ErrorRetriesThenActive", func(t *testing.T) {
		t.Parallel()
		s, sub, id := setup(t, fhirtest.Options{}, "application/fhir+json")
		sub.answer(http.StatusServiceUnavailable, "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		got, _ := s.Subscription(id)
		require.Equal(t, "error", got.Status)
		require.Equal(t, "delivery failed: HTTP 503", got.Error)
		sub.answer(http.StatusOK, "")
		s.Clock.Advance(10 * time.Second)
		s.Tick()
		got, _ = s.Subscription(id)
		require.Equal(t, "active", got.Status)
		require.Empty(t, got.Error)
		require.Len(t, sub.received(), 2)
	})

	t.Run("ExhaustedRetriesTurnItOff", func(t *testing.T) {
		t.Parallel()
		s, sub, id := setup(t, fhirtest.Options{Retries: 2}, "application/fhir+json")
		sub.answer(http.StatusUnauthorized, "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		for range 4 {
			s.Clock.Advance(10 * time.Second)
			s.Tick()
		}
		require.Len(t, sub.received(), 3, "one try and two retries")
		got, _ := s.Subscription(id)
		require.Equal(t, "off", got.Status)
		require.Equal(t, 0, s.PendingRetries())
		s.CreateClaimResponse(claimJSON("c2", "complete"))
		require.Len(t, sub.received(), 3, "an off subscription is not notified")
	})

	t.Run("RetriesNewestFirst", func(t *testing.T) {
		t.Parallel()
		s, sub, _ := setup(t, fhirtest.Options{}, "application/fhir+json")
		sub.answer(http.StatusBadGateway, "")
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		s.UpdateClaimResponse("c1", claimJSON("c1", "complete"))
		sub.answer(http.StatusOK, "")
		s.Clock.Advance(10 * time.Second)
		s.Tick()
		got := sub.received()
		require.Len(t, got, 4)
		version := func(r received) any { return decode(t, r.Body)["meta"].(map[string]any)["versionId"] }
		require.Equal(t, "2", version(got[2]), "the newer version is re-sent first")
		require.Equal(t, "1", version(got[3]))
	})

	t.Run("EndTurnsItOff", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, Clock: fhirtest.NewFixedClock(time.Now())})
		sub := newSubscriber(t)
		end := s.Clock.Now().Add(time.Hour).Format(time.RFC3339)
		body := `{"resourceType":"Subscription","status":"requested","criteria":"ClaimResponse?","end":"` + end +
			`","channel":{"type":"rest-hook","endpoint":"` + sub.URL + `"}}`
		id := subscribe(t, s, "/fhir/Subscription", body)
		s.Tick()
		got, _ := s.Subscription(id)
		require.Equal(t, "active", got.Status)
		s.Clock.Advance(time.Hour)
		s.Tick()
		got, _ = s.Subscription(id)
		require.Equal(t, "off", got.Status)
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Empty(t, sub.received())
	})
}

func TestDelivery_HeyDonto(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		notify       fhirtest.Notify
		method, path string
		withBody     bool
	}{
		{fhirtest.NotifyPutResource, http.MethodPut, "/cb/ClaimResponse/c1", true},
		{fhirtest.NotifyPostResource, http.MethodPost, "/cb", true},
		{fhirtest.NotifyPostEmpty, http.MethodPost, "/cb", false},
	} {
		t.Run(string(tc.notify), func(t *testing.T) {
			t.Parallel()
			s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, Notify: tc.notify})
			sub := newSubscriber(t)
			subscribe(t, s, "/site/1/fhir/subscription", subscriptionJSON("requested", "ClaimResponse?", sub.URL+"/cb", "application/fhir+json"), "Authorization", login(t, s))
			s.CreateClaimResponse(claimJSON("c1", "complete"))
			got := sub.received()
			require.Len(t, got, 1, "a requested subscription is notified")
			require.Equal(t, tc.method, got[0].Method)
			require.Equal(t, tc.path, got[0].Path)
			require.Equal(t, tc.withBody, len(got[0].Body) > 0)
		})
	}

	t.Run("NoneByDefaultAndNoRetries", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
		sub := newSubscriber(t)
		subscribe(t, s, "/site/1/fhir/subscription", subscriptionJSON("requested", "ClaimResponse?", sub.URL, ""), "Authorization", login(t, s))
		s.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Empty(t, sub.received())

		s2 := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, Notify: fhirtest.NotifyPostEmpty})
		subscribe(t, s2, "/site/1/fhir/subscription", subscriptionJSON("requested", "ClaimResponse?", sub.URL, ""), "Authorization", login(t, s2))
		sub.answer(http.StatusInternalServerError, "")
		s2.CreateClaimResponse(claimJSON("c1", "complete"))
		require.Equal(t, 0, s2.PendingRetries())
		require.False(t, s2.Deliveries()[0].Success)
	})
}
