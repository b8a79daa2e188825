package openhimtest

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultRouterTimeout is core's router.timeout: how long the router waits
// for a route's answer when the channel sets no timeout.
const DefaultRouterTimeout = 60 * time.Second

// Transaction statuses (src/model/transactions.js).
const (
	TransactionProcessing          = "Processing"
	TransactionPendingAsync        = "Pending Async"
	TransactionSuccessful          = "Successful"
	TransactionCompleted           = "Completed"
	TransactionCompletedWithErrors = "Completed with error(s)"
	TransactionFailed              = "Failed"
)

var transactionStatuses = []string{
	TransactionProcessing, TransactionPendingAsync, TransactionSuccessful,
	TransactionCompleted, TransactionCompletedWithErrors, TransactionFailed,
}

// internalErrorBody is the router's answer when the primary route fails
// (handleServerError in src/middleware/router.js).
const internalErrorBody = "An internal server error occurred"

// ForwardRequest is a client's request that OpenHIM has matched to a
// channel whose primary route is the mediator. Channel matching, client
// authentication and the channel's allowed methods are not modelled: the
// caller names the route directly.
type ForwardRequest struct {
	// Body is the client's request body. Core forwards it only for POST,
	// PUT and PATCH.
	Body []byte
	// ClientID is the authenticated client's clientID, sent as
	// X-OpenHIM-ClientID. Empty means a public channel (no header).
	ClientID string
	// ClientIP is the client's address, appended as X-Forwarded-For.
	// Defaults to "127.0.0.1".
	ClientIP string
	// ForwardAuthHeader is the route's forwardAuthHeader: keep the
	// client's Authorization header (core drops it by default).
	ForwardAuthHeader bool
	// Header holds the client's request headers, Content-Type and
	// Authorization included. Core passes them all on except Host and
	// (unless ForwardAuthHeader) Authorization.
	Header http.Header
	// Host is the Host the client called OpenHIM on, sent as
	// X-Forwarded-Host. Defaults to "localhost:5001".
	Host string
	// Method is the client's method. Defaults to GET.
	Method string
	// Path is the path sent to the mediator: the route's path, or the
	// client's path after the route's pathTransform. Defaults to "/".
	Path string
	// RawQuery is the client's query string, without "?"; core appends it.
	RawQuery string
	// RoutePassword and RouteUsername are the route's password and
	// username; when both are set core sends them as HTTP Basic, unless an
	// Authorization header is forwarded.
	RoutePassword, RouteUsername string
	// Timeout is the channel's timeout. Defaults to DefaultRouterTimeout.
	// When it runs out, the client gets 500 "An internal server error
	// occurred".
	Timeout time.Duration
	// Transport sends the request to the mediator, e.g. one trusting a
	// test certificate for an https URL (a secured route). Defaults to a
	// clone of http.DefaultTransport. Redirects are never followed and
	// responses never transparently decompressed, as with Node's http.
	Transport http.RoundTripper
	// URL is the route's scheme, host and port, e.g.
	// "http://127.0.0.1:6000"; "https" stands for a secured route.
	URL string
}

// ForwardResult is what Server.Forward saw and what the client got.
type ForwardResult struct {
	// Body is the body the client receives.
	Body []byte
	// Envelope is the parsed mediator envelope; nil unless IsEnvelope and
	// the body parsed as a JSON object.
	Envelope *Envelope
	// Error is the message core stores as the transaction's error: the
	// envelope's error.message, or why the mediator could not be reached
	// or its answer not used. Empty when none.
	Error string
	// Header holds the headers the client receives (Koa's; Node's Date and
	// Connection are not included).
	Header http.Header
	// IsEnvelope reports whether the mediator's Content-Type contained
	// "application/json+openhim".
	IsEnvelope bool
	// MediatorBody is the mediator's answer body, decompressed if it was
	// gzip or deflate encoded.
	MediatorBody []byte
	// MediatorHeader holds the mediator's answer headers.
	MediatorHeader http.Header
	// MediatorStatus is the mediator's HTTP status (ignored by core for an
	// envelope), 0 when there was no answer.
	MediatorStatus int
	// Problems lists what is wrong with the envelope by the contract's
	// rules, each with its consequence in core. Empty for a valid envelope
	// and for a plain (non-envelope) answer.
	Problems []string
	// SentHeader holds the headers sent to the mediator.
	SentHeader http.Header
	// Status is the HTTP status the client receives.
	Status int
	// TransactionID is the X-OpenHIM-TransactionID sent to the mediator (a
	// new 24-hex ObjectId).
	TransactionID string
	// TransactionStatus is the status core stores for the transaction: the
	// envelope's status when it has one (even an invalid one), else derived
	// from Status (5xx Failed, 2xx Successful, 4xx and others Completed).
	TransactionStatus string
}

// Envelope is a mediator's application/json+openhim answer. Fields of the
// wrong JSON type are left empty (see ForwardResult.Problems).
type Envelope struct {
	// Error is the envelope's error, nil when absent.
	Error *EnvelopeError
	// Orchestrations are the envelope's orchestrations.
	Orchestrations []Orchestration
	// Properties is the envelope's properties object.
	Properties map[string]any
	// Raw is the whole envelope as the mediator sent it.
	Raw json.RawMessage
	// Response is the envelope's response.
	Response EnvelopeResponse
	// Status is the envelope's status ("" when absent).
	Status string
	// URN is the envelope's x-mediator-urn.
	URN string
}

// EnvelopeResponse is an envelope's response.
type EnvelopeResponse struct {
	// Body is response.body when it is a string.
	Body string
	// Headers is response.headers.
	Headers map[string]any
	// Status is response.status as core reads it (a numeric string is
	// parsed); 0 when missing or unusable.
	Status int
	// Timestamp is response.timestamp as sent.
	Timestamp string
}

// Orchestration is one entry of an envelope's orchestrations.
type Orchestration struct {
	// Error is the orchestration's error, nil when absent.
	Error *EnvelopeError
	// Group is the orchestration's group.
	Group string
	// Name is the orchestration's name.
	Name string
	// Request is the orchestration's request, nil when absent.
	Request *OrchestrationRequest
	// Response is the orchestration's response, nil when absent.
	Response *OrchestrationResponse
}

// OrchestrationRequest is an orchestration's request.
type OrchestrationRequest struct {
	// Body is request.body.
	Body string
	// Headers is request.headers.
	Headers map[string]any
	// Host is request.host.
	Host string
	// Method is request.method.
	Method string
	// Path is request.path.
	Path string
	// Port is request.port (a String in core's schema).
	Port string
	// Querystring is request.querystring.
	Querystring string
	// Timestamp is request.timestamp as sent.
	Timestamp string
}

// OrchestrationResponse is an orchestration's response.
type OrchestrationResponse struct {
	// Body is response.body.
	Body string
	// Headers is response.headers.
	Headers map[string]any
	// Status is response.status.
	Status int
	// Timestamp is response.timestamp as sent.
	Timestamp string
}

// EnvelopeError is an envelope's or orchestration's error.
type EnvelopeError struct {
	// Message is error.message.
	Message string
	// Stack is error.stack.
	Stack string
}

// Transaction is one request forwarded by Server.Forward.
type Transaction struct {
	// ID is the transaction id (X-OpenHIM-TransactionID).
	ID string
	// Request is the forwarded request.
	Request ForwardRequest
	// Result is what came of it.
	Result ForwardResult
	// Time is the server clock's time of the request.
	Time time.Time
}

// Transactions returns the requests forwarded so far, oldest first.
func (s *Server) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transaction, len(s.transactions))
	for i, t := range s.transactions {
		t.Request = t.Request.clone()
		t.Result = t.Result.clone()
		out[i] = t
	}
	return out
}

func (r ForwardRequest) clone() ForwardRequest {
	r.Body = bytes.Clone(r.Body)
	r.Header = r.Header.Clone()
	return r
}

func (r ForwardResult) clone() ForwardResult {
	r.Body = bytes.Clone(r.Body)
	r.Header = r.Header.Clone()
	r.MediatorBody = bytes.Clone(r.MediatorBody)
	r.MediatorHeader = r.MediatorHeader.Clone()
	r.SentHeader = r.SentHeader.Clone()
	r.Problems = append([]string(nil), r.Problems...)
	return r
}

// Forward plays OpenHIM's router for one client request whose channel's
// primary route is the mediator (src/middleware/router.js): it sends the
// request to the mediator with X-OpenHIM-TransactionID,
// X-OpenHIM-ClientID, X-Forwarded-For and X-Forwarded-Host, without the
// client's Authorization (unless ForwardAuthHeader), with the route's Basic
// credentials if set; then it turns the mediator's answer into the
// client's answer as core does. An answer whose Content-Type contains
// "application/json+openhim" (case-sensitively) is read as an envelope: the
// outer status is ignored, response.status (an integer or numeric string)
// becomes the status, response.body the body (null or absent gives 204; a
// non-string is sent as JSON), response.headers are copied (content-type
// sets the type; content-length, content-encoding and transfer-encoding
// are skipped; location with a 3xx redirects). Invalid JSON, a missing
// response or an unusable status give the client 500 "An internal server
// error occurred". Any other answer passes through.
//
// Forward returns an error only for a malformed ForwardRequest or when ctx
// ends; an unreachable or slow mediator is a 500 result, as in core.
func (s *Server) Forward(ctx context.Context, req ForwardRequest) (ForwardResult, error) {
	base, err := url.Parse(req.URL)
	if err != nil {
		return ForwardResult{}, fmt.Errorf("openhimtest: forward: route URL: %w", err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || (base.Path != "" && base.Path != "/") {
		return ForwardResult{}, fmt.Errorf("openhimtest: forward: route URL %q is not scheme://host:port", req.URL)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	path := req.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return ForwardResult{}, fmt.Errorf("openhimtest: forward: path %q does not start with /", path)
	}
	target := base.Scheme + "://" + base.Host + path
	if req.RawQuery != "" {
		target += "?" + req.RawQuery
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultRouterTimeout
	}

	txID := newObjectID()
	started := s.now()
	header := routeHeaders(req, txID)
	withBody := method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch

	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if withBody {
		body = bytes.NewReader(req.Body)
	}
	httpReq, err := http.NewRequestWithContext(cctx, method, target, body)
	if err != nil {
		return ForwardResult{}, fmt.Errorf("openhimtest: forward: %w", err)
	}
	httpReq.Header = header.Clone()
	if _, ok := header["User-Agent"]; !ok {
		// Node sends no User-Agent of its own.
		httpReq.Header["User-Agent"] = []string{""}
	}
	httpReq.Close = true
	transport := req.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableCompression = true
		transport = t
	}
	client := &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	res := ForwardResult{TransactionID: txID, SentHeader: header.Clone()}
	k := newKoaResponse()
	wantsHTML := acceptsHTML(req.Header.Values("Accept"))
	serverError := func(msg string) {
		res.Error = msg
		k.setStatus(http.StatusInternalServerError)
		k.setBody(jsStr(internalErrorBody))
	}

	var envelope *jsValue
	resp, err := client.Do(httpReq)
	if err == nil {
		var raw []byte
		raw, err = readMediatorBody(resp)
		_ = resp.Body.Close()
		res.MediatorStatus = resp.StatusCode
		res.MediatorHeader = resp.Header.Clone()
		res.MediatorBody = raw
		if err == nil {
			envelope = answer(&res, k, resp, raw, txID, wantsHTML, serverError)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ForwardResult{}, fmt.Errorf("openhimtest: forward: %w", ctx.Err())
		}
		msg := err.Error()
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			msg = fmt.Sprintf("Request took longer than %dms", timeout.Milliseconds())
		}
		serverError(msg)
	}

	res.TransactionStatus = transactionStatus(envelope, k.status)
	res.Status, res.Header, res.Body = k.finish(method)

	s.mu.Lock()
	s.transactions = append(s.transactions, Transaction{ID: txID, Request: req.clone(), Result: res.clone(), Time: started})
	s.mu.Unlock()
	return res, nil
}

// answer sets the client's response from the mediator's, and returns the
// parsed envelope (nil for a plain answer or invalid JSON).
func answer(res *ForwardResult, k *koaResponse, resp *http.Response, raw []byte, txID string, wantsHTML bool, serverError func(string)) *jsValue {
	headers := nodeHeaders(resp.Header)
	ct := headers.prop("content-type")
	if !ct.isString() || !strings.Contains(ct.s, "application/json+openhim") {
		plain := newObject()
		plain.obj.set("status", jsNum(float64(resp.StatusCode)))
		plain.obj.set("headers", headers)
		var buf []byte
		if enc := headers.prop("content-encoding"); enc.isString() && (enc.s == "gzip" || enc.s == "deflate") {
			// Core decodes a compressed body to a string.
			plain.obj.set("body", jsStr(string(raw)))
		} else {
			buf = append([]byte{}, raw...)
		}
		if err := setKoaResponse(k, plain, txID, wantsHTML, buf); err != nil {
			serverError(err.msg)
		}
		return nil
	}
	res.IsEnvelope = true
	v, err := parseJSON(raw)
	if err != nil {
		res.Problems = append(res.Problems, "the body is not valid JSON: the client gets 500 "+strconv.Quote(internalErrorBody))
		serverError(strings.TrimPrefix(err.Error(), errNotJSON.Error()+": "))
		return nil
	}
	res.Problems = append(res.Problems, checkEnvelope(v)...)
	if v.isObject() {
		env := parseEnvelope(v)
		res.Envelope = &env
	}
	if v.kind == jsNull {
		serverError("Cannot read properties of null (reading 'error')")
		return v
	}
	if e := v.prop("error"); !e.isNullish() {
		res.Error = primitiveString(e.prop("message"))
	}
	if err := setKoaResponse(k, v.prop("response"), txID, wantsHTML, nil); err != nil {
		serverError(err.msg)
	}
	return v
}

// readMediatorBody reads the answer as core does: gzip and deflate bodies
// are decompressed.
func readMediatorBody(resp *http.Response) ([]byte, error) {
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var rd io.ReadCloser
	switch strings.Join(resp.Header.Values("Content-Encoding"), ", ") {
	case "gzip":
		rd, err = gzip.NewReader(bytes.NewReader(raw))
	case "deflate":
		rd, err = zlib.NewReader(bytes.NewReader(raw))
	default:
		return raw, nil
	}
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// nodeDiscardDuplicates are the headers Node keeps only the first of.
var nodeDiscardDuplicates = map[string]bool{
	"age": true, "authorization": true, "content-length": true, "content-type": true, "etag": true,
	"expires": true, "from": true, "host": true, "if-modified-since": true, "if-unmodified-since": true,
	"last-modified": true, "location": true, "max-forwards": true, "proxy-authorization": true,
	"referer": true, "retry-after": true, "server": true, "user-agent": true,
}

// nodeHeaderValue is one header as Node's IncomingMessage.headers holds
// it: set-cookie an array, cookie joined by "; ", some headers only their
// first value, the others joined by ", ".
func nodeHeaderValue(lower string, values []string) *jsValue {
	switch {
	case lower == "set-cookie":
		arr := jsArr()
		for _, v := range values {
			arr.arr = append(arr.arr, jsStr(v))
		}
		return arr
	case lower == "cookie":
		return jsStr(strings.Join(values, "; "))
	case nodeDiscardDuplicates[lower]:
		return jsStr(values[0])
	}
	return jsStr(strings.Join(values, ", "))
}

// nodeHeaders is IncomingMessage.headers: lower-case names.
func nodeHeaders(h http.Header) *jsValue {
	out := newObject()
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(h[k]) == 0 {
			continue
		}
		lower := strings.ToLower(k)
		out.obj.set(lower, nodeHeaderValue(lower, h[k]))
	}
	return out
}

// routeHeaders builds the headers core sends to the route
// (constructOptionsObject, setupProxyHeaders, storeTransaction, the client
// authentication middleware).
func routeHeaders(req ForwardRequest, txID string) http.Header {
	out := http.Header{}
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lower := strings.ToLower(k)
		values := req.Header[k]
		if len(values) == 0 || lower == "host" || lower == "content-length" || lower == "transfer-encoding" ||
			(lower == "authorization" && !req.ForwardAuthHeader) {
			continue
		}
		v := nodeHeaderValue(lower, values)
		if v.isArray() {
			for _, e := range v.arr {
				out.Add(k, e.s)
			}
			continue
		}
		out.Add(k, v.s)
	}
	clientIP := req.ClientIP
	if clientIP == "" {
		clientIP = "127.0.0.1"
	}
	host := req.Host
	if host == "" {
		host = "localhost:5001"
	}
	// Core sets these under capitalised keys, next to any lower-case ones
	// the client sent, so Node sends both lines.
	out.Add("X-Openhim-Transactionid", txID)
	if req.ClientID != "" {
		out.Add("X-Openhim-Clientid", req.ClientID)
	}
	out.Add("X-Forwarded-For", clientIP)
	out.Add("X-Forwarded-Host", host)
	if req.RouteUsername != "" && req.RoutePassword != "" && out.Get("Authorization") == "" {
		out.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(req.RouteUsername+":"+req.RoutePassword)))
	}
	return out
}
