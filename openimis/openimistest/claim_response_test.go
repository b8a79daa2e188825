package openimistest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// claimIDs returns n claim ids in a stable order.
func claimIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
	}
	return out
}

// addClaims stores n claims created one minute apart from start, in reverse
// insertion order to prove the server sorts by creation time.
func addClaims(srv *openimistest.Server, n int, start time.Time) []string {
	ids := claimIDs(n)
	for i := n - 1; i >= 0; i-- {
		srv.AddClaim(openimistest.ClaimResponseFixture(ids[i], fmt.Sprintf("C%03d", i+1), openimistest.SeedPatientID),
			start.Add(time.Duration(i)*time.Minute))
	}
	return ids
}

func TestClaimResponse_Paging(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{SkipSeed: true})
	ids := addClaims(b.srv, 25, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	base := b.srv.FHIRURL() + "ClaimResponse/"

	t.Run("FirstPage", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "ClaimResponse/?_lastUpdated=ge2025-06-01T00:00:00&_count=10"})
		bundle := decodeBundle(t, resp)
		require.Equal(t, 25, bundle.Total)
		require.Equal(t, ids[:10], bundle.ids())
		require.Equal(t, base+ids[0], bundle.Entry[0].FullURL)
		require.Equal(t, base+"?_lastUpdated=ge2025-06-01T00:00:00&_count=10", bundle.link(t, "self"))
		require.Equal(t, base+"?_count=10&_lastUpdated=ge2025-06-01T00%3A00%3A00&page-offset=2", bundle.link(t, "next"))
		require.Empty(t, bundle.link(t, "previous"))
		require.Contains(t, string(b.do(t, req{path: "ClaimResponse/?_count=10"}).body), `"url":"`+url.QueryEscape(base+"?_count=10&page-offset=2")+`"`,
			"links are whole URLs encoded like quote_plus")
	})

	t.Run("MiddleAndLastPage", func(t *testing.T) {
		t.Parallel()
		bundle := decodeBundle(t, b.do(t, req{path: "ClaimResponse/?_count=10&page-offset=2"}))
		require.Equal(t, ids[10:20], bundle.ids())
		require.Equal(t, base+"?_count=10", bundle.link(t, "previous"), "page 1 drops page-offset")
		require.Equal(t, base+"?_count=10&page-offset=3", bundle.link(t, "next"))

		bundle = decodeBundle(t, b.do(t, req{path: "ClaimResponse/?_count=10&page-offset=3"}))
		require.Equal(t, ids[20:], bundle.ids())
		require.Empty(t, bundle.link(t, "next"))
		require.Equal(t, base+"?_count=10&page-offset=2", bundle.link(t, "previous"))

		bundle = decodeBundle(t, b.do(t, req{path: "ClaimResponse/?_count=10&page-offset=last"}))
		require.Equal(t, ids[20:], bundle.ids())
	})

	t.Run("PastTheEndIs404", func(t *testing.T) {
		t.Parallel()
		for _, offset := range []string{"4", "0", "-1", "abc", "2.0"} {
			b.do(t, req{path: "ClaimResponse/?_count=10&page-offset=" + offset}).
				requireOutcome(t, http.StatusNotFound, "fatal", "Invalid page.")
		}
	})

	t.Run("DefaultAndInvalidCount", func(t *testing.T) {
		t.Parallel()
		for _, q := range []string{"", "?_count=0", "?_count=abc", "?_count=-5"} {
			bundle := decodeBundle(t, b.do(t, req{path: "ClaimResponse/" + q}))
			require.Len(t, bundle.Entry, 10, q)
		}
	})

	t.Run("EmptyResultFirstPageIsFine", func(t *testing.T) {
		t.Parallel()
		bundle := decodeBundle(t, b.do(t, req{path: "ClaimResponse/?_lastUpdated=gt2030-01-01T00:00:00"}))
		require.Equal(t, 0, bundle.Total)
		require.Empty(t, bundle.Entry)
		b.do(t, req{path: "ClaimResponse/?_lastUpdated=gt2030-01-01T00:00:00&page-offset=2"}).
			requireOutcome(t, http.StatusNotFound, "fatal", "Invalid page.")
	})
}

func TestClaimResponse_LastUpdated(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{SkipSeed: true, CountCacheTTL: -1})
	ids := addClaims(b.srv, 5, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) // 00:00 .. 00:04

	tests := []struct {
		query string
		want  []string
	}{
		{query: "_lastUpdated=ge2025-06-01T00:02:00", want: ids[2:]},
		{query: "_lastUpdated=gt2025-06-01T00:02:00", want: ids[3:]},
		{query: "_lastUpdated=le2025-06-01T00:01:00", want: ids[:2]},
		{query: "_lastUpdated=lt2025-06-01T00:01:00", want: ids[:1]},
		{query: "_lastUpdated=2025-06-01T00:03:00", want: ids[3:4]},
		{query: "_lastUpdated=ne2025-06-01T00:03:00", want: []string{ids[0], ids[1], ids[2], ids[4]}},
		{query: "_lastUpdated=sa2025-06-01T00:04:00", want: ids[4:]},
		{query: "_lastUpdated=ge2025-06-01T00%3A03%3A00", want: ids[3:]},
		{query: "_lastUpdated=ge2025-06-01T00:00:00&_lastUpdated=ge2025-06-01T00:04:00", want: ids[4:]},
		{query: "_lastUpdated=le2025-06-01T00:04:00&_lastUpdated=ge2025-06-01T00:03:00", want: ids[3:]},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, decodeBundle(t, b.do(t, req{path: "ClaimResponse/?" + tt.query})).ids())
		})
	}

	for _, bad := range []string{
		"ge2025-06-01T00:00:00Z", "ge2025-06-01T00:00:00.000", "ge2025-06-01T00:00:00+00:00", "ge2025-06-01",
		"ge2025-06-01+00:00:00", "", "gte2025-06-01T00:00:00",
	} {
		t.Run("Bad"+bad, func(t *testing.T) {
			t.Parallel()
			b.do(t, req{path: "ClaimResponse/?_lastUpdated=" + bad}).
				requireOutcome(t, http.StatusInternalServerError, "error", "_lastUpdated value is not a valid datetime")
		})
	}

	t.Run("BadFormatAlsoBreaksRetrieve", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "ClaimResponse/" + ids[0] + "/?_lastUpdated=2025"})
		require.Equal(t, http.StatusInternalServerError, resp.status)
	})
}

func TestClaimResponse_CountCache(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{SkipSeed: true})
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	q := "ClaimResponse/?_lastUpdated=ge2025-06-01T00:00:00"
	require.Equal(t, 0, decodeBundle(t, b.do(t, req{path: q})).Total)

	b.srv.AddClaim(openimistest.ClaimResponseFixture(uuid.NewString(), "NEW", openimistest.SeedPatientID), start)
	stale := decodeBundle(t, b.do(t, req{path: q}))
	require.Equal(t, 0, stale.Total, "identical query: cached count hides the new claim")
	require.Empty(t, stale.Entry)

	fresh := decodeBundle(t, b.do(t, req{path: "ClaimResponse/?_lastUpdated=ge2025-05-31T23:59:59"}))
	require.Equal(t, 1, fresh.Total)

	b.clock.Add(time.Hour)
	require.Equal(t, 1, decodeBundle(t, b.do(t, req{path: q})).Total)
}

func TestClaimResponse_Get(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})

	t.Run("ByUUID", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{openimistest.SeedClaimID, strings.ToUpper(openimistest.SeedClaimID)} {
			resp := b.do(t, req{path: "ClaimResponse/" + id + "/"})
			require.Equal(t, http.StatusOK, resp.status)
			m := resp.object(t)
			require.Equal(t, "ClaimResponse", m["resourceType"])
			require.Equal(t, openimistest.SeedClaimID, m["id"])
			require.Equal(t, "ClaimV2/"+openimistest.SeedClaimID, m["request"].(map[string]any)["reference"])
			require.NotContains(t, m, "communicationRequest")
		}
	})

	t.Run("ByCode", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "ClaimResponse/" + openimistest.SeedClaimCode + "/"})
		require.Equal(t, http.StatusOK, resp.status)
		require.Equal(t, openimistest.SeedClaimID, resp.object(t)["id"])
	})

	t.Run("UnknownIs500", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		b.do(t, req{path: "ClaimResponse/" + id + "/"}).requireOutcome(t, http.StatusInternalServerError, "error",
			`["failed to retrieve Claim with the filter {'uuid': UUID('`+id+`')}; details Claim matching query does not exist."]`)
		// The upstream fixture has no "id": the UUID identifier names the claim.
		noID := mutate(t, string(openimistest.ClaimResponseFixture(id, "NOID", openimistest.SeedPatientID)), func(m map[string]any) { delete(m, "id") })
		b.srv.AddClaim([]byte(noID), b.clock.Now())
		require.Equal(t, id, b.do(t, req{path: "ClaimResponse/" + id + "/"}).object(t)["id"])
		resp := b.do(t, req{path: "ClaimResponse/nope/"})
		require.Equal(t, http.StatusInternalServerError, resp.status)
	})

	t.Run("SeededFixtureIsListed", func(t *testing.T) {
		t.Parallel()
		bundle := decodeBundle(t, b.do(t, req{path: "ClaimResponse/?_lastUpdated=ge2021-09-27T00:00:00"}))
		require.Contains(t, bundle.ids(), openimistest.SeedClaimID)
	})
}

func TestClaimResponse_CommunicationRequestAfterFeedback(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	resp := b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	feedbackID := b.srv.Communications()[0].FeedbackID

	m := b.do(t, req{path: "ClaimResponse/" + openimistest.SeedClaimID + "/"}).object(t)
	crs := m["communicationRequest"].([]any)
	require.Len(t, crs, 1)
	require.Equal(t, "CommunicationRequest/"+feedbackID, crs[0].(map[string]any)["reference"])
}

func TestPatient_Get(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})

	t.Run("Seeded", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{openimistest.SeedPatientID, strings.ToUpper(openimistest.SeedPatientID)} {
			resp := b.do(t, req{path: "Patient/" + id + "/"})
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			m := resp.object(t)
			require.Equal(t, "Patient", m["resourceType"])
			require.Equal(t, openimistest.SeedPatientID, m["id"])
			require.Equal(t, "1990-03-24", m["birthDate"])
			idents := m["identifier"].([]any)
			require.Equal(t, openimistest.SeedPatientID, idents[0].(map[string]any)["value"])
			require.Equal(t, openimistest.SeedPatientCHFID, idents[1].(map[string]any)["value"])
		}
	})

	t.Run("UnknownUUIDIs500", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		b.do(t, req{path: "Patient/" + id + "/"}).requireOutcome(t, http.StatusInternalServerError, "error",
			`["failed to retrieve Insuree with the filter {'uuid': UUID('`+id+`')}; details Insuree matching query does not exist."]`)
	})

	t.Run("NotAUUIDIs404", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Patient/" + openimistest.SeedPatientCHFID + "/"})
		require.Equal(t, http.StatusNotFound, resp.status)
		_, code, _ := resp.outcome(t)
		require.Equal(t, "not-found", code)
	})

	t.Run("Added", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		b.srv.AddPatient(id, []byte(`{"resourceType":"Patient","name":[{"family":"Doe","given":["Jane"]}]}`))
		m := b.do(t, req{path: "Patient/" + id + "/"}).object(t)
		require.Equal(t, id, m["id"])
		require.Equal(t, id, m["identifier"].([]any)[0].(map[string]any)["value"])
	})
}

// TestClaimResponse_CreatedAtConversion: a ClaimResponse's created is the
// date of the request that converts it, the claim's own date is on
// Claim/<uuid>/ (trap 21).
func TestClaimResponse_CreatedAtConversion(t *testing.T) {
	t.Parallel()

	nepal := time.FixedZone("+0545", 5*3600+45*60)
	b := setup(t, openimistest.Options{Location: nepal})
	// The clock is 2025-06-30T10:00:00Z; the seeded claim is of 2021-09-27.
	today := b.clock.Now().In(nepal).Format(time.DateOnly)
	require.Equal(t, today, b.do(t, req{path: "ClaimResponse/" + openimistest.SeedClaimID + "/"}).object(t)["created"])
	bundle := b.do(t, req{path: "ClaimResponse/?_lastUpdated=ge2021-09-27T00:00:00"}).object(t)
	entry := bundle["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	require.Equal(t, today, entry["created"])
	b.clock.Add(24 * time.Hour)
	require.Equal(t, b.clock.Now().In(nepal).Format(time.DateOnly),
		b.do(t, req{path: "ClaimResponse/" + openimistest.SeedClaimID + "/"}).object(t)["created"], "converted again the next day")

	for _, id := range []string{openimistest.SeedClaimID, strings.ToUpper(openimistest.SeedClaimID), openimistest.SeedClaimCode} {
		resp := b.do(t, req{path: "Claim/" + id + "/"})
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
		m := resp.object(t)
		require.Equal(t, "Claim", m["resourceType"])
		require.Equal(t, openimistest.SeedClaimID, m["id"])
		require.Equal(t, "2021-09-27", m["created"], "the claim's own date")
		require.Equal(t, "Patient/"+openimistest.SeedPatientID, m["patient"].(map[string]any)["reference"])
	}
	require.Equal(t, http.StatusInternalServerError, b.do(t, req{path: "Claim/" + uuid.NewString() + "/"}).status, "unknown: 500, not 404")

	noRight := setup(t, openimistest.Options{Rights: []int{openimistest.RightInsureeRead}})
	require.Equal(t, http.StatusForbidden, noRight.do(t, req{path: "Claim/" + openimistest.SeedClaimID + "/"}).status)
}
