package openhimtest_test

import (
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestSemver(t *testing.T) {
	t.Parallel()

	for _, v := range []string{"1.0.0", "v1.2.3", " 1.2.3 ", "1.0.0-rc.1+build.5", "0.0.0"} {
		require.True(t, openhimtest.SemverValid(v), v)
	}
	for _, v := range []string{"1.0", "1", "01.0.0", "1.0.0.0", "=1.0.0", "1.0.0-01", "x.y.z", ""} {
		require.False(t, openhimtest.SemverValid(v), v)
	}
	ordered := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.9.0", "1.10.0", "2.0.0"}
	for i := 1; i < len(ordered); i++ {
		require.Equal(t, -1, openhimtest.SemverCompare(ordered[i-1], ordered[i]), ordered[i-1]+" < "+ordered[i])
		require.Equal(t, 1, openhimtest.SemverCompare(ordered[i], ordered[i-1]))
	}
	require.Equal(t, 0, openhimtest.SemverCompare("1.0.0+a", "v1.0.0+b"))
}

func TestJSNumbers(t *testing.T) {
	t.Parallel()

	for s, want := range map[string]float64{" 12 ": 12, "0x10": 16, "1e3": 1000, ".5": 0.5, "": 0, "-Infinity": math.Inf(-1)} {
		require.InDelta(t, want, openhimtest.JSStringToNumber(s), 0, s)
	}
	for _, s := range []string{"abc", "12px", "1_000", "0x", "inf", "NaN"} {
		require.True(t, math.IsNaN(openhimtest.JSStringToNumber(s)), s)
	}
	for s, want := range map[string]float64{"200": 200, " 200 ": 200, "200.9": 200, "0x1F": 0, "-3x": -3} {
		require.InDelta(t, want, openhimtest.JSParseInt(s), 0, s)
	}
	require.True(t, math.IsNaN(openhimtest.JSParseInt("x1")))
}

func TestJSDates(t *testing.T) {
	t.Parallel()

	want := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01 10:00:00Z",
		"Wed May 01 2024 10:00:00 GMT+0000 (Coordinated Universal Time)", "Wed, 01 May 2024 10:00:00 GMT",
	} {
		got, zoned, ok := openhimtest.ParseJSDate(s)
		require.True(t, ok, s)
		require.True(t, zoned, s)
		require.True(t, want.Equal(got), s)
	}
	_, zoned, ok := openhimtest.ParseJSDate("2024-05-01T10:00:00")
	require.True(t, ok)
	require.False(t, zoned, "a date-time without offset is local time")
	d, zoned, ok := openhimtest.ParseJSDate("2024-05-01")
	require.True(t, ok)
	require.True(t, zoned, "a date alone is UTC")
	require.True(t, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Equal(d))
	for _, s := range []string{"2024-02-30", "yesterday", "2024-05-01T25:00:00Z", "1714557600"} {
		_, _, ok := openhimtest.ParseJSDate(s)
		require.False(t, ok, s)
	}
}

func TestJSONStringify(t *testing.T) {
	t.Parallel()

	tests := map[string]string{
		`{"b":1,"a":2,"2":3,"1":4,"b":5}`: `{"1":4,"2":3,"b":5,"a":2}`,
		`{"s":"<&>\u2028é\u0001"}`:        "{\"s\":\"<&>\u2028é\\u0001\"}",
		`[1.0,1e21,1e-7,-0,100]`:          `[1,1e+21,1e-7,0,100]`,
	}
	for in, want := range tests {
		got, err := openhimtest.Restringify(in)
		require.NoError(t, err)
		require.Equal(t, want, got, in)
	}
	_, err := openhimtest.Restringify(`{"a":}`)
	require.Error(t, err)
}

func TestURNWithPercentIsDecodedTwice(t *testing.T) {
	t.Parallel()

	// koa-route decodes the segment, then core unescape()s it again, so a
	// urn containing "%41" is looked up as "A".
	b := setup(t, openhimtest.Options{})
	m := mediatorDoc("1.0.0")
	m["urn"] = "urn:mediator:50%41"
	b.register(t, m)
	r := b.do(t, req{method: http.MethodPost, path: "/mediators/" + url.PathEscape("urn:mediator:50%41") + "/heartbeat", body: `{"uptime":1}`})
	require.Equal(t, http.StatusNotFound, r.status)
	r = b.do(t, req{method: http.MethodPost, path: "/mediators/urn:mediator:50%252541/heartbeat", body: `{"uptime":1}`})
	require.Equal(t, http.StatusOK, r.status)
}
