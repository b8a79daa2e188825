package openhimtest

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	// RootEmail is the email of the user core creates at first start
	// (src/server.js), seeded unless Options.Users is set.
	RootEmail = "root@openhim.org"
	// RootPassword is the root user's default password.
	RootPassword = "openhim-password"
	// RootSalt is the salt of the root user's token passport.
	RootSalt = "d9bcb40e-ae65-478f-962e-5e5e5e7d0a01"
	// RootPassHash is the root user's token passport hash,
	// PassHash(RootSalt, RootPassword), as seeded by core.
	RootPassHash = "943a856bba65aad6c639d5c8d4a11fc8bb7fe9de62ae307aec8cf6ae6c1faab722127964c71db4bdd2ea2cdf60c6e4094dcad54d4522ab2839b65ae98100d0fb"

	// DefaultAuthWindow is core's default api.authWindowSeconds.
	DefaultAuthWindow = 10 * time.Second
)

// User is an OpenHIM console/API user.
type User struct {
	// Email is the login. HTTP Basic matches it exactly (case-sensitively);
	// the token scheme and GET /authenticate/{email} match it
	// case-insensitively. The API stores emails in lower case, so tests
	// should too.
	Email string
	// Firstname and Surname name the user in channels' updatedBy. They
	// default to "Test" and "User".
	Firstname, Surname string
	// Groups are the user's roles; "admin" is needed for every /mediators
	// route (core ≤ 8.5.0).
	Groups []string
	// Password is the user's password, accepted by HTTP Basic and, when the
	// user has a token passport, by the token scheme.
	Password string
	// Salt is the salt of the user's token passport. Empty means the user
	// has no token passport, like users created in core v8 with a plain
	// password: GET /authenticate/{email} answers 404 and token
	// authentication fails, while Basic works.
	Salt string
}

// RootUser returns the seeded root user: RootEmail / RootPassword, group
// admin, with both a local and a token passport (salt RootSalt).
func RootUser() User {
	return User{
		Email:     RootEmail,
		Firstname: "Super",
		Surname:   "User",
		Groups:    []string{"admin"},
		Password:  RootPassword,
		Salt:      RootSalt,
	}
}

// PassHash is a token passport's passwordHash: lowercase hex
// SHA-512(salt ‖ password).
func PassHash(salt, password string) string {
	sum := sha512.Sum512([]byte(salt + password))
	return hex.EncodeToString(sum[:])
}

// AuthToken is the auth-token header of the legacy token scheme: lowercase
// hex SHA-512(passHash ‖ authSalt ‖ authTS), over exactly the header
// strings (src/protocols/token.js).
func AuthToken(passHash, authSalt, authTS string) string {
	sum := sha512.Sum512([]byte(passHash + authSalt + authTS))
	return hex.EncodeToString(sum[:])
}

// user is a stored user.
type user struct {
	User
	id string
}

func (u *user) admin() bool { return slices.Contains(u.Groups, "admin") }

func (u *user) fullName() string { return u.Firstname + " " + u.Surname }

// authenticate is core's authenticateRequest (src/api/authentication.js):
// any non-empty token header means only the token scheme is tried;
// otherwise an Authorization containing "Basic" means only Basic is tried.
// It returns nil when the request is not authenticated. The caller holds
// s.mu.
func (s *Server) authenticate(r *http.Request) *user {
	h := r.Header
	if hdr(h, "auth-username") != "" || hdr(h, "auth-ts") != "" || hdr(h, "auth-salt") != "" || hdr(h, "auth-token") != "" {
		if s.opts.DisableToken {
			return nil
		}
		return s.tokenUser(h)
	}
	if strings.Contains(h.Get("Authorization"), "Basic") {
		if s.opts.DisableBasic {
			return nil
		}
		return s.basicUser(h.Get("Authorization"))
	}
	return nil
}

// hdr is a request header as Node gives it: duplicates joined by ", ".
func hdr(h http.Header, name string) string {
	return strings.Join(h.Values(name), ", ")
}

// basicUser is passport-http's BasicStrategy with core's local.login: the
// scheme is matched case-insensitively, the credentials split on ":" (a
// password containing ":" is cut at it), and the user found by exact email.
func (s *Server) basicUser(authorization string) *user {
	parts := strings.Split(authorization, " ")
	if len(parts) < 2 || !strings.Contains(strings.ToLower(parts[0]), "basic") {
		return nil
	}
	creds := strings.Split(string(nodeBase64(parts[1])), ":")
	if len(creds) < 2 || creds[0] == "" || creds[1] == "" {
		return nil
	}
	for _, u := range s.users {
		if u.Email == creds[0] {
			if u.Password != creds[1] {
				return nil
			}
			return u
		}
	}
	return nil
}

// nodeBase64 is Buffer.from(s, 'base64'): characters outside the alphabet
// are skipped and padding is optional.
func nodeBase64(s string) []byte {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			b.WriteRune(c)
		case c == '-':
			b.WriteByte('+')
		case c == '_':
			b.WriteByte('/')
		case c == '=':
			return decodeRaw(b.String())
		}
	}
	return decodeRaw(b.String())
}

func decodeRaw(s string) []byte {
	if len(s)%4 == 1 {
		s = s[:len(s)-1]
	}
	out, _ := base64.RawStdEncoding.DecodeString(s)
	return out
}

// tokenUser is core's token strategy (src/protocols/token.js): all four
// headers non-empty, auth-ts within the window of the server clock, the
// user found case-insensitively, a token passport, and the token equal to
// AuthToken(passHash, auth-salt, auth-ts).
//
// Core lets an auth-ts that Date.parse cannot read through the window check
// (Invalid Date compares false). The fake is stricter: an auth-ts it cannot
// parse, or a date-time without a time zone (read as the server's local
// time by core), fails.
func (s *Server) tokenUser(h http.Header) *user {
	email, ts, salt, token := hdr(h, "auth-username"), hdr(h, "auth-ts"), hdr(h, "auth-salt"), hdr(h, "auth-token")
	if email == "" || ts == "" || salt == "" || token == "" {
		return nil
	}
	t, zoned, ok := parseJSDate(ts)
	if !ok || !zoned {
		return nil
	}
	now := s.now()
	if t.Before(now.Add(-s.authWindow)) || t.After(now.Add(s.authWindow)) {
		return nil
	}
	u := s.userByEmailFold(email)
	if u == nil || u.Salt == "" {
		return nil
	}
	if token != AuthToken(PassHash(u.Salt, u.Password), salt, ts) {
		return nil
	}
	return u
}

// userByEmailFold is core's caseInsensitiveRegex lookup: the first user
// whose email matches ignoring case. The caller holds s.mu.
func (s *Server) userByEmailFold(email string) *user {
	for _, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

// getAuthenticate is GET /authenticate/:username (src/api/users.js
// authenticateToken), which needs no credentials. The caller holds s.mu.
func (s *Server) getAuthenticate(email string) *koaResponse {
	u := s.userByEmailFold(email)
	switch {
	case u == nil:
		return textResponse(http.StatusNotFound, "Could not find user by email "+email)
	case u.Salt == "":
		return textResponse(http.StatusNotFound, "Could not find token passport for user "+email)
	}
	body := newObject()
	body.obj.set("salt", jsStr(u.Salt))
	body.obj.set("ts", jsTime(s.now()))
	r := newKoaResponse()
	r.setBody(body)
	r.setStatus(http.StatusOK)
	return r
}
