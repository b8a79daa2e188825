package chttest

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The API is JavaScript. These helpers give decoded JSON values (nil, bool,
// float64, string, []any, map[string]any) the JavaScript semantics the API
// code relies on.

// truthy is JavaScript's Boolean(v).
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0 && !math.IsNaN(v)
	case string:
		return v != ""
	default:
		return true
	}
}

// jsString is String(v) for a decoded JSON value.
func jsString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return jsNumberString(v)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if e != nil {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	default:
		return "[object Object]"
	}
}

// jsNumberString is Number.prototype.toString() for finite numbers.
func jsNumberString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if a := math.Abs(f); a != 0 && (a >= 1e21 || a < 1e-6) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

var (
	jsDecimal = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)
	jsRadix   = regexp.MustCompile(`^0([xXoObB])([0-9a-fA-F]+)$`)
)

// jsNumber is Number(s) for a string: NaN when s is not a number.
func jsNumber(s string) float64 {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0
	case s == "Infinity" || s == "+Infinity":
		return math.Inf(1)
	case s == "-Infinity":
		return math.Inf(-1)
	case jsDecimal.MatchString(s):
		// Out of range, ParseFloat returns ±Inf or 0 with an error, which
		// are JavaScript's values too.
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	if m := jsRadix.FindStringSubmatch(s); m != nil {
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[strings.ToLower(m[1])[0]]
		u, err := strconv.ParseUint(m[2], base, 64)
		if err != nil {
			return math.NaN()
		}
		return float64(u)
	}
	return math.NaN()
}

var (
	isoDate = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2}))?|(\d{2})(\d{2}))?$`)
	isoTime = regexp.MustCompile(`^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$`)
)

// momentValue is moment(v).valueOf() for a decoded JSON value, as the
// records API applies it to "date" fields. Numbers are epoch milliseconds.
// Strings are parsed as ISO 8601 or RFC 1123, in UTC when they carry no
// offset: this assumes the API server runs in UTC, as it does in Docker.
// Anything else gives NaN, which JSON stores as null, so the result is nil.
func momentValue(v any) any {
	switch v := v.(type) {
	case float64:
		return math.Trunc(v)
	case string:
		if t, ok := parseMoment(v); ok {
			return float64(t.UnixMilli())
		}
	}
	return nil
}

// parseMoment parses the ISO 8601 forms moment accepts, then RFC 1123.
func parseMoment(s string) (time.Time, bool) {
	datePart, timePart, hasTime := strings.Cut(s, "T")
	if !hasTime {
		datePart, timePart, hasTime = strings.Cut(s, " ")
	}
	if t, ok := parseISO(datePart, timePart, hasTime); ok {
		return t, true
	}
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func parseISO(datePart, timePart string, hasTime bool) (time.Time, bool) {
	d := isoDate.FindStringSubmatch(datePart)
	if d == nil {
		return time.Time{}, false
	}
	year, _ := strconv.Atoi(d[1])
	month, day := 1, 1
	switch {
	case d[2] != "":
		month, _ = strconv.Atoi(d[2])
		if d[3] != "" {
			day, _ = strconv.Atoi(d[3])
		}
	case d[4] != "":
		month, _ = strconv.Atoi(d[4])
		day, _ = strconv.Atoi(d[5])
	}
	var hour, minute, sec, nsec int
	loc := time.UTC
	if hasTime {
		m := isoTime.FindStringSubmatch(timePart)
		if m == nil {
			return time.Time{}, false
		}
		hour, _ = strconv.Atoi(m[1])
		minute, _ = strconv.Atoi(m[2])
		sec, _ = strconv.Atoi(m[3])
		if m[4] != "" {
			frac := (m[4] + "000000000")[:9]
			nsec, _ = strconv.Atoi(frac)
		}
		if z := m[5]; z != "" && z != "Z" {
			digits := strings.ReplaceAll(z[1:], ":", "")
			oh, _ := strconv.Atoi(digits[:2])
			om := 0
			if len(digits) == 4 {
				om, _ = strconv.Atoi(digits[2:])
			}
			off := (oh*60 + om) * 60
			if z[0] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Month() != time.Month(month) || t.Day() != day || t.Hour() != hour || t.Minute() != minute || t.Second() != sec {
		return time.Time{}, false
	}
	return t, true
}

// newRev returns a CouchDB-style first revision, "1-" and 32 hex digits.
func newRev() string {
	return "1-" + randomHex(16)
}

// nextRev returns the revision after rev.
func nextRev(rev string) string {
	n := 1
	if head, _, ok := strings.Cut(rev, "-"); ok {
		if i, err := strconv.Atoi(head); err == nil {
			n = i
		}
	}
	return strconv.Itoa(n+1) + "-" + randomHex(16)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cloneValue deep-copies a decoded JSON value.
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	default:
		return v
	}
}

// cloneMap deep-copies a decoded JSON object. nil stays nil.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		out[k] = cloneValue(e)
	}
	return out
}
