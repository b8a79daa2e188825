package fhirtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

func TestServer_Metadata(t *testing.T) {
	t.Parallel()

	t.Run("SoftwareNamesTheVendor", func(t *testing.T) {
		t.Parallel()
		for vendor, name := range map[fhirtest.Vendor]string{fhirtest.HAPI: "HAPI FHIR Server", fhirtest.Kodjin: "Kodjin FHIR Server"} {
			s := fhirtest.NewServer(t, fhirtest.Options{Vendor: vendor})
			resp, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "application/fhir+json;charset=utf-8", resp.Header.Get("Content-Type"))
			cs := decode(t, b)
			require.Equal(t, "CapabilityStatement", cs["resourceType"])
			require.Equal(t, "4.0.1", cs["fhirVersion"])
			require.Equal(t, name, cs["software"].(map[string]any)["name"])
			require.NotContains(t, string(b), "subscriptions-backport", "criteria servers carry no backport marker")
		}
	})

	t.Run("HeyDontoUnderItsSite", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, BasePath: "/site/42/fhir"})
		auth := login(t, s)
		resp, b := call(t, s, http.MethodGet, "/site/42/fhir/metadata", "", "Authorization", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.Equal(t, "CapabilityStatement", decode(t, b)["resourceType"])
		require.Equal(t, s.URL+"/site/42/fhir", s.BaseURL)
	})

	t.Run("NotFoundKnob", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, MetadataNotFound: true})
		resp, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
		requireOutcome(t, resp, b, http.StatusNotFound, "unknown path")
	})
}

func TestServer_Paths(t *testing.T) {
	t.Parallel()

	t.Run("BasePathRequired", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		resp, b := call(t, s, http.MethodGet, "/ClaimResponse", "")
		requireOutcome(t, resp, b, http.StatusNotFound, "unknown path")
		resp, _ = call(t, s, http.MethodGet, "/fhir/ClaimResponse", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("UnknownTypeAndTrailingSlash", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
		for _, p := range []string{"/fhir/Claim", "/fhir/claimresponse", "/fhir/ClaimResponse/", "/fhir/ClaimResponse/1/x/y"} {
			resp, b := call(t, s, http.MethodGet, p, "")
			requireOutcome(t, resp, b, http.StatusNotFound, "unknown path")
		}
	})

	t.Run("HeyDontoKebabPaths", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
		auth := login(t, s)
		s.CreateClaimResponse(claimJSON("Abc-1", "complete"))
		resp, b := call(t, s, http.MethodGet, "/site/1/fhir/ClaimResponse/Abc-1", "", "Authorization", auth)
		requireOutcome(t, resp, b, http.StatusNotFound, "unknown path")
		resp, b = call(t, s, http.MethodGet, "/site/1/fhir/claim-response/abc-1", "", "Authorization", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		require.Equal(t, "Abc-1", decode(t, b)["id"], "ids are case-insensitive and kept as created")
		_, b = call(t, s, http.MethodGet, "/site/1/fhir/claim-response?_id=ABC-1", "", "Authorization", auth)
		require.Contains(t, string(b), `"id":"Abc-1"`, "ids are case-insensitive in searches too")
		resp, _ = call(t, s, http.MethodGet, "/site/1/fhir/claim-response/ABC-1/history", "", "Authorization", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, _ = call(t, s, http.MethodGet, "/site/1/fhir/claim-response/ABC-1/_history", "", "Authorization", auth)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("ContentTypes", func(t *testing.T) {
		t.Parallel()
		sub := newSubscriber(t)
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		body := subscriptionJSON("requested", "ClaimResponse?", sub.URL, "")
		resp, b := call(t, s, http.MethodPost, "/fhir/Subscription", body, "Content-Type", "text/plain")
		requireOutcome(t, resp, b, http.StatusUnsupportedMediaType, "Content-Type")
		resp, b = call(t, s, http.MethodPost, "/fhir/Subscription", body, "Content-Type", "application/json; charset=utf-8")
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
		resp, b = call(t, s, http.MethodPost, "/fhir/Subscription", `{"resourceType":`, "Content-Type", "application/fhir+json")
		requireOutcome(t, resp, b, http.StatusBadRequest, "invalid Subscription JSON")
	})

	t.Run("WritesOtherThanSubscriptionNotModelled", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		resp, b := call(t, s, http.MethodPost, "/fhir/ClaimResponse", string(claimJSON("1", "complete")))
		requireOutcome(t, resp, b, http.StatusMethodNotAllowed, "not supported")
	})

	t.Run("ReadAndHistory", func(t *testing.T) {
		t.Parallel()
		s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
		s.CreateClaimResponse(claimJSON("c1", "queued"))
		s.Clock.Advance(1e9)
		r := s.UpdateClaimResponse("c1", claimJSON("c1", "complete"))
		require.Equal(t, "2", r.VersionID)
		resp, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse/c1", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, `W/"2"`, resp.Header.Get("Etag"))
		got := decode(t, b)
		require.Equal(t, "complete", got["outcome"])
		require.Equal(t, r.LastUpdated.Format("2006-01-02T15:04:05.999999999Z07:00"), got["meta"].(map[string]any)["lastUpdated"])
		_, b = call(t, s, http.MethodGet, "/fhir/ClaimResponse/c1/_history", "")
		h := decode(t, b)
		require.Equal(t, "history", h["type"])
		require.Len(t, h["entry"], 2)
		resp, b = call(t, s, http.MethodGet, "/fhir/ClaimResponse/nope", "")
		requireOutcome(t, resp, b, http.StatusNotFound, "not known")
	})
}

func TestServer_Faults(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	s.FailNext(1, http.StatusServiceUnavailable)
	resp, b := call(t, s, http.MethodGet, "/fhir/metadata", "")
	requireOutcome(t, resp, b, http.StatusServiceUnavailable, "injected")
	resp, _ = call(t, s, http.MethodGet, "/fhir/metadata", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s.SetDown(http.StatusBadGateway)
	resp, b = call(t, s, http.MethodGet, "/fhir/metadata", "")
	requireOutcome(t, resp, b, http.StatusBadGateway, "down")
	require.Len(t, s.Requests(), 3)
}

func TestNew_RefusesBadOptions(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]fhirtest.Options{
		"NoVendor":             {},
		"AidboxSTU3":           {Vendor: fhirtest.Aidbox, FHIRVersion: "STU3"},
		"DeliverersOnHAPI":     {Vendor: fhirtest.HAPI, TopicMode: true, Deliverers: 4},
		"NegativeDeliverers":   {Vendor: fhirtest.Aidbox, Deliverers: -1},
		"R4EventPartsInR4B":    {Vendor: fhirtest.Aidbox, R4EventParts: true},
		"ZenInR5":              {Vendor: fhirtest.AidboxZen, FHIRVersion: fhirtest.R5},
		"ZenRetention":         {Vendor: fhirtest.AidboxZen, Retention: time.Hour},
		"TopicsOnKodjin":       {Vendor: fhirtest.Kodjin, Topics: []fhirtest.Topic{fhirtest.DefaultTopic}},
		"RootBase":             {Vendor: fhirtest.HAPI, BasePath: "/"},
		"HeyDontoNoSite":       {Vendor: fhirtest.HeyDonto, BasePath: "/fhir"},
		"BadLoginField":        {Vendor: fhirtest.HeyDonto, LoginField: "jwt"},
		"TopicModeNotHAPI":     {Vendor: fhirtest.Kodjin, TopicMode: true},
		"DoubledFocusNoTopics": {Vendor: fhirtest.HAPI, DoubledFocus: true},
		"TopicsNoTopicMode":    {Vendor: fhirtest.HAPI, Topics: []fhirtest.Topic{fhirtest.DefaultTopic}},
	} {
		require.Panics(t, func() { fhirtest.NewHandler(opts) }, name)
	}
	require.Panics(t, fhirtest.NewHandler(fhirtest.Options{Vendor: fhirtest.Kodjin}).Restart, "only HAPI's counters are in memory")
}
