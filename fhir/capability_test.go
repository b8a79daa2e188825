package fhir_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

func TestDetect(t *testing.T) {
	t.Parallel()
	// Markers and versions of docs/upstreams/fhir-subscriptions.md §5.
	for _, tc := range []struct {
		name    string
		cs      string
		dialect fhir.Dialect
		vendor  fhir.Vendor
		err     string
	}{
		{"R4BBackportByInstantiates", `{"resourceType":"CapabilityStatement","fhirVersion":"4.3.0","software":{"name":"Aidbox"},
			"instantiates":["http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/CapabilitySubscriptionServer"]}`,
			fhir.DialectR4BBackport, fhir.VendorAidbox, ""},
		{"R4BackportByProfile", `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","software":{"name":"HAPI FHIR Server"},
			"rest":[{"resource":[{"type":"Subscription","supportedProfile":["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]}]}]}`,
			fhir.DialectR4Backport, fhir.VendorHAPI, ""},
		{"R4BackportByStatusOperation", `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1",
			"rest":[{"resource":[{"type":"Subscription","operation":[{"name":"status","definition":"x"}]}]}]}`,
			fhir.DialectR4Backport, fhir.VendorGeneric, ""},
		{"R4CriteriaWithoutMarker", `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","software":{"name":"Kodjin FHIR Server"},
			"rest":[{"resource":[{"type":"Subscription"}]}]}`,
			fhir.DialectR4Criteria, fhir.VendorKodjin, ""},
		{"R4BWithoutMarkerIsCriteria", `{"resourceType":"CapabilityStatement","fhirVersion":"4.3.0"}`, fhir.DialectR4Criteria, fhir.VendorGeneric, ""},
		{"R5", `{"resourceType":"CapabilityStatement","fhirVersion":"5.0.0"}`, fhir.DialectR5, fhir.VendorGeneric, ""},
		{"NoVersion", `{"resourceType":"CapabilityStatement"}`, "", "", "no fhirVersion"},
		{"STU3", `{"resourceType":"CapabilityStatement","fhirVersion":"3.0.2"}`, "", "", "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			caps, err := fhir.ParseCapabilities([]byte(tc.cs))
			require.NoError(t, err)
			d, v, err := fhir.Detect(caps)
			if tc.err != "" {
				var de *fhir.DetectError
				require.ErrorAs(t, err, &de)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.dialect, d)
			require.Equal(t, tc.vendor, v)
		})
	}
}

func TestClient_Metadata(t *testing.T) {
	t.Parallel()
	t.Run("TopicsAdvertised", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"resource":[{"type":"Subscription",
			  "extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
			    "valueCanonical":"http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"}]}]}]}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		caps, err := c.Metadata(context.Background())
		require.NoError(t, err)
		require.Equal(t, basePath+"/metadata", srv.recorded()[0].Path)
		require.True(t, caps.Backport)
		require.Equal(t, []string{"http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"}, caps.Topics)
	})
	t.Run("OpenIMISHasNoMetadata", func(t *testing.T) {
		t.Parallel()
		// openIMIS serves no /metadata (§5, trap 2): a clear error, never
		// a guess; the caller names its setting (FHIR_<N>_DIALECT).
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Metadata(context.Background())
		var de *fhir.DetectError
		require.ErrorAs(t, err, &de)
		require.ErrorContains(t, err, "metadata: 404")
		require.NotContains(t, err.Error(), "FHIR_", "the caller names its setting")
		require.True(t, fhir.HasStatus(err, 404))
	})
	t.Run("AidboxFakesDetected", func(t *testing.T) {
		t.Parallel()
		// Both Aidbox generations call themselves Aidbox: the vendor is the
		// newer one, zen is told apart by its GET-only $events (§5, §6.1).
		// The newer one's dialect is its R4, R4B or R5 metadata's.
		for _, tc := range []struct {
			opts    fhirtest.Options
			dialect fhir.Dialect
		}{
			{fhirtest.Options{Vendor: fhirtest.AidboxZen}, fhir.DialectR4BBackport},
			{fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R4}, fhir.DialectR4Backport},
			{fhirtest.Options{Vendor: fhirtest.Aidbox}, fhir.DialectR4BBackport},
			{fhirtest.Options{Vendor: fhirtest.Aidbox, FHIRVersion: fhirtest.R5}, fhir.DialectR5},
		} {
			box := fhirtest.NewServer(t, tc.opts)
			caps, err := newClient(t, fhir.Options{BaseURL: box.BaseURL}).Metadata(context.Background())
			require.NoError(t, err)
			d, v, err := fhir.Detect(caps)
			require.NoError(t, err)
			require.Equal(t, tc.dialect, d, tc.opts)
			require.Equal(t, fhir.VendorAidbox, v, tc.opts)
		}
	})
	t.Run("HTMLPage", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>login</html>")) })
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Metadata(context.Background())
		require.ErrorContains(t, err, "not a CapabilityStatement")
	})
}
