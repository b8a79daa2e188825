package app

import (
	"net/url"
	"testing"

	"github.com/cht-openimis/cht-openimis-mediator/config"
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
