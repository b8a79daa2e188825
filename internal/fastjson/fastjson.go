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

// Unmarshal decodes data into v as encoding/json.Unmarshal does.
//
// go-json runs only on valid UTF-8 JSON without surrogate escapes, where it
// reads as encoding/json does (encoding/json turns bad bytes and lone
// surrogates into U+FFFD; go-json need not). Anything else, and any document
// go-json refuses, is decoded again from scratch by encoding/json, so the
// error and the value are encoding/json's.
func Unmarshal(data []byte, v any) error {
	if utf8.Valid(data) && !hasSurrogateEscape(data) && Fast(data, v) == nil {
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return json.Unmarshal(data, v)
}

// Fast is go-json on valid JSON only. On some malformed documents (a
// backslash then a control character inside a key, found by fuzzing) go-json
// reads past the end of its buffer and panics: json.Valid, a fraction of a
// decode, keeps those away, and a panic left all the same is an error. Its
// errors are vaguer than encoding/json's, for callers that decode again to
// report one.
func Fast(data []byte, v any) (err error) {
	if !json.Valid(data) {
		return errors.New("invalid JSON")
	}
	defer func() {
		if recover() != nil {
			err = errors.New("go-json panicked")
		}
	}()
	return gojson.Unmarshal(data, v)
}

// hasSurrogateEscape reports whether data may hold a \uD800 to \uDFFF
// escape (it does not look at whether the backslash is itself escaped).
func hasSurrogateEscape(data []byte) bool {
	for i := bytes.Index(data, []byte(`\u`)); i >= 0; {
		if j := i + 2; j < len(data) && (data[j] == 'd' || data[j] == 'D') {
			return true
		}
		next := bytes.Index(data[i+2:], []byte(`\u`))
		if next < 0 {
			return false
		}
		i += 2 + next
	}
	return false
}
