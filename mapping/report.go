package mapping

import (
	"fmt"
	"strconv"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
)

// FieldPatientID is the OP report field naming the CHT person: its _id or
// shortcode.
const FieldPatientID = "patient_id"

// OPReport builds the CHT report that gives a health worker the task to visit
// the insuree about a claim. personID is the CHT person's _id or shortcode.
//
// op_year, op_month and op_day are the Bikram Sambat date of the claim's
// created date as strings (month and day zero-padded); op_date is that
// Gregorian date at 00:00 Nepal time in epoch milliseconds. The CHT computes
// neither for JSON reports (docs/upstreams/cht.md §2, trap 4).
func OPReport(c Claim, personID, form string) (cht.Report, error) {
	g, err := time.Parse(time.DateOnly, c.Created)
	if err != nil {
		return cht.Report{}, fmt.Errorf("claim %s: created %q: %w", c.UUID, c.Created, err)
	}
	bs, err := ToBikramSambat(g.Year(), g.Month(), g.Day())
	if err != nil {
		return cht.Report{}, fmt.Errorf("claim %s: %w", c.UUID, err)
	}
	return cht.Report{
		Form: form,
		Fields: map[string]any{
			FieldPatientID:  personID,
			"op_claim_id":   c.Code,
			"op_claim_uuid": c.UUID,
			"op_year":       strconv.Itoa(bs.Year),
			"op_month":      fmt.Sprintf("%02d", bs.Month),
			"op_day":        fmt.Sprintf("%02d", bs.Day),
			"op_date":       time.Date(g.Year(), g.Month(), g.Day(), 0, 0, 0, 0, Nepal).UnixMilli(),
		},
	}, nil
}
