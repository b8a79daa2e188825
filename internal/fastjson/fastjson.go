// Package fastjson decodes JSON with goccy/go-json, several times faster than
// encoding/json on the documents the mediator reads (it skips the fields it
// does not need quickly), with encoding/json's result wherever the two could
// differ.
package fastjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// Unmarshal decodes data into v as encoding/json.Unmarshal does, for a v
// that holds its zero value (a fresh variable) and has no maps keyed by
// integers (go-json and encoding/json parse such keys differently).
//
// go-json runs only on valid UTF-8 JSON without surrogate escapes, ſ or the
// Kelvin sign, where it reads as encoding/json does (encoding/json turns bad
// bytes and lone surrogates into U+FFFD, and folds those two letters to s
// and k in field names; go-json does not). Anything else, and any document
// go-json refuses, is decoded again from scratch by encoding/json, so the
// error and the value are encoding/json's.
func Unmarshal(data []byte, v any) error {
	if utf8.Valid(data) && Fast(data, v) == nil {
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return json.Unmarshal(data, v)
}

// Fast is go-json on valid JSON only, and only without the characters it
// reads unlike encoding/json (see Unmarshal). On some malformed documents (a
// backslash then a control character inside a key, found by fuzzing) go-json
// reads past the end of its buffer and panics: json.Valid, a fraction of a
// decode, keeps those away, and a panic left all the same is an error. Its
// errors are vaguer than encoding/json's, for callers that decode again to
// report one.
func Fast(data []byte, v any) (err error) {
	if !json.Valid(data) {
		return errors.New("invalid JSON")
	}
	if foldsSpecially(data) || hasSpecialEscape(data) {
		return errors.New("a character go-json may read unlike encoding/json")
	}
	defer func() {
		if recover() != nil {
			err = errors.New("go-json panicked")
		}
	}()
	return gojson.Unmarshal(data, v)
}

// foldsSpecially reports whether data holds ſ (U+017F) or the Kelvin sign
// (U+212A) unescaped: encoding/json matches them to s and k in field names,
// go-json does not (hasSpecialEscape finds them escaped).
func foldsSpecially(data []byte) bool {
	return bytes.Contains(data, []byte("\u017f")) || bytes.Contains(data, []byte("\u212a"))
}

// hasSpecialEscape reports whether data may hold an escape go-json reads
// unlike encoding/json: a surrogate (\uD800 to \uDFFF, paired or not), ſ or
// the Kelvin sign. It does not look at whether the backslash is itself
// escaped, so it may answer true for nothing.
func hasSpecialEscape(data []byte) bool {
	for i := bytes.Index(data, []byte(`\u`)); i >= 0; {
		if hex := data[i+2:]; len(hex) >= 4 {
			if hex[0] == 'd' || hex[0] == 'D' ||
				bytes.EqualFold(hex[:4], []byte("017f")) || bytes.EqualFold(hex[:4], []byte("212a")) {
				return true
			}
		}
		next := bytes.Index(data[i+2:], []byte(`\u`))
		if next < 0 {
			return false
		}
		i += 2 + next
	}
	return false
}
