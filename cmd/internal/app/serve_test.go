package app

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

func TestFHIRURL_OneTrailingSlash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, path, want string }{
		{"http://imis:8000", "/api/api_fhir_r4/", "http://imis:8000/api/api_fhir_r4/"},
		{"http://imis:8000", "/api/api_fhir_r4", "http://imis:8000/api/api_fhir_r4/"},
		{"https://imis.example.org/openimis/", "api/api_fhir_r4/", "https://imis.example.org/openimis/api/api_fhir_r4/"},
	} {
		u, err := url.Parse(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		if got := fhirURL(config.Config{OpenIMISURL: u, OpenIMISFHIRPath: tc.path}); got != tc.want {
			t.Errorf("fhirURL(%q, %q) = %q, want %q", tc.base, tc.path, got, tc.want)
		}
	}
}

// The topic variables reach the mediator's Source: FHIR_<N>_FILTER split on
// ";", the channel settings as configured.
func TestBuildSources_TopicSettings(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://box.example.org/fhir")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Sources: []config.Source{{
		Name: "box", URL: u, Dialect: "r4b-backport", Vendor: "aidbox-zen", Auth: "none", Subscription: "manage",
		Resource: "ClaimResponse", Content: "auto", Topic: "http://aidbox.app/SubscriptionTopic/claim-response",
		Filter:    "ClaimResponse?outcome=complete; ;ClaimResponse?status=active",
		Heartbeat: 90 * time.Second, NotifyTimeout: 20 * time.Second, MaxCount: 3,
	}}}
	got, err := buildSources(cfg, mediator.NewMetrics())
	if err != nil {
		t.Fatal(err)
	}
	s := got[0]
	if s.Topic != cfg.Sources[0].Topic || s.Heartbeat != 90*time.Second || s.NotifyTimeout != 20*time.Second || s.MaxCount != 3 {
		t.Errorf("topic settings not wired: %+v", s)
	}
	if want := []string{"ClaimResponse?outcome=complete", "ClaimResponse?status=active"}; !slices.Equal(s.Filters, want) {
		t.Errorf("Filters = %q, want %q", s.Filters, want)
	}
	if s.Dialect != fhir.DialectR4BBackport || s.Client.Vendor() != fhir.VendorAidboxZen {
		t.Errorf("dialect %q, vendor %q", s.Dialect, s.Client.Vendor())
	}
}
