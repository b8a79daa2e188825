package openhimtest

import (
	"regexp"
	"strconv"
	"strings"
)

// semverRE is node-semver 7's FULL pattern (strict mode): an optional "v",
// x.y.z without leading zeros, then an optional pre-release and build.
var semverRE = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*))*))?` +
	`(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$`)

// maxSafeInteger is Number.MAX_SAFE_INTEGER, the largest version component
// node-semver accepts.
const maxSafeInteger = 1<<53 - 1

// semver is a parsed version.
type semver struct {
	major, minor, patch uint64
	pre                 []string
}

// parseSemver is semver.parse: nil when semver.valid would say null.
func parseSemver(s string) *semver {
	if len(s) > 256 {
		return nil
	}
	m := semverRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil
	}
	v := &semver{}
	for i, p := range []*uint64{&v.major, &v.minor, &v.patch} {
		n, err := strconv.ParseUint(m[i+1], 10, 64)
		if err != nil || n > maxSafeInteger {
			return nil
		}
		*p = n
	}
	if m[4] != "" {
		v.pre = strings.Split(m[4], ".")
	}
	return v
}

// compare is semver.compare (build metadata ignored).
func (v *semver) compare(o *semver) int {
	for _, d := range [][2]uint64{{v.major, o.major}, {v.minor, o.minor}, {v.patch, o.patch}} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	switch {
	case len(v.pre) == 0 && len(o.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(o.pre) == 0:
		return -1
	}
	for i := 0; ; i++ {
		switch {
		case i >= len(v.pre) && i >= len(o.pre):
			return 0
		case i >= len(v.pre):
			return -1
		case i >= len(o.pre):
			return 1
		}
		if c := compareIdentifier(v.pre[i], o.pre[i]); c != 0 {
			return c
		}
	}
}

func compareIdentifier(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}
