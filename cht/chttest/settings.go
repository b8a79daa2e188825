package chttest

import (
	"encoding/json"
	"net/http"
)

// Version is the CHT version GET /api/info reports.
const Version = "4.21.0"

// getSettings is GET /api/v1/settings (api/src/controllers/settings.js): any
// authenticated user reads the app settings. The fake's settings hold only
// the JSON forms, which `mediator check` reads to see that the claim form
// defines every field the mediator sends (trap 3). GET /api/info
// (api/src/routing.js), which needs no credentials, answers
// {"version": Version}.
func (s *Server) getSettings(x *exchange) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	return jsonResponse(http.StatusOK, map[string]map[string]json.RawMessage{"forms": s.rawForms})
}
