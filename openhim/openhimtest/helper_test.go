package openhimtest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// clock is a settable Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testBundle is one fake with its clock.
type testBundle struct {
	clock *clock
	srv   *openhimtest.Server
}

// setup starts a fake with a fixed clock (2025-06-30T10:00:00Z) unless opts
// brings its own.
func setup(t *testing.T, opts openhimtest.Options) *testBundle {
	t.Helper()
	b := &testBundle{clock: &clock{now: time.Date(2025, 6, 30, 10, 0, 0, 0, time.UTC)}}
	if opts.Now == nil {
		opts.Now = b.clock.Now
	}
	b.srv = openhimtest.NewServer(t, opts)
	return b
}

// response is a fully read answer.
type response struct {
	body   string
	header http.Header
	status int
}

// req describes one API request.
type req struct {
	auth        string            // full Authorization; "" = root Basic; "-" = none
	body        string            // request body
	contentType string            // "" = application/json when body is set; "-" = none
	header      map[string]string // extra headers
	method      string
	path        string
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

var rootBasic = basic(openhimtest.RootEmail, openhimtest.RootPassword)

// do sends r to the fake's API with a client that trusts its certificate.
func (b *testBundle) do(t *testing.T, r req) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), r.method, b.srv.URL+r.path, body)
	require.NoError(t, err)
	switch r.auth {
	case "":
		hr.Header.Set("Authorization", rootBasic)
	case "-":
	default:
		hr.Header.Set("Authorization", r.auth)
	}
	switch {
	case r.contentType == "-":
	case r.contentType != "":
		hr.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{body: string(data), header: resp.Header, status: resp.StatusCode}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// testURN is the urn of mediatorDoc.
const testURN = "urn:mediator:cht-openimis-test"

// mediatorDoc returns a valid registration body: one endpoint, two default
// channels, configDefs of every kind the contract uses, and a config.
func mediatorDoc(version string) map[string]any {
	return map[string]any{
		"urn":         testURN,
		"version":     version,
		"name":        "CHT-openIMIS Test Mediator",
		"description": "test",
		"endpoints": []any{map[string]any{
			"name": "Mediator", "host": "mediator", "port": 6000, "path": "/", "type": "http", "primary": true,
		}},
		"defaultChannelConfig": []any{
			map[string]any{
				"name": "Claim Response", "urlPattern": "^/mediator/claim-response/?$", "methods": []any{"POST"},
				"allow": []any{"cht-openimis"}, "routes": []any{map[string]any{
					"name": "claim-response", "host": "mediator", "port": 6000, "path": "/mediator/claim-response", "primary": true,
				}},
			},
			map[string]any{
				"name": "Claims Feedback", "urlPattern": "^/mediator/claims-feedback/?$", "methods": []any{"POST"},
				"allow": []any{"cht-openimis"}, "routes": []any{map[string]any{
					"name": "claims-feedback", "host": "mediator", "port": 6000, "path": "/mediator/claims-feedback", "primary": true,
				}},
			},
		},
		"configDefs": []any{
			map[string]any{"param": "baseUrl", "type": "string"},
			map[string]any{"param": "password", "type": "password"},
			map[string]any{"param": "timeout", "type": "number"},
			map[string]any{"param": "logLevel", "type": "option", "values": []any{"debug", "info"}},
			map[string]any{"param": "enabled", "type": "bool"},
		},
		"config": map[string]any{"baseUrl": "http://openimis", "timeout": 30, "logLevel": "info"},
	}
}

// register posts body to /mediators as root and requires 201.
func (b *testBundle) register(t *testing.T, body map[string]any) {
	t.Helper()
	r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: mustJSON(t, body)})
	require.Equal(t, http.StatusCreated, r.status, r.body)
	require.Equal(t, "Created", r.body)
}

// heartbeat posts a heartbeat as root.
func (b *testBundle) heartbeat(t *testing.T, body string) response {
	t.Helper()
	return b.do(t, req{method: http.MethodPost, path: "/mediators/" + testURN + "/heartbeat", body: body})
}
