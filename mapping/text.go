package mapping

import (
	"fmt"
	"unicode/utf8"
)

// checkText refuses a body that is not valid UTF-8 or whose JSON strings
// hold a lone surrogate escape (\ud800 to \udfff not forming a pair). Both
// decoders would turn each into U+FFFD, so distinct ids would collapse into
// one and the later ones be answered as duplicates of work never done.
func checkText(body []byte) error {
	if !utf8.Valid(body) {
		return FieldErrors{{Field: "body", Message: "must be UTF-8 text"}}
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(body):
			i++
			if body[i] != 'u' {
				continue
			}
			r, ok := hex4(body, i+1)
			if !ok {
				continue // a syntax error the decoder reports
			}
			i += 4
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return loneSurrogate(r)
			case r >= 0xd800 && r <= 0xdbff:
				low, ok := uint16(0), false
				if i+2 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					low, ok = hex4(body, i+3)
				}
				if !ok || low < 0xdc00 || low > 0xdfff {
					return loneSurrogate(r)
				}
				i += 6
			}
		}
	}
	return nil
}

func loneSurrogate(r uint16) error {
	return FieldErrors{{Field: "body", Message: fmt.Sprintf(`holds a lone surrogate \u%04x, not a character`, r)}}
}

// hex4 reads four hex digits at body[i:].
func hex4(body []byte, i int) (uint16, bool) {
	if i+4 > len(body) {
		return 0, false
	}
	var r uint16
	for _, c := range body[i : i+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | uint16(d)
	}
	return r, true
}

// hasControl reports whether s holds a C0 or C1 control character or DEL:
// NUL, which PostgreSQL cannot store in text, and the escapes that drive a
// terminal.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return true
		}
	}
	return false
}

// isDocID reports whether s is shaped as the CHT's document ids are: 1 to
// 128 letters, digits, - and _ (a UUID, with or without dashes, is one).
func isDocID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
