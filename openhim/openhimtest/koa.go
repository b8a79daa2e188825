package openhimtest

import (
	"fmt"
	"html"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// koaResponse copies what Koa 2.16 does with ctx.status, ctx.body,
// ctx.type and ctx.set, and how respond() finally writes them, so that the
// fake's bodies, statuses and Content-Types match core's (lib/response.js,
// lib/application.js).
type koaResponse struct {
	status         int
	explicitStatus bool
	header         http.Header
	body           *jsValue
	buf            []byte
	isBuf          bool
	explicitNull   bool
}

// newKoaResponse is a fresh ctx.response: status 404, no body.
func newKoaResponse() *koaResponse {
	return &koaResponse{status: http.StatusNotFound, header: http.Header{}, body: undefinedValue}
}

// nodeStatusText holds the messages of the statuses package that differ
// from Go's.
var nodeStatusText = map[int]string{
	306: "(Unused)",
	413: "Payload Too Large",
	414: "URI Too Long",
	416: "Range Not Satisfiable",
	418: "I'm a Teapot",
	509: "Bandwidth Limit Exceeded",
}

// statusMessage is statuses.message[code] ("" when there is none).
func statusMessage(code int) string {
	if s, ok := nodeStatusText[code]; ok {
		return s
	}
	return http.StatusText(code)
}

func emptyStatus(code int) bool { return code == 204 || code == 205 || code == 304 }

func redirectStatus(code int) bool {
	switch code {
	case 300, 301, 302, 303, 305, 307, 308:
		return true
	}
	return false
}

// setStatus is the ctx.status setter for a value known to be valid.
func (r *koaResponse) setStatus(code int) {
	r.explicitStatus = true
	r.status = code
	if emptyStatus(code) && (r.isBuf || r.body.truthy()) {
		r.setBody(nullValue)
	}
}

// setStatusValue is the ctx.status setter for a JavaScript value: it throws
// (returns an error) unless the value is an integer from 100 to 999.
func (r *koaResponse) setStatusValue(v *jsValue) *jsError {
	if v == nil || v.kind != jsNumber || v.n != math.Trunc(v.n) || math.IsInf(v.n, 0) {
		return &jsError{name: "AssertionError", msg: "status code must be a number"}
	}
	if v.n < 100 || v.n > 999 {
		return &jsError{name: "AssertionError", msg: "invalid status code: " + jsNumberString(v.n)}
	}
	r.setStatus(int(v.n))
	return nil
}

// mimeType returns the Content-Type of ctx.type's short form or mime type
// without the parameters.
func (r *koaResponse) mimeType() string {
	ct := r.header.Get("Content-Type")
	base, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(base))
}

// setBody is the ctx.body setter for a JavaScript value.
func (r *koaResponse) setBody(v *jsValue) {
	r.isBuf, r.buf = false, nil
	r.body = v
	if v.isNullish() {
		if !emptyStatus(r.status) {
			if r.mimeType() == "application/json" {
				r.body = jsStr("null")
				return
			}
			r.setStatus(http.StatusNoContent)
		}
		if v != nil && v.kind == jsNull {
			r.explicitNull = true
		}
		r.header.Del("Content-Type")
		r.header.Del("Content-Length")
		r.header.Del("Transfer-Encoding")
		return
	}
	if !r.explicitStatus {
		r.status = http.StatusOK
		r.explicitStatus = true
	}
	setType := r.header.Get("Content-Type") == ""
	if v.kind == jsString {
		if setType {
			if strings.HasPrefix(strings.TrimLeftFunc(v.s, isJSWhitespace), "<") {
				r.setType("html")
			} else {
				r.setType("text")
			}
		}
		r.header.Set("Content-Length", strconv.Itoa(len(v.s)))
		return
	}
	r.header.Del("Content-Length")
	r.setType("json")
}

// setBuffer is the ctx.body setter for a Buffer.
func (r *koaResponse) setBuffer(b []byte) {
	r.body = undefinedValue
	r.isBuf, r.buf = true, b
	if !r.explicitStatus {
		r.status = http.StatusOK
		r.explicitStatus = true
	}
	if r.header.Get("Content-Type") == "" {
		r.setType("bin")
	}
	r.header.Set("Content-Length", strconv.Itoa(len(b)))
}

// shortTypes are the extensions Koa code passes to ctx.type, resolved as
// mime-types' lookup does.
var shortTypes = map[string]string{
	"text": "text/plain",
	"txt":  "text/plain",
	"html": "text/html",
	"json": "application/json",
	"bin":  "application/octet-stream",
	"xml":  "application/xml",
	"js":   "application/javascript",
}

var charsetParam = regexp.MustCompile(`(?i)charset`)

// getType is cache-content-type's getType (mime-types contentType): a type
// without "/" is an extension; text/*, application/json and
// application/javascript get "; charset=utf-8" unless a charset is given.
// It returns "" when mime-types returns false.
func getType(t string) string {
	if t == "" {
		return ""
	}
	if !strings.Contains(t, "/") {
		m, ok := shortTypes[strings.ToLower(strings.TrimPrefix(t, "."))]
		if !ok {
			return ""
		}
		t = m
	}
	if !charsetParam.MatchString(t) {
		base, _, _ := strings.Cut(t, ";")
		base = strings.ToLower(strings.TrimSpace(base))
		if strings.HasPrefix(base, "text/") || base == "application/json" || base == "application/javascript" {
			t += "; charset=utf-8"
		}
	}
	return t
}

// setType is the ctx.type setter.
func (r *koaResponse) setType(t string) {
	if m := getType(t); m != "" {
		r.header.Set("Content-Type", m)
		return
	}
	r.header.Del("Content-Type")
}

var headerToken = regexp.MustCompile("^[\\^_`a-zA-Z\\-0-9!#$%&'*+.|~]+$")

// checkHeader is Node's validation in setHeader, which throws
// ERR_INVALID_HTTP_TOKEN or ERR_INVALID_CHAR.
func checkHeader(name string, values []string) *jsError {
	if !headerToken.MatchString(name) {
		return typeError("Header name must be a valid HTTP token [\"%s\"]", name)
	}
	for _, v := range values {
		for _, c := range v {
			if c != '\t' && (c < 0x20 || c == 0x7f || c > 0xff) {
				return typeError("Invalid character in header content [\"%s\"]", name)
			}
		}
	}
	return nil
}

// set is ctx.set(field, val): arrays keep one value per element, anything
// else becomes String(val).
func (r *koaResponse) set(name string, v *jsValue) *jsError {
	var values []string
	if v.isArray() {
		for _, e := range v.arr {
			values = append(values, e.toJSString())
		}
	} else {
		values = []string{v.toJSString()}
	}
	if err := checkHeader(name, values); err != nil {
		return err
	}
	r.header[http.CanonicalHeaderKey(name)] = values
	return nil
}

// redirect is ctx.redirect(url): Location, 302 unless the status already
// redirects, and a "Redirecting to" body in HTML when the client accepts
// HTML, else in text.
func (r *koaResponse) redirect(loc string, acceptsHTML bool) {
	if u, err := url.Parse(loc); err == nil && (strings.EqualFold(u.Scheme, "http") || strings.EqualFold(u.Scheme, "https")) {
		if u.Path == "" {
			u.Path = "/"
		}
		u.Host = strings.ToLower(u.Host)
		u.Scheme = strings.ToLower(u.Scheme)
		loc = u.String()
	}
	r.header.Set("Location", encodeURL(loc))
	if !redirectStatus(r.status) {
		r.setStatus(http.StatusFound)
	}
	if acceptsHTML {
		e := html.EscapeString(loc)
		r.setType("text/html; charset=utf-8")
		r.setBody(jsStr(`Redirecting to <a href="` + e + `">` + e + `</a>.`))
		return
	}
	r.setType("text/plain; charset=utf-8")
	r.setBody(jsStr("Redirecting to " + loc + "."))
}

// encodeURL is the encodeurl package: percent-encode what may not appear in
// a URL, leaving existing escapes alone.
func encodeURL(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(c)
		case c == '%':
			b.WriteString("%25")
		case c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\' && c != '^' && c != '`' && c != '{' && c != '}':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// finish is Koa's respond(): it returns the status, headers and body the
// client receives for a request with the given method.
func (r *koaResponse) finish(method string) (int, http.Header, []byte) {
	h := r.header.Clone()
	if emptyStatus(r.status) {
		h.Del("Content-Type")
		h.Del("Content-Length")
		h.Del("Transfer-Encoding")
		return r.status, h, nil
	}
	var body []byte
	switch {
	case r.isBuf:
		body = r.buf
	case r.body.isNullish():
		if r.explicitNull {
			h.Del("Content-Type")
			h.Del("Transfer-Encoding")
			h.Set("Content-Length", "0")
			return r.status, h, nil
		}
		msg := statusMessage(r.status)
		if msg == "" {
			msg = strconv.Itoa(r.status)
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body = []byte(msg)
	case r.body.kind == jsString:
		body = []byte(r.body.s)
	default:
		body = r.body.stringify()
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if method == http.MethodHead {
		return r.status, h, nil
	}
	return r.status, h, body
}

// textResponse is ctx.status = status; ctx.body = msg.
func textResponse(status int, msg string) *koaResponse {
	r := newKoaResponse()
	r.setStatus(status)
	r.setBody(jsStr(msg))
	return r
}

// statusResponse is ctx.status = status with no body: Koa sends the status
// message as text.
func statusResponse(status int) *koaResponse {
	r := newKoaResponse()
	r.setStatus(status)
	return r
}
