package mediator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
)

// While the store is unreachable at start, the port answers: /health 200,
// /ready and everything else 503, and a request OpenHIM forwarded gets its
// answer in the mediator envelope, as once the mediator serves.
func TestStartingServer_AnswersWhileTheStoreIsUnreachable(t *testing.T) {
	t.Parallel()
	s, err := mediator.Listen("127.0.0.1:0", "urn:mediator:test", true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	s.StoreUnreachable(nil)
	base := "http://" + s.Addr().String()

	do := func(method, path string, openhim bool) (*http.Response, []byte) {
		req, err := http.NewRequest(method, base+path, nil)
		require.NoError(t, err)
		if openhim {
			req.Header.Set("X-OpenHIM-TransactionID", "tx-1")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	resp, body := do(http.MethodGet, "/health", false)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	resp, _ = do(http.MethodHead, "/health", false)
	require.Equal(t, http.StatusOK, resp.StatusCode, "probes may use HEAD")

	resp, body = do(http.MethodGet, "/ready", false)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.JSONEq(t, `{"status":"not ready","reasons":["store unreachable: waiting for the database"],"openhim":"registering"}`, string(body))

	resp, body = do(http.MethodPost, "/mediator/claim-response", true)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "application/json+openhim", resp.Header.Get("Content-Type"))
	var env openhim.Envelope
	require.NoError(t, json.Unmarshal(body, &env))
	require.Equal(t, "urn:mediator:test", env.URN)
	require.Equal(t, "Failed", env.Status)
	require.Equal(t, http.StatusServiceUnavailable, env.Response.Status)
	require.Equal(t, "5", env.Response.Headers["retry-after"])
	require.JSONEq(t, `{"error":"the mediator is starting: store unreachable: waiting for the database"}`, env.Response.Body)
}
