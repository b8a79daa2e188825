package openimistest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestLogin(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		body   string
		status int
		want   string // exact body; "" = empty
		newer  bool
		expire bool
	}{
		{name: "UpstreamFixture", body: fixture(t, "test_login.json"), status: http.StatusOK},
		{name: "MissingUsername", body: fixture(t, "test_login_bad_payload.json"), status: http.StatusBadRequest, want: `"Missing username or password"`},
		{name: "EmptyPassword", body: `{"username":"TestUserTest2","password":""}`, status: http.StatusBadRequest, want: `"Missing username or password"`},
		{name: "UnknownUserIs401", body: fixture(t, "test_login_bad_credentials.json"), status: http.StatusUnauthorized, want: `"INCORRECT_CREDENTIALS"`},
		{name: "WrongPasswordIsEmpty400", body: `{"username":"TestUserTest2","password":"nope"}`, status: http.StatusBadRequest},
		{name: "NewerCoreWrongPasswordIs401", newer: true, body: `{"username":"TestUserTest2","password":"nope"}`, status: http.StatusUnauthorized, want: `"INCORRECT_CREDENTIALS"`},
		{name: "ExpiredPasswordIs401", expire: true, body: fixture(t, "test_login.json"), status: http.StatusUnauthorized, want: `"PASSWORD_EXPIRED"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openimistest.Options{Username: "TestUserTest2", Password: "TestPasswordTest2", NewerCore: tt.newer})
			if tt.expire {
				b.srv.ExpirePassword("TestUserTest2")
			}
			resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: tt.body})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			if tt.status == http.StatusOK {
				var out struct {
					Token string `json:"token"`
					Exp   int64  `json:"exp"`
				}
				require.NoError(t, json.Unmarshal(resp.body, &out))
				require.Regexp(t, `^[\w-]+\.[\w-]+\.[\w-]+$`, out.Token)
				require.Equal(t, b.clock.Now().Add(24*time.Hour).Unix(), out.Exp, "integer epoch seconds, one day")
				require.Equal(t, 1, b.srv.Logins())
				return
			}
			require.Equal(t, tt.want, string(resp.body))
			if tt.want == "" {
				require.Empty(t, resp.header.Get("Content-Type"))
			}
			require.Zero(t, b.srv.Logins())
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{TokenLifetime: 10 * time.Minute})
	token := b.login(t, "admin", "admin")
	other := setup(t, openimistest.Options{})
	foreign := other.login(t, "admin", "admin")
	tests := []struct {
		name   string
		auth   string
		status int
		text   string
	}{
		{name: "Bearer", auth: token, status: http.StatusOK},
		{name: "BearerLowerCase", auth: "bearer" + token[len("Bearer"):], status: http.StatusOK},
		{name: "Basic", auth: basic("admin", "admin"), status: http.StatusOK},
		{name: "None", auth: "-", status: http.StatusUnauthorized, text: "Authentication credentials were not provided."},
		{name: "UnknownToken", auth: "Bearer abc.def.ghi", status: http.StatusUnauthorized, text: "INCORRECT_CREDENTIALS"},
		{name: "TokenOfAnotherServer", auth: foreign, status: http.StatusUnauthorized, text: "INCORRECT_CREDENTIALS"},
		{name: "BasicWrongPassword", auth: basic("admin", "x"), status: http.StatusUnauthorized, text: "Invalid username/password."},
		{name: "BasicUnknownUser", auth: basic("bob", "admin"), status: http.StatusUnauthorized, text: "Invalid username/password."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := b.do(t, req{path: "Patient/" + openimistest.SeedPatientID + "/", auth: tt.auth})
			if tt.status == http.StatusOK {
				require.Equal(t, http.StatusOK, resp.status, string(resp.body))
				return
			}
			resp.requireOutcome(t, tt.status, "fatal", tt.text)
		})
	}
}

func TestAuthentication_TokenExpiry(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{TokenLifetime: 10 * time.Minute})
	token := b.login(t, "admin", "admin")
	patient := req{path: "Patient/" + openimistest.SeedPatientID + "/", auth: token}
	b.clock.Add(10*time.Minute - time.Second)
	require.Equal(t, http.StatusOK, b.do(t, patient).status)
	b.clock.Add(time.Second)
	b.do(t, patient).requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")

	// An expired token on login/ fails the login itself (trap 9).
	resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: token, body: `{"username":"admin","password":"admin"}`})
	resp.requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")

	fresh := b.login(t, "admin", "admin")
	b.srv.ExpireTokens()
	b.do(t, req{path: patient.path, auth: fresh}).requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")
	require.Equal(t, 2, b.srv.Logins())
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
			r: req{method: http.MethodPost, path: "Subscription/", body: claimSubscription("http://127.0.0.1:9/cb")}},
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

	t.Run("AddUserWithRightsAndLoginNeedsNone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.AddUser("limited", "pw", []int{openimistest.RightClaimRead})
		token := b.login(t, "limited", "pw")
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/", auth: token}).status)
		require.Equal(t, http.StatusForbidden, b.do(t, req{path: "Patient/" + openimistest.SeedPatientID + "/", auth: token}).status)
	})
}
