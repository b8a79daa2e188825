package openimistest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestLogin(t *testing.T) {
	t.Parallel()

	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{Username: "TestUserTest2", Password: "TestPasswordTest2"})
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: fixture(t, "test_login.json")})
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
		require.Equal(t, "application/json", resp.header.Get("Content-Type"))
		var out struct {
			Token string          `json:"token"`
			Exp   json.RawMessage `json:"exp"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &out))
		require.NotEmpty(t, out.Token)
		// exp is integer epoch seconds, now + 24h by default.
		require.Equal(t, "1751364000", string(out.Exp))
		require.Equal(t, 1, b.srv.Logins())

		resp = b.do(t, req{path: "ClaimResponse/", auth: "Bearer " + out.Token})
		require.Equal(t, http.StatusOK, resp.status)
		resp = b.do(t, req{path: "ClaimResponse/", auth: "bEaReR   " + out.Token})
		require.Equal(t, http.StatusOK, resp.status, "prefix is case-insensitive")
	})

	t.Run("TokenLifetime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{TokenLifetime: time.Hour})
		token := b.login(t, "admin", "admin")
		b.clock.Add(59*time.Minute + 59*time.Second)
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/", auth: token}).status)
		b.clock.Add(time.Second)
		b.do(t, req{path: "ClaimResponse/", auth: token}).
			requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")
	})

	t.Run("MissingUsernameOrPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		for _, body := range []string{fixture(t, "test_login_bad_payload.json"), `{"username":"admin","password":""}`, ""} {
			resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: body})
			require.Equal(t, http.StatusBadRequest, resp.status, body)
			require.JSONEq(t, `"Missing username or password"`, string(resp.body))
		}
	})

	t.Run("UnknownUser", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: fixture(t, "test_login_bad_credentials.json")})
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.JSONEq(t, `"INCORRECT_CREDENTIALS"`, string(resp.body))
	})

	t.Run("WrongPasswordIsEmpty400", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: `{"username":"admin","password":"nope"}`})
		require.Equal(t, http.StatusBadRequest, resp.status)
		require.Empty(t, resp.body)
		require.Empty(t, resp.header.Get("Content-Type"))
		require.Equal(t, 0, b.srv.Logins())
	})

	t.Run("ExpiredTokenOnLoginIs401", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		token := b.login(t, "admin", "admin")
		b.srv.ExpireTokens()
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: token, body: `{"username":"admin","password":"admin"}`})
		resp.requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")
		require.Equal(t, 1, b.srv.Logins())
		// Without the header the same login works.
		b.login(t, "admin", "admin")
		require.Equal(t, 2, b.srv.Logins())
	})

	t.Run("FormBodyWorks", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: "username=admin&password=admin",
			contentType: "application/x-www-form-urlencoded"})
		require.Equal(t, http.StatusOK, resp.status)
	})

	t.Run("FHIRContentTypeIs415", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-",
			body: `{"username":"admin","password":"admin"}`, contentType: "application/fhir+json"})
		require.Equal(t, http.StatusUnsupportedMediaType, resp.status)
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	token := b.login(t, "admin", "admin")

	tests := []struct {
		name   string
		auth   string
		status int
		text   string
	}{
		{name: "Bearer", auth: token, status: http.StatusOK},
		{name: "Basic", auth: basic("admin", "admin"), status: http.StatusOK},
		{name: "None", auth: "-", status: http.StatusUnauthorized, text: "Authentication credentials were not provided."},
		{name: "UnknownToken", auth: "Bearer abc.def.ghi", status: http.StatusUnauthorized, text: "INCORRECT_CREDENTIALS"},
		{name: "TamperedToken", auth: token + "x", status: http.StatusUnauthorized, text: "INCORRECT_CREDENTIALS"},
		{name: "BasicWrongPassword", auth: basic("admin", "x"), status: http.StatusUnauthorized, text: "Invalid username/password."},
		{name: "BasicUnknownUser", auth: basic("bob", "admin"), status: http.StatusUnauthorized, text: "Invalid username/password."},
		{name: "BasicNotBase64", auth: "Basic !!!", status: http.StatusUnauthorized, text: "Invalid basic header. Credentials not correctly base64 encoded."},
		{name: "BearerWithoutToken", auth: "Bearer", status: http.StatusUnauthorized, text: "Authentication credentials were not provided."},
		{name: "OtherScheme", auth: "Token abc", status: http.StatusUnauthorized, text: "Authentication credentials were not provided."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := b.do(t, req{path: "ClaimResponse/", auth: tt.auth})
			if tt.status == http.StatusOK {
				require.Equal(t, http.StatusOK, resp.status, string(resp.body))
				return
			}
			resp.requireOutcome(t, tt.status, "fatal", tt.text)
		})
	}
}

func TestAuthentication_ExpireTokens(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	token := b.login(t, "admin", "admin")
	b.srv.ExpireTokens()
	b.do(t, req{path: "ClaimResponse/", auth: token}).requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")
	require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/", auth: b.login(t, "admin", "admin")}).status)
	require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status, "Basic is unaffected")
}

func TestAuthentication_TokenFromOtherServer(t *testing.T) {
	t.Parallel()

	a := setup(t, openimistest.Options{})
	b := setup(t, openimistest.Options{})
	b.do(t, req{path: "ClaimResponse/", auth: a.login(t, "admin", "admin")}).
		requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")
}

func TestRights(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		rights []int
		r      req
	}{
		{name: "ClaimResponseSearch", rights: []int{openimistest.RightInsureeRead}, r: req{path: "ClaimResponse/"}},
		{name: "ClaimResponseRead", rights: []int{}, r: req{path: "ClaimResponse/" + openimistest.SeedClaimID + "/"}},
		{name: "PatientRead", rights: []int{openimistest.RightClaimRead}, r: req{path: "Patient/" + openimistest.SeedPatientID + "/"}},
		{name: "SubscriptionSearch", rights: []int{openimistest.RightSubscriptionCreate}, r: req{path: "Subscription/"}},
		{name: "SubscriptionCreate", rights: []int{openimistest.RightSubscriptionSearch},
			r: req{method: http.MethodPost, path: "Subscription/", body: `{}`}},
		{name: "SubscriptionDelete", rights: []int{openimistest.RightSubscriptionSearch},
			r: req{method: http.MethodDelete, path: "Subscription/" + openimistest.SeedClaimID + "/"}},
		{name: "CommunicationPost", rights: []int{openimistest.RightClaimRead},
			r: req{method: http.MethodPost, path: "Communication/", body: `{}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openimistest.Options{Rights: tt.rights})
			b.do(t, tt.r).requireOutcome(t, http.StatusForbidden, "fatal", "You do not have permission to perform this action.")
		})
	}

	t.Run("AddUserWithRights", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.AddUser("reader", "pw", []int{openimistest.RightClaimRead})
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/", auth: b.login(t, "reader", "pw")}).status)
		resp := b.do(t, req{path: "Patient/" + openimistest.SeedPatientID + "/", auth: basic("reader", "pw")})
		require.Equal(t, http.StatusForbidden, resp.status)
	})

	t.Run("AuthBeforeRights", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{Rights: []int{}})
		require.Equal(t, http.StatusUnauthorized, b.do(t, req{path: "ClaimResponse/", auth: "-"}).status)
	})

	t.Run("LoginNeedsNoRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{Rights: []int{}})
		require.True(t, strings.HasPrefix(b.login(t, "admin", "admin"), "Bearer "))
	})
}
