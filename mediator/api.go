package mediator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// Body size limits of the inbound routes.
const (
	maxClaimBody    = 4 << 20
	maxFeedbackBody = 64 << 10
)

// Headers read from callers.
const (
	headerRequestID     = "X-Request-Id"
	headerTransactionID = "X-OpenHIM-TransactionID"
)

func init() {
	gin.SetMode(gin.ReleaseMode)
}

// api is the HTTP interface: the inbound routes, which store a job and
// answer, and the probes. It reads the rest of the mediator through small
// functions.
type api struct {
	store   storetype.Store
	log     zerolog.Logger
	metrics *Metrics
	// urn names the mediator in the OpenHIM envelope.
	urn string
	// username and password are the Basic credentials of /mediator/*.
	username, password string
	// dates reads openIMIS dates in its calendar.
	dates func() mapping.DateReader
	// loginProblem says why openIMIS logins do not work ("" when they do);
	// openhim is the OpenHIM registration state.
	loginProblem func() string
	openhim      func() string
	// limits are the upstreams' concurrency limits, for /ready.
	limits map[string]*UpstreamLimit
	// paused reports the upstreams' client pauses, by system.
	paused func() map[string]upstreamPause
	// throttle counts failed Basic auth per client address.
	throttle *authThrottle
	// writeCheck caches whether the store can commit, for /ready.
	writeCheck *writeCheck
	// sources are the FHIR sources besides openIMIS (spec §8).
	sources *sources
}

// ctxAuthRefused marks a request refused by basicAuth (401, 429): its
// request line is logged at debug, so that a password-guessing client cannot
// flood the log; basicAuth logs a summary instead.
const ctxAuthRefused = "mediator_auth_refused"

// routes builds the gin engine: recovery → request id and logger → the
// routes; /mediator/* adds Basic auth.
func (a *api) routes() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RemoveExtraSlash = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(a.requestContext(), a.recovery())

	for path, h := range map[string]gin.HandlerFunc{
		"/health":  a.handleHealth(),
		"/ready":   a.handleReady(),
		"/metrics": gin.WrapH(a.metrics.Handler()),
	} {
		r.GET(path, h)
		r.HEAD(path, h)
	}

	// The OpenHIM channels match a trailing slash too (urlPattern ending
	// /?$), and a sender may add one: both paths are the route.
	g := r.Group("/mediator", a.basicAuth())
	for path, h := range map[string]gin.HandlerFunc{
		"/claim-response":  a.handleClaimResponse(),
		"/claims-feedback": a.handleClaimsFeedback(),
	} {
		g.POST(path, h)
		g.POST(path+"/", h)
	}
	// A FHIR source calls /mediator/fhir/<name>, and HAPI and Kodjin PUT
	// the resource at <callback>/<Type>/<id> (docs/upstreams/fhir-subscriptions.md §1.1).
	fh := a.handleFHIRNotification()
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		g.Handle(method, "/fhir/:source", fh)
		g.Handle(method, "/fhir/:source/*rest", fh)
	}

	r.NoRoute(func(c *gin.Context) { a.fail(c, http.StatusNotFound, "no such route") })
	r.NoMethod(func(c *gin.Context) { a.fail(c, http.StatusMethodNotAllowed, "method not allowed") })
	return r
}

// requestContext gives every request an id (the caller's X-Request-Id when
// it is sane) and a logger carrying it and the OpenHIM transaction id, then
// logs the request when it is done.
func (a *api) requestContext() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader(headerRequestID)
		if !saneID(id) {
			id = newRequestID()
		}
		c.Header(headerRequestID, id)
		lc := a.log.With().Str("request_id", id)
		if tx := c.GetHeader(headerTransactionID); tx != "" && saneID(tx) {
			lc = lc.Str("openhim_transaction_id", tx)
		}
		log := lc.Logger()
		c.Request = c.Request.WithContext(log.WithContext(c.Request.Context()))
		c.Next()
		status := c.Writer.Status()
		route := routeOf(c)
		if route == "" {
			route = "unmatched"
		}
		a.metrics.request(route, status, time.Since(start))
		ev := log.Info()
		if status >= 500 {
			ev = log.Error()
		}
		if route == "/health" || route == "/ready" || route == "/metrics" || c.GetBool(ctxAuthRefused) {
			ev = log.Debug()
		}
		ev.Str("method", c.Request.Method).
			Str("path", c.Request.URL.Path).
			Int("status", status).
			Int("bytes", c.Writer.Size()).
			Dur("duration", time.Since(start)).
			Str("remote", c.ClientIP()).
			Msg("request")
	}
}

// routeOf is the route a request matched, "" for none; a route's trailing
// slash form is the route itself.
func routeOf(c *gin.Context) string {
	return strings.TrimSuffix(c.FullPath(), "/")
}

// saneID accepts ids safe to log and echo: up to 64 letters, digits, - _ .
func saneID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recovery turns a panic into a logged 500 so that one bad request cannot
// stop the server. The panic value is logged, never sent.
func (a *api) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				zerolog.Ctx(c.Request.Context()).Error().Interface("panic", v).Msg("handler panicked")
				if !c.Writer.Written() {
					a.fail(c, http.StatusInternalServerError, "internal error")
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// basicAuth checks the caller's Basic credentials in constant time. A
// client address that sent wrong credentials authFailureLimit times within
// authFailureWindow is answered 429, without a check, until the window
// passes. The address is the connection's peer (X-Forwarded-For is not
// trusted): behind OpenHIM, every request shares OpenHIM's address.
func (a *api) basicAuth() gin.HandlerFunc {
	wantUser := sha256.Sum256([]byte(a.username))
	wantPass := sha256.Sum256([]byte(a.password))
	return func(c *gin.Context) {
		addr := c.RemoteIP()
		if left, throttled := a.throttle.throttled(addr); throttled {
			c.Set(ctxAuthRefused, true)
			a.metrics.authFailure("throttled")
			c.Header("Retry-After", strconv.Itoa(int((left+time.Second-1)/time.Second)))
			a.fail(c, http.StatusTooManyRequests, "too many failed logins from this address; try again after Retry-After seconds")
			c.Abort()
			return
		}
		user, pass, ok := c.Request.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			c.Set(ctxAuthRefused, true)
			if ok { // credentials sent, and wrong: a failed login
				a.metrics.authFailure("wrong_credentials")
				a.failedLogin(c, addr)
			}
			c.Header("WWW-Authenticate", `Basic realm="cht-openimis-mediator", charset="UTF-8"`)
			a.fail(c, http.StatusUnauthorized, "missing or wrong credentials")
			c.Abort()
			return
		}
		c.Next()
	}
}

// failedLogin counts a failed login from addr and logs a summary: one warning
// when the address becomes throttled, and one when a throttled window has
// passed, with its counts.
func (a *api) failedLogin(c *gin.Context, addr string) {
	f := a.throttle.fail(addr)
	log := zerolog.Ctx(c.Request.Context())
	if f.ended != nil {
		log.Warn().Str("remote", addr).Int("failures", f.ended.failures).Int("refused", f.ended.refused).
			Time("since", f.ended.start).Msg("failed logins: throttling of this address ended")
	}
	if f.throttled {
		log.Warn().Str("remote", addr).Int("failures", f.failures).Dur("window", a.throttle.window).
			Time("until", f.until).Msg("failed logins: this address is throttled (429) until the window passes")
	}
}

// readJSONBody checks the content type and reads at most limit bytes. On a
// problem it answers (415, 413, 400) and returns false.
func (a *api) readJSONBody(c *gin.Context, limit int64) ([]byte, bool) {
	if !isJSON(c.GetHeader("Content-Type")) {
		a.fail(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return nil, false
	}
	body, err := readBody(http.MaxBytesReader(c.Writer, c.Request.Body, limit), c.Request.ContentLength, limit)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		a.fail(c, http.StatusRequestEntityTooLarge, "body larger than the limit of "+byteSize(limit))
		return nil, false
	case err != nil:
		a.fail(c, http.StatusBadRequest, "could not read the body")
		return nil, false
	}
	return body, true
}

// exactBodyUpTo is the largest declared Content-Length read into a buffer
// of that size at once; a larger body's buffer grows with the bytes that
// really arrive, so that a length declared and not sent holds no memory.
const exactBodyUpTo = 64 << 10

// readBody reads a request body of the given Content-Length (-1: unknown)
// into one buffer of that size; io.ReadAll would grow its buffer by doubling,
// which is twice the allocation for the intake's bodies. r enforces limit.
func readBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength <= 0 || contentLength > min(limit, exactBodyUpTo) {
		return io.ReadAll(r)
	}
	body := make([]byte, contentLength)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// isJSON accepts application/json and the +json types (application/fhir+json).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
