package openhimtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultRouterTimeout is core's router.timeout (config/default.json).
const DefaultRouterTimeout = 60 * time.Second

// transactionStatuses are the statuses of src/model/transactions.js.
var transactionStatuses = []string{"Processing", "Pending Async", "Successful", "Completed", "Completed with error(s)", "Failed"}

// internalErrorBody is the router's answer when the route fails
// (src/middleware/router.js handleServerError).
const internalErrorBody = "An internal server error occurred"

// ForwardRequest is a client's request that core matched to a channel
// whose primary route is the mediator. Channel matching, client
// authentication and allowed methods are not modelled.
type ForwardRequest struct {
	// URL is the route's scheme, host and port, e.g. http://127.0.0.1:6000.
	URL string
	// Method defaults to GET; Path, the path sent to the mediator (the
	// route's path), to "/". RawQuery is appended.
	Method, Path, RawQuery string
	// Header is the client's headers, Authorization included.
	Header http.Header
	// Body is sent for POST, PUT and PATCH only.
	Body []byte
	// ClientID is the authenticated client, sent as X-OpenHIM-ClientID.
	ClientID string
	// RouteUsername and RoutePassword are the route's credentials, sent as
	// Basic when both are set and no Authorization is forwarded.
	RouteUsername, RoutePassword string
	// ForwardAuthHeader is the route's forwardAuthHeader.
	ForwardAuthHeader bool
	// Timeout is the channel's timeout, DefaultRouterTimeout when zero.
	Timeout time.Duration
}

// ForwardResult is what the mediator answered and what the client got.
type ForwardResult struct {
	// TransactionID is the X-OpenHIM-TransactionID sent to the mediator.
	TransactionID string
	// MediatorStatus (0 without an answer) and MediatorBody are the
	// mediator's answer.
	MediatorStatus int
	MediatorBody   []byte
	// IsEnvelope reports a Content-Type containing application/json+openhim;
	// Envelope is the parsed envelope when it is a JSON object.
	IsEnvelope bool
	Envelope   *Envelope
	// Problems lists what is wrong with the envelope by
	// docs/upstreams/openhim.md §4.2 and traps 12 to 14, each with what core
	// then does. Empty for a good envelope or a plain answer.
	Problems []string
	// Status, Header and Body are what the client receives.
	Status int
	Header http.Header
	Body   []byte
	// Error is the transaction's error: the envelope's error.message, or
	// why the mediator's answer could not be used.
	Error string
	// TransactionStatus is the stored transaction status: the envelope's
	// status, or derived from Status (5xx Failed, 2xx Successful, else
	// Completed) (src/middleware/messageStore.js setFinalStatus).
	TransactionStatus string
}

// Envelope is a mediator's application/json+openhim answer.
type Envelope struct {
	URN            string // x-mediator-urn
	Status         string
	Response       EnvelopeResponse
	Orchestrations []map[string]any
	Properties     map[string]any
	Error          map[string]any
}

// EnvelopeResponse is an envelope's response, as core reads it.
type EnvelopeResponse struct {
	Status  int
	Headers map[string]any
	Body    string
}

// Forward plays core's router (src/middleware/router.js,
// docs/upstreams/openhim.md §4) for one request: it calls the mediator with
// the client's headers minus Host and Authorization (unless
// ForwardAuthHeader), plus X-OpenHIM-TransactionID, X-OpenHIM-ClientID,
// X-Forwarded-For and X-Forwarded-Host, and the route's Basic credentials
// (trap 16). An answer whose Content-Type contains application/json+openhim
// is an envelope: the outer status is ignored, response.status (an integer
// or a numeric string) is the client's status and response.body its body
// (absent: 204; not a string: sent as JSON), response.headers are copied.
// Invalid JSON, no usable status, an unreachable mediator or the timeout
// give the client 500 "An internal server error occurred" (traps 12, 15). A
// plain answer passes through.  Forward fails only for a malformed request
// or when ctx ends.
func (s *Server) Forward(ctx context.Context, req ForwardRequest) (ForwardResult, error) {
	method := cmp.Or(req.Method, http.MethodGet)
	target := strings.TrimSuffix(req.URL, "/") + cmp.Or(req.Path, "/")
	if req.RawQuery != "" {
		target += "?" + req.RawQuery
	}
	timeout := cmp.Or(req.Timeout, DefaultRouterTimeout)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(cctx, method, target, body)
	if err != nil {
		return ForwardResult{}, fmt.Errorf("openhimtest: forward: %w", err)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	res := ForwardResult{TransactionID: hex.EncodeToString(id), Header: http.Header{}}
	hr.Header = routeHeaders(req, res.TransactionID)
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(hr)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return ForwardResult{}, fmt.Errorf("openhimtest: forward: %w", ctx.Err())
	case err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded):
		res.fail(fmt.Sprintf("Request took longer than %dms", timeout.Milliseconds()))
	case err != nil:
		res.fail(err.Error())
	default:
		res.MediatorStatus, res.MediatorBody = resp.StatusCode, raw
		if strings.Contains(resp.Header.Get("Content-Type"), "application/json+openhim") {
			res.envelope(raw)
		} else {
			res.Status, res.Body = resp.StatusCode, raw
			headers := map[string]any{}
			for k, v := range resp.Header {
				headers[k] = strings.Join(v, ", ")
			}
			setHeaders(res.Header, headers)
		}
	}
	res.Header.Set("X-OpenHIM-TransactionID", res.TransactionID)
	if res.TransactionStatus == "" {
		switch {
		case res.Status >= 500:
			res.TransactionStatus = "Failed"
		case res.Status >= 200 && res.Status <= 299:
			res.TransactionStatus = "Successful"
		default:
			res.TransactionStatus = "Completed"
		}
	}
	return res, nil
}

// routeHeaders are the headers core sends to the route.
func routeHeaders(req ForwardRequest, txID string) http.Header {
	h := req.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Del("Host")
	h.Del("Content-Length")
	if !req.ForwardAuthHeader {
		h.Del("Authorization")
	}
	h.Set("X-OpenHIM-TransactionID", txID)
	if req.ClientID != "" {
		h.Set("X-OpenHIM-ClientID", req.ClientID)
	}
	h.Add("X-Forwarded-For", "127.0.0.1")
	h.Add("X-Forwarded-Host", "localhost:5001")
	if req.RouteUsername != "" && req.RoutePassword != "" && h.Get("Authorization") == "" {
		r := http.Request{Header: h}
		r.SetBasicAuth(req.RouteUsername, req.RoutePassword)
	}
	return h
}

// fail is handleServerError: the client gets 500 and the transaction
// records msg.
func (res *ForwardResult) fail(msg string) {
	res.Status, res.Body = http.StatusInternalServerError, []byte(internalErrorBody)
	res.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if res.Error == "" {
		res.Error = msg
	}
}

// envelope reads the mediator's envelope into the client's answer as core's
// setKoaResponse does, and lists its problems.
func (res *ForwardResult) envelope(raw []byte) {
	res.IsEnvelope = true
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil || env == nil {
		res.Problems = append(res.Problems, "the body is not a JSON object: the client gets 500")
		res.fail("the envelope is not a JSON object")
		return
	}
	res.Problems = checkEnvelope(env)
	e := &Envelope{}
	e.URN, _ = env["x-mediator-urn"].(string)
	e.Status, _ = env["status"].(string)
	e.Properties, _ = env["properties"].(map[string]any)
	e.Error, _ = env["error"].(map[string]any)
	e.Orchestrations = list(env["orchestrations"])
	res.Envelope = e
	if st, ok := env["status"]; ok && st != nil {
		res.TransactionStatus = fmt.Sprint(st) // stored unchecked (trap 14)
	}
	res.Error, _ = e.Error["message"].(string)

	r, _ := env["response"].(map[string]any)
	status, ok := httpStatus(r["status"])
	if !ok {
		res.fail("response.status is not an HTTP status")
		return
	}
	e.Response = EnvelopeResponse{Status: status}
	e.Response.Headers, _ = r["headers"].(map[string]any)
	res.Status = status
	switch b := r["body"].(type) {
	case nil: // Koa: a null body is 204 No Content
		res.Status = http.StatusNoContent
	case string:
		e.Response.Body, res.Body = b, []byte(b)
		res.Header.Set("Content-Type", "text/plain; charset=utf-8")
		if strings.HasPrefix(b, "<") {
			res.Header.Set("Content-Type", "text/html; charset=utf-8")
		}
	default:
		res.Body, _ = json.Marshal(b)
		res.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	setHeaders(res.Header, e.Response.Headers)
}

// httpStatus is response.status as core sets it: an integer, or a string
// that parses as one, from 100 to 999.
func httpStatus(v any) (int, bool) {
	if s, ok := v.(string); ok {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		return n, err == nil && n >= 100 && n <= 999
	}
	f, ok := v.(float64)
	return int(f), ok && f == math.Trunc(f) && f >= 100 && f <= 999
}

// setHeaders copies headers into the client's answer as setKoaResponse
// does: content-type through Koa's type setter (which adds the utf-8
// charset of text and JSON types), content-length, content-encoding and
// transfer-encoding skipped.
func setHeaders(h http.Header, headers map[string]any) {
	for k, v := range headers {
		switch strings.ToLower(k) {
		case "content-length", "content-encoding", "transfer-encoding":
		case "content-type":
			ct := fmt.Sprint(v)
			if mt := strings.TrimSpace(ct); !strings.Contains(ct, ";") && (strings.HasPrefix(mt, "text/") || mt == "application/json") {
				ct += "; charset=utf-8"
			}
			h.Set("Content-Type", ct)
		default:
			h.Set(k, fmt.Sprint(v))
		}
	}
}

// checkEnvelope lists what is wrong with an envelope
// (docs/upstreams/openhim.md §4.2, traps 12 to 14), each with what core then
// does.
func checkEnvelope(env map[string]any) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if urn, _ := env["x-mediator-urn"].(string); urn == "" {
		add("x-mediator-urn is missing or not a string: core records no mediator for the transaction")
	}
	if st, ok := env["status"]; ok && !slices.Contains(transactionStatuses, fmt.Sprint(st)) {
		add("status %q is not one of %s: core stores it unchecked", fmt.Sprint(st), strings.Join(transactionStatuses, ", "))
	}
	r, ok := env["response"].(map[string]any)
	if !ok {
		add("response is missing or not an object: the client gets 500")
	} else {
		switch st, ok := r["status"]; {
		case !ok || st == nil:
			add("response.status is missing: the client gets 500")
		default:
			if _, ok := httpStatus(st); !ok {
				add("response.status %v is not an integer HTTP status: the client gets 500", st)
			}
		}
		switch r["body"].(type) {
		case nil:
			add("response.body is missing or null: the client gets 204 No Content")
		case string:
		default:
			add("response.body is not a string: core sends it to the client as JSON")
		}
	}
	if o, ok := env["orchestrations"]; ok {
		orchs, ok := o.([]any)
		if !ok {
			add("orchestrations is not an array: core cannot store the response metadata")
		}
		for i, item := range orchs {
			orch, _ := item.(map[string]any)
			if name, _ := orch["name"].(string); name == "" {
				add("orchestrations[%d].name is missing: core cannot store the response metadata", i)
			}
			if req, ok := orch["request"].(map[string]any); ok && req["timestamp"] == nil {
				add("orchestrations[%d].request.timestamp is missing: core cannot store the response metadata", i)
			}
		}
	}
	return out
}
