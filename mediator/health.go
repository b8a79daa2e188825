package mediator

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// handleHealth answers 200 while the process runs.
func (a *api) handleHealth() gin.HandlerFunc {
	return func(c *gin.Context) {
		a.respond(c, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// readyBody is the answer of GET /ready.
type readyBody struct {
	// OpenHIM is the registration state (disabled, registering, registered);
	// it never makes the mediator unready.
	OpenHIM string   `json:"openhim"`
	Reasons []string `json:"reasons,omitempty"`
	Status  string   `json:"status"`
	// Limits are the upstreams' current concurrency limits, by system.
	Limits map[string]int `json:"limits,omitempty"`
	// Paused names the upstreams the mediator sends nothing to for now
	// (after a 429, a refused login), until when and why. A pause does not
	// make the mediator unready: it ends by itself.
	Paused map[string]upstreamPause `json:"paused,omitempty"`
	// Sources are the FHIR sources besides openIMIS: their dialect,
	// subscription state and what is wrong, if anything. A source never
	// makes the mediator unready: the openIMIS path and the other sources
	// keep working, and a source's claims still arrive by its search.
	Sources map[string]sourceStatus `json:"sources,omitempty"`
}

// upstreamPause is an upstream's client pausing: no request before Until.
type upstreamPause struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// paused reports, for /ready and /metrics, until when each upstream's client
// sends nothing (a zero time when it does not pause) and why.
func (m *Mediator) paused() map[string]upstreamPause {
	chtUntil, chtWhy := m.opts.CHT.Paused()
	out := map[string]upstreamPause{"cht": {Until: chtUntil, Reason: chtWhy}}
	if until := m.opts.OpenIMIS.Paused(); !until.IsZero() {
		out["openimis"] = upstreamPause{Until: until, Reason: "after 429 Too Many Requests"}
	} else {
		out["openimis"] = upstreamPause{}
	}
	return out
}

// writeCheckTTL is how long /ready reuses the store's write check, so that
// frequent probes stay cheap.
const writeCheckTTL = 2 * time.Second

// writeCheck caches the store's write check (Store.CheckWrite) for
// writeCheckTTL, and logs when its outcome changes. Probes arriving during a
// check wait for it and share its outcome.
type writeCheck struct {
	log zerolog.Logger
	now func() time.Time

	mu      sync.Mutex
	at      time.Time
	err     error
	checked bool
}

func (w *writeCheck) check(ctx context.Context, checkWrite func(context.Context) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.checked && w.now().Sub(w.at) < writeCheckTTL {
		return w.err
	}
	err := checkWrite(ctx)
	switch {
	case err != nil && (w.err == nil || !w.checked):
		w.log.Error().Err(err).Msg("the store cannot commit; /ready answers 503 until it can")
	case err == nil && w.err != nil:
		w.log.Info().Msg("the store commits again")
	}
	w.at, w.err, w.checked = w.now(), err, true
	return err
}

// handleReady answers 200 when the store can commit and the latest openIMIS
// login succeeded, else 503 with the reasons: an expired or refused openIMIS
// password stalls every job, so it must not hide behind a green check
// (docs/upstreams/openimis.md trap 18).
func (a *api) handleReady() gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		var reasons []string
		if err := a.store.Ping(ctx); err != nil {
			reasons = append(reasons, "store unavailable")
		} else if err := a.writeCheck.check(ctx, a.store.CheckWrite); err != nil {
			reasons = append(reasons, "store cannot commit (disk full, read-only or locked; see the log)")
		}
		if problem := a.loginProblem(); problem != "" {
			reasons = append(reasons, problem)
		}
		body := readyBody{Status: "ready", OpenHIM: a.openhim(), Reasons: reasons, Sources: a.sources.report()}
		for system, l := range a.limits {
			if body.Limits == nil {
				body.Limits = map[string]int{}
			}
			body.Limits[system] = l.Limit()
		}
		for system, p := range a.paused() {
			if p.Until.IsZero() {
				continue
			}
			if body.Paused == nil {
				body.Paused = map[string]upstreamPause{}
			}
			body.Paused[system] = p
		}
		if len(reasons) > 0 {
			body.Status = "not ready"
			a.respond(c, http.StatusServiceUnavailable, body)
			return
		}
		a.respond(c, http.StatusOK, body)
	}
}

// loginProblem says why openIMIS logins do not work, as /ready reports it,
// or "" when the latest login succeeded.
func loginProblem(oi *openimis.Client) string {
	err := oi.LoginFailure()
	var refused *openimis.LoginError
	switch {
	case errors.As(err, &refused) && refused.Expired():
		return "openIMIS refused the login: password expired (PASSWORD_EXPIRED); set a new OPENIMIS_PASSWORD"
	case errors.As(err, &refused) && refused.Status == http.StatusBadRequest && refused.Message == "":
		// 24.10 answers a wrong password and a locked account alike.
		return "openIMIS refused the login: wrong username or password (or the account is locked)"
	case errors.As(err, &refused):
		return "openIMIS refused the login: wrong username or password"
	case err != nil:
		return "openIMIS login failing: openIMIS unreachable or erroring (see the log)"
	case !oi.LoggedIn():
		return "openIMIS login has not succeeded yet"
	}
	return ""
}

// loginWatchEvery is how often loginWatch looks at the openIMIS login.
const loginWatchEvery = time.Second

// loginWatch keeps the openIMIS login known for /ready and /metrics: it logs
// in at startup and, while logins fail, tries again as the client's backoff
// allows (a refused password only on the lock-out-safe schedule), so that
// readiness returns by itself once a login succeeds, even with no job
// running. It logs each change once, not once per job.
func loginWatch(ctx context.Context, oi *openimis.Client, log zerolog.Logger) {
	var reported error // the failure last logged; nil while logins work
	succeeded := false
	for {
		_ = oi.Login(ctx)
		if ctx.Err() != nil {
			return
		}
		failure := oi.LoginFailure()
		var refused *openimis.LoginError
		switch {
		case failure == nil && oi.LoggedIn() && !succeeded:
			log.Info().Msg("openimis login succeeded")
			succeeded = true
		case failure == nil && reported != nil:
			log.Info().Msg("openimis login works again")
		case failure == nil, reported != nil && failure.Error() == reported.Error():
			// No change (or no login answered yet: a 429, a wait).
		case errors.As(failure, &refused):
			log.Error().Err(failure).Str("reason", loginProblem(oi)).
				Msg("openIMIS refused the login; every job that needs openIMIS waits until a login succeeds")
		default:
			log.Warn().Err(failure).Msg("openimis login failed")
		}
		reported = failure
		if !sleep(ctx, loginWatchEvery) {
			return
		}
	}
}
