package mapping_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

func TestDateReader_ClaimDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	bs := mapping.DateReader{Calendar: mapping.CalendarBikramSambat, Now: now}
	auto := mapping.DateReader{Calendar: mapping.CalendarAuto, Now: now}
	tests := []struct {
		name   string
		reader mapping.DateReader
		in     string
		want   string // Gregorian; "" = error
	}{
		{"GregorianDefault", mapping.DateReader{}, "2025-06-30", "2025-06-30"},
		{"BSDate", bs, "2082-03-16", "2025-06-30"},
		{"BSThirtySecondDay", bs, "2082-03-32", "2025-07-16"},
		{"BSDateTimeWithoutZoneIsNepal", bs, "2082-03-16T23:00:00", "2025-06-30"},
		{"BSDateTimeWithZone", bs, "2082-03-16T20:00:00Z", "2025-07-01"},
		{"BSNotACalendarDate", bs, "2082-03-33", ""},
		{"BSOutOfTable", bs, "2095-01-01", ""},
		{"AutoBS", auto, "2082-03-16", "2025-06-30"},
		{"AutoGregorian", auto, "2025-06-30", "2025-06-30"},
		{"AutoNextYearIsGregorian", auto, "2027-01-01", "2027-01-01"},
		{"AutoTwoYearsAheadIsBS", auto, "2028-01-01", "1971-04-14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.reader.ClaimDate(tt.in)
			if tt.want == "" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestDateReader_OPReportOfBSDate: with bikram-sambat, op_year/op_month/op_day
// are the date openIMIS wrote, op_date its AD day at 00:00 Nepal time.
func TestDateReader_OPReportOfBSDate(t *testing.T) {
	t.Parallel()
	r := mapping.DateReader{Calendar: mapping.CalendarBikramSambat, Now: time.Now()}
	body := []byte(`{"resourceType":"ClaimResponse","id":"ae580700-0277-4c98-adab-d98c0f7e681b",` +
		`"identifier":[{"type":{"coding":[{"code":"Code"}]},"value":"C1"}],` +
		`"patient":{"reference":"Patient/76aca309-f8cf-4890-8f2e-b416d78de00b"},"created":"2082-03-16"}`)
	c, err := r.ParseClaimResponse(body)
	require.NoError(t, err)
	rep, err := mapping.OPReport(c, "p", "OP")
	require.NoError(t, err)
	require.Equal(t, "2082", rep.Fields["op_year"])
	require.Equal(t, "03", rep.Fields["op_month"])
	require.Equal(t, "16", rep.Fields["op_day"])
	require.Equal(t, int64(1751220900000), rep.Fields["op_date"])

	_, err = mapping.ParseClaimResponse([]byte(`{"resourceType":"ClaimResponse","id":"ae580700-0277-4c98-adab-d98c0f7e681b",` +
		`"identifier":[{"type":{"coding":[{"code":"Code"}]},"value":"C1"}],` +
		`"patient":{"reference":"Patient/76aca309-f8cf-4890-8f2e-b416d78de00b"},"created":"2082-03-32"}`))
	require.Error(t, err, "read as Gregorian, day 32 is no date")
}

func TestDateReader_PersonBirthDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	patient := func(birth string) *openimis.Patient { return &openimis.Patient{BirthDate: birth} }
	bs := mapping.DateReader{Calendar: mapping.CalendarBikramSambat, Now: now}
	auto := mapping.DateReader{Calendar: mapping.CalendarAuto, Now: now}
	want, err := mapping.FromBikramSambat(mapping.BSDate{Year: 2040, Month: 1, Day: 15})
	require.NoError(t, err)

	require.Equal(t, want.Format(time.DateOnly), bs.Person("u", patient("2040-01-15"), "pl").DateOfBirth)
	require.Equal(t, want.Format(time.DateOnly), auto.Person("u", patient("2040-01-15"), "pl").DateOfBirth)
	require.Equal(t, "1990-05-01", auto.Person("u", patient("1990-05-01"), "pl").DateOfBirth)
	require.Equal(t, "2040-01-15", mapping.DateReader{}.Person("u", patient("2040-01-15"), "pl").DateOfBirth)
	require.Empty(t, bs.Person("u", patient("2040-01-33"), "pl").DateOfBirth, "no BS date: left out")
}
