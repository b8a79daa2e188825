package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// TestBackup_WhileServing backs up the store a running mediator holds: one
// self-contained SQLite file with the claim it received, and exit 0.
func TestBackup_WhileServing(t *testing.T) {
	t.Parallel()
	oi, ch := newFakes(t)
	cfg := serveConfig(t, oi, ch, nil)
	if storetest.Postgres() {
		err := backupTo(context.Background(), cfg.DatabaseURL, filepath.Join(t.TempDir(), "b.db"), &bytes.Buffer{})
		require.ErrorContains(t, err, "pg_dump")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, version, &syncBuffer{}, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not bind")
	}
	defer requireStops(t, cancel, done)

	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/mediator/claim-response",
		bytes.NewReader(openimistest.ClaimResponseFixture(openimistest.SeedClaimID, "codeTest", openimistest.SeedPatientID)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("openimis", mediatorPass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return len(ch.Reports()) == 1 }, 10*time.Second, 20*time.Millisecond)

	dest := filepath.Join(t.TempDir(), "mediator-backup.db")
	var out bytes.Buffer
	require.NoError(t, backupTo(context.Background(), cfg.DatabaseURL, dest, &out), "exit 0")
	require.Contains(t, out.String(), "backup written to "+dest)
	entries, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	require.Len(t, entries, 1, "one self-contained file")
	require.ErrorContains(t, backupTo(context.Background(), cfg.DatabaseURL, dest, &out), "exists")

	b, err := store.Open(context.Background(), "sqlite://"+dest)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.StartQueue(context.Background(), &river.Config{}))
	jobs, err := b.ListJobs(context.Background(), storetype.JobFilter{Kinds: []string{"claim"}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, jobs, 1, "the claim's job is in the backup")
	require.True(t, strings.Contains(string(jobs[0].EncodedArgs), openimistest.SeedClaimID))
}
