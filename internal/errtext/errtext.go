// Package errtext shortens what an upstream answered for an error message:
// the clients quote a refused request's body, never all of it, and never
// half a character.
package errtext

import (
	"strings"
	"unicode/utf8"
)

// Cut shortens s to at most n bytes, at a rune boundary, marking the cut
// with "…".
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Body is an answer's body as one line (runs of white space as one space),
// cut to at most n bytes.
func Body(body []byte, n int) string {
	return Cut(strings.Join(strings.Fields(string(body)), " "), n)
}
