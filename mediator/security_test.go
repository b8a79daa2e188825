package mediator_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

func TestSecurity_EveryMediatorRouteNeedsCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, path := range []string{"/mediator/claim-response", "/mediator/claims-feedback", "/mediator/claim-response/", "/mediator/claims-feedback/"} {
		resp := b.post(t, path, "application/json", []byte(`{}`), false)
		require.Equal(t, http.StatusUnauthorized, resp.status, path)
	}
	// Unknown routes and methods answer without reaching a handler.
	resp := b.post(t, "/mediator/other", "application/json", []byte(`{}`), true)
	require.Equal(t, http.StatusNotFound, resp.status)
	r, err := b.srv.Client().Get(b.srv.URL + "/mediator/claim-response")
	require.NoError(t, err)
	body, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	require.Contains(t, string(body), `"resourceType":"OperationOutcome"`, "the claim route answers in FHIR")
}

func TestServe_HeaderLimitAndGracefulStop(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	srv, err := mediator.Listen("127.0.0.1:0", b.opts.Registration.URN, false)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, b.m) }()
	base := "http://" + srv.Addr().String()

	req, err := http.NewRequest(http.MethodGet, base+"/health", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	resp, err = http.Get(base + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	require.NoError(t, <-done)
	_, err = http.Get(base + "/health")
	require.Error(t, err, "no longer accepting")
}

func TestSecurity_RequestIDsAreSanitised(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for id, echoed := range map[string]bool{"abc-123_x.y": true, "bad id\"><script>": false, strings.Repeat("a", 65): false} {
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/health", nil)
		require.NoError(t, err)
		req.Header.Set("X-Request-Id", id)
		resp, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		got := resp.Header.Get("X-Request-Id")
		require.NotEmpty(t, got)
		require.Equal(t, echoed, got == id, id)
	}
}
