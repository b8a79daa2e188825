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
		if len(reasons) > 0 {
			a.respond(c, http.StatusServiceUnavailable, readyBody{Status: "not ready", Reasons: reasons, OpenHIM: a.openhim()})
			return
		}
		a.respond(c, http.StatusOK, readyBody{Status: "ready", OpenHIM: a.openhim()})
	}
}
