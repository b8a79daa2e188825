package fhirtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

// call sends a request to the fake at path (below its origin) with a JSON
// body when body is not empty, and extra headers as name, value pairs.
func call(t *testing.T, s *fhirtest.Server, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// decode parses a JSON answer.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v), string(b))
	return v
}

// requireOutcome checks an OperationOutcome answer with status whose
// diagnostics contain text.
func requireOutcome(t *testing.T, resp *http.Response, body []byte, status int, text string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, string(body))
	v := decode(t, body)
	require.Equal(t, "OperationOutcome", v["resourceType"], string(body))
	require.Contains(t, string(body), text)
}

// subscriber is a notification endpoint answering what a test set.
type subscriber struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
	status   int
	body     string
}

type received struct {
	Method, Path, ContentType, Authorization string
	Body                                     []byte
}

// newSubscriber answers 200 with a FHIR OperationOutcome until told
// otherwise.
func newSubscriber(t *testing.T) *subscriber {
	t.Helper()
	sub := &subscriber{status: http.StatusOK, body: `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}`}
	sub.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sub.mu.Lock()
		sub.requests = append(sub.requests, received{
			Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"),
			Authorization: r.Header.Get("Authorization"), Body: b,
		})
		status, body := sub.status, sub.body
		sub.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(sub.Close)
	return sub
}

func (sub *subscriber) answer(status int, body string) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.status, sub.body = status, body
}

func (sub *subscriber) received() []received {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return append([]received(nil), sub.requests...)
}

// subscriptionJSON is an R4 criteria Subscription as a client posts it.
func subscriptionJSON(status, criteria, endpoint, payload string, headers ...string) string {
	ch := map[string]any{"type": "rest-hook", "endpoint": endpoint}
	if payload != "" {
		ch["payload"] = payload
	}
	if headers != nil {
		ch["header"] = headers
	}
	b, _ := json.Marshal(map[string]any{
		"resourceType": "Subscription", "status": status, "reason": "test",
		"criteria": criteria, "channel": ch,
	})
	return string(b)
}

// claimJSON is a ClaimResponse as a server would hold it.
func claimJSON(id, outcome string) []byte {
	return []byte(`{"resourceType":"ClaimResponse","id":"` + id + `","status":"active","use":"claim",` +
		`"outcome":"` + outcome + `","identifier":[{"value":"CLM-` + id + `"}],` +
		`"patient":{"reference":"Patient/p1"},"created":"2025-01-02"}`)
}

// subscribe creates a subscription and returns its id, requiring 201.
func subscribe(t *testing.T, s *fhirtest.Server, path, body string, header ...string) string {
	t.Helper()
	resp, b := call(t, s, http.MethodPost, path, body, header...)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
	id, _ := decode(t, b)["id"].(string)
	require.NotEmpty(t, id)
	return id
}

// login logs in to a HeyDonto fake and returns the Authorization header.
func login(t *testing.T, s *fhirtest.Server) string {
	t.Helper()
	resp, b := call(t, s, http.MethodPost, "/auth/login", `{"email":"`+fhirtest.DefaultEmail+`","password":"`+fhirtest.DefaultPassword+`"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	token, _ := decode(t, b)["token"].(string)
	require.NotEmpty(t, token)
	return "Bearer " + token
}
