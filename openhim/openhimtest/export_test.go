package openhimtest

// Internals exposed to the external tests.
var (
	JSStringToNumber = jsStringToNumber
	JSParseInt       = jsParseInt
	ParseJSDate      = parseJSDate
)

// SemverValid reports whether semver.valid(s) is not null.
func SemverValid(s string) bool { return parseSemver(s) != nil }

// SemverCompare is semver.compare(a, b) for valid versions.
func SemverCompare(a, b string) int { return parseSemver(a).compare(parseSemver(b)) }

// Restringify is JSON.stringify(JSON.parse(s)).
func Restringify(s string) (string, error) {
	v, err := parseJSON([]byte(s))
	if err != nil {
		return "", err
	}
	return string(v.stringify()), nil
}
