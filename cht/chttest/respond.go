package chttest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// exchange is one request in flight.
type exchange struct {
	s       *Server
	r       *http.Request
	body    []byte
	bodyErr error
	// wantsJSON is req.accepts(['text','json']) === 'json'.
	wantsJSON bool
	// authorized is set once the credentials have been checked and no
	// injected failure applied. Only then may DropNext apply.
	authorized bool
}

// response is an answer that has been decided but not yet written.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (resp response) write(w http.ResponseWriter, head bool) {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	if !head {
		_, _ = w.Write(resp.body)
	}
}

// jsonResponse is res.json(v): JSON as JSON.stringify writes it, without
// HTML escaping and without a trailing newline.
func jsonResponse(status int, v any) response {
	return response{
		status: status,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		body:   marshalJS(v),
	}
}

func textResponse(status int, text string) response {
	return response{
		status: status,
		header: http.Header{"Content-Type": {"text/plain"}},
		body:   []byte(text),
	}
}

// marshalJS encodes v like JSON.stringify: no HTML escaping, no newline.
func marshalJS(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("chttest: encode answer: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// errorBody is the body of server-utils.js writeJSON.
type errorBody struct {
	Code    int    `json:"code"`
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

// respond is server-utils.js respond(): JSON {code,error,details} when the
// client wants JSON, else the text message, followed by ': ' and the JSON
// details when there are details.
func (x *exchange) respond(status int, message string, details any) response {
	if x.wantsJSON {
		return jsonResponse(status, errorBody{Code: status, Error: message, Details: details})
	}
	if details != nil {
		message += ": " + string(marshalJS(details))
	}
	return textResponse(status, message)
}

// serverError is server-utils.js serverError(): always 500 "Server error",
// with the PublicError message as details when there is one.
func (x *exchange) serverError(publicMessage *string) response {
	if publicMessage == nil {
		return x.respond(http.StatusInternalServerError, "Server error", nil)
	}
	return x.respond(http.StatusInternalServerError, "Server error", *publicMessage)
}

// notLoggedIn is server-utils.js notLoggedIn() for a client that is not a
// browser.
func (x *exchange) notLoggedIn() response {
	var resp response
	if x.wantsJSON {
		resp = jsonResponse(http.StatusUnauthorized, errorBody{Code: http.StatusUnauthorized, Error: "unauthorized"})
	} else {
		resp = textResponse(http.StatusUnauthorized, "not logged in")
		resp.header.Set("WWW-Authenticate", `Basic realm="Medic Web Services"`)
	}
	resp.header.Set("Logout-Authorization", "CHT-Core API")
	return resp
}

// mediaRange is one entry of an Accept header, as negotiator parses it.
type mediaRange struct {
	typ, subtype string
	params       map[string]string
	q            float64
	index        int
}

// wantsJSON reports whether Express req.accepts(['text','json']) would pick
// json. Without an Accept header it picks the first type, text. Otherwise it
// picks the type with the highest quality, then the most specific match,
// then the earliest match in the header, then text before json. A range with
// parameters, e.g. "application/json; charset=utf-8", matches neither type,
// because the offered types have no parameters.
func wantsJSON(values []string) bool {
	accept := strings.Join(values, ",")
	if accept == "" {
		return false
	}
	var ranges []mediaRange
	for i, part := range splitQuoted(accept, ',') {
		if mr, ok := parseMediaRange(part, i); ok {
			ranges = append(ranges, mr)
		}
	}
	type priority struct {
		q    float64
		s, o int
		i    int
	}
	offers := [][2]string{{"text", "plain"}, {"application", "json"}}
	best := -1
	var bestP priority
	for i, offer := range offers {
		p := priority{o: -1, i: i}
		found := false
		for _, mr := range ranges {
			s := 0
			switch {
			case strings.EqualFold(mr.typ, offer[0]):
				s |= 4
			case mr.typ != "*":
				continue
			}
			switch {
			case strings.EqualFold(mr.subtype, offer[1]):
				s |= 2
			case mr.subtype != "*":
				continue
			}
			if len(mr.params) > 0 {
				ok := true
				for _, v := range mr.params {
					if v != "*" && v != "" {
						ok = false
					}
				}
				if !ok {
					continue
				}
				s |= 1
			}
			// negotiator keeps the most specific match, then the higher q,
			// then the later entry.
			if !found || s > p.s || (s == p.s && mr.q > p.q) || (s == p.s && mr.q == p.q && mr.index > p.o) {
				p = priority{q: mr.q, s: s, o: mr.index, i: i}
				found = true
			}
		}
		if !found || p.q <= 0 {
			continue
		}
		if best < 0 || p.q > bestP.q || (p.q == bestP.q && p.s > bestP.s) ||
			(p.q == bestP.q && p.s == bestP.s && p.o < bestP.o) {
			best, bestP = i, p
		}
	}
	return best == 1
}

// parseMediaRange parses one Accept entry like negotiator's parseMediaType.
func parseMediaRange(s string, index int) (mediaRange, bool) {
	parts := splitQuoted(s, ';')
	full := strings.TrimSpace(parts[0])
	typ, subtype, ok := strings.Cut(full, "/")
	if !ok || typ == "" || subtype == "" || strings.ContainsAny(typ, " \t") || strings.ContainsAny(subtype, " \t") {
		return mediaRange{}, false
	}
	mr := mediaRange{typ: typ, subtype: subtype, params: map[string]string{}, q: 1, index: index}
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if k == "q" {
			q, err := strconv.ParseFloat(v, 64)
			if err != nil {
				q = 0
			}
			mr.q = q
			break
		}
		mr.params[k] = v
	}
	return mr, true
}

// splitQuoted splits s on sep, except inside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case sep:
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
