package mapping

import (
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// bsMonthLengths is the month table of the bikram-sambat library that the CHT
// renders BS dates with: one row per BS year, twelve month lengths.
//
//go:embed bs-month-lengths.csv
var bsMonthLengths string

// ErrDateOutOfRange is returned for dates the Bikram Sambat table does not cover.
var ErrDateOutOfRange = errors.New("date outside the Bikram Sambat table")

// BSDate is a date in the Bikram Sambat calendar. Month is 1 (Baisakh) to 12.
type BSDate struct {
	Year, Month, Day int
}

// String formats the date as YYYY-MM-DD.
func (d BSDate) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// bsTable holds the parsed month table and the Gregorian day of its first day.
type bsTable struct {
	firstYear int
	months    [][12]int
	epoch     int64 // days since 1970-01-01 of BS firstYear-01-01
	yearStart []int64
	lastDay   int64 // days since 1970-01-01 of the table's last day
}

// bsEpoch is the Gregorian date of BS 1970-01-01.
var bsEpoch = time.Date(1913, time.April, 13, 0, 0, 0, 0, time.UTC)

var table = mustParseBSTable(bsMonthLengths)

func mustParseBSTable(src string) *bsTable {
	t, err := parseBSTable(src)
	if err != nil {
		panic("mapping: embedded Bikram Sambat table: " + err.Error())
	}
	return t
}

func parseBSTable(src string) (*bsTable, error) {
	rows, err := csv.NewReader(strings.NewReader(src)).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 || len(rows[0]) != 13 {
		return nil, errors.New("want a header and rows of 13 columns")
	}
	t := &bsTable{epoch: daysSinceUnix(bsEpoch)}
	day := t.epoch
	for i, row := range rows[1:] {
		year, err := strconv.Atoi(row[0])
		if err != nil {
			return nil, fmt.Errorf("row %d: year %q", i+2, row[0])
		}
		if i == 0 {
			t.firstYear = year
		} else if year != t.firstYear+i {
			return nil, fmt.Errorf("row %d: year %d out of sequence", i+2, year)
		}
		var m [12]int
		t.yearStart = append(t.yearStart, day)
		for j := range 12 {
			n, err := strconv.Atoi(row[j+1])
			if err != nil || n < 29 || n > 32 {
				return nil, fmt.Errorf("row %d: month %d length %q", i+2, j+1, row[j+1])
			}
			m[j] = n
			day += int64(n)
		}
		t.months = append(t.months, m)
	}
	t.lastDay = day - 1
	return t, nil
}

func daysSinceUnix(t time.Time) int64 {
	return t.Unix() / 86400
}

// ToBikramSambat converts a Gregorian calendar date to Bikram Sambat, agreeing
// day for day with the CHT's bikram-sambat library.
func ToBikramSambat(year int, month time.Month, day int) (BSDate, error) {
	g := time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
	if g.Year() != year || g.Month() != month || g.Day() != day {
		return BSDate{}, fmt.Errorf("%04d-%02d-%02d is not a calendar date", year, month, day)
	}
	n := daysSinceUnix(g)
	if n < table.epoch || n > table.lastDay {
		return BSDate{}, fmt.Errorf("%s: %w (AD %s to %s)", g.Format(time.DateOnly), ErrDateOutOfRange,
			bsEpoch.Format(time.DateOnly), time.Unix(table.lastDay*86400, 0).UTC().Format(time.DateOnly))
	}
	// Find the year: the last year whose first day is not after n.
	lo, hi := 0, len(table.yearStart)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if table.yearStart[mid] <= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	rest := int(n - table.yearStart[lo])
	for m, length := range table.months[lo] {
		if rest < length {
			return BSDate{Year: table.firstYear + lo, Month: m + 1, Day: rest + 1}, nil
		}
		rest -= length
	}
	panic("mapping: Bikram Sambat year overflow") // unreachable: lastDay bounds n
}

// FromBikramSambat converts a Bikram Sambat date to its Gregorian date (at
// 00:00 UTC).
func FromBikramSambat(d BSDate) (time.Time, error) {
	y := d.Year - table.firstYear
	if y < 0 || y >= len(table.months) {
		return time.Time{}, fmt.Errorf("BS %s: %w", d, ErrDateOutOfRange)
	}
	if d.Month < 1 || d.Month > 12 || d.Day < 1 || d.Day > table.months[y][d.Month-1] {
		return time.Time{}, fmt.Errorf("BS %s is not a calendar date", d)
	}
	n := table.yearStart[y]
	for m := range d.Month - 1 {
		n += int64(table.months[y][m])
	}
	n += int64(d.Day - 1)
	return time.Unix(n*86400, 0).UTC(), nil
}
