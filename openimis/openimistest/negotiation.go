package openimistest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
)

// mediaType is a parsed media type as DRF's _MediaType sees it.
type mediaType struct {
	main string
	sub  string
}

// parseMediaType splits "type/subtype; params" into lower-case parts.
func parseMediaType(s string) mediaType {
	full, _, _ := strings.Cut(s, ";")
	main, sub, _ := strings.Cut(strings.ToLower(strings.TrimSpace(full)), "/")
	return mediaType{main: strings.TrimSpace(main), sub: strings.TrimSpace(sub)}
}

// matches reports whether the server-side media type t (a renderer or parser
// type without parameters) satisfies the client's media type o, per DRF's
// _MediaType.match: wildcards on either side match, parameters are ignored.
func (t mediaType) matches(o mediaType) bool {
	if t.sub != "*" && o.sub != "*" && t.sub != o.sub {
		return false
	}
	if t.main != "*" && o.main != "*" && t.main != o.main {
		return false
	}
	return true
}

// renderers are DRF's default renderer media types (JSONRenderer,
// BrowsableAPIRenderer). The fake answers JSON for both.
var renderers = []mediaType{{"application", "json"}, {"text", "html"}}

// acceptable reports whether DRF's content negotiation finds a renderer for
// the Accept header values; a missing header accepts anything.
func acceptable(accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, line := range accept {
		for _, part := range strings.Split(line, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			mt := parseMediaType(part)
			for _, r := range renderers {
				if r.matches(mt) {
					return true
				}
			}
		}
	}
	return false
}

// data parses the request body like DRF's request.data with the default
// parsers: JSON, form and multipart. An empty body is an empty object. The
// result is a JSON value (map[string]any for objects, json.Number numbers);
// form values are strings.
func (c *call) data() (any, *apiError) {
	if len(c.body) == 0 {
		return map[string]any{}, nil
	}
	ct := c.r.Header.Get("Content-Type")
	mt := parseMediaType(ct)
	switch {
	case mediaType{"application", "json"}.matches(mt):
		dec := json.NewDecoder(bytes.NewReader(c.body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, errFatal(400, "JSON parse error - "+err.Error())
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errFatal(400, "JSON parse error - Extra data")
		}
		return v, nil
	case mediaType{"application", "x-www-form-urlencoded"}.matches(mt):
		q, err := url.ParseQuery(string(c.body))
		if err != nil {
			return nil, errFatal(400, "Form parse error - "+err.Error())
		}
		return formValues(q), nil
	case mediaType{"multipart", "form-data"}.matches(mt):
		_, params, err := mime.ParseMediaType(ct)
		if err != nil || params["boundary"] == "" {
			return nil, errFatal(400, "Multipart form parse error - Invalid boundary in multipart: None")
		}
		form, err := multipart.NewReader(bytes.NewReader(c.body), params["boundary"]).ReadForm(maxBodyBytes)
		if err != nil {
			return nil, errFatal(400, "Multipart form parse error - "+err.Error())
		}
		defer func() { _ = form.RemoveAll() }()
		return formValues(form.Value), nil
	default:
		return nil, errUnsupportedMediaType(ct)
	}
}

// formValues keeps the last value of each key, as QueryDict.get does.
func formValues(q map[string][]string) map[string]any {
	out := make(map[string]any, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			out[k] = vs[len(vs)-1]
		}
	}
	return out
}

// object parses the body and requires a JSON object, as the FHIR converters
// (which call Resource(**data)) do.
func (c *call) object() (map[string]any, *apiError) {
	v, err := c.data()
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, c.s.errValidation("argument after ** must be a mapping, not " + pyTypeName(v))
	}
	if c.isForm() {
		return nil, c.s.errValidation("openimistest: a form body is not a FHIR resource; send application/json")
	}
	return m, nil
}

// isForm reports whether the body was sent as a form.
func (c *call) isForm() bool {
	mt := parseMediaType(c.r.Header.Get("Content-Type"))
	return len(c.body) > 0 && (mt == mediaType{"application", "x-www-form-urlencoded"} || mt == mediaType{"multipart", "form-data"})
}
