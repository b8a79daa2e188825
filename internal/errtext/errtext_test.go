package errtext_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
)

func TestCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 5, "abcde…"},
		// "é" is two bytes: a cut inside it keeps the whole rune out.
		{"abcdé", 5, "abcd…"},
		{"日本語", 4, "日…"},
	} {
		if got := errtext.Cut(tc.in, tc.n); got != tc.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestBody(t *testing.T) {
	t.Parallel()
	if got, want := errtext.Body([]byte("  <html>\n\t<body>Bad   Gateway</body>\n</html> "), 200), "<html> <body>Bad Gateway</body> </html>"; got != want {
		t.Errorf("Body = %q, want %q", got, want)
	}
	long := errtext.Body([]byte(strings.Repeat("é", 300)), 200)
	if !utf8.ValidString(long) || len(long) > 200+len("…") {
		t.Errorf("Body of a long text = %d bytes, valid UTF-8 %v", len(long), utf8.ValidString(long))
	}
}
