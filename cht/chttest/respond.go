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
	// authorized is set once the credentials passed and no injected failure
	// applied; only then may a DropNext apply.
	authorized bool
}

// response is an answer decided but not yet written.
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

// jsonResponse is Express res.json(v): JSON.stringify, no trailing newline.
func jsonResponse(status int, v any) response {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("chttest: encode answer: " + err.Error())
	}
	return response{
		status: status,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		body:   bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
	}
}

func textResponse(status int, text string) response {
	return response{status: status, header: http.Header{"Content-Type": {"text/plain"}}, body: []byte(text)}
}

// errorBody is the body of api/src/server-utils.js writeJSON.
type errorBody struct {
	Code    int    `json:"code"`
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

// respond is server-utils.js respond(): {code,error,details} for a client
// that wants JSON, else the text message followed by ": " and the JSON
// details, if any (docs/upstreams/cht.md §1, "Error responses").
func (x *exchange) respond(status int, message string, details any) response {
	if x.wantsJSON {
		return jsonResponse(status, errorBody{Code: status, Error: message, Details: details})
	}
	if details != nil {
		d, _ := json.Marshal(details)
		message += ": " + string(d)
	}
	return textResponse(status, message)
}

// serverError is server-utils.js serverError(): always 500 "Server error",
// with a PublicError's message as details. Callers tell a permanent 500 from
// a passing one only by these details (trap 2).
func (x *exchange) serverError(publicMessage string) response {
	if publicMessage == "" {
		return x.respond(http.StatusInternalServerError, "Server error", nil)
	}
	return x.respond(http.StatusInternalServerError, "Server error", publicMessage)
}

// notLoggedIn is server-utils.js notLoggedIn() for a client that is not a
// browser: JSON, or the text "not logged in" with a Basic challenge.
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

// wantsJSON reports whether Express req.accepts(['text','json']) picks json
// (the negotiator package). With no Accept header it picks the first offer,
// text. Otherwise each offer takes its most specific matching range, and the
// offer with the higher q wins, then the more specific match, then the
// earlier range, then text. A range with parameters, e.g.
// "application/json; charset=utf-8", matches neither offer.
func wantsJSON(values []string) bool {
	type match struct {
		q      float64
		spec   int
		index  int
		exists bool
	}
	offers := [2][2]string{{"text", "plain"}, {"application", "json"}}
	var best [2]match
	for i, entry := range strings.Split(strings.Join(values, ","), ",") {
		params := strings.Split(entry, ";")
		typ, sub, ok := strings.Cut(strings.ToLower(strings.TrimSpace(params[0])), "/")
		if !ok {
			continue
		}
		q, withParams := 1.0, false
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !strings.EqualFold(k, "q") {
				withParams = true
				continue
			}
			if q, ok = parseQ(v); !ok {
				q = 0
			}
			break // what follows q is an accept-extension
		}
		if withParams {
			continue
		}
		for o, offer := range offers {
			spec := 0
			if typ == offer[0] {
				spec = 4
			} else if typ != "*" {
				continue
			}
			if sub == offer[1] {
				spec |= 2
			} else if sub != "*" {
				continue
			}
			b := best[o]
			if !b.exists || spec > b.spec || (spec == b.spec && (q > b.q || (q == b.q && i > b.index))) {
				best[o] = match{q: q, spec: spec, index: i, exists: true}
			}
		}
	}
	text, js := best[0], best[1]
	switch {
	case !js.exists || js.q <= 0:
		return false
	case !text.exists || text.q <= 0:
		return true
	}
	return js.q > text.q || (js.q == text.q && (js.spec > text.spec || (js.spec == text.spec && js.index < text.index)))
}

func parseQ(v string) (float64, bool) {
	q, err := strconv.ParseFloat(strings.Trim(v, `"`), 64)
	return q, err == nil
}

// SetFaultHeader adds a header to every answer injected with FailNext or
// FailNextPath with that status from now on, as the proxy in front of the
// API sends them: Retry-After on a 429 (nginx's limit_req, a load balancer),
// Location on a redirect. An empty value removes the header.
func (s *Server) SetFaultHeader(status int, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faultHeaders == nil {
		s.faultHeaders = map[int]http.Header{}
	}
	h := s.faultHeaders[status]
	if h == nil {
		h = http.Header{}
		s.faultHeaders[status] = h
	}
	if value == "" {
		h.Del(name)
		return
	}
	h.Set(name, value)
}

// faultResponse is the CHT-shaped answer for a status a test injected with
// FailNext: the body the API sends for that status, with the headers set by
// SetFaultHeader.
func (x *exchange) faultResponse(status int) response {
	resp := x.faultBody(status)
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if extra := x.s.faultHeaders[status]; len(extra) > 0 {
		h := resp.header.Clone()
		if h == nil {
			h = http.Header{}
		}
		for k, v := range extra {
			h[k] = append([]string(nil), v...)
		}
		resp.header = h
	}
	return resp
}

func (x *exchange) faultBody(status int) response {
	switch status {
	case http.StatusUnauthorized:
		return x.notLoggedIn()
	case http.StatusForbidden:
		return x.respond(status, "Insufficient privileges", nil)
	case http.StatusNotFound:
		return couchNotFound()
	case http.StatusInternalServerError:
		return x.serverError("")
	case http.StatusServiceUnavailable:
		if x.wantsJSON {
			return jsonResponse(status, map[string]string{"error": "Service unavailable"})
		}
		return textResponse(status, "Service unavailable")
	}
	if status < 400 {
		return textResponse(status, http.StatusText(status))
	}
	return x.respond(status, http.StatusText(status), nil)
}

// downResponse is the answer while SetDown is in force. SetDown(503) is the
// start-up router of api/src/services/setup/router.js: a client that asks
// for JSON gets 503 {"error":"Service unavailable"}, any other gets 200 and
// an HTML progress page, so a client without Accept: application/json takes
// a CHT that is starting for one that answered (docs/upstreams/cht.md §1,
// §6). Other statuses get the API's body for them.
func (x *exchange) downResponse(status int) response {
	if status != http.StatusServiceUnavailable || x.wantsJSON {
		return x.faultResponse(status)
	}
	return response{
		status: http.StatusOK,
		header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		body: []byte("<!DOCTYPE html>\n<html><head><title>CHT is starting up</title></head>\n" +
			"<body><h1>API is starting up</h1><p>Please wait.</p></body></html>\n"),
	}
}
