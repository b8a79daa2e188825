package openimistest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Right codes the fake checks (docs/upstreams/openimis.md §1, §2, §5-§7,
// trap 16), for [Options.Rights] and [Server.AddUser].
const (
	// RightClaimRead (111001, claim/apps.py) is needed by ClaimResponse/ and,
	// with [Options.ClaimSubscriptions], by a Claim subscription.
	RightClaimRead = 111001
	// RightFeedbackDeliver (111009) is needed by POST Communication/
	// (api_fhir_r4/permissions.py) and POST QuestionnaireResponse/.
	RightFeedbackDeliver = 111009
	// RightInsureeRead (101101, insuree/apps.py) is needed by Patient/<id>/
	// and by a Patient subscription.
	RightInsureeRead = 101101
	// RightSubscriptionSearch (158001, api_fhir_r4/defaultConfig.py) is
	// needed by GET Subscription/ and Subscription/<id>/.
	RightSubscriptionSearch = 158001
	// RightSubscriptionCreate (158002) is needed by POST Subscription/.
	RightSubscriptionCreate = 158002
	// RightSubscriptionUpdate (158003) is needed by PUT Subscription/<id>/.
	RightSubscriptionUpdate = 158003
	// RightSubscriptionDelete (158004) is needed by DELETE Subscription/<id>/.
	RightSubscriptionDelete = 158004
)

// user is an openIMIS user; nil rights means every right.
type user struct {
	name, password string
	rights         map[int]bool
	// passwordExpired makes login/ answer 401 "PASSWORD_EXPIRED".
	passwordExpired bool
}

// has reports whether u holds right; a nil user holds nothing.
func (u *user) has(right int) bool {
	return u != nil && (u.rights == nil || u.rights[right])
}

// token is an issued login token.
type token struct {
	user string
	exp  int64
}

// AddUser adds (or replaces) a user that can log in and use HTTP Basic, with
// the given rights (nil means every right).
func (s *Server) AddUser(username, password string, rights []int) {
	u := &user{name: username, password: password}
	if rights != nil {
		u.rights = map[int]bool{}
		for _, r := range rights {
			u.rights[r] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = u
}

// ExpirePassword makes the user's password expired, as a core with password
// expiry does once the password is too old (core/services/userServices.py,
// trap 18): login/ with the right password answers 401 with the JSON string
// "PASSWORD_EXPIRED" (a wrong one is still refused as such). Tokens already
// issued stay valid until they expire. [Server.SetPassword] ends it.
func (s *Server) ExpirePassword(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[username]; u != nil {
		u.passwordExpired = true
	}
}

// SetPassword gives the user a new password, as an administrator does; an
// expired password is no longer expired.
func (s *Server) SetPassword(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[username]; u != nil {
		u.password, u.passwordExpired = password, false
	}
}

// ExpireTokens makes every token issued so far invalid, as if it expired:
// requests using one get 401 "INCORRECT_CREDENTIALS" (trap 9).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Logins returns how many logins succeeded.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// authenticate runs the default DRF authenticators (openIMIS settings.py
// REST_FRAMEWORK): JWT, then HTTP Basic. "Authorization: Bearer <token>"
// (prefix case-insensitive, exactly two words) with an unknown, forged or
// expired token is 401 "INCORRECT_CREDENTIALS" whatever the route, login/
// included (core/jwt_authentication.py; §1: never send Authorization to
// login/); expired and invalid are indistinguishable. Wrong Basic
// credentials are 401 "Invalid username/password."
// (rest_framework/authentication.py). No credentials: a nil user.
func (s *Server) authenticate(r *http.Request) (*user, *apiError) {
	fields := strings.Fields(r.Header.Get("Authorization"))
	if len(fields) != 2 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.ToLower(fields[0]) {
	case "bearer":
		// PyJWT rejects a token once exp <= now (whole seconds).
		t, ok := s.tokens[fields[1]]
		if !ok || t.exp <= s.now().Unix() || s.users[t.user] == nil {
			return nil, errFatal(http.StatusUnauthorized, msgIncorrectCredentials)
		}
		return s.users[t.user], nil
	case "basic":
		raw, _ := base64.StdEncoding.DecodeString(fields[1])
		name, password, _ := strings.Cut(string(raw), ":")
		if u := s.users[name]; u != nil && u.password == password {
			return u, nil
		}
		return nil, errFatal(http.StatusUnauthorized, "Invalid username/password.")
	}
	return nil, nil
}

// login answers POST login/ like api_fhir_r4/views/login_viewset.py with
// core/services/userServices.py (§1, traps 9 and 18): 200 {"token", "exp"}
// with exp in integer epoch seconds; a missing or empty username or password
// is 400 with the JSON string "Missing username or password"; an unknown user
// 401 with the JSON string "INCORRECT_CREDENTIALS"; a wrong password 400 with
// an empty body in release 24.10, 401 "INCORRECT_CREDENTIALS" with
// [Options.NewerCore]; the right password of a user whose password expired
// ([Server.ExpirePassword]) 401 "PASSWORD_EXPIRED". These are not
// OperationOutcomes.
func (c *call) login() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	username, _ := m["username"].(string)
	password, _ := m["password"].(string)
	if username == "" || password == "" {
		c.json(http.StatusBadRequest, "Missing username or password")
		return
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[username]
	switch {
	case u == nil:
		c.json(http.StatusUnauthorized, msgIncorrectCredentials)
		return
	case u.password != password && s.opts.NewerCore:
		c.json(http.StatusUnauthorized, msgIncorrectCredentials)
		return
	case u.password != password:
		c.w.WriteHeader(http.StatusBadRequest) // DRF drops Content-Type on an empty body
		return
	case u.passwordExpired:
		c.json(http.StatusUnauthorized, "PASSWORD_EXPIRED")
		return
	}
	now := s.now()
	exp := now.Add(s.opts.TokenLifetime).Unix()
	tok := jwtLike(map[string]any{"username": u.name, "exp": exp, "origIat": now.Unix()})
	s.tokens[tok] = token{user: u.name, exp: exp}
	s.logins++
	c.json(http.StatusOK, map[string]any{"token": tok, "exp": exp})
}

// jwtLike returns a token shaped like a JWT (three base64url parts, the
// payload readable) whose signature is random: the server knows its tokens.
func jwtLike(payload map[string]any) string {
	enc := base64.RawURLEncoding
	p, _ := json.Marshal(payload)
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}
