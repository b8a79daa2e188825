package openimistest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/uuid"
)

// Right codes the fake checks (contract §1, §2, §5, §6, §7), for
// [Options.Rights] and [Server.AddUser].
const (
	// RightClaimRead is needed by GET ClaimResponse/ and, with
	// [Options.ClaimSubscriptions], by a Claim subscription.
	RightClaimRead = 111001
	// RightFeedbackDeliver is needed by POST Communication/ and POST
	// QuestionnaireResponse/.
	RightFeedbackDeliver = 111009
	// RightInsureeRead is needed by GET Patient/<uuid>/ and by a Patient
	// subscription.
	RightInsureeRead = 101101
	// RightSubscriptionCreate is needed by POST Subscription/.
	RightSubscriptionCreate = 158002
	// RightSubscriptionDelete is needed by DELETE Subscription/<id>/.
	RightSubscriptionDelete = 158004
	// RightSubscriptionSearch is needed by GET Subscription/ and
	// GET Subscription/<id>/.
	RightSubscriptionSearch = 158001
	// RightSubscriptionUpdate is needed by PUT Subscription/<id>/.
	RightSubscriptionUpdate = 158003

	// rightFeedbackSelect guards reading feedback (GET Communication/).
	rightFeedbackSelect = 111010
)

// user is an openIMIS user known to the fake.
type user struct {
	name     string
	password string
	// rights is nil when the user holds every right.
	rights map[int]bool
}

// newUser builds a user; nil rights means every right.
func newUser(name, password string, rights []int) *user {
	u := &user{name: name, password: password}
	if rights != nil {
		u.rights = make(map[int]bool, len(rights))
		for _, r := range rights {
			u.rights[r] = true
		}
	}
	return u
}

// has reports whether u holds right; a nil user holds nothing.
func (u *user) has(right int) bool {
	if u == nil {
		return false
	}
	return u.rights == nil || u.rights[right]
}

// AddUser adds (or replaces) an openIMIS user that can log in and use HTTP
// Basic, with the given rights (nil means every right). Use it to test
// owner-only operations on subscriptions.
func (s *Server) AddUser(username, password string, rights []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = newUser(username, password, rights)
}

// ExpireTokens invalidates every token issued so far; requests using one get
// 401 "INCORRECT_CREDENTIALS", as with an expired JWT.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenEpoch++
}

// Logins returns how many successful logins (tokens issued) there were.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// tokenClaims is the payload of the fake's JWT-like tokens.
type tokenClaims struct {
	Epoch    int    `json:"epoch"`
	Exp      int64  `json:"exp"`
	JTI      string `json:"jti"`
	OrigIat  int64  `json:"origIat"`
	Username string `json:"username"`
}

// issueToken signs a token for u valid for the configured lifetime.
// The caller holds s.mu.
func (s *Server) issueToken(u *user) (string, int64) {
	now := s.now()
	exp := now.Add(s.opts.TokenLifetime).Unix()
	claims := tokenClaims{
		Epoch: s.tokenEpoch, Exp: exp, JTI: uuid.NewString(), OrigIat: now.Unix(), Username: u.name,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic("openimistest: " + err.Error())
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	return signing + "." + enc.EncodeToString(s.sign(signing)), exp
}

// sign computes the HMAC-SHA256 signature of a token's signing input.
func (s *Server) sign(signing string) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(signing))
	return mac.Sum(nil)
}

// verifyToken returns the user a token was issued to, or nil when the token
// is malformed, forged, expired, revoked or its user is gone.
// The caller holds s.mu.
func (s *Server) verifyToken(token string) *user {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.sign(parts[0]+"."+parts[1])) {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var claims tokenClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil
	}
	// PyJWT rejects a token once exp <= now (whole seconds).
	if claims.Epoch != s.tokenEpoch || claims.Exp <= s.now().Unix() {
		return nil
	}
	return s.users[claims.Username]
}

// authenticate runs the DRF authenticators of the FHIR views in order: JWT
// (Authorization "Bearer <token>" or the JWT cookie), HTTP Basic, session
// (not modelled). It returns a nil user when no credentials were given.
func (s *Server) authenticate(r *http.Request) (*user, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()

	fields := strings.Fields(r.Header.Get("Authorization"))
	var token string
	if len(fields) == 2 && strings.EqualFold(fields[0], "Bearer") {
		token = fields[1]
	} else if ck, err := r.Cookie("JWT"); err == nil {
		token = ck.Value
	}
	if token != "" {
		u := s.verifyToken(token)
		if u == nil {
			return nil, errAuthenticationFailed(msgIncorrectCredentials)
		}
		return u, nil
	}

	if len(fields) == 0 || !strings.EqualFold(fields[0], "Basic") {
		return nil, nil
	}
	switch {
	case len(fields) == 1:
		return nil, errAuthenticationFailed("Invalid basic header. No credentials provided.")
	case len(fields) > 2:
		return nil, errAuthenticationFailed("Invalid basic header. Credentials string should not contain spaces.")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, errAuthenticationFailed("Invalid basic header. Credentials not correctly base64 encoded.")
	}
	name, password, _ := strings.Cut(string(raw), ":")
	u := s.users[name]
	if u == nil || subtle.ConstantTimeCompare([]byte(u.password), []byte(password)) != 1 {
		return nil, errAuthenticationFailed("Invalid username/password.")
	}
	return u, nil
}

// loginResponse is the body of a successful login.
type loginResponse struct {
	Token string `json:"token"`
	Exp   int64  `json:"exp"`
}

// login answers POST login/ like api_fhir_r4's LoginView (contract §1).
// Authentication already ran in serve, so an invalid Bearer token was 401.
func (c *call) login() {
	v, err := c.data()
	if err != nil {
		c.fail(err)
		return
	}
	data, ok := v.(map[string]any)
	if !ok {
		c.fail(errServer("'" + pyTypeName(v) + "' object has no attribute 'get'"))
		return
	}
	username, password := data["username"], data["password"]
	if !pyTruthy(username) || !pyTruthy(password) {
		c.json(http.StatusBadRequest, "Missing username or password")
		return
	}

	c.s.mu.Lock()
	u := c.s.users[pyStr(username)]
	if u == nil {
		c.s.mu.Unlock()
		c.json(http.StatusUnauthorized, msgIncorrectCredentials)
		return
	}
	if subtle.ConstantTimeCompare([]byte(u.password), []byte(pyStr(password))) != 1 {
		c.s.mu.Unlock()
		// user_authentication returns None for a wrong password: 400, no body.
		writeEmpty(c.w, http.StatusBadRequest)
		return
	}
	token, exp := c.s.issueToken(u)
	c.s.logins++
	c.s.mu.Unlock()
	c.json(http.StatusOK, loginResponse{Token: token, Exp: exp})
}
