package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/viper"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// gate is a TCP proxy that drops every connection until it is opened.
type gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &gate{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return g
}

func TestServe_WaitsForAnUnreachableStore(t *testing.T) {
	t.Parallel()
	db, err := url.Parse(storetest.PostgresURL(t)) // skips without TEST_DATABASE_URL
	require.NoError(t, err)
	g := newGate(t, db.Host)
	db.Host = g.ln.Addr().String()

	oi, ch := newFakes(t)
	port := freePort(t)
	cfg := serveConfig(t, oi, ch, map[string]string{"DATABASE_URL": db.String()})
	cfg.Port = port

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, version, logs, ready) }()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// The database does not answer: the process stays up, alive and not
	// ready, and refuses claims it could not store.
	require.Eventually(t, func() bool {
		status, body := get("/ready")
		return status == http.StatusServiceUnavailable && bytes.Contains([]byte(body), []byte("store unreachable"))
	}, 10*time.Second, 20*time.Millisecond)
	status, _ := get("/health")
	require.Equal(t, http.StatusOK, status)
	claim := openimistest.ClaimResponseFixture(openimistest.SeedClaimID, "codeTest", openimistest.SeedPatientID)
	require.Equal(t, http.StatusServiceUnavailable, postClaimTo(base, claim))
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("store unreachable; waiting")) },
		5*time.Second, 20*time.Millisecond)
	require.NotContains(t, logs.String(), mediatorPass)

	// Once it answers, the mediator starts on the same port.
	g.open.Store(true)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(45 * time.Second):
		t.Fatal("the mediator did not start once the database answered")
	}
	require.Eventually(t, func() bool { status, _ := get("/ready"); return status == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusOK, postClaimTo(base, claim))
	require.Eventually(t, func() bool { return len(ch.Reports()) == 1 }, 10*time.Second, 20*time.Millisecond)

	requireStops(t, cancel, done)
}

// serveConfig is a valid configuration against the fakes, with edits, on
// any free port.
func serveConfig(t *testing.T, oi *openimistest.Server, ch *chttest.Server, edits map[string]string) config.Config {
	t.Helper()
	v := viper.New()
	for k, val := range map[string]string{
		"OPENIMIS_API_URL":               oi.URL,
		"OPENIMIS_USERNAME":              "api",
		"OPENIMIS_PASSWORD":              imisPass,
		"CHT_OPENIMIS_CALLBACK_ENDPOINT": "http://127.0.0.1:1/mediator/claim-response",
		"CHT_URL":                        ch.URL,
		"CHT_USERNAME":                   chttest.DefaultUsername,
		"CHT_PASSWORD":                   chtPass,
		"CHT_PLACE_ID":                   chttest.DefaultPlaceID,
		"MEDIATOR_USERNAME":              "openimis",
		"MEDIATOR_PASSWORD":              mediatorPass,
		"DATABASE_URL":                   storetest.DatabaseURL(t),
	} {
		v.Set(k, val)
	}
	for k, val := range edits {
		v.Set(k, val)
	}
	cfg, err := config.Load(v)
	require.NoError(t, err)
	cfg.Port = 0
	return cfg
}

// newFakes starts a fake openIMIS (user api) and a fake CHT.
func newFakes(t *testing.T) (*openimistest.Server, *chttest.Server) {
	t.Helper()
	return openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass}),
		chttest.NewServer(t, chttest.Options{Password: chtPass})
}

func TestServe_StopWhileWaitingForTheStoreIsClean(t *testing.T) {
	t.Parallel()
	g := newGate(t, "127.0.0.1:1") // never opens
	oi, ch := newFakes(t)
	cfg := serveConfig(t, oi, ch, map[string]string{"DATABASE_URL": "postgres://mediator@" + g.ln.Addr().String() + "/mediator"})
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, version, logs, nil) }()
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("store unreachable; waiting")) },
		10*time.Second, 10*time.Millisecond)
	requireStops(t, cancel, done) // SIGTERM: a stop while waiting is a clean stop
}

func TestServe_RefusesASubscriptionEndInThePast(t *testing.T) {
	t.Parallel()
	oi, ch := newFakes(t)
	cfg := serveConfig(t, oi, ch, map[string]string{"SUBSCRIPTION_END": "2020-01-01T00:00:00Z"})
	err := app.Serve(context.Background(), cfg, version, io.Discard, nil)
	require.ErrorContains(t, err, "SUBSCRIPTION_END 2020-01-01T00:00:00Z is in the past")
}

// requireStops ends a running app.Serve (SIGTERM) and checks that it stops
// cleanly.
func requireStops(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
