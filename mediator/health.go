package mediator

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// handleHealth answers 200 while the process runs.
func (m *Mediator) handleHealth() gin.HandlerFunc {
	return func(c *gin.Context) {
		m.respond(c, http.StatusOK, map[string]string{"status": "ok"})
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
func (m *Mediator) handleReady() gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		var reasons []string
		if err := m.opts.Store.Ping(ctx); err != nil {
			reasons = append(reasons, "store unavailable")
		}
		if !m.opts.OpenIMIS.LoggedIn() {
			reasons = append(reasons, "openIMIS login has not succeeded yet")
		}
		if len(reasons) > 0 {
			m.respond(c, http.StatusServiceUnavailable, readyBody{Status: "not ready", Reasons: reasons, OpenHIM: m.openhim.get()})
			return
		}
		m.respond(c, http.StatusOK, readyBody{Status: "ready", OpenHIM: m.openhim.get()})
	}
}
