package mediator_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// deliverySlots reads the delivery slots /ready reports.
func (b *testBundle) deliverySlots(t *testing.T) int {
	t.Helper()
	_, body := b.ready(t)
	n, ok := body["delivery_slots"].(float64)
	require.True(t, ok, "/ready has delivery_slots: %v", body)
	return int(n)
}

// While the intake acknowledges slower than its target, the delivery jobs
// are paced down to one upstream slot, and still deliver on it; once the
// claims stop coming, they get every slot back. Every claim is delivered
// exactly once.
func TestPacing_SlowAcknowledgementsPaceTheWorkers(t *testing.T) {
	t.Parallel()
	const workers = 8
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		o.Workers = workers
		o.AckTarget = time.Nanosecond // every acknowledgement is slower
	}})
	require.Equal(t, workers, b.deliverySlots(t), "all slots before any intake")
	b.cht.SetLatency(5 * time.Millisecond)

	var claims []string
	post := func() {
		i := len(claims)
		insuree := fmt.Sprintf("9ace0000-0000-4000-8000-%012d", i%5)
		b.oi.AddPatient(insuree, openimistest.PatientFixture(insuree, fmt.Sprintf("%d", 700+i%5)))
		claim := fmt.Sprintf("9ace1111-1111-4111-8111-%012d", i)
		claims = append(claims, claim)
		resp := b.postClaim(t, claimBody(t, claim, insuree, "2025-06-30"))
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	}
	// Claims keep coming until the pacer is down to one slot, /metrics says
	// so too, and a claim was delivered meanwhile: delivery never stops.
	deliveredAtOne := -1
	deadline := time.Now().Add(2 * time.Minute)
	for {
		require.True(t, time.Now().Before(deadline), "the pacer never came down to one slot with a delivery on it")
		post()
		if b.deliverySlots(t) != 1 || !strings.Contains(b.scrape(t), "\nmediator_delivery_slots 1\n") {
			continue
		}
		reports := len(b.cht.Reports())
		if deliveredAtOne < 0 {
			deliveredAtOne = reports
			continue
		}
		if reports > deliveredAtOne {
			break
		}
	}
	b.requireExactlyOnce(t, claims)
	require.Eventually(t, func() bool { return b.deliverySlots(t) == workers }, time.Minute, 10*time.Millisecond,
		"every slot back once the intake is quiet")
	require.Contains(t, b.scrape(t), fmt.Sprintf("\nmediator_delivery_slots %d\n", workers))
}
