package openhimtest

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// isoDateRE is the ECMAScript Date Time String Format (with a space
// accepted in place of "T", as V8 does).
var isoDateRE = regexp.MustCompile(`^([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?` +
	`(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?$`)

// dateStringRE is Date.prototype.toString(), e.g.
// "Wed May 01 2024 10:00:00 GMT+0000 (Coordinated Universal Time)".
var dateStringRE = regexp.MustCompile(`^(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2}),?\s+(\d{4})\s+` +
	`(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:(?:GMT|UTC|Z)([+-]\d{4})?)?(?:\s*\([^)]*\))?$`)

// utcStringRE is Date.prototype.toUTCString(), e.g.
// "Wed, 01 May 2024 10:00:00 GMT".
var utcStringRE = regexp.MustCompile(`^[A-Za-z]{3},\s+(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+` +
	`(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(?:GMT|UTC|Z)$`)

var months = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

// parseJSDate is the subset of Date.parse the fake understands: the ISO
// format, toString() and toUTCString(). zoned reports whether the string
// said which time zone it is in; an ISO date-time without one is local
// time in JavaScript. ok is false for anything else (V8 accepts more).
func parseJSDate(s string) (t time.Time, zoned, ok bool) {
	s = strings.TrimSpace(s)
	if m := isoDateRE.FindStringSubmatch(s); m != nil {
		year, _ := strconv.Atoi(m[1])
		if m[1] == "-000000" {
			return time.Time{}, false, false
		}
		month, day := 1, 1
		if m[2] != "" {
			month, _ = strconv.Atoi(m[2])
		}
		if m[3] != "" {
			day, _ = strconv.Atoi(m[3])
		}
		var hour, minute, sec, nsec int
		if m[4] != "" {
			hour, _ = strconv.Atoi(m[4])
			minute, _ = strconv.Atoi(m[5])
			sec, _ = strconv.Atoi(m[6])
			if m[7] != "" {
				frac := (m[7] + "000")[:3]
				ms, _ := strconv.Atoi(frac)
				nsec = ms * int(time.Millisecond)
			}
		}
		if month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || sec > 59 ||
			(hour == 24 && (minute != 0 || sec != 0 || nsec != 0)) {
			return time.Time{}, false, false
		}
		loc := time.UTC
		zoned = true
		switch {
		case m[8] == "Z":
		case m[8] != "":
			h, _ := strconv.Atoi(m[8][1:3])
			mm, _ := strconv.Atoi(m[8][4:6])
			off := h*3600 + mm*60
			if m[8][0] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		case m[4] != "":
			// A date-time without an offset is local time.
			loc = time.Local
			zoned = false
		}
		t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
		if t.Day() != day {
			return time.Time{}, false, false
		}
		return t, zoned, true
	}
	if m := dateStringRE.FindStringSubmatch(s); m != nil {
		return legacyDate(m[1], m[2], m[3], m[4], m[5], m[6], m[7], strings.Contains(s, "GMT") || strings.Contains(s, "UTC") || strings.Contains(s, "Z"))
	}
	if m := utcStringRE.FindStringSubmatch(s); m != nil {
		return legacyDate(m[2], m[1], m[3], m[4], m[5], m[6], "", true)
	}
	return time.Time{}, false, false
}

func legacyDate(mon, day, year, hour, minute, sec, offset string, zoned bool) (time.Time, bool, bool) {
	month, ok := months[strings.ToLower(mon)]
	if !ok {
		return time.Time{}, false, false
	}
	d, _ := strconv.Atoi(day)
	y, _ := strconv.Atoi(year)
	h, _ := strconv.Atoi(hour)
	mi, _ := strconv.Atoi(minute)
	se, _ := strconv.Atoi(sec)
	if d < 1 || d > 31 || h > 24 || mi > 59 || se > 59 {
		return time.Time{}, false, false
	}
	loc := time.Local
	if zoned {
		loc = time.UTC
	}
	if offset != "" {
		oh, _ := strconv.Atoi(offset[1:3])
		om, _ := strconv.Atoi(offset[3:5])
		off := oh*3600 + om*60
		if offset[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
		zoned = true
	}
	return time.Date(y, month, d, h, mi, se, 0, loc), zoned, true
}

// jsDateRange is the largest distance from the epoch a JavaScript Date can
// hold (8.64e15 ms).
const jsDateRange = 8.64e15

// castDate is mongoose 6's castDate: null and "" give null; numbers are
// epoch milliseconds; numeric strings only when they cannot be a year;
// other strings go through Date.parse. ok is false for a CastError.
func castDate(v *jsValue) (*jsValue, bool) {
	switch {
	case v.isUndefined():
		return undefinedValue, true
	case v.kind == jsNull || (v.kind == jsString && v.s == ""):
		return nullValue, true
	case v.kind == jsDate:
		return v, true
	case v.kind == jsBool:
		return nil, false
	case v.kind == jsNumber:
		return msDate(v.n)
	case v.kind == jsString:
		if n := jsStringToNumber(v.s); !math.IsNaN(n) && (n >= 275761 || n < -271820) {
			return msDate(n)
		}
		t, _, ok := parseJSDate(v.s)
		if !ok {
			return nil, false
		}
		return jsTime(t), true
	}
	return nil, false
}

func msDate(n float64) (*jsValue, bool) {
	if math.IsNaN(n) || math.Abs(n) > jsDateRange {
		return nil, false
	}
	return jsTime(time.UnixMilli(int64(n))), true
}
