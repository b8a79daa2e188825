package mapping

import (
	"fmt"
	"strconv"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// Calendar is the calendar openIMIS writes its dates in
// (docs/upstreams/openimis.md trap 19).
type Calendar string

// The calendars of OPENIMIS_CALENDAR.
const (
	// CalendarGregorian: every date is Gregorian (openIMIS's default).
	CalendarGregorian Calendar = "gregorian"
	// CalendarBikramSambat: every date is Bikram Sambat, as an openIMIS
	// with datetime_module=ne_datetime and iso_raw_date=True writes them
	// (core/datetimes/ne_datetime.py).
	CalendarBikramSambat Calendar = "bikram-sambat"
	// CalendarAuto: a date whose year is more than one year after the
	// present's Gregorian year is Bikram Sambat; any other is Gregorian
	// (see DateReader).
	CalendarAuto Calendar = "auto"
)

// DateReader reads openIMIS dates in its calendar and hands them on as
// Gregorian dates, so that everything after it (the OP report's Bikram Sambat
// fields and op_date, the CHT person's date_of_birth) works on Gregorian
// dates. The zero value reads Gregorian dates, as the package-level
// functions do.
//
// With CalendarAuto a date is Bikram Sambat when its year is more than one
// year after Now's Gregorian year: no Gregorian claim or birth date lies in
// the future, and Bikram Sambat runs about 57 years ahead (BS 2082 began in
// April 2025). Claim dates are always recognised (a present BS year is about
// 57 years ahead). A Bikram Sambat birth date of year Now.Year()+1 or earlier
// (born before about 1970) is read as Gregorian: set CalendarBikramSambat
// for a deployment known to write Bikram Sambat.
type DateReader struct {
	Calendar Calendar
	// Now is the present, for CalendarAuto.
	Now time.Time
}

// bikramSambat returns the date part of s as a Bikram Sambat date, and the
// rest of s (a time and zone, or ""), when the reader reads s as Bikram
// Sambat.
func (r DateReader) bikramSambat(s string) (BSDate, string, bool) {
	if r.Calendar != CalendarBikramSambat && r.Calendar != CalendarAuto || len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return BSDate{}, "", false
	}
	y, errY := strconv.Atoi(s[0:4])
	m, errM := strconv.Atoi(s[5:7])
	d, errD := strconv.Atoi(s[8:10])
	if errY != nil || errM != nil || errD != nil {
		return BSDate{}, "", false
	}
	if r.Calendar == CalendarAuto && y <= r.Now.Year()+1 {
		return BSDate{}, "", false
	}
	return BSDate{Year: y, Month: m, Day: d}, s[10:], true
}

// gregorian rewrites a Bikram Sambat date or dateTime as the Gregorian one
// (the time and zone kept), and leaves a Gregorian one as it is.
func (r DateReader) gregorian(s string) (string, error) {
	bs, rest, ok := r.bikramSambat(s)
	if !ok {
		return s, nil
	}
	g, err := FromBikramSambat(bs)
	if err != nil {
		return "", fmt.Errorf("must be a Bikram Sambat date (OPENIMIS_CALENDAR): %w", err)
	}
	return g.Format(time.DateOnly) + rest, nil
}

// ClaimDate is ClaimDate for dates in r's calendar: a Bikram Sambat date is
// the date itself, a dateTime without zone Nepal time.
func (r DateReader) ClaimDate(s string) (string, error) {
	d, err := r.claimDate(s)
	if err != nil {
		return "", fmt.Errorf("created %w", err)
	}
	return d, nil
}

func (r DateReader) claimDate(s string) (string, error) {
	g, err := r.gregorian(s)
	if err != nil {
		return "", err
	}
	return claimDate(g)
}

// ParseClaimResponse is ParseClaimResponse for dates in r's calendar.
func (r DateReader) ParseClaimResponse(body []byte) (Claim, error) {
	cr, err := decodeClaimResponse(body)
	if err != nil {
		return Claim{}, err
	}
	return r.ClaimFromResponse(cr)
}

// ClaimFromResponse is ClaimFromResponse for dates in r's calendar.
func (r DateReader) ClaimFromResponse(cr openimis.ClaimResponse) (Claim, error) {
	return claimFromResponse(cr, r.claimDate)
}

// Person is Person for dates in r's calendar: a Bikram Sambat birthDate
// becomes the Gregorian date_of_birth the CHT keeps; one that is no Bikram
// Sambat date is left out.
func (r DateReader) Person(insureeUUID string, p *openimis.Patient, placeID string) cht.Person {
	person := Person(insureeUUID, p, placeID)
	if person.DateOfBirth != "" {
		g, err := r.gregorian(person.DateOfBirth)
		if err != nil {
			g = ""
		}
		person.DateOfBirth = g
	}
	return person
}
