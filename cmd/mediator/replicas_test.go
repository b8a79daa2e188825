package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// TestReplicas_TwoOnPostgresOneKilled runs two mediator processes on one
// PostgreSQL database, spreads 500 claims over both, kills one with SIGKILL
// midway, and checks that every acknowledged claim reaches the CHT exactly
// once and that openIMIS holds one subscription.
func TestReplicas_TwoOnPostgresOneKilled(t *testing.T) {
	t.Parallel()
	const claims = 500
	dbURL := storetest.PostgresURL(t)
	bin := buildBinary(t)

	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass, ClaimSubscriptions: true})
	insurees := make([]string, 25)
	for i := range insurees {
		insurees[i] = fmt.Sprintf("4e2f9b10-0000-4000-8000-%012d", i)
		oi.AddPatient(insurees[i], openimistest.PatientFixture(insurees[i], strconv.Itoa(200000+i)))
	}
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	ch.SetLatency(100 * time.Millisecond)

	ports, bases := twoReplicaPorts(t)
	env := func(port int) []string {
		// One callback endpoint for both, as behind OpenHIM.
		return binaryEnv(t, port, bases[0], oi.URL, ch.URL,
			"DATABASE_URL="+dbURL, "UPSTREAM_TIMEOUT=1s", "WORKERS=4")

	}
	a := startBinary(t, bin, env(ports[0]), bases[0])
	b := startBinary(t, bin, env(ports[1]), bases[1])

	var (
		mu     sync.Mutex
		acked  []string
		killed bool
	)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < claims; i += 8 {
				claim := fmt.Sprintf("d1e5a7c0-0000-4000-8000-%012d", i)
				body := openimistest.ClaimResponseFixture(claim, "REP"+strconv.Itoa(i), insurees[i%len(insurees)])
				mu.Lock()
				base := bases[i%2]
				if killed {
					base = bases[0]
				}
				mu.Unlock()
				if postClaimTo(base, body) == http.StatusOK {
					mu.Lock()
					acked = append(acked, claim)
					mu.Unlock()
				}
			}
		})
	}
	require.Eventually(t, func() bool { return len(ch.Reports()) >= 100 }, 60*time.Second, 5*time.Millisecond)
	require.NoError(t, b.Process.Signal(syscall.SIGKILL))
	_ = b.Wait()
	mu.Lock()
	killed = true
	mu.Unlock()
	wg.Wait()

	require.Greater(t, len(acked), claims/2)
	t.Logf("%d claims acknowledged", len(acked))
	// Jobs the killed replica was running are rescued by River.
	requireDeliveredOnce(t, ch, acked, 150*time.Second)
	require.Len(t, oi.Subscriptions(), 1, "one subscription for both replicas")

	stopReplicas(t, a)
}
