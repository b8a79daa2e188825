package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

const (
	imisPass     = "imis-Secret-1"
	chtPass      = "cht-Secret-2"
	mediatorPass = "mediator-Secret-3"
)

// TestServe_EndToEnd runs the wired program against the fakes: a claim posted
// to it becomes a CHT report, and the logs of the whole run hold no secret.
func TestServe_EndToEnd(t *testing.T) {
	t.Parallel()
	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass, ClaimSubscriptions: true})
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	him := openhimtest.NewServer(t, openhimtest.Options{}) // HTTPS with a self-signed certificate

	cfg := serveConfig(t, oi, ch, map[string]string{
		"OPENHIM_API_URL":           him.URL,
		"OPENHIM_USERNAME":          openhimtest.RootEmail,
		"OPENHIM_PASSWORD":          openhimtest.RootPassword,
		"OPENHIM_TRUST_SELF_SIGNED": "true",
		"MEDIATOR_URL":              "http://127.0.0.1:1",
		"LOG_LEVEL":                 "debug",
	})

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, version, logs, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not bind")
	}
	base := "http://" + addr
	require.NoError(t, healthcheck(ctx, "", addr[strings.LastIndex(addr, ":")+1:]))
	require.Error(t, healthcheck(ctx, "", "1"), "nothing listens on port 1")

	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	req, err := http.NewRequest(http.MethodPost, base+"/mediator/claim-response",
		bytes.NewReader(openimistest.ClaimResponseFixture(openimistest.SeedClaimID, "codeTest", openimistest.SeedPatientID)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("openimis", mediatorPass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var answer map[string]string
	require.NoError(t, json.Unmarshal(body, &answer))
	require.Equal(t, "accepted", answer["status"])

	require.Eventually(t, func() bool { return len(ch.Reports()) == 1 && len(oi.Subscriptions()) == 1 },
		10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(him.Heartbeats()) > 0 }, 10*time.Second, 20*time.Millisecond)

	// Requests to all three systems are timed, with ids out of the paths.
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{
		`mediator_upstream_request_duration_seconds_count{operation="POST /api/v2/records",status="200",system="cht"}`,
		`mediator_upstream_request_duration_seconds_count{operation="POST /api/api_fhir_r4/Subscription/",status="201",system="openimis"}`,
		`mediator_upstream_request_duration_seconds_count{operation="POST /mediators",status="201",system="openhim"}`,
		`mediator_upstream_request_duration_seconds_count{operation="POST /mediators/:id/heartbeat",status="200",system="openhim"}`,
	} {
		require.True(t, strings.Contains(string(metrics), series), "/metrics lacks %s", series)
	}

	requireStops(t, cancel, done)
	out := logs.String()
	require.Contains(t, out, `"message":"stopped"`)
	for _, secret := range []string{imisPass, chtPass, mediatorPass, openhimtest.RootPassword} {
		require.NotContains(t, out, secret, "a secret leaked into the logs")
	}
	// The subscription header's Basic credentials are not logged either.
	require.NotContains(t, out, "Basic ")
}

func TestRun_Dispatch(t *testing.T) {
	t.Parallel()
	// run reads the real environment; configuration errors are tested on the
	// binary below and in package config.
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"version"}, &out, &errOut))
	require.Equal(t, version+"\n", out.String())
	err := run(context.Background(), []string{"frobnicate"}, &out, &errOut)
	require.ErrorContains(t, err, "unknown command frobnicate")
}

// TestMain_StartupErrorExitsNonZero runs the binary without configuration.
func TestMain_StartupErrorExitsNonZero(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(buildBinary(t))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CHT_URL=not a url"}
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 1, "one line: %s", out)
	require.Contains(t, lines[0], "OPENIMIS_API_URL is required")
	require.Contains(t, lines[0], "CHT_URL must be an absolute")
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// serve runs app.Serve with cfg until the test ends and returns its listen
// address.
func serve(t *testing.T, cfg config.Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, version, io.Discard, ready) }()
	t.Cleanup(func() { requireStops(t, cancel, done) })
	select {
	case addr := <-ready:
		return addr
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not bind")
	}
	return ""
}

// TestServe_ClaimBackfill: CLAIM_BACKFILL sets how far back the first
// catch-up poll of a new store looks: a claim of ten days ago reaches the
// CHT with 30d, which the default 24h would miss.
func TestServe_ClaimBackfill(t *testing.T) {
	t.Parallel()
	oi, ch := newFakes(t)
	const old = "0ddc1a1e-0000-4000-8000-000000000010"
	oi.AddClaim(openimistest.ClaimResponseFixture(old, "OLD10", openimistest.SeedPatientID), time.Now().AddDate(0, 0, -10))
	serve(t, serveConfig(t, oi, ch, map[string]string{"CLAIM_BACKFILL": "30d"}))
	require.Eventually(t, func() bool {
		for _, r := range ch.Reports() {
			if r.Fields["op_claim_uuid"] == old {
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "the first poll brought the claim of ten days ago")
}

// TestServe_ListenAddress: LISTEN_ADDRESS chooses the interface; by default
// the mediator listens on every one.
func TestServe_ListenAddress(t *testing.T) {
	t.Parallel()
	oi, ch := newFakes(t)
	addr := serve(t, serveConfig(t, oi, ch, map[string]string{"LISTEN_ADDRESS": "127.0.0.1"}))
	host, _, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)

	addr = serve(t, serveConfig(t, oi, ch, nil))
	host, _, err = net.SplitHostPort(addr)
	require.NoError(t, err)
	require.True(t, net.ParseIP(host).IsUnspecified(), "every interface: %s", addr)
}

// healthcheck reads PORT and LISTEN_ADDRESS as serve does: from the
// environment, then from .env in the working directory.
func TestHealthcheck_ReadsTheEnvFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	t.Setenv("PORT", "")
	t.Setenv("LISTEN_ADDRESS", "")
	t.Chdir(t.TempDir())
	require.NoError(t, os.WriteFile(".env", []byte("PORT="+u.Port()+"\nLISTEN_ADDRESS="+u.Hostname()+"\n"), 0o600))
	require.NoError(t, run(t.Context(), []string{"healthcheck"}, io.Discard, io.Discard))
}
