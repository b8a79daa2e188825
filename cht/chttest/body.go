package chttest

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// bodyKind says what body-parser made of a request body.
type bodyKind int

const (
	// bodyNone: no parser applied (no body, or a Content-Type no parser
	// handles). Express's req.is() is false for every type then.
	bodyNone bodyKind = iota
	// bodyJSONObject: a JSON object.
	bodyJSONObject
	// bodyJSONArray: a JSON array. body-parser's strict mode allows it.
	bodyJSONArray
	// bodyForm: an application/x-www-form-urlencoded body.
	bodyForm
)

// parsedBody is req.body after the route's body parsers ran.
type parsedBody struct {
	kind bodyKind
	// keys is the key order of a JSON object body.
	keys   []string
	values map[string]any
	form   url.Values
	// arrayLen is the length of a JSON array body.
	arrayLen int
}

// hasBody is type-is hasBody: a Transfer-Encoding or a Content-Length header.
func (x *exchange) hasBody() bool {
	return x.r.ContentLength != 0 || len(x.r.TransferEncoding) > 0 || x.r.Header.Get("Content-Length") != ""
}

// mediaType returns the request's lower-cased media type and parameters, or
// "" when the header is missing or malformed.
func (x *exchange) mediaType() (string, map[string]string) {
	ct := x.r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil
	}
	return mt, params
}

// parseBody runs body-parser's json parser and, when withForm is set, its
// urlencoded parser, as the route declares them. A parser error goes to the
// API's final error handler, which answers through serverError: 413 for a
// body over 32 MB, 500 "Server error" for everything else (bad JSON, an
// unsupported charset or encoding). ok is false when resp must be sent.
func (x *exchange) parseBody(withForm bool) (body parsedBody, resp response, ok bool) {
	if !x.hasBody() {
		return parsedBody{kind: bodyNone}, response{}, true
	}
	mt, params := x.mediaType()
	isJSON := mt == "application/json"
	isForm := withForm && mt == "application/x-www-form-urlencoded"
	if !isJSON && !isForm {
		return parsedBody{kind: bodyNone}, response{}, true
	}
	charset := strings.ToLower(params["charset"])
	if charset == "" {
		charset = "utf-8"
	}
	if (isJSON && !strings.HasPrefix(charset, "utf-")) || (isForm && charset != "utf-8") {
		return body, x.serverError(nil), false
	}
	if enc := strings.ToLower(x.r.Header.Get("Content-Encoding")); enc != "" && enc != "identity" {
		return body, x.serverError(nil), false
	}
	if len(x.body) > maxBodyBytes {
		return body, x.respond(http.StatusRequestEntityTooLarge, "Payload Too Large", nil), false
	}
	if x.bodyErr != nil {
		return body, x.serverError(nil), false
	}
	raw := bytes.TrimPrefix(x.body, []byte("\xef\xbb\xbf"))
	if isForm {
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return body, x.serverError(nil), false
		}
		return parsedBody{kind: bodyForm, form: form}, response{}, true
	}
	if len(raw) == 0 {
		return parsedBody{kind: bodyJSONObject, values: map[string]any{}}, response{}, true
	}
	switch first := bytes.TrimLeft(raw, " \t\r\n"); {
	case len(first) > 0 && first[0] == '{':
		keys, values, err := decodeOrdered(raw)
		if err != nil {
			return body, x.serverError(nil), false
		}
		return parsedBody{kind: bodyJSONObject, keys: keys, values: values}, response{}, true
	case len(first) > 0 && first[0] == '[':
		var arr []any
		if err := json.Unmarshal(raw, &arr); err != nil {
			return body, x.serverError(nil), false
		}
		return parsedBody{kind: bodyJSONArray, arrayLen: len(arr)}, response{}, true
	}
	return body, x.serverError(nil), false
}

// isEmptyJSON is lodash isEmpty for a parsed JSON body.
func (b parsedBody) isEmptyJSON() bool {
	switch b.kind {
	case bodyJSONObject:
		return len(b.keys) == 0
	case bodyJSONArray:
		return b.arrayLen == 0
	}
	return true
}
