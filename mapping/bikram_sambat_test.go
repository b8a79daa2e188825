package mapping_test

import (
	"encoding/csv"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// readMonthTable parses the specification's copy of the month table, so the
// converter is checked against the source rather than against itself.
func readMonthTable(t *testing.T) (firstYear int, months [][12]int) {
	t.Helper()
	f, err := os.Open("../../shared/spec/bs-month-lengths.csv")
	require.NoError(t, err, "the specification must be checked out beside the repository")
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	for i, row := range rows[1:] {
		y, err := strconv.Atoi(row[0])
		require.NoError(t, err)
		if i == 0 {
			firstYear = y
		}
		var m [12]int
		for j := range 12 {
			m[j], err = strconv.Atoi(row[j+1])
			require.NoError(t, err)
		}
		months = append(months, m)
	}
	return firstYear, months
}

func TestToBikramSambat_EveryDayOfTheTable(t *testing.T) {
	t.Parallel()
	firstYear, months := readMonthTable(t)
	require.Equal(t, 1970, firstYear)

	g := time.Date(1913, time.April, 13, 0, 0, 0, 0, time.UTC)
	days := 0
	for yi, m := range months {
		for mi, length := range m {
			for d := 1; d <= length; d++ {
				want := mapping.BSDate{Year: firstYear + yi, Month: mi + 1, Day: d}
				got, err := mapping.ToBikramSambat(g.Year(), g.Month(), g.Day())
				require.NoError(t, err, "AD %s", g.Format(time.DateOnly))
				if got != want {
					t.Fatalf("AD %s: got BS %s, want %s", g.Format(time.DateOnly), got, want)
				}
				back, err := mapping.FromBikramSambat(want)
				require.NoError(t, err)
				if !back.Equal(g) {
					t.Fatalf("BS %s: got AD %s, want %s", want, back.Format(time.DateOnly), g.Format(time.DateOnly))
				}
				g = g.AddDate(0, 0, 1)
				days++
			}
		}
	}
	require.Greater(t, days, 44000)

	// One day past either end is out of range.
	_, err := mapping.ToBikramSambat(g.Year(), g.Month(), g.Day())
	require.ErrorIs(t, err, mapping.ErrDateOutOfRange)
	_, err = mapping.ToBikramSambat(1913, time.April, 12)
	require.ErrorIs(t, err, mapping.ErrDateOutOfRange)
}

func TestToBikramSambat_KnownDates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ad   string
		bs   string
	}{
		{"SpecExample", "2025-06-30", "2082-03-16"},
		{"TableStart", "1913-04-13", "1970-01-01"},
		{"NewYear2000", "1943-04-14", "2000-01-01"},
		{"NewYear2081", "2024-04-13", "2081-01-01"},
		{"NewYear2082", "2025-04-14", "2082-01-01"},
		{"ContractExample", "2025-08-25", "2082-05-09"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := time.Parse(time.DateOnly, tt.ad)
			require.NoError(t, err)
			got, err := mapping.ToBikramSambat(g.Year(), g.Month(), g.Day())
			require.NoError(t, err)
			require.Equal(t, tt.bs, got.String())
		})
	}
}

func TestToBikramSambat_Invalid(t *testing.T) {
	t.Parallel()
	_, err := mapping.ToBikramSambat(2025, time.February, 30)
	require.Error(t, err)
	require.False(t, errors.Is(err, mapping.ErrDateOutOfRange))
	_, err = mapping.ToBikramSambat(2100, time.January, 1)
	require.ErrorIs(t, err, mapping.ErrDateOutOfRange)

	_, err = mapping.FromBikramSambat(mapping.BSDate{Year: 2082, Month: 13, Day: 1})
	require.Error(t, err)
	_, err = mapping.FromBikramSambat(mapping.BSDate{Year: 2082, Month: 1, Day: 33})
	require.Error(t, err)
	_, err = mapping.FromBikramSambat(mapping.BSDate{Year: 1969, Month: 1, Day: 1})
	require.ErrorIs(t, err, mapping.ErrDateOutOfRange)
}

func TestEmbeddedTableMatchesSpecification(t *testing.T) {
	t.Parallel()
	spec, err := os.ReadFile("../../shared/spec/bs-month-lengths.csv")
	require.NoError(t, err)
	embedded, err := os.ReadFile("bs-month-lengths.csv")
	require.NoError(t, err)
	require.Equal(t, string(spec), string(embedded))
}

func FuzzToBikramSambat(f *testing.F) {
	f.Add(2025, 6, 30)
	f.Add(1913, 4, 13)
	f.Add(2034, 4, 13)
	f.Add(0, 0, 0)
	f.Fuzz(func(t *testing.T, y, m, d int) {
		bs, err := mapping.ToBikramSambat(y, time.Month(m), d)
		if err != nil {
			return
		}
		back, err := mapping.FromBikramSambat(bs)
		if err != nil {
			t.Fatalf("BS %s from AD %d-%d-%d does not convert back: %v", bs, y, m, d, err)
		}
		if back.Year() != y || int(back.Month()) != m || back.Day() != d {
			t.Fatalf("AD %d-%d-%d → BS %s → AD %s", y, m, d, bs, back.Format(time.DateOnly))
		}
	})
}
