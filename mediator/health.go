package mediator

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
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
}

// upstreamPause is an upstream's client pausing: no request before Until.
type upstreamPause struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// handleReady answers 200 when the store is usable and an openIMIS login has
// succeeded, else 503 with the reasons.
func (a *api) handleReady() gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		var reasons []string
		if err := a.store.Ping(ctx); err != nil {
			reasons = append(reasons, "store unavailable")
		}
		if !a.loggedIn() {
			reasons = append(reasons, "openIMIS login has not succeeded yet")
		}
		body := readyBody{Status: "ready", OpenHIM: a.openhim(), Reasons: reasons}
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
