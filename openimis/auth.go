package openimis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ErrLoginBackoff is returned without contacting openIMIS while the client
// waits after a failed login: openIMIS locks accounts after repeated failures
// (docs/upstreams/openimis.md §1, trap 9).
var ErrLoginBackoff = errors.New("openimis: waiting before the next login attempt")

// LoginBackoffError is the answer, without contacting openIMIS, while the
// client waits after a failed login.
type LoginBackoffError struct {
	// Left is how long the client still waits; Last is the failed login.
	Left time.Duration
	Last error
}

// Error implements error.
func (e *LoginBackoffError) Error() string {
	return fmt.Sprintf("%v (%s left): last attempt: %v", ErrLoginBackoff, e.Left.Round(time.Second), e.Last)
}

// Unwrap gives ErrLoginBackoff and the failed login.
func (e *LoginBackoffError) Unwrap() []error { return []error{ErrLoginBackoff, e.Last} }

// RetryAfterDuration is how long to wait before trying again: a job waits
// for the next login without using an attempt.
func (e *LoginBackoffError) RetryAfterDuration() time.Duration { return e.Left }

// LoginError is a refused login. openIMIS 24.10 answers 400 with an empty
// body for a wrong password, 401 "INCORRECT_CREDENTIALS" for an unknown user
// and 400 "Missing username or password"; newer cores answer a wrong password
// 401 "INCORRECT_CREDENTIALS" and an expired one 401 "PASSWORD_EXPIRED"
// (docs/upstreams/openimis.md §1, trap 18).
type LoginError struct {
	Status  int
	Message string
}

// msgPasswordExpired is newer cores' answer to an expired password.
const msgPasswordExpired = "PASSWORD_EXPIRED"

// Expired reports whether openIMIS refused the login because the password
// expired: only a person can fix that, by setting a new password.
func (e *LoginError) Expired() bool { return e.Message == msgPasswordExpired }

// Error implements error. It never contains the credentials.
func (e *LoginError) Error() string {
	msg := e.Message
	if msg == "" && e.Status == http.StatusBadRequest {
		msg = "wrong password (or account locked)"
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Expired() {
		return fmt.Sprintf("openimis login: %d: %s: the password of OPENIMIS_USERNAME expired; set a new one in openIMIS and in OPENIMIS_PASSWORD", e.Status, msg)
	}
	return fmt.Sprintf("openimis login: %d: %s: check OPENIMIS_USERNAME and OPENIMIS_PASSWORD", e.Status, msg)
}

const (
	minLoginBackoff = time.Second
	maxLoginBackoff = 5 * time.Minute

	// openIMIS in production locks an account after 5 refused logins, for
	// 5 minutes since the last one (django-axes, docs/upstreams/openimis.md §1). Two quick retries
	// (a password just being changed), then one try a lock-out window
	// apart: never more than 3 refusals in any 5 minutes, so the mediator
	// never locks its own account.
	quickLoginRetries   = 2
	lockoutSafeInterval = 5*time.Minute + 30*time.Second
)

// loginBackoff is the wait after a failed login: refusals (a wrong password)
// follow the lock-out-safe schedule, other failures (openIMIS unreachable,
// 5xx) double from 1 s to 5 min.
func loginBackoff(refusals, failures int) time.Duration {
	if refusals > quickLoginRetries {
		return lockoutSafeInterval
	}
	if refusals > 0 {
		return minLoginBackoff << (refusals - 1)
	}
	return min(minLoginBackoff<<min(failures-1, 16), maxLoginBackoff)
}

// authenticator holds the JWT and logs in when it is missing or about to
// expire. One login runs at a time; concurrent callers wait for it, each for
// as long as its own context allows.
type authenticator struct {
	client             *Client
	username, password string
	now                func() time.Time

	// login is held while a login runs.
	login chan struct{}

	mu        sync.Mutex // guards the fields below
	jwt       string
	refreshAt time.Time
	failures  int // logins failed in a row
	refusals  int // of those, refused by openIMIS (wrong credentials)
	retryAt   time.Time
	lastErr   error
	loggedIn  bool
}

func newAuthenticator(c *Client, username, password string, now func() time.Time) *authenticator {
	return &authenticator{client: c, username: username, password: password, now: now, login: make(chan struct{}, 1)}
}

// token returns a valid JWT, logging in when needed.
func (a *authenticator) token(ctx context.Context) (string, error) {
	if tok, err := a.held(); tok != "" || err != nil {
		return tok, err
	}
	select {
	case a.login <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("openimis login: waiting for the login in progress: %w", context.Cause(ctx))
	}
	defer func() { <-a.login }()
	// The login this call waited for may have brought a token, or failed.
	if tok, err := a.held(); tok != "" || err != nil {
		return tok, err
	}
	now := a.now()
	tok, exp, err := a.client.login(ctx, a.username, a.password)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		// A 429 is no refused login: the client-wide pause covers it, and the
		// login backoff (which keeps openIMIS from locking the account) must
		// not grow with it.
		if ctx.Err() == nil && !errors.Is(err, ErrRateLimited) {
			a.failures++
			// Refusals count until a login succeeds: other failures in
			// between (timeouts, 5xx) do not reset them.
			var refused *LoginError
			if errors.As(err, &refused) {
				a.refusals++
			}
			a.lastErr = err
			a.retryAt = a.now().Add(loginBackoff(a.refusals, a.failures))
		}
		a.jwt = ""
		return "", err
	}
	a.failures, a.refusals, a.lastErr, a.retryAt = 0, 0, nil, time.Time{}
	a.jwt = tok
	a.loggedIn = true
	// Refresh shortly before exp: a fifth of the lifetime, at most 5 minutes.
	lifetime := exp.Sub(now)
	a.refreshAt = exp.Add(-min(lifetime/5, 5*time.Minute))
	return tok, nil
}

// held returns the current token while it is fresh, or ErrLoginBackoff
// while the client waits after a failed login, or neither when a login is
// due.
func (a *authenticator) held() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.jwt != "" && now.Before(a.refreshAt) {
		return a.jwt, nil
	}
	if now.Before(a.retryAt) {
		return "", &LoginBackoffError{Left: a.retryAt.Sub(now), Last: a.lastErr}
	}
	return "", nil
}

// invalidate forgets token if it is still the current one, so that the next
// call logs in again.
func (a *authenticator) invalidate(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jwt == token {
		a.jwt = ""
	}
}

// Login logs in now unless a valid token is held. It is how the mediator
// checks readiness at startup.
func (c *Client) Login(ctx context.Context) error {
	_, err := c.auth.token(ctx)
	return err
}

// LoginFailure returns the error of the latest login when it failed (a
// *LoginError when openIMIS refused it), and nil once a login succeeds
// again. A login cut short by its caller or answered 429 changes nothing.
func (c *Client) LoginFailure() error {
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	return c.auth.lastErr
}

// LoggedIn reports whether a login has ever succeeded.
func (c *Client) LoggedIn() bool {
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	return c.auth.loggedIn
}

type loginRequest struct {
	Password string `json:"password"`
	Username string `json:"username"`
}

type loginResponse struct {
	Exp   int64  `json:"exp"`
	Token string `json:"token"`
}

// login calls POST login/ (docs/upstreams/openimis.md §1). It sends no
// Authorization header: an expired bearer token would make the login itself
// fail.
func (c *Client) login(ctx context.Context, username, password string) (string, time.Time, error) {
	if err := c.rateLimited(); err != nil {
		return "", time.Time{}, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	sent := c.now()
	resp, err := c.rc.R().SetContext(ctx).
		SetHeader("Content-Type", "application/json").
		SetBody(loginRequest{Username: username, Password: password}).
		Post("/login/")
	if err != nil {
		return "", time.Time{}, fmt.Errorf("openimis POST %slogin/: %w", c.fhirPath, transportError(err))
	}
	if resp.StatusCode() == http.StatusTooManyRequests {
		return "", time.Time{}, c.answered(sent, resp.StatusCode(), parseRetryAfter(resp.Header().Get("Retry-After"), c.now()), newAPIError(http.MethodPost, c.fhirPath+"login/", resp))
	}
	c.answered(sent, resp.StatusCode(), 0, nil)
	if resp.StatusCode() != http.StatusOK {
		if resp.StatusCode() == http.StatusBadRequest || resp.StatusCode() == http.StatusUnauthorized {
			return "", time.Time{}, &LoginError{Status: resp.StatusCode(), Message: errorMessage(resp.Body())}
		}
		return "", time.Time{}, newAPIError(http.MethodPost, c.fhirPath+"login/", resp)
	}
	var lr loginResponse
	if err := json.Unmarshal(resp.Body(), &lr); err != nil || lr.Token == "" || lr.Exp == 0 {
		return "", time.Time{}, fmt.Errorf("openimis POST %slogin/: answer without token and exp", c.fhirPath)
	}
	return lr.Token, time.Unix(lr.Exp, 0), nil
}
