package mediator_test

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// Kodjin (K4): while the mediator's store cannot commit, its callback
// answers 503; Kodjin retries, turns the subscription error, then off. Once
// the store is back, the upkeep puts the subscription back to requested,
// Kodjin activates it, and the claims of the outage arrive by the search,
// once each.
func TestSource_KodjinOffAfterRefusedDeliveriesIsRepaired(t *testing.T) {
	t.Parallel()
	clock := fhirtest.NewFixedClock(time.Now())
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, Clock: clock, Retries: 2, RetryInterval: time.Second})
	var full atomic.Bool
	b := setup(t, setupOpts{
		wrapStore: func(st storetype.Store) storetype.Store { return fullStore{Store: st, full: &full} },
		edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
			edit: func(s *mediator.Source) { s.PollInterval = 300 * time.Millisecond }}),
	})
	sub := waitSubscription(t, kodjin, "active")

	full.Store(true)
	kodjin.CreateClaimResponse(sourceClaim("cr-503", "pat-1", "CLM-503", "2025-06-30"))
	got, _ := kodjin.Subscription(sub.ID)
	require.Equal(t, "error", got.Status, "a 503 is a failed delivery")
	for range 2 {
		clock.Advance(time.Second)
		kodjin.Tick()
	}
	got, _ = kodjin.Subscription(sub.ID)
	require.Equal(t, "off", got.Status, "retries exhausted")
	for _, d := range kodjin.Deliveries() {
		require.Equal(t, http.StatusServiceUnavailable, d.Status, "the callback refused what it could not store")
	}

	full.Store(false)
	repaired := waitSubscription(t, kodjin, "active")
	require.Equal(t, sub.ID, repaired.ID, "put back to requested by PUT, then activated")
	b.waitReports(t, "cr-503", 1)
	b.waitLog(t, "source subscription repaired")
	time.Sleep(500 * time.Millisecond) // more searches
	require.Len(t, b.reportsFor("cr-503"), 1)
}

// Kodjin (K5): the server re-sends an older version after a newer one (its
// retries go newest first): one report per claim, of the version received
// first.
func TestSource_KodjinOlderVersionAfterNewer(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin})})
	waitSubscription(t, kodjin, "active")

	kodjin.CreateClaimResponse(sourceClaim("cr-v", "pat-1", "CLM-V1", "2025-06-30"))
	kodjin.UpdateClaimResponse("cr-v", sourceClaim("cr-v", "pat-1", "CLM-V2", "2025-06-30"))
	// The first version again, as a late re-send.
	r := b.do(t, http.MethodPut, "/mediator/fhir/kodjin/ClaimResponse/cr-v", "application/fhir+json",
		sourceClaim("cr-v", "pat-1", "CLM-V1", "2025-06-30"), true)
	require.Equal(t, http.StatusOK, r.status)
	reports := b.waitReports(t, "cr-v", 1)
	b.waitLog(t, `"claim_id":"cr-v"`, "claim delivered to the CHT")
	time.Sleep(300 * time.Millisecond)
	require.Len(t, b.reportsFor("cr-v"), 1, "one report per claim, whatever the order of its versions")
	require.Equal(t, "CLM-V1", reports[0].Fields["op_claim_id"], "the version received first")
}

// A health worker's feedback about a claim that came from another FHIR
// source is kept for an operator with its reason, not sent to openIMIS,
// which does not know the claim.
func TestSource_FeedbackOnASourceClaimIsKeptWithItsReason(t *testing.T) {
	t.Parallel()
	const claimID = "0b8f4c1e-5d2a-4f6b-9c3e-7a1d2e3f4a5b" // a UUID, as CHT's feedback form wants
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin})})
	waitSubscription(t, kodjin, "active")
	kodjin.CreateClaimResponse(sourceClaim(claimID, "pat-1", "CLM-F", "2025-06-30"))
	b.waitReports(t, claimID, 1)
	require.Eventually(t, func() bool {
		_, ok, err := b.store.Delivered(t.Context(), "fhir_claim", "kodjin/claimresponse/"+claimID)
		require.NoError(t, err)
		return ok
	}, 15*time.Second, 10*time.Millisecond)

	body, err := json.Marshal(map[string]any{
		"doc": map[string]any{"_id": "cht-report-src-1"}, "care_rendered": "yes", "payment_asked": "no",
		"drug_prescribed": "yes", "drug_received": "no", "assessment_rating": "4", "claimUUID": claimID,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, b.postFeedback(t, body).status)
	b.waitLog(t, `the claim came from the FHIR source \"kodjin\", which has no feedback destination`)
	require.Eventually(t, func() bool {
		jobs, err := b.store.ListJobs(t.Context(), storetype.JobFilter{Kinds: []string{"feedback"}, Limit: 10})
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		return jobs[0].State == rivertype.JobStateCancelled
	}, 15*time.Second, 10*time.Millisecond, "kept for an operator")
	require.Empty(t, b.oi.Communications(), "nothing sent to openIMIS")
}
