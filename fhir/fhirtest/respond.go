package fhirtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// exchange is one request in flight.
type exchange struct {
	s       *Server
	r       *http.Request
	body    []byte
	bodyErr error
	// after are jobs to run once the answer is written.
	after []func()
}

// response is an answer decided but not yet written.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (resp response) write(w http.ResponseWriter) {
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// contentType is the type of the fake's JSON answers: FHIR JSON, and plain
// JSON on HeyDonto, whose documentation shows application/json answers
// (C§6.3).
func (s *Server) contentType() string {
	if s.opts.Vendor == HeyDonto {
		return "application/json; charset=utf-8"
	}
	return "application/fhir+json;charset=utf-8"
}

// json answers v as JSON.
func (x *exchange) json(status int, v any) response {
	return response{
		status: status,
		header: http.Header{"Content-Type": {x.s.contentType()}},
		body:   mustJSON(v),
	}
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("fhirtest: encode: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// outcome answers an OperationOutcome with one issue. Errors are
// OperationOutcomes on every modelled server (FHIR R4 http.html); the
// diagnostics say which rule refused the request.
func (x *exchange) outcome(status int, code, diagnostics string) response {
	severity := "error"
	if status < 400 {
		severity = "information"
	}
	return x.json(status, operationOutcome(severity, code, diagnostics))
}

func operationOutcome(severity, code, diagnostics string) map[string]any {
	return map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []any{map[string]any{"severity": severity, "code": code, "diagnostics": diagnostics}},
	}
}

func (x *exchange) notFound() response {
	return x.outcome(http.StatusNotFound, "not-found", "unknown path "+x.r.URL.Path)
}

func (x *exchange) notAllowed() response {
	return x.outcome(http.StatusMethodNotAllowed, "not-supported", x.r.Method+" is not supported on "+x.r.URL.Path)
}
