package retryafter_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/internal/retryafter"
)

func TestParse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const limit = 5 * time.Minute
	for _, tt := range []struct {
		name, v string
		want    time.Duration
	}{
		{"Absent", "", 0},
		{"Seconds", " 7 ", 7 * time.Second},
		{"Zero", "0", 0},
		{"Negative", "-5", 0},
		{"AboveTheLimit", "999999999", limit},
		{"TooLargeToRead", "99999999999999999999999", limit},
		{"HTTPDate", now.Add(90 * time.Second).Format(http_TimeFormat), 90 * time.Second},
		{"DateInThePast", now.Add(-time.Hour).Format(http_TimeFormat), 0},
		{"FarDate", now.AddDate(31, 0, 0).Format(http_TimeFormat), limit},
		{"Garbage", "soon", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, retryafter.Parse(tt.v, now, limit))
		})
	}
}

// http_TimeFormat is net/http.TimeFormat, the IMF-fixdate of HTTP headers.
const http_TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"
