package fhirtest

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// authenticate checks the Bearer token: HeyDonto wants one from
// POST /auth/login on every request (C§6.3, C§8); HAPI and Kodjin want
// Options.Token when it is set (Kodjin: SMART bearer tokens, C§6.2; HAPI:
// none by default, C§8). A missing or wrong token is 401.
func (s *Server) authenticate(x *exchange) (response, bool) {
	token, ok := strings.CutPrefix(x.r.Header.Get("Authorization"), "Bearer ")
	switch {
	case s.opts.Vendor == HeyDonto:
		s.mu.Lock()
		ok = ok && s.tokens[token]
		s.mu.Unlock()
	case s.opts.Token == "":
		return response{}, true
	default:
		ok = ok && subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.Token)) == 1
	}
	if !ok {
		resp := x.outcome(http.StatusUnauthorized, "login", "a valid Bearer token is required")
		resp.header.Set("WWW-Authenticate", "Bearer")
		return resp, false
	}
	return response{}, true
}

// login is HeyDonto's POST /auth/login {"email","password"}: 200 with the
// token in "token" (next to "message") or in "accessToken" (Options.
// LoginField), without any expiry; wrong credentials are 401 (C§6.3,
// C-trap 24).
func (s *Server) login(x *exchange) response {
	if x.r.Method != http.MethodPost {
		return x.notAllowed()
	}
	if resp, ok := x.checkBody(); !ok {
		return resp
	}
	var creds struct {
		Email    *string `json:"email"`
		Password *string `json:"password"`
	}
	if err := json.Unmarshal(x.body, &creds); err != nil || creds.Email == nil || creds.Password == nil {
		return x.json(http.StatusBadRequest, map[string]any{"message": "email and password are required"})
	}
	if subtle.ConstantTimeCompare([]byte(*creds.Email), []byte(s.opts.Email)) != 1 ||
		subtle.ConstantTimeCompare([]byte(*creds.Password), []byte(s.opts.Password)) != 1 {
		return x.json(http.StatusUnauthorized, map[string]any{"message": "Invalid credentials"})
	}
	token := newID()
	s.mu.Lock()
	s.tokens[token] = true
	s.logins++
	s.mu.Unlock()
	if s.opts.LoginField == "accessToken" {
		return x.json(http.StatusOK, map[string]any{"accessToken": token})
	}
	return x.json(http.StatusOK, map[string]any{"message": "Login successful", "token": token})
}

// ExpireTokens makes every HeyDonto token issued so far invalid: the next
// request carrying one is 401, and a new login is needed (the login answer
// names no expiry, C§6.3).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Logins is how many HeyDonto logins succeeded.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}
