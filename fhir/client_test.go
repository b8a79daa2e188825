package fhir_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// basePath is where the test servers mount the API: a non-empty base path
// makes absolute-URL mistakes fail.
const basePath = "/site/42/fhir"

// recorded is one request a test server received.
type recorded struct {
	Method, Path, Query, Auth, ContentType, Accept string
	Body                                           []byte
}

// server is a test server whose handler a test sets, recording every
// request.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, recorded{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"), Body: body,
		})
		s.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) recorded() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.requests...)
}

func (s *server) base() string { return s.URL + basePath }

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func newClient(t *testing.T, opts fhir.Options) *fhir.Client {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	c, err := fhir.New(opts)
	require.NoError(t, err)
	return c
}

func TestNew_RefusesUnusableOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts fhir.Options
		want string
	}{
		{"RelativeBase", fhir.Options{BaseURL: "/fhir"}, "absolute"},
		{"CredentialsInBase", fhir.Options{BaseURL: "https://user:s3cret@box.example.org/fhir"}, "credentials"},
		{"QueryInBase", fhir.Options{BaseURL: "https://box.example.org/fhir?x=1"}, "no query"},
		{"UnknownVendor", fhir.Options{BaseURL: "https://box.example.org/fhir", Vendor: "acme"}, "unknown vendor"},
		{"UnknownStyle", fhir.Options{BaseURL: "https://box.example.org/fhir", PathStyle: "snake"}, "path style"},
		{"BadOverride", fhir.Options{BaseURL: "https://box.example.org/fhir", PathOverrides: map[string]string{"ClaimResponse": "a/b"}}, "one path segment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := fhir.New(tc.opts)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestPaths_Segment(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ClaimResponse", fhir.Paths{}.Segment("ClaimResponse"))
	// HeyDonto's kebab-lower segments: fhir/subscription, fhir/payment-reconciliation
	// (docs/upstreams/fhir-subscriptions.md §6.3).
	kebab := fhir.Paths{Style: fhir.PathKebabLower, Overrides: map[string]string{"Patient": "patients"}}
	require.Equal(t, "claim-response", kebab.Segment("ClaimResponse"))
	require.Equal(t, "payment-reconciliation", kebab.Segment("PaymentReconciliation"))
	require.Equal(t, "subscription", kebab.Segment("Subscription"))
	require.Equal(t, "patients", kebab.Segment("Patient"))
}

func TestClient_Read(t *testing.T) {
	t.Parallel()
	t.Run("FHIRPaths", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, `{"resourceType":"ClaimResponse","id":"cr-1"}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base() + "/", Auth: fhir.Basic{Username: "u", Password: "p"}})
		raw, err := c.Read(context.Background(), "ClaimResponse", "cr-1")
		require.NoError(t, err)
		require.JSONEq(t, `{"resourceType":"ClaimResponse","id":"cr-1"}`, string(raw))
		req := srv.recorded()[0]
		require.Equal(t, basePath+"/ClaimResponse/cr-1", req.Path)
		require.Equal(t, "Basic dTpw", req.Auth)
		require.Contains(t, req.Accept, "application/fhir+json")
	})
	t.Run("HeyDontoKebabPaths", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != basePath+"/claim-response/cr-1" {
				writeJSON(w, 404, `{"resourceType":"OperationOutcome"}`)
				return
			}
			writeJSON(w, 200, `{"resourceType":"ClaimResponse","id":"cr-1"}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorHeyDonto})
		_, err := c.Read(context.Background(), "ClaimResponse", "cr-1")
		require.NoError(t, err)
	})
	t.Run("AnswerOfAnotherType", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, `{"resourceType":"Patient","id":"cr-1"}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Read(context.Background(), "ClaimResponse", "cr-1")
		require.ErrorContains(t, err, "not a ClaimResponse")
	})
	t.Run("RefusesPathInjection", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, fhir.Options{BaseURL: "http://127.0.0.1:1/fhir"})
		_, err := c.Read(context.Background(), "ClaimResponse", "../Patient/1")
		require.ErrorContains(t, err, "not a resource type and id")
	})
}

func TestClient_Errors(t *testing.T) {
	t.Parallel()
	t.Run("OperationOutcomeText", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 422, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",
				"diagnostics":"Criteria must be in the form \"{Resource Type}?[params]\""}]}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		var ae *fhir.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, 422, ae.Status)
		require.Equal(t, basePath+"/ClaimResponse/1", ae.Path)
		require.Contains(t, ae.Message, "must be in the form")
		require.True(t, ae.Permanent())
		require.False(t, fhir.IsGone(err))
	})
	t.Run("LongBodyCutAtRune", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, strings.Repeat("é", 300))
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		var ae *fhir.APIError
		require.ErrorAs(t, err, &ae)
		require.True(t, strings.HasSuffix(ae.Message, "…"))
		require.True(t, json.Valid([]byte(`"`+ae.Message+`"`)), "cut inside a rune")
		require.False(t, ae.Permanent())
	})
	t.Run("RetryAfterOf429", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			writeJSON(w, 429, `{"message":"slow down"}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		var ae *fhir.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, 7*time.Second, ae.RetryAfterDuration())
		require.Equal(t, "slow down", ae.Message)
	})
	t.Run("GoneIs404Or410", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) })
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		require.True(t, fhir.IsGone(err))
	})
	t.Run("RedirectNotFollowed", func(t *testing.T) {
		t.Parallel()
		other := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{}`) })
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Auth: fhir.Bearer{Token: "tok"}})
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		require.ErrorContains(t, err, "redirected, not followed")
		require.Empty(t, other.recorded(), "the credentials travelled to the redirect's address")
	})
	t.Run("StaticCredentialsNotRetriedOn401", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) })
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Auth: fhir.Bearer{Token: "s3cret-token"}})
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		require.True(t, fhir.HasStatus(err, 401))
		require.NotContains(t, err.Error(), "s3cret")
		require.Len(t, srv.recorded(), 1)
	})
}
