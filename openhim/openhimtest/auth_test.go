package openhimtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestPassHash_RootVector(t *testing.T) {
	t.Parallel()

	got := openhimtest.PassHash(openhimtest.RootSalt, openhimtest.RootPassword)
	require.True(t, strings.HasPrefix(got, "943a856bba65"), got)
	require.True(t, strings.HasSuffix(got, "00d0fb"), got)
	require.Equal(t, openhimtest.RootPassHash, got)
	require.Len(t, got, 128)
	require.Equal(t, strings.ToLower(got), got)
}

// tokenHeaders are the legacy token headers for email/password with the
// given salt and ts.
func tokenHeaders(email, password, userSalt, authSalt, ts string) map[string]string {
	return map[string]string{
		"auth-username": email,
		"auth-ts":       ts,
		"auth-salt":     authSalt,
		"auth-token":    openhimtest.AuthToken(openhimtest.PassHash(userSalt, password), authSalt, ts),
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()

	get := func(t *testing.T, b *testBundle, r req) response {
		t.Helper()
		r.method = http.MethodGet
		if r.path == "" {
			r.path = "/mediators"
		}
		return b.do(t, r)
	}

	t.Run("BasicExactEmail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := get(t, b, req{})
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Equal(t, "[]", r.body)
		require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
	})

	t.Run("BasicUpperCaseEmail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := get(t, b, req{auth: basic("Root@OpenHIM.org", openhimtest.RootPassword)})
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "Unauthorized", r.body)
		require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	})

	t.Run("BasicWrongPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := get(t, b, req{auth: basic(openhimtest.RootEmail, "nope")})
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "Unauthorized", r.body)
	})

	t.Run("BasicSchemeMustContainCapitalBasic", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		auth := strings.Replace(rootBasic, "Basic", "basic", 1)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: auth}).status)
	})

	t.Run("PasswordWithColonNeverWorksWithBasic", func(t *testing.T) {
		t.Parallel()
		// passport-http splits the credentials on every ":" and takes the
		// second part as the password.
		b := setup(t, openhimtest.Options{Users: []openhimtest.User{{
			Email: "ops@example.org", Password: "a:b", Groups: []string{"admin"}, Salt: "s",
		}}})
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: basic("ops@example.org", "a:b")}).status)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: basic("ops@example.org", "a")}).status)
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders("ops@example.org", "a:b", "s", "x", ts)
		require.Equal(t, http.StatusOK, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("NoCredentials", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := get(t, b, req{auth: "-"})
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "Unauthorized", r.body)
		require.Empty(t, r.header.Get("WWW-Authenticate"))
	})

	t.Run("UnknownPathNeedsAuthFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", path: "/nothing"}).status)
		r := get(t, b, req{path: "/nothing"})
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "Not Found", r.body)
	})

	t.Run("TokenValid", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		ts := b.clock.Now().Add(-9 * time.Second).Format("2006-01-02T15:04:05.000Z")
		h := tokenHeaders("ROOT@openhim.org", openhimtest.RootPassword, openhimtest.RootSalt, "4f1e6c0a-aaaa", ts)
		r := get(t, b, req{auth: "-", header: h})
		require.Equal(t, http.StatusOK, r.status, r.body)
	})

	t.Run("TokenWithUserSaltAsAuthSalt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		ts := b.clock.Now().Format(time.RFC3339Nano)
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, openhimtest.RootSalt, ts)
		require.Equal(t, http.StatusOK, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("TokenOutsideWindow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		for _, d := range []time.Duration{-11 * time.Second, 11 * time.Second} {
			ts := b.clock.Now().Add(d).Format("2006-01-02T15:04:05.000Z")
			h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
			r := get(t, b, req{auth: "-", header: h})
			require.Equal(t, http.StatusUnauthorized, r.status, d)
			require.Equal(t, "Unauthorized", r.body)
		}
	})

	t.Run("TokenWindowOption", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{AuthWindow: 2 * time.Second})
		ts := b.clock.Now().Add(3 * time.Second).Format(time.RFC3339)
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("TokenTimestampWithoutZone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		ts := b.clock.Now().Format("2006-01-02 15:04:05.000000")
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("TokenJSDateString", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		ts := b.clock.Now().Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)")
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		require.Equal(t, http.StatusOK, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("TokenWrongPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders(openhimtest.RootEmail, "nope", openhimtest.RootSalt, "x", ts)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("TokenUpperCaseHex", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		h["auth-token"] = strings.ToUpper(h["auth-token"])
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("TokenHeadersPresentIgnoreBasic", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		// Valid Basic plus one stray token header: only token auth is
		// tried, and it fails.
		r := get(t, b, req{header: map[string]string{"auth-username": openhimtest.RootEmail}})
		require.Equal(t, http.StatusUnauthorized, r.status)
		// Valid token plus wrong Basic: token wins.
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		r = get(t, b, req{auth: basic("nobody@example.org", "x"), header: h})
		require.Equal(t, http.StatusOK, r.status)
	})

	t.Run("TokenUserWithoutTokenPassport", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{Users: []openhimtest.User{{
			Email: "v8@example.org", Password: "pw", Groups: []string{"admin"},
		}}})
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders("v8@example.org", "pw", "", "x", ts)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", header: h}).status)
		require.Equal(t, http.StatusOK, get(t, b, req{auth: basic("v8@example.org", "pw")}).status)
		r := get(t, b, req{auth: "-", path: "/authenticate/v8@example.org"})
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "Could not find token passport for user v8@example.org", r.body)
	})

	t.Run("DisableBasic", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{DisableBasic: true})
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{}).status)
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		require.Equal(t, http.StatusOK, get(t, b, req{auth: "-", header: h}).status)
	})

	t.Run("DisableToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{DisableToken: true})
		ts := b.clock.Now().Format(time.RFC3339)
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, openhimtest.RootSalt, "x", ts)
		require.Equal(t, http.StatusUnauthorized, get(t, b, req{auth: "-", header: h}).status)
		require.Equal(t, http.StatusOK, get(t, b, req{}).status)
	})

	t.Run("NonAdminForbidden", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{Users: []openhimtest.User{
			openhimtest.RootUser(),
			{Email: "viewer@example.org", Password: "pw", Groups: []string{"viewer"}},
		}})
		auth := basic("viewer@example.org", "pw")
		r := get(t, b, req{auth: auth})
		require.Equal(t, http.StatusForbidden, r.status)
		require.Equal(t, "User viewer@example.org is not an admin, API access to getAllMediators denied.", r.body)
		require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))

		r = b.do(t, req{auth: auth, method: http.MethodPost, path: "/mediators", body: mustJSON(t, mediatorDoc("1.0.0"))})
		require.Equal(t, http.StatusForbidden, r.status)
		require.Contains(t, r.body, "API access to addMediator denied.")

		b.register(t, mediatorDoc("1.0.0"))
		r = b.do(t, req{auth: auth, method: http.MethodPost, path: "/mediators/" + testURN + "/heartbeat", body: `{"uptime":1}`})
		require.Equal(t, http.StatusForbidden, r.status)
		require.Contains(t, r.body, "is not an admin")
	})
}

func TestGetAuthenticate(t *testing.T) {
	t.Parallel()

	t.Run("RootSaltAndServerTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := b.do(t, req{auth: "-", method: http.MethodGet, path: "/authenticate/Root%40OpenHIM.org"})
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
		require.JSONEq(t, `{"salt":"`+openhimtest.RootSalt+`","ts":"2025-06-30T10:00:00.000Z"}`, r.body)
	})

	t.Run("UnknownUser", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := b.do(t, req{auth: "-", method: http.MethodGet, path: "/authenticate/nobody@example.org"})
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "Could not find user by email nobody@example.org", r.body)
		require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	})

	t.Run("TokenFlowWithServerTS", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{DisableBasic: true})
		r := b.do(t, req{auth: "-", method: http.MethodGet, path: "/authenticate/" + openhimtest.RootEmail})
		require.Equal(t, http.StatusOK, r.status)
		var got struct{ Salt, TS string }
		require.NoError(t, json.Unmarshal([]byte(r.body), &got))
		h := tokenHeaders(openhimtest.RootEmail, openhimtest.RootPassword, got.Salt, "fresh-salt", got.TS)
		r = b.do(t, req{auth: "-", method: http.MethodPost, path: "/mediators", body: mustJSON(t, mediatorDoc("1.0.0")), header: h})
		require.Equal(t, http.StatusCreated, r.status, r.body)
	})
}

func TestServer_TLS(t *testing.T) {
	t.Parallel()

	t.Run("TrustedThroughPEM", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		require.True(t, strings.HasPrefix(b.srv.URL, "https://"))
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(b.srv.CertificatePEM()))
		require.NotNil(t, b.srv.Certificate())
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+"/mediators", nil)
		require.NoError(t, err)
		hr.Header.Set("Authorization", rootBasic)
		resp, err := client.Do(hr)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("UntrustedFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+"/mediators", nil)
		require.NoError(t, err)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(hr)
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err)
	})

	t.Run("PlainHTTP", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{PlainHTTP: true})
		require.True(t, strings.HasPrefix(b.srv.URL, "http://"))
		require.Nil(t, b.srv.Certificate())
		require.Nil(t, b.srv.CertificatePEM())
		require.Equal(t, http.StatusOK, b.do(t, req{method: http.MethodGet, path: "/mediators"}).status)
	})
}
