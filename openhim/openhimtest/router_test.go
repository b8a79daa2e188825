package openhimtest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// newMediator serves respond and passes each request it receives on seen.
func newMediator(t *testing.T, respond http.HandlerFunc) (string, <-chan *http.Request) {
	t.Helper()
	seen := make(chan *http.Request, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		seen <- r
		respond(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, seen
}

func envelopeAnswer(envelope string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json+openhim; charset=utf-8")
		w.WriteHeader(http.StatusTeapot) // ignored by core
		_, _ = io.WriteString(w, envelope)
	}
}

func forward(t *testing.T, url string, req openhimtest.ForwardRequest) openhimtest.ForwardResult {
	t.Helper()
	req.URL = url
	res, err := setup(t, openhimtest.Options{}).srv.Forward(t.Context(), req)
	require.NoError(t, err)
	return res
}

// TestForward_Request pins §4.1 and trap 16: what the mediator receives.
func TestForward_Request(t *testing.T) {
	t.Parallel()
	url, seen := newMediator(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	res := forward(t, url, openhimtest.ForwardRequest{
		Method: http.MethodPost, Path: "/mediator/claims-feedback", RawQuery: "a=1", Body: []byte(`{"x":1}`), ClientID: "cht",
		Header:        http.Header{"Content-Type": {"application/json"}, "Authorization": {"Basic Y2xpZW50OnB3"}, "X-Custom": {"v"}},
		RouteUsername: "mediator", RoutePassword: "route-pass",
	})
	r := <-seen
	require.Equal(t, "/mediator/claims-feedback?a=1", r.RequestURI)
	body, _ := io.ReadAll(r.Body)
	require.Equal(t, `{"x":1}`, string(body))
	require.Equal(t, res.TransactionID, r.Header.Get("X-OpenHIM-TransactionID"))
	require.Len(t, res.TransactionID, 24)
	require.Equal(t, "cht", r.Header.Get("X-OpenHIM-ClientID"))
	require.Equal(t, "127.0.0.1", r.Header.Get("X-Forwarded-For"))
	require.Equal(t, "localhost:5001", r.Header.Get("X-Forwarded-Host"))
	require.Equal(t, "v", r.Header.Get("X-Custom"))
	user, pass, _ := r.BasicAuth()
	require.Equal(t, "mediator:route-pass", user+":"+pass, "the route's credentials, not the client's")

	// Without route credentials nor forwardAuthHeader, no Authorization.
	forward(t, url, openhimtest.ForwardRequest{Header: http.Header{"Authorization": {"Basic Y2xpZW50OnB3"}}})
	require.Empty(t, (<-seen).Header.Get("Authorization"))
	forward(t, url, openhimtest.ForwardRequest{ForwardAuthHeader: true, Header: http.Header{"Authorization": {"Basic Y2xpZW50OnB3"}}})
	require.Equal(t, "Basic Y2xpZW50OnB3", (<-seen).Header.Get("Authorization"))
}

// TestForward_Envelope pins §4.2 and traps 12 to 14: how core reads an
// envelope into the client's answer, and what it reports as wrong.
func TestForward_Envelope(t *testing.T) {
	t.Parallel()
	const good = `{"x-mediator-urn":"urn:m","status":"Successful",
		"response":{"status":201,"headers":{"content-type":"application/json","x-request-id":"r-1"},"body":"{\"ok\":true}","timestamp":"2025-06-30T10:00:00.000Z"},
		"orchestrations":[{"name":"openIMIS GET","request":{"path":"/x","timestamp":"2025-06-30T10:00:00.000Z"},"response":{"status":200}}],
		"properties":{"claim":"x"}}`
	tests := []struct {
		name, envelope             string
		status                     int
		body, clientType, txStatus string
		problem                    string
	}{
		{name: "Valid", envelope: good, status: 201, body: `{"ok":true}`, clientType: "application/json; charset=utf-8", txStatus: "Successful"},
		{name: "StatusDerivedWhenAbsent", envelope: `{"x-mediator-urn":"u","response":{"status":"502","body":"down"},"error":{"message":"timed out"}}`,
			status: 502, body: "down", clientType: "text/plain; charset=utf-8", txStatus: "Failed"},
		{name: "ClientErrorIsCompleted", envelope: `{"x-mediator-urn":"u","response":{"status":400,"body":"{}","headers":{"content-type":"application/json"}}}`,
			status: 400, body: "{}", txStatus: "Completed"},
		{name: "MissingResponseStatus", envelope: `{"x-mediator-urn":"u","response":{"body":"x"}}`,
			status: 500, body: "An internal server error occurred", txStatus: "Failed", problem: "response.status is missing"},
		{name: "MissingResponse", envelope: `{"x-mediator-urn":"u"}`, status: 500, txStatus: "Failed", problem: "response is missing"},
		{name: "StatusNotNumeric", envelope: `{"x-mediator-urn":"u","response":{"status":"OK","body":"x"}}`,
			status: 500, txStatus: "Failed", problem: `response.status OK is not an integer HTTP status`},
		{name: "BodyNotAString", envelope: `{"x-mediator-urn":"u","response":{"status":200,"body":{"ok":true}}}`,
			status: 200, body: `{"ok":true}`, clientType: "application/json; charset=utf-8", problem: "response.body is not a string"},
		{name: "BodyMissing", envelope: `{"x-mediator-urn":"u","response":{"status":200}}`, status: 204, problem: "response.body is missing"},
		{name: "BadStatusEnum", envelope: `{"x-mediator-urn":"u","status":"OK","response":{"status":200,"body":"x"}}`,
			status: 200, body: "x", txStatus: "OK", problem: `status "OK" is not one of`},
		{name: "OrchestrationWithoutName", envelope: `{"x-mediator-urn":"u","response":{"status":200,"body":"x"},"orchestrations":[{"response":{"status":200}}]}`,
			status: 200, problem: "orchestrations[0].name is missing"},
		{name: "OrchestrationRequestWithoutTimestamp", envelope: `{"x-mediator-urn":"u","response":{"status":200,"body":"x"},"orchestrations":[{"name":"n","request":{"path":"/x"}}]}`,
			status: 200, problem: "orchestrations[0].request.timestamp is missing"},
		{name: "MissingURN", envelope: `{"response":{"status":200,"body":"x"}}`, status: 200, problem: "x-mediator-urn is missing"},
		{name: "InvalidJSON", envelope: `{"response":`, status: 500, body: "An internal server error occurred", problem: "not a JSON object"},
		{name: "NotAnObject", envelope: `[]`, status: 500, problem: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, _ := newMediator(t, envelopeAnswer(tt.envelope))
			res := forward(t, url, openhimtest.ForwardRequest{})
			require.True(t, res.IsEnvelope)
			require.Equal(t, tt.status, res.Status)
			require.Equal(t, res.TransactionID, res.Header.Get("X-OpenHIM-TransactionID"))
			if tt.body != "" {
				require.Equal(t, tt.body, string(res.Body))
			}
			if tt.clientType != "" {
				require.Equal(t, tt.clientType, res.Header.Get("Content-Type"))
			}
			if tt.txStatus != "" {
				require.Equal(t, tt.txStatus, res.TransactionStatus)
			}
			if tt.problem == "" {
				require.Empty(t, res.Problems)
				return
			}
			require.Len(t, res.Problems, 1)
			require.Contains(t, res.Problems[0], tt.problem)
		})
	}

	url, _ := newMediator(t, envelopeAnswer(good))
	res := forward(t, url, openhimtest.ForwardRequest{})
	require.Equal(t, "urn:m", res.Envelope.URN)
	require.Equal(t, "r-1", res.Header.Get("X-Request-Id"))
	require.Equal(t, http.StatusTeapot, res.MediatorStatus)
	require.Equal(t, "openIMIS GET", res.Envelope.Orchestrations[0]["name"])
	require.Equal(t, map[string]any{"claim": "x"}, res.Envelope.Properties)
}

// TestForward_Failures pins traps 12 and 15: no usable answer is a 500 for
// the client and a Failed transaction; a plain answer passes through.
func TestForward_Failures(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow, _ := newMediator(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	res := forward(t, slow, openhimtest.ForwardRequest{Timeout: 50 * time.Millisecond})
	require.Equal(t, http.StatusInternalServerError, res.Status)
	require.Equal(t, "An internal server error occurred", string(res.Body))
	require.Equal(t, "Request took longer than 50ms", res.Error)
	require.Equal(t, "Failed", res.TransactionStatus)

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	res = forward(t, down.URL, openhimtest.ForwardRequest{})
	require.Equal(t, http.StatusInternalServerError, res.Status)
	require.NotEmpty(t, res.Error)

	plain, _ := newMediator(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusServiceUnavailable) })
	res = forward(t, plain, openhimtest.ForwardRequest{})
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	require.Equal(t, "boom\n", string(res.Body))
	require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, "Failed", res.TransactionStatus)
	require.Empty(t, res.Problems)
}
