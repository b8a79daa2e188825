package mediator_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// TestClaim_BikramSambatDates: an openIMIS writing Bikram Sambat dates
// (docs/upstreams/openimis.md trap 19): with OPENIMIS_CALENDAR=bikram-sambat
// op_year/op_month/op_day are the date itself, op_date its AD day at 00:00
// Nepal time, and the insuree's BS birthDate becomes the person's AD
// date_of_birth.
func TestClaim_BikramSambatDates(t *testing.T) {
	t.Parallel()
	const insuree = "b5b5b5b5-0000-4000-8000-000000000001"
	const claimUUID = "b5b5b5b5-0000-4000-8000-0000000000c1"
	b := setup(t, setupOpts{
		seed: func(oi *openimistest.Server) {
			var p map[string]any
			require.NoError(t, json.Unmarshal(openimistest.PatientFixture(insuree, "BS-1"), &p))
			p["birthDate"] = "2047-04-32" // a BS date (month 4 of 2047 has 32 days)
			raw, err := json.Marshal(p)
			require.NoError(t, err)
			oi.AddPatient(insuree, raw)
		},
		edit: func(o *mediator.Options) { o.Calendar = "bikram-sambat" },
	})
	resp := b.postClaim(t, claimBody(t, claimUUID, insuree, "2082-03-32"))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	b.waitDelivered(t, claimUUID)

	reports := b.reportsFor(claimUUID)
	require.Len(t, reports, 1)
	f := reports[0].Fields
	require.Equal(t, "2082", f["op_year"])
	require.Equal(t, "03", f["op_month"])
	require.Equal(t, "32", f["op_day"])
	ad, err := mapping.FromBikramSambat(mapping.BSDate{Year: 2082, Month: 3, Day: 32})
	require.NoError(t, err)
	require.EqualValues(t, time.Date(ad.Year(), ad.Month(), ad.Day(), 0, 0, 0, 0, mapping.Nepal).UnixMilli(), f["op_date"])

	people := b.peopleFor(insuree)
	require.Len(t, people, 1)
	birth, err := mapping.FromBikramSambat(mapping.BSDate{Year: 2047, Month: 4, Day: 32})
	require.NoError(t, err)
	require.Equal(t, birth.Format(time.DateOnly), people[0].Doc["date_of_birth"])
}
