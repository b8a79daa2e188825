package main

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// TestCrash_FHIRSourceKilledMidDelivery (design G4) configures a Kodjin
// source through the environment, as an operator does, lets the fake PUT
// claim outcomes to the real binary, kills it with SIGKILL while it
// delivers them, and starts it again on the same store: every claim the
// source holds reaches the CHT exactly once, those notified while it was
// down through the catch-up search.
func TestCrash_FHIRSourceKilledMidDelivery(t *testing.T) {
	t.Parallel()
	const claims = 60
	bin := buildBinary(t)

	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass})
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	ch.SetLatency(20 * time.Millisecond)
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, DeliveryTimeout: 2 * time.Second})
	for i := range 10 {
		kodjin.AddPatient(fmt.Appendf(nil, `{"resourceType":"Patient","id":"p%d","name":[{"family":"Rai","given":["P%d"]}]}`, i, i))
	}

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := binaryEnv(t, port, base, oi.URL, ch.URL,
		"FHIR_SOURCES=kodjin",
		"FHIR_KODJIN_URL="+kodjin.BaseURL,
		"FHIR_KODJIN_VENDOR=kodjin",
		"FHIR_KODJIN_POLL_INTERVAL=1s",
	)

	first := startBinary(t, bin, env, base)
	require.Eventually(t, func() bool {
		subs := kodjin.Subscriptions()
		return len(subs) == 1 && subs[0].Status == "active"
	}, 20*time.Second, 10*time.Millisecond, "the mediator subscribes at start")
	require.Equal(t, base+"/mediator/fhir/kodjin", kodjin.Subscriptions()[0].Endpoint, "the default callback")

	created := make(chan struct{})
	go func() {
		defer close(created)
		for i := range claims {
			kodjin.CreateClaimResponse(fmt.Appendf(nil, `{"resourceType":"ClaimResponse","id":"k-%03d","status":"active",
				"identifier":[{"value":"K-%d"}],"patient":{"reference":"Patient/p%d"},"created":"2025-06-30"}`, i, i, i%10))
		}
	}()
	require.Eventually(t, func() bool { return len(ch.Reports()) >= 10 }, 30*time.Second, time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	<-created
	require.Less(t, len(ch.Reports()), claims, "the kill came before the end")

	second := startBinary(t, bin, env, base)
	var acked []string
	for i := range claims {
		acked = append(acked, fmt.Sprintf("k-%03d", i))
	}
	requireDeliveredOnce(t, ch, acked, 60*time.Second)
	people := map[any]int{}
	for _, p := range ch.People() {
		people[p.Doc["source_patient_id"]]++
	}
	require.Len(t, people, 10, "one person per patient: %v", people)
	require.Len(t, kodjin.Subscriptions(), 1, "the restart found its subscription")

	require.NoError(t, second.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.Wait())
}
