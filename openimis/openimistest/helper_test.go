package openimistest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// testBundle is the per-test state of the fake and a client that never
// follows redirects.
type testBundle struct {
	client *http.Client
	clock  *clock
	srv    *openimistest.Server
}

// clock is a settable time source for Options.Now.
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

// setup starts a fake with a fixed clock (2025-06-30T10:00:00Z) unless opts
// brings its own.
func setup(t *testing.T, opts openimistest.Options) *testBundle {
	t.Helper()
	b := &testBundle{
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		clock: &clock{now: time.Date(2025, 6, 30, 10, 0, 0, 0, time.UTC)},
	}
	if opts.Now == nil {
		opts.Now = b.clock.Now
	}
	b.srv = openimistest.NewServer(t, opts)
	return b
}

// response is a fully read HTTP answer.
type response struct {
	body   []byte
	header http.Header
	status int
}

// req describes one request; path is relative to the FHIR base unless it
// starts with "/".
type req struct {
	auth        string // full Authorization value; "" = admin Basic; "-" = none
	body        string
	contentType string // "" = application/json when body is set; "-" = none
	header      map[string]string
	method      string
	path        string
}

// do sends r to the fake.
func (b *testBundle) do(t *testing.T, r req) *response {
	t.Helper()
	url := b.srv.FHIRURL() + r.path
	if strings.HasPrefix(r.path, "/") {
		url = b.srv.URL + r.path
	}
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), method, url, body)
	require.NoError(t, err)
	switch {
	case r.contentType == "-":
	case r.contentType != "":
		hr.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		hr.Header.Set("Content-Type", "application/json")
	}
	switch r.auth {
	case "-":
	case "":
		hr.Header.Set("Authorization", basic("admin", "admin"))
	default:
		hr.Header.Set("Authorization", r.auth)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := b.client.Do(hr)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &response{body: data, header: resp.Header, status: resp.StatusCode}
}

// login logs in as username/password and returns the Bearer header value.
func (b *testBundle) login(t *testing.T, username, password string) string {
	t.Helper()
	resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-",
		body: `{"username":"` + username + `","password":"` + password + `"}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	var out struct {
		Token string `json:"token"`
		Exp   int64  `json:"exp"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &out))
	return "Bearer " + out.Token
}

// basic returns an HTTP Basic Authorization value.
func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// outcome decodes an OperationOutcome and returns its only issue.
func (r *response) outcome(t *testing.T) (severity, code string, text any) {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"), string(r.body))
	m := r.object(t)
	require.Equal(t, "OperationOutcome", m["resourceType"])
	require.Len(t, m["issue"], 1)
	issue := m["issue"].([]any)[0].(map[string]any)
	return issue["severity"].(string), issue["code"].(string), issue["details"].(map[string]any)["text"]
}

// requireOutcome checks status, severity and details.text of an
// OperationOutcome answer.
func (r *response) requireOutcome(t *testing.T, status int, severity string, text any) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	sev, _, got := r.outcome(t)
	require.Equal(t, severity, sev)
	require.Equal(t, text, got)
}

// object decodes a JSON object answer.
func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// fixture reads a file of the package's testdata.
func fixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(data)
}

// mutate decodes a JSON object, applies f and re-encodes it.
func mutate(t *testing.T, doc string, f func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(doc), &m))
	f(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return string(out)
}
