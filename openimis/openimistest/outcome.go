package openimistest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strings"
)

// Messages DRF and openIMIS use verbatim.
const (
	msgIncorrectCredentials = "INCORRECT_CREDENTIALS"
	msgInvalidPage          = "Invalid page."
	msgNoPermission         = "You do not have permission to perform this action."
	msgNotAuthenticated     = "Authentication credentials were not provided."
)

// apiError is an error the FHIR API reports as an OperationOutcome.
type apiError struct {
	code     string
	severity string
	status   int
	// text is a string, or a []string for DRF ValidationError details.
	text any
}

// Error implements error.
func (e *apiError) Error() string {
	return fmt.Sprintf("%d %v", e.status, e.text)
}

// errFatal is a DRF APIException (severity fatal).
func errFatal(status int, text any) *apiError {
	return &apiError{code: "exception", severity: "fatal", status: status, text: text}
}

// errServer is an unexpected Python exception: 500, severity error.
func errServer(text string) *apiError {
	return &apiError{code: "exception", severity: "error", status: http.StatusInternalServerError, text: text}
}

// errValidation is a FHIRException, pydantic or Django validation error raised
// while converting a request body: severity error, status per
// [Options.ValidationStatus].
func (s *Server) errValidation(text string) *apiError {
	return &apiError{code: "exception", severity: "error", status: s.opts.ValidationStatus, text: text}
}

// errNotFound is a Django Http404: 404, severity error, code not-found.
func errNotFound(text string) *apiError {
	return &apiError{code: "not-found", severity: "error", status: http.StatusNotFound, text: text}
}

func errNotAcceptable() *apiError {
	return errFatal(http.StatusNotAcceptable, "Could not satisfy the request Accept header.")
}

func errNotAuthenticated() *apiError {
	return errFatal(http.StatusUnauthorized, msgNotAuthenticated)
}

func errAuthenticationFailed(text string) *apiError {
	return errFatal(http.StatusUnauthorized, text)
}

func errPermissionDenied(text string) *apiError {
	return errFatal(http.StatusForbidden, text)
}

func errMethodNotAllowed(method string) *apiError {
	return errFatal(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", method))
}

func errUnsupportedMediaType(contentType string) *apiError {
	return errFatal(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", contentType))
}

func errNotModelled(method, name string) *apiError {
	return &apiError{
		code: "not-supported", severity: "error", status: http.StatusNotImplemented,
		text: fmt.Sprintf("openimistest: %s %s exists in openIMIS but is not modelled by this fake", method, name),
	}
}

// outcome is the OperationOutcome wire form.
type outcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity string          `json:"severity"`
	Code     string          `json:"code"`
	Details  *outcomeDetails `json:"details,omitempty"`
}

type outcomeDetails struct {
	Text any `json:"text"`
}

// outcomeOf renders e as an OperationOutcome.
func outcomeOf(e *apiError) outcome {
	issue := outcomeIssue{Severity: e.severity, Code: e.code}
	if e.text != nil && e.text != "" {
		issue.Details = &outcomeDetails{Text: e.text}
	}
	return outcome{ResourceType: "OperationOutcome", Issue: []outcomeIssue{issue}}
}

// fail writes e as an OperationOutcome.
func (c *call) fail(e *apiError) {
	c.json(e.status, outcomeOf(e))
}

// json writes v as compact JSON with DRF's content type.
func (c *call) json(status int, v any) {
	writeJSON(c.w, status, v)
}

// writeJSON writes v as compact JSON, without HTML escaping, like DRF's
// JSONRenderer. A json.RawMessage is written as it is: the server's own are
// made by mustMarshal, compact already.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if raw, ok := v.(json.RawMessage); ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(raw)
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("openimistest: encoding response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// writeEmpty writes a body-less response; DRF drops Content-Type then.
func writeEmpty(w http.ResponseWriter, status int) {
	w.WriteHeader(status)
}

// writeDjango404 answers a path no route matches with Django's DEBUG 404 page.
func writeDjango404(w http.ResponseWriter, r *http.Request) {
	path := html.EscapeString(r.URL.Path)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en">
<head>
  <meta http-equiv="content-type" content="text/html; charset=utf-8">
  <title>Page not found at %s</title>
</head>
<body>
  <div id="summary">
    <h1>Page not found <span>(404)</span></h1>
    <table class="meta">
      <tr><th>Request Method:</th><td>%s</td></tr>
      <tr><th>Request URL:</th><td>http://%s%s</td></tr>
    </table>
  </div>
  <div id="info">
    <p>The current path, <code>%s</code>, didn't match any of these.</p>
  </div>
</body>
</html>
`, path, html.EscapeString(r.Method), html.EscapeString(r.Host), path, strings.TrimPrefix(path, "/"))
}

// writeAppendSlash answers a path that matches a route only with a trailing
// slash, like Django's CommonMiddleware with APPEND_SLASH and DEBUG on.
func writeAppendSlash(w http.ResponseWriter, r *http.Request) {
	target := r.URL.EscapedPath() + "/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, "RuntimeError at %s\nYou called this URL via %s, but the URL doesn't end in a slash "+
			"and you have APPEND_SLASH set. Django can't redirect to the slash URL while maintaining %s data. "+
			"Change your form to point to %s%s (note the trailing slash), or set APPEND_SLASH=False in your "+
			"Django settings.\n", r.URL.Path, r.Method, r.Method, r.Host, r.URL.Path+"/")
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusMovedPermanently)
	}
}
