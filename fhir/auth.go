package fhir

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Authenticator authenticates the client's requests (docs/upstreams/fhir-subscriptions.md
// §8). Implementations are safe for concurrent use.
type Authenticator interface {
	// Authorization returns the Authorization header of the next request,
	// "" for none, logging in first when needed. hc is the client's HTTP
	// client (its transport, redirects not followed); ctx bounds the login.
	Authorization(ctx context.Context, hc *http.Client) (string, error)
	// Rejected is told that a request sent with the header value was
	// answered 401, and reports whether one retry may succeed: login-based
	// authenticators forget the token and answer true, static ones false.
	Rejected(value string) bool
}

// None sends no credentials (HAPI by default, §8).
type None struct{}

// Authorization implements Authenticator.
func (None) Authorization(context.Context, *http.Client) (string, error) { return "", nil }

// Rejected implements Authenticator.
func (None) Rejected(string) bool { return false }

// Basic sends HTTP Basic credentials (Aidbox clients with the basic grant,
// §6.1).
type Basic struct{ Username, Password string }

// Authorization implements Authenticator.
func (b Basic) Authorization(context.Context, *http.Client) (string, error) {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(b.Username+":"+b.Password)), nil
}

// Rejected implements Authenticator.
func (Basic) Rejected(string) bool { return false }

// String keeps the password out of prints.
func (b Basic) String() string { return "Basic(" + b.Username + ", REDACTED)" }

// Bearer sends a static bearer token.
type Bearer struct{ Token string }

// Authorization implements Authenticator.
func (b Bearer) Authorization(context.Context, *http.Client) (string, error) {
	return "Bearer " + b.Token, nil
}

// Rejected implements Authenticator.
func (Bearer) Rejected(string) bool { return false }

// String keeps the token out of prints.
func (Bearer) String() string { return "Bearer(REDACTED)" }

// LoginError is a login or token request the server refused or answered
// without a token. It never contains the credentials.
type LoginError struct {
	// URL is the login's URL, without query or user information.
	URL     string
	Status  int
	Message string
}

// Error implements error.
func (e *LoginError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Status == 0 {
		return fmt.Sprintf("fhir login %s: %s", e.URL, msg)
	}
	return fmt.Sprintf("fhir login %s: %d: %s", e.URL, e.Status, msg)
}

// Refused reports whether the server refused the credentials (400, 401 or
// 403): only a person can fix that.
func (e *LoginError) Refused() bool {
	return e.Status == http.StatusBadRequest || e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// ErrLoginBackoff is returned, wrapped in a *LoginBackoffError, without
// contacting the server while the authenticator waits after a failed login.
var ErrLoginBackoff = errors.New("fhir: waiting before the next login attempt")

// LoginBackoffError is the answer while the authenticator waits after a
// failed login: the server was not contacted.
type LoginBackoffError struct {
	// Left is how long the authenticator still waits; Last is the failed
	// login.
	Left time.Duration
	Last error
}

// Error implements error.
func (e *LoginBackoffError) Error() string {
	return fmt.Sprintf("%v (%s left): last attempt: %v", ErrLoginBackoff, e.Left.Round(time.Millisecond), e.Last)
}

// Unwrap gives ErrLoginBackoff and the failed login.
func (e *LoginBackoffError) Unwrap() []error { return []error{ErrLoginBackoff, e.Last} }

// RetryAfterDuration is how long to wait before trying again.
func (e *LoginBackoffError) RetryAfterDuration() time.Duration { return e.Left }

const (
	minLoginBackoff = time.Second
	maxLoginBackoff = 5 * time.Minute
	// maxRefreshMargin is how long before a known expiry a token is
	// replaced, at most (a fifth of its lifetime when shorter).
	maxRefreshMargin = 5 * time.Minute
)

// tokenCache holds one token and fetches a new one when it is missing or
// about to expire. One fetch runs at a time; concurrent callers wait for
// it, each as long as its own context allows. After a failed fetch it
// waits (1 s doubling to 5 min) before the next, so that a wrong password
// does not become a login storm under load.
type tokenCache struct {
	fetch func(ctx context.Context, hc *http.Client) (token string, exp time.Time, err error)
	now   func() time.Time
	// sem is held while a fetch runs.
	sem chan struct{}

	mu        sync.Mutex // guards the fields below
	token     string
	refreshAt time.Time // zero: no known expiry, kept until a 401
	failures  int
	retryAt   time.Time
	lastErr   error
}

func newTokenCache(now func() time.Time, fetch func(context.Context, *http.Client) (string, time.Time, error)) *tokenCache {
	if now == nil {
		now = time.Now
	}
	return &tokenCache{fetch: fetch, now: now, sem: make(chan struct{}, 1)}
}

// get returns a fresh token, fetching one when needed.
func (tc *tokenCache) get(ctx context.Context, hc *http.Client) (string, error) {
	if tok, err := tc.held(); tok != "" || err != nil {
		return tok, err
	}
	select {
	case tc.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("fhir login: waiting for the login in progress: %w", context.Cause(ctx))
	}
	defer func() { <-tc.sem }()
	// The fetch this call waited for may have brought a token, or failed.
	if tok, err := tc.held(); tok != "" || err != nil {
		return tok, err
	}
	start := tc.now()
	tok, exp, err := tc.fetch(ctx, hc)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			tc.failures++
			tc.lastErr = err
			tc.retryAt = tc.now().Add(min(minLoginBackoff<<min(tc.failures-1, 16), maxLoginBackoff))
		}
		return "", err
	}
	tc.failures, tc.lastErr, tc.retryAt = 0, nil, time.Time{}
	tc.token = tok
	tc.refreshAt = time.Time{}
	if !exp.IsZero() {
		tc.refreshAt = exp.Add(-min(exp.Sub(start)/5, maxRefreshMargin))
	}
	return tok, nil
}

// held returns the token while it is fresh, or a *LoginBackoffError while
// the cache waits after a failed fetch, or neither when a fetch is due.
func (tc *tokenCache) held() (string, error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	now := tc.now()
	if tc.token != "" && (tc.refreshAt.IsZero() || now.Before(tc.refreshAt)) {
		return tc.token, nil
	}
	if now.Before(tc.retryAt) {
		return "", &LoginBackoffError{Left: tc.retryAt.Sub(now), Last: tc.lastErr}
	}
	return "", nil
}

// forget drops token if it is still the current one.
func (tc *tokenCache) forget(token string) bool {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.token == token {
		tc.token = ""
	}
	return true
}

// failure is the latest fetch's error, nil once one succeeds again.
func (tc *tokenCache) failure() error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.lastErr
}

// JSONLoginOptions configures a JSONLogin.
type JSONLoginOptions struct {
	// URL is the login's absolute URL, e.g. https://api.heydonto.com/auth/login
	// (DefaultLoginURL gives the vendor's).
	URL string
	// UserField is the body's field for the user: "username" (default) or
	// "email" (HeyDonto, §6.3).
	UserField string
	// Username and Password are the credentials.
	Username, Password string
	// TokenFields are the answer's fields that may hold the token, tried in
	// order. Defaults to token, accessToken, access_token (trap 24).
	TokenFields []string
	// Now is the clock of token expiry. Defaults to time.Now.
	Now func() time.Time
}

// JSONLogin logs in with POST {"<user field>": …, "password": …} and sends
// the answer's token as a bearer token (HeyDonto, §6.3, §8). The token's
// expiry is read from the answer's exp (epoch seconds) or expires_in
// (seconds), else from the JWT's exp claim (the signature is not checked:
// the server checks it); a token without any is kept until a 401 (trap 24).
type JSONLogin struct {
	opts  JSONLoginOptions
	cache *tokenCache
}

// NewJSONLogin returns a JSONLogin. It does not contact the server.
func NewJSONLogin(opts JSONLoginOptions) (*JSONLogin, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return nil, fmt.Errorf("fhir: login URL %q must be an absolute http(s) URL without credentials", redactURL(opts.URL))
	}
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("fhir: login needs a user and a password")
	}
	if opts.UserField == "" {
		opts.UserField = "username"
	}
	if opts.UserField == "password" {
		return nil, errors.New(`fhir: the login's user field cannot be "password"`)
	}
	if len(opts.TokenFields) == 0 {
		opts.TokenFields = defaultTokenFields
	}
	l := &JSONLogin{opts: opts}
	l.cache = newTokenCache(opts.Now, l.login)
	return l, nil
}

// DefaultLoginURL is the vendor's login URL for a FHIR base: the base's
// origin and the vendor's LoginPath; "" when the vendor has none.
func DefaultLoginURL(v Vendor, baseURL string) string {
	q, _ := QuirksOf(v)
	u, err := url.Parse(baseURL)
	if q.LoginPath == "" || err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host + q.LoginPath
}

// Authorization implements Authenticator.
func (l *JSONLogin) Authorization(ctx context.Context, hc *http.Client) (string, error) {
	tok, err := l.cache.get(ctx, hc)
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

// Rejected implements Authenticator: the token is dropped and the next
// request logs in again.
func (l *JSONLogin) Rejected(value string) bool {
	return l.cache.forget(strings.TrimPrefix(value, "Bearer "))
}

// LoginFailure is the latest login's error, nil once a login succeeds again.
func (l *JSONLogin) LoginFailure() error { return l.cache.failure() }

// String keeps the password out of prints.
func (l *JSONLogin) String() string {
	return "JSONLogin(" + redactURL(l.opts.URL) + ", " + l.opts.Username + ", REDACTED)"
}

// login posts the credentials. It sends no Authorization header.
func (l *JSONLogin) login(ctx context.Context, hc *http.Client) (string, time.Time, error) {
	shown := redactURL(l.opts.URL)
	body, err := json.Marshal(map[string]string{l.opts.UserField: l.opts.Username, "password": l.opts.Password})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fhir login %s: %w", shown, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.opts.URL, bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fhir login %s: %w", shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", time.Time{}, fmt.Errorf("fhir login %s: %w", shown, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fhir login %s: read answer: %w", shown, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", time.Time{}, &LoginError{URL: shown, Status: resp.StatusCode, Message: l.scrub(errorMessage(data))}
	}
	var answer map[string]json.RawMessage
	if err := json.Unmarshal(data, &answer); err != nil {
		return "", time.Time{}, &LoginError{URL: shown, Status: resp.StatusCode, Message: "answer is not a JSON object"}
	}
	var tok string
	for _, f := range l.opts.TokenFields {
		if json.Unmarshal(answer[f], &tok) == nil && tok != "" {
			break
		}
	}
	if tok == "" {
		return "", time.Time{}, &LoginError{URL: shown, Status: resp.StatusCode,
			Message: "answer has no token in " + strings.Join(l.opts.TokenFields, ", ")}
	}
	return tok, expiry(answer, tok, l.cache.now()), nil
}

// scrub removes the password from a server's message, should it echo the
// request.
func (l *JSONLogin) scrub(msg string) string {
	return strings.ReplaceAll(msg, l.opts.Password, "REDACTED")
}

// expiry reads a login answer's exp (epoch seconds) or expires_in
// (seconds from now), as numbers or strings, else the JWT's exp claim;
// zero when none is readable.
func expiry(answer map[string]json.RawMessage, token string, now time.Time) time.Time {
	if n, ok := jsonInt(answer["exp"]); ok && n > 0 {
		return time.Unix(n, 0)
	}
	if n, ok := jsonInt(answer["expires_in"]); ok && n > 0 {
		return now.Add(time.Duration(n) * time.Second)
	}
	return jwtExpiry(token)
}

// jwtExpiry reads the exp claim of a JWT without checking its signature;
// zero when token is no JWT or has no exp.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	if n, ok := jsonInt(claims["exp"]); ok && n > 0 {
		return time.Unix(n, 0)
	}
	return time.Time{}
}

// jsonInt reads an integer written as a JSON number or string.
func jsonInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		if f, err := n.Float64(); err == nil && f >= -9e18 && f <= 9e18 {
			return int64(f), true
		}
		return 0, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return i, true
		}
	}
	return 0, false
}

// ClientCredentialsOptions configures a ClientCredentials.
type ClientCredentialsOptions struct {
	// TokenURL is the token endpoint. When empty, it is read once from
	// <BaseURL>/.well-known/smart-configuration (token_endpoint), as
	// Kodjin publishes it (§6.2).
	TokenURL string
	// BaseURL is the FHIR base, for the discovery.
	BaseURL string
	// ClientID and ClientSecret are the client's credentials.
	ClientID, ClientSecret string
	// Scopes are requested with the token.
	Scopes []string
	// Now is the clock of token expiry. Defaults to time.Now.
	Now func() time.Time
}

// ClientCredentials obtains bearer tokens with the OAuth 2.0
// client_credentials grant (Aidbox POST /auth/token, Kodjin SMART backend
// services, §6.1, §6.2, §8), through golang.org/x/oauth2.
type ClientCredentials struct {
	opts  ClientCredentialsOptions
	cache *tokenCache

	mu       sync.Mutex
	tokenURL string // configured or discovered
}

// NewClientCredentials returns a ClientCredentials. It does not contact the
// server.
func NewClientCredentials(opts ClientCredentialsOptions) (*ClientCredentials, error) {
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("fhir: client credentials need a client id and a secret")
	}
	check := opts.TokenURL
	if check == "" {
		check = opts.BaseURL
	}
	u, err := url.Parse(check)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return nil, fmt.Errorf("fhir: token URL %q (or the base, for discovery) must be an absolute http(s) URL without credentials", redactURL(check))
	}
	cc := &ClientCredentials{opts: opts, tokenURL: opts.TokenURL}
	cc.cache = newTokenCache(opts.Now, cc.fetch)
	return cc, nil
}

// Authorization implements Authenticator.
func (cc *ClientCredentials) Authorization(ctx context.Context, hc *http.Client) (string, error) {
	tok, err := cc.cache.get(ctx, hc)
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

// Rejected implements Authenticator: the token is dropped and the next
// request asks for a new one.
func (cc *ClientCredentials) Rejected(value string) bool {
	return cc.cache.forget(strings.TrimPrefix(value, "Bearer "))
}

// LoginFailure is the latest token request's error, nil once one succeeds
// again.
func (cc *ClientCredentials) LoginFailure() error { return cc.cache.failure() }

// String keeps the secret out of prints.
func (cc *ClientCredentials) String() string {
	return "ClientCredentials(" + cc.opts.ClientID + ", REDACTED)"
}

func (cc *ClientCredentials) fetch(ctx context.Context, hc *http.Client) (string, time.Time, error) {
	tokenURL, err := cc.endpoint(ctx, hc)
	if err != nil {
		return "", time.Time{}, err
	}
	cfg := clientcredentials.Config{
		ClientID: cc.opts.ClientID, ClientSecret: cc.opts.ClientSecret,
		TokenURL: tokenURL, Scopes: cc.opts.Scopes,
	}
	tok, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	shown := redactURL(tokenURL)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			msg := strings.Trim(re.ErrorCode+": "+re.ErrorDescription, ": ")
			if msg == "" {
				msg = errorMessage(re.Body)
			}
			return "", time.Time{}, &LoginError{URL: shown, Status: re.Response.StatusCode, Message: cc.scrub(msg)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return "", time.Time{}, fmt.Errorf("fhir login %s: %w", shown, ue.Err)
		}
		return "", time.Time{}, &LoginError{URL: shown, Message: cc.scrub(err.Error())}
	}
	var exp time.Time
	if !tok.Expiry.IsZero() {
		// oauth2 dates the expiry on the wall clock; move it to ours.
		exp = cc.cache.now().Add(time.Until(tok.Expiry))
	}
	return tok.AccessToken, exp, nil
}

func (cc *ClientCredentials) scrub(msg string) string {
	return strings.ReplaceAll(msg, cc.opts.ClientSecret, "REDACTED")
}

// endpoint is the configured token URL, or the one the SMART configuration
// names (read once, while the cache's fetch lock is held).
func (cc *ClientCredentials) endpoint(ctx context.Context, hc *http.Client) (string, error) {
	cc.mu.Lock()
	known := cc.tokenURL
	cc.mu.Unlock()
	if known != "" {
		return known, nil
	}
	disc := strings.TrimSuffix(cc.opts.BaseURL, "/") + "/.well-known/smart-configuration"
	shown := redactURL(disc)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, disc, nil)
	if err != nil {
		return "", fmt.Errorf("fhir discovery %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("fhir discovery %s: %w", shown, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("fhir discovery %s: read answer: %w", shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &LoginError{URL: shown, Status: resp.StatusCode, Message: "no SMART configuration: set the token URL"}
	}
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if json.Unmarshal(data, &conf) != nil {
		return "", &LoginError{URL: shown, Status: resp.StatusCode, Message: "SMART configuration is not JSON"}
	}
	u, perr := url.Parse(conf.TokenEndpoint)
	if perr != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", &LoginError{URL: shown, Status: resp.StatusCode, Message: "SMART configuration has no absolute token_endpoint"}
	}
	cc.mu.Lock()
	cc.tokenURL = conf.TokenEndpoint
	cc.mu.Unlock()
	return conf.TokenEndpoint, nil
}
