package openhim_test

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim"
)

func TestPassHash_ContractVector(t *testing.T) {
	t.Parallel()
	// The root user's seed values in OpenHIM core (docs/upstreams/openhim.md §2.3).
	h := openhim.PassHash("d9bcb40e-ae65-478f-962e-5e5e5e7d0a01", "openhim-password")
	require.Len(t, h, 128)
	require.True(t, strings.HasPrefix(h, "943a856bba65"), h)
	require.True(t, strings.HasSuffix(h, "00d0fb"), h)
}

func TestPrepareRegistration_ShippedDocument(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../openhim-mediator.json")
	require.NoError(t, err)
	u, err := url.Parse("https://mediator.example.org:7443")
	require.NoError(t, err)
	reg, err := openhim.PrepareRegistration(doc, u, map[string]any{"logLevel": "debug"})
	require.NoError(t, err)
	require.Equal(t, "urn:mediator:cht-openimis-mediator", reg.URN)

	var got struct {
		Endpoints []struct {
			Host    string
			Port    int
			Secured bool
		}
		DefaultChannelConfig []struct {
			URLPattern string
			Methods    []string
			AuthType   string
			Allow      []string
			Routes     []struct {
				Host    string
				Port    int
				Secured bool
				Path    string
			}
		}
		ConfigDefs []struct{ Param, Type string }
		Config     map[string]any
	}
	require.NoError(t, json.Unmarshal(reg.Doc, &got))
	require.Len(t, got.Endpoints, 1)
	require.Equal(t, "mediator.example.org", got.Endpoints[0].Host)
	require.Equal(t, 7443, got.Endpoints[0].Port)
	require.True(t, got.Endpoints[0].Secured)
	// Each channel's pattern, methods and route path ("" forwards the
	// request's own path, docs/upstreams/openhim.md §4.1: the FHIR sources'
	// callbacks are /mediator/fhir/<source>[/<Type>/<id>]).
	type channel struct {
		methods []string
		path    string
	}
	channels := map[string]channel{}
	for _, ch := range got.DefaultChannelConfig {
		require.True(t, strings.HasPrefix(ch.URLPattern, "^") && strings.HasSuffix(ch.URLPattern, "$"), "anchored: %s", ch.URLPattern)
		require.Equal(t, "private", ch.AuthType)
		require.Equal(t, []string{"cht-openimis"}, ch.Allow)
		require.Len(t, ch.Routes, 1, ch.URLPattern)
		for _, r := range ch.Routes {
			require.Equal(t, "mediator.example.org", r.Host)
			require.Equal(t, 7443, r.Port)
			require.True(t, r.Secured)
			channels[ch.URLPattern] = channel{methods: ch.Methods, path: r.Path}
		}
	}
	require.Equal(t, map[string]channel{
		"^/mediator/claim-response/?$":  {methods: []string{"POST"}, path: "/mediator/claim-response"},
		"^/mediator/claims-feedback/?$": {methods: []string{"POST"}, path: "/mediator/claims-feedback"},
		"^/mediator/fhir/.*$":           {methods: []string{"POST", "PUT", "DELETE"}, path: ""},
	}, channels)
	require.Equal(t, map[string]any{"logLevel": "debug"}, got.Config)
	defs := map[string]string{}
	for _, d := range got.ConfigDefs {
		defs[d.Param] = d.Type
		require.NotEqual(t, "password", d.Type, "no secrets in the registration")
	}
	require.Equal(t, map[string]string{"logLevel": "option", "upstreamTimeoutSeconds": "number", "claimPollIntervalSeconds": "number"}, defs)
}

func TestPrepareRegistration_Invalid(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"NotJSON":    `{`,
		"NoURN":      `{"version":"1.0.0"}`,
		"SlashInURN": `{"urn":"urn:a/b","version":"1.0.0"}`,
		"BadVersion": `{"urn":"urn:a","version":"1.0"}`,
		"NoVersion":  `{"urn":"urn:a"}`,
	} {
		_, err := openhim.PrepareRegistration([]byte(doc), nil, nil)
		require.Error(t, err, name)
	}
	u, _ := url.Parse("http://10.0.0.5")
	reg, err := openhim.PrepareRegistration([]byte(`{"urn":"urn:a","version":"1.2.3","endpoints":[{"name":"e"}]}`), u, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"urn":"urn:a","version":"1.2.3","endpoints":[{"name":"e","host":"10.0.0.5","port":80,"secured":false}]}`, string(reg.Doc))
}
