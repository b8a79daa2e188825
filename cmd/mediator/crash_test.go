package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// TestCrash_KilledMidDeliveryLosesAndDuplicatesNothing runs the real binary,
// posts 200 claims, kills it with SIGKILL while it delivers them, starts it
// again on the same store, and checks that every acknowledged claim reached
// the CHT exactly once.
func TestCrash_KilledMidDeliveryLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	const claims = 200
	bin := buildBinary(t)

	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass})
	insurees := make([]string, 20)
	for i := range insurees {
		insurees[i] = fmt.Sprintf("9b1d7a40-0000-4000-8000-%012d", i)
		oi.AddPatient(insurees[i], openimistest.PatientFixture(insurees[i], strconv.Itoa(100000+i)))
	}
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	// Each CHT answer comes 20 ms after the CHT stored the document, so a kill
	// often lands between the two: the lost-answer case.
	ch.SetLatency(20 * time.Millisecond)

	port := freePort(t)
	env := binaryEnv(t, port, "http://127.0.0.1:"+strconv.Itoa(port), oi.URL, ch.URL)
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	first := startBinary(t, bin, env, base)
	var (
		mu    sync.Mutex
		acked []string
	)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < claims; i += 8 {
				claim := fmt.Sprintf("c7a51f00-0000-4000-8000-%012d", i)
				body := openimistest.ClaimResponseFixture(claim, "CRASH"+strconv.Itoa(i), insurees[i%len(insurees)])
				if postClaimTo(base, body) == http.StatusOK {
					mu.Lock()
					acked = append(acked, claim)
					mu.Unlock()
				}
			}
		})
	}
	// Kill once delivery is under way but far from done.
	require.Eventually(t, func() bool { return len(ch.Reports()) >= 20 }, 30*time.Second, time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	wg.Wait()
	delivered := len(ch.Reports())
	require.Less(t, delivered, claims, "the kill came before the end")
	require.NotEmpty(t, acked)

	second := startBinary(t, bin, env, base)
	requireDeliveredOnce(t, ch, acked, 60*time.Second)
	t.Logf("%d claims acknowledged, %d delivered before the kill", len(acked), delivered)

	// SIGTERM is a graceful shutdown: exit status 0.
	require.NoError(t, second.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.Wait())
}

// binaryEnv is the environment of a mediator binary listening on port,
// against the fake openIMIS at oiURL and CHT at chURL (their test
// credentials), with a SQLite store in a temporary directory, catch-up
// polling off, a 5 s upstream timeout and 8 workers; callbacks go to
// callbackBase. extra adds or replaces variables (NAME=value; for a
// repeated name the last one counts).
func binaryEnv(t *testing.T, port int, callbackBase, oiURL, chURL string, extra ...string) []string {
	t.Helper()
	env := append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"OPENIMIS_API_URL="+oiURL,
		"OPENIMIS_USERNAME=api",
		"OPENIMIS_PASSWORD="+imisPass,
		"CHT_OPENIMIS_CALLBACK_ENDPOINT="+callbackBase+"/mediator/claim-response",
		"CHT_URL="+chURL,
		"CHT_USERNAME="+chttest.DefaultUsername,
		"CHT_PASSWORD="+chtPass,
		"CHT_PLACE_ID="+chttest.DefaultPlaceID,
		"MEDIATOR_USERNAME=openimis",
		"MEDIATOR_PASSWORD="+mediatorPass,
		"DATABASE_URL=sqlite://"+filepath.Join(t.TempDir(), "mediator.db"),
		"CLAIM_POLL_INTERVAL=0",
		"UPSTREAM_TIMEOUT=5s",
		"WORKERS=8",
	)
	return append(env, extra...)
}

// requireDeliveredOnce waits until every acknowledged claim has its report
// in the CHT, then checks one report per claim and one person per insuree.
func requireDeliveredOnce(t *testing.T, ch *chttest.Server, acked []string, wait time.Duration) {
	t.Helper()
	want := map[string]bool{}
	for _, c := range acked {
		want[c] = true
	}
	counts := map[string]int{}
	require.Eventually(t, func() bool {
		clear(counts)
		for _, r := range ch.Reports() {
			if c, ok := r.Fields["op_claim_uuid"].(string); ok {
				counts[c]++
			}
		}
		for c := range want {
			if counts[c] == 0 {
				return false
			}
		}
		return true
	}, wait, 20*time.Millisecond, "every acknowledged claim reaches the CHT")
	for c := range want {
		require.Equal(t, 1, counts[c], "claim %s reported once", c)
	}
	people := map[string]int{}
	for _, p := range ch.People() {
		id, _ := p.Doc["openimis_id"].(string)
		if id == "" {
			continue // the patient of another FHIR source
		}
		people[id]++
	}
	for id, n := range people {
		require.Equal(t, 1, n, "insuree %s created once", id)
	}
}

// startBinary starts the mediator and waits until it answers /health.
func startBinary(t *testing.T, bin string, env []string, base string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 10*time.Millisecond, "the mediator did not start: %s", &logs)
	return cmd
}

func postClaimTo(base string, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, base+"/mediator/claim-response", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("openimis", mediatorPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// buildBinary builds the mediator command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mediator")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}
