package openhimtest_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// seen is a request the test mediator received.
type seen struct {
	body   string
	header http.Header
	method string
	uri    string
}

// fakeMediator is a mediator endpoint answering with respond and keeping
// what it received.
type fakeMediator struct {
	mu   sync.Mutex
	reqs []seen
	srv  *httptest.Server
}

func newMediator(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *fakeMediator {
	t.Helper()
	m := &fakeMediator{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.reqs = append(m.reqs, seen{body: string(body), header: r.Header.Clone(), method: r.Method, uri: r.RequestURI})
		m.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMediator) last(t *testing.T) seen {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	require.NotEmpty(t, m.reqs)
	return m.reqs[len(m.reqs)-1]
}

// envelopeAnswer answers with the given envelope JSON and outer status.
func envelopeAnswer(status int, envelope string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json+openhim; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, envelope)
	}
}

const validEnvelope = `{
  "x-mediator-urn": "urn:mediator:cht-openimis-test",
  "status": "Successful",
  "response": {
    "status": 201,
    "headers": {"content-type": "application/json", "x-request-id": "r-1"},
    "body": "{\"ok\":true}",
    "timestamp": "2025-06-30T10:00:00.000Z"
  },
  "orchestrations": [{
    "name": "openIMIS GET ClaimResponse",
    "request": {"host": "openimis", "port": 8000, "path": "/api/api_fhir_r4/ClaimResponse/x/", "method": "GET", "timestamp": "2025-06-30T10:00:00.000Z"},
    "response": {"status": 200, "body": "{}", "timestamp": "2025-06-30T10:00:00.100Z"}
  }],
  "properties": {"claim": "x"}
}`

func forward(t *testing.T, b *testBundle, m *fakeMediator, fr openhimtest.ForwardRequest) openhimtest.ForwardResult {
	t.Helper()
	fr.URL = m.srv.URL
	if fr.Path == "" {
		fr.Path = "/mediator/claim-response"
	}
	res, err := b.srv.Forward(t.Context(), fr)
	require.NoError(t, err)
	return res
}

func TestForward_Request(t *testing.T) {
	t.Parallel()

	plain := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"plain":true}`)
	}

	t.Run("HeadersAddedAuthorizationStripped", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, plain)
		res := forward(t, b, m, openhimtest.ForwardRequest{
			Method:   http.MethodPost,
			RawQuery: "a=1",
			Body:     []byte(`{"resourceType":"ClaimResponse"}`),
			ClientID: "openimis",
			Header: http.Header{
				"Authorization": {basic("openimis", "client-pw")},
				"Content-Type":  {"application/fhir+json"},
				"X-Custom":      {"a", "b"},
			},
		})
		got := m.last(t)
		require.Equal(t, http.MethodPost, got.method)
		require.Equal(t, "/mediator/claim-response?a=1", got.uri)
		require.JSONEq(t, `{"resourceType":"ClaimResponse"}`, got.body)
		require.Empty(t, got.header.Get("Authorization"))
		require.Regexp(t, `^[0-9a-f]{24}$`, got.header.Get("X-OpenHIM-TransactionID"))
		require.Equal(t, res.TransactionID, got.header.Get("X-OpenHIM-TransactionID"))
		require.Equal(t, "openimis", got.header.Get("X-OpenHIM-ClientID"))
		require.Equal(t, "127.0.0.1", got.header.Get("X-Forwarded-For"))
		require.Equal(t, "localhost:5001", got.header.Get("X-Forwarded-Host"))
		require.Equal(t, "application/fhir+json", got.header.Get("Content-Type"))
		require.Equal(t, []string{"a, b"}, got.header.Values("X-Custom"))
		require.Empty(t, got.header.Get("User-Agent"))
		require.Equal(t, res.TransactionID, res.SentHeader.Get("X-OpenHIM-TransactionID"))

		// A plain answer passes through.
		require.False(t, res.IsEnvelope)
		require.Nil(t, res.Envelope)
		require.Empty(t, res.Problems)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, `{"plain":true}`, string(res.Body))
		// Koa's type setter adds the charset.
		require.Equal(t, "application/json; charset=utf-8", res.Header.Get("Content-Type"))
		require.Equal(t, res.TransactionID, res.Header.Get("X-OpenHIM-TransactionID"))
		require.Equal(t, openhimtest.TransactionSuccessful, res.TransactionStatus)

		txs := b.srv.Transactions()
		require.Len(t, txs, 1)
		require.Equal(t, res.TransactionID, txs[0].ID)
		require.Equal(t, "openimis", txs[0].Request.ClientID)
		require.Equal(t, res.Status, txs[0].Result.Status)
		require.Equal(t, b.clock.Now(), txs[0].Time)
	})

	t.Run("ForwardAuthHeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, plain)
		auth := basic("openimis", "client-pw")
		forward(t, b, m, openhimtest.ForwardRequest{Header: http.Header{"Authorization": {auth}}, ForwardAuthHeader: true, RouteUsername: "route", RoutePassword: "pw"})
		require.Equal(t, auth, m.last(t).header.Get("Authorization"))
	})

	t.Run("RouteCredentials", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, plain)
		forward(t, b, m, openhimtest.ForwardRequest{Header: http.Header{"Authorization": {basic("openimis", "client-pw")}}, RouteUsername: "route", RoutePassword: "pw"})
		require.Equal(t, basic("route", "pw"), m.last(t).header.Get("Authorization"))
	})

	t.Run("NoClientIDNoBodyForGET", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, plain)
		forward(t, b, m, openhimtest.ForwardRequest{Method: http.MethodGet, Body: []byte("ignored"), ClientIP: "10.0.0.7", Host: "openhim:5000",
			Header: http.Header{"X-Forwarded-For": {"192.0.2.1"}}})
		got := m.last(t)
		require.Empty(t, got.body)
		require.Empty(t, got.header.Values("X-OpenHIM-ClientID"))
		require.Equal(t, []string{"192.0.2.1", "10.0.0.7"}, got.header.Values("X-Forwarded-For"))
		require.Equal(t, "openhim:5000", got.header.Get("X-Forwarded-Host"))
	})

	t.Run("SecuredRoute", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		tlsMediator := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = io.WriteString(w, `{"resourceType":"Bundle"}`)
		}))
		defer tlsMediator.Close()
		res, err := b.srv.Forward(t.Context(), openhimtest.ForwardRequest{URL: tlsMediator.URL, Transport: tlsMediator.Client().Transport})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, "application/fhir+json", res.Header.Get("Content-Type"))
		// Without a transport trusting the certificate, the route fails.
		res, err = b.srv.Forward(t.Context(), openhimtest.ForwardRequest{URL: tlsMediator.URL})
		require.NoError(t, err)
		require.Equal(t, http.StatusInternalServerError, res.Status)
	})

	t.Run("BadRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		_, err := b.srv.Forward(t.Context(), openhimtest.ForwardRequest{URL: "http://127.0.0.1:1/base"})
		require.Error(t, err)
		_, err = b.srv.Forward(t.Context(), openhimtest.ForwardRequest{URL: "127.0.0.1:1"})
		require.Error(t, err)
	})
}

func TestForward_Envelope(t *testing.T) {
	t.Parallel()

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		// The outer status is ignored.
		m := newMediator(t, envelopeAnswer(http.StatusInternalServerError, validEnvelope))
		res := forward(t, b, m, openhimtest.ForwardRequest{Method: http.MethodPost, Body: []byte("{}")})
		require.True(t, res.IsEnvelope)
		require.Empty(t, res.Problems)
		require.Equal(t, http.StatusInternalServerError, res.MediatorStatus)
		require.Equal(t, http.StatusCreated, res.Status)
		require.Equal(t, `{"ok":true}`, string(res.Body))
		require.Equal(t, "application/json; charset=utf-8", res.Header.Get("Content-Type"))
		require.Equal(t, "r-1", res.Header.Get("X-Request-Id"))
		require.Equal(t, res.TransactionID, res.Header.Get("X-OpenHIM-TransactionID"))
		require.Equal(t, openhimtest.TransactionSuccessful, res.TransactionStatus)

		env := res.Envelope
		require.NotNil(t, env)
		require.Equal(t, "urn:mediator:cht-openimis-test", env.URN)
		require.Equal(t, "Successful", env.Status)
		require.Equal(t, 201, env.Response.Status)
		require.Equal(t, `{"ok":true}`, env.Response.Body)
		require.Equal(t, map[string]any{"claim": "x"}, env.Properties)
		require.Len(t, env.Orchestrations, 1)
		require.Equal(t, "openIMIS GET ClaimResponse", env.Orchestrations[0].Name)
		require.Equal(t, "8000", env.Orchestrations[0].Request.Port)
		require.Equal(t, 200, env.Orchestrations[0].Response.Status)
		require.Nil(t, env.Error)
	})

	t.Run("StatusDerivedWhenAbsent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, envelopeAnswer(http.StatusOK, `{"x-mediator-urn":"u","response":{"status":"502","body":"upstream down","headers":{"content-type":"text/plain"}},"error":{"message":"openIMIS timed out"}}`))
		res := forward(t, b, m, openhimtest.ForwardRequest{})
		require.Empty(t, res.Problems)
		require.Equal(t, http.StatusBadGateway, res.Status)
		require.Equal(t, "upstream down", string(res.Body))
		require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))
		require.Equal(t, openhimtest.TransactionFailed, res.TransactionStatus)
		require.Equal(t, "openIMIS timed out", res.Error)
		require.Equal(t, "openIMIS timed out", res.Envelope.Error.Message)
	})

	problem := func(t *testing.T, res openhimtest.ForwardResult, want string) {
		t.Helper()
		for _, p := range res.Problems {
			if strings.Contains(p, want) {
				return
			}
		}
		require.Failf(t, "problem not reported", "want %q in %q", want, res.Problems)
	}

	tests := []struct {
		name        string
		envelope    string
		status      int
		body        string
		contentType string
		problem     string
	}{
		{
			name:     "MissingResponseStatus",
			envelope: `{"x-mediator-urn":"u","response":{"body":"x"}}`,
			status:   500, body: "An internal server error occurred", contentType: "text/plain; charset=utf-8",
			problem: "response.status is missing",
		},
		{
			name:     "MissingResponse",
			envelope: `{"x-mediator-urn":"u","status":"Successful"}`,
			status:   500, body: "An internal server error occurred",
			problem: "response is missing",
		},
		{
			name:     "StatusNotNumeric",
			envelope: `{"x-mediator-urn":"u","response":{"status":"OK","body":"x"}}`,
			status:   500, body: "An internal server error occurred",
			problem: `response.status "OK" is not numeric`,
		},
		{
			name:     "StatusFloat",
			envelope: `{"x-mediator-urn":"u","response":{"status":200.5,"body":"x"}}`,
			status:   500, body: "An internal server error occurred",
			problem: "response.status 200.5 is not an integer HTTP status",
		},
		{
			name:     "BodyNotAString",
			envelope: `{"x-mediator-urn":"u","response":{"status":200,"body":{"ok":true}}}`,
			status:   200, body: `{"ok":true}`, contentType: "application/json; charset=utf-8",
			problem: "response.body is not a string",
		},
		{
			name:     "BodyMissing",
			envelope: `{"x-mediator-urn":"u","response":{"status":200,"headers":{"content-type":"application/json"}}}`,
			status:   204, body: "",
			problem: "response.body is missing or null: the client gets 204",
		},
		{
			name:     "BadStatusEnum",
			envelope: `{"x-mediator-urn":"u","status":"OK","response":{"status":200,"body":"x"}}`,
			status:   200, body: "x", contentType: "text/plain; charset=utf-8",
			problem: `status "OK" is not one of Processing, Pending Async, Successful, Completed, Completed with error(s), Failed`,
		},
		{
			name:     "OrchestrationWithoutName",
			envelope: `{"x-mediator-urn":"u","response":{"status":200,"body":"x"},"orchestrations":[{"request":{"timestamp":"2025-06-30T10:00:00Z"}}]}`,
			status:   200, body: "x",
			problem: "orchestrations[0].name is missing",
		},
		{
			name:     "OrchestrationRequestWithoutTimestamp",
			envelope: `{"x-mediator-urn":"u","response":{"status":200,"body":"x"},"orchestrations":[{"name":"n","request":{"path":"/x"}}]}`,
			status:   200, body: "x",
			problem: "orchestrations[0].request.timestamp is missing",
		},
		{
			name:     "MissingURN",
			envelope: `{"response":{"status":200,"body":"x"}}`,
			status:   200, body: "x",
			problem: "x-mediator-urn is missing",
		},
		{
			name:     "InvalidJSON",
			envelope: `{"response":`,
			status:   500, body: "An internal server error occurred",
			problem: "not valid JSON",
		},
		{
			name:     "NotAnObject",
			envelope: `[]`,
			status:   500, body: "An internal server error occurred",
			problem: "not a JSON object",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openhimtest.Options{})
			m := newMediator(t, envelopeAnswer(http.StatusOK, tt.envelope))
			res := forward(t, b, m, openhimtest.ForwardRequest{})
			require.True(t, res.IsEnvelope)
			require.Equal(t, tt.status, res.Status)
			require.Equal(t, tt.body, string(res.Body))
			if tt.contentType != "" {
				require.Equal(t, tt.contentType, res.Header.Get("Content-Type"))
			}
			problem(t, res, tt.problem)
		})
	}

	t.Run("StatusAsNumericString", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, envelopeAnswer(http.StatusOK, `{"x-mediator-urn":"u","response":{"status":"202","body":"queued"}}`))
		res := forward(t, b, m, openhimtest.ForwardRequest{})
		require.Empty(t, res.Problems)
		require.Equal(t, http.StatusAccepted, res.Status)
	})

	t.Run("ContentTypeMatchIsCaseSensitive", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "Application/JSON+OpenHIM")
			_, _ = io.WriteString(w, validEnvelope)
		})
		res := forward(t, b, m, openhimtest.ForwardRequest{})
		require.False(t, res.IsEnvelope)
		require.Equal(t, http.StatusOK, res.Status)
		require.Equal(t, validEnvelope, string(res.Body))
	})

	t.Run("RedirectLocation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, envelopeAnswer(http.StatusOK, `{"x-mediator-urn":"u","response":{"status":303,"body":"x","headers":{"location":"/next"}}}`))
		res := forward(t, b, m, openhimtest.ForwardRequest{Header: http.Header{"Accept": {"application/json"}}})
		require.Equal(t, http.StatusSeeOther, res.Status)
		require.Equal(t, "/next", res.Header.Get("Location"))
		require.Equal(t, "Redirecting to /next.", string(res.Body))
	})
}

func TestForward_Failures(t *testing.T) {
	t.Parallel()

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		release := make(chan struct{})
		m := newMediator(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		res := forward(t, b, m, openhimtest.ForwardRequest{Timeout: 50 * time.Millisecond})
		require.Equal(t, http.StatusInternalServerError, res.Status)
		require.Equal(t, "An internal server error occurred", string(res.Body))
		require.Equal(t, "Request took longer than 50ms", res.Error)
		require.Equal(t, openhimtest.TransactionFailed, res.TransactionStatus)
		require.Zero(t, res.MediatorStatus)
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, func(http.ResponseWriter, *http.Request) {})
		m.srv.Close()
		res := forward(t, b, m, openhimtest.ForwardRequest{})
		require.Equal(t, http.StatusInternalServerError, res.Status)
		require.NotEmpty(t, res.Error)
	})

	t.Run("GzipPlainAnswerDecoded", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, func(w http.ResponseWriter, _ *http.Request) {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = io.WriteString(zw, "hello")
			_ = zw.Close()
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(buf.Bytes())
		})
		res := forward(t, b, m, openhimtest.ForwardRequest{Header: http.Header{"Accept-Encoding": {"gzip"}}})
		require.Equal(t, "hello", string(res.Body))
		require.Empty(t, res.Header.Get("Content-Encoding"))
		require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))
	})

	t.Run("PlainServerErrorPassesThrough", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := newMediator(t, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusServiceUnavailable)
		})
		res := forward(t, b, m, openhimtest.ForwardRequest{})
		require.Equal(t, http.StatusServiceUnavailable, res.Status)
		require.Equal(t, "boom\n", string(res.Body))
		require.Equal(t, openhimtest.TransactionFailed, res.TransactionStatus)
		require.Empty(t, res.Problems)
	})
}
