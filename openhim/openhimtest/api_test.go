package openhimtest_test

import (
	"cmp"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// clock is a settable Options.Now.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

type testBundle struct {
	clock *clock
	srv   *openhimtest.Server
}

// setup starts a fake whose clock reads 2025-06-30T10:00:00Z until moved.
func setup(t *testing.T, opts openhimtest.Options) *testBundle {
	t.Helper()
	b := &testBundle{clock: &clock{}}
	b.clock.Add(time.Duration(time.Date(2025, 6, 30, 10, 0, 0, 0, time.UTC).UnixNano()))
	opts.Now = b.clock.Now
	b.srv = openhimtest.NewServer(t, opts)
	return b
}

// do sends a request as root (Basic) unless header sets other credentials
// ("Authorization": "" for none); a body is sent as application/json
// unless header says otherwise.
func (b *testBundle) do(t *testing.T, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(openhimtest.RootEmail, openhimtest.RootPassword)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

func sha512Hex(s string) string {
	sum := sha512.Sum512([]byte(s))
	return hex.EncodeToString(sum[:])
}

// token returns the legacy token headers of a user at ts.
func token(email, salt, password, ts string) map[string]string {
	return map[string]string{
		"Authorization": "", "auth-username": email, "auth-ts": ts, "auth-salt": "s-1",
		"auth-token": sha512Hex(openhimtest.PassHash(salt, password) + "s-1" + ts),
	}
}

func basic(email, password string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+password))}
}

func TestPassHash_RootVector(t *testing.T) {
	t.Parallel()
	// The hash core seeds for root (src/server.js), docs/upstreams/openhim.md §2.3.
	require.Equal(t, "943a856bba65aad6c639d5c8d4a11fc8bb7fe9de62ae307aec8cf6ae6c1faab722127964c71db4bdd2ea2cdf60c6e4094dcad54d4522ab2839b65ae98100d0fb",
		openhimtest.PassHash(openhimtest.RootSalt, openhimtest.RootPassword))
}

// TestAuthentication pins §2 and traps 7 to 9: Basic with the exact email,
// the token scheme alone when its headers are present, 401 with core's
// text, 403 for a user outside the admin group; GET /authenticate/{email}
// without credentials, 404 for a user without a token passport.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	const now = "2025-06-30T10:00:00.000Z"
	none := map[string]string{"Authorization": ""}
	root := func(ts string) map[string]string {
		return token(openhimtest.RootEmail, openhimtest.RootSalt, openhimtest.RootPassword, ts)
	}
	tests := []struct {
		name         string
		disableBasic bool
		path         string
		header       map[string]string
		status       int
		body         string
	}{
		{name: "Basic", header: basic(openhimtest.RootEmail, openhimtest.RootPassword), status: 200},
		{name: "BasicWrongPassword", header: basic(openhimtest.RootEmail, "nope"), status: 401, body: "Unauthorized"},
		{name: "BasicEmailIsCaseSensitive", header: basic("Root@openhim.org", openhimtest.RootPassword), status: 401},
		{name: "NoCredentials", header: none, status: 401, body: "Unauthorized"},
		{name: "NotAnAdmin", header: basic("clerk@openhim.org", "clerk-pass"), status: 403,
			body: "User clerk@openhim.org is not an admin, API access to getAllMediators denied."},
		{name: "UnknownPathAfterAuthentication", path: "/nothing", status: 404, body: "Not Found"},
		{name: "UnknownPathUnauthenticated", path: "/nothing", header: none, status: 401},
		{name: "Token", header: root(now), status: 200},
		{name: "TokenEmailIgnoresCase", header: token("ROOT@openhim.org", openhimtest.RootSalt, openhimtest.RootPassword, now), status: 200},
		{name: "TokenWithinWindow", header: root("2025-06-30T10:00:09.000Z"), status: 200},
		{name: "TokenOutsideWindow", header: root("2025-06-30T09:59:49.000Z"), status: 401},
		{name: "TokenWithoutZone", header: root("2025-06-30T10:00:00"), status: 401},
		{name: "TokenWrongPassword", header: token(openhimtest.RootEmail, openhimtest.RootSalt, "nope", now), status: 401},
		{name: "TokenUserWithoutTokenPassport", header: token("v8@openhim.org", "", "v8-pass", now), status: 401},
		{name: "BadTokenWithGoodBasicFails", status: 401, header: map[string]string{
			"auth-username": openhimtest.RootEmail, "auth-ts": now, "auth-salt": "s", "auth-token": "bad",
		}},
		{name: "DisableBasic", disableBasic: true, status: 401},
		{name: "DisableBasicToken", disableBasic: true, header: root(now), status: 200},
		{name: "GetAuthenticate", path: "/authenticate/" + openhimtest.RootEmail, header: none, status: 200,
			body: `{"salt":"` + openhimtest.RootSalt + `","ts":"` + now + `"}`},
		{name: "GetAuthenticateUnknownUser", path: "/authenticate/nobody@openhim.org", header: none, status: 404},
		{name: "GetAuthenticateWithoutTokenPassport", path: "/authenticate/v8@openhim.org", header: none, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openhimtest.Options{DisableBasic: tt.disableBasic})
			b.srv.AddUser(openhimtest.User{Email: "clerk@openhim.org", Password: "clerk-pass", Groups: []string{"clerk"}})
			b.srv.AddUser(openhimtest.User{Email: "v8@openhim.org", Password: "v8-pass", Groups: []string{"admin"}})
			status, body := b.do(t, http.MethodGet, cmp.Or(tt.path, "/mediators"), "", tt.header)
			require.Equal(t, tt.status, status, body)
			if tt.body != "" {
				require.Equal(t, tt.body, body)
			}
		})
	}
}

// TestFaults checks the wiring of upstreamtest's faults: an injected status
// answers with Koa's status text, and the request is still recorded.
func TestFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, openhimtest.Options{})
	b.srv.SetDown(http.StatusServiceUnavailable)
	status, body := b.do(t, http.MethodGet, "/mediators", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "Service Unavailable", body)
	b.srv.SetDown(0)
	b.srv.FailNextPath("/mediators", 1, http.StatusBadGateway)
	status, _ = b.do(t, http.MethodGet, "/mediators", "", nil)
	require.Equal(t, http.StatusBadGateway, status)
	status, _ = b.do(t, http.MethodGet, "/mediators", "", nil)
	require.Equal(t, http.StatusOK, status)
	reqs := b.srv.Requests()
	require.Len(t, reqs, 3)
	require.Equal(t, "/mediators", reqs[0].Path)
	require.NotEmpty(t, reqs[0].Header.Get("Authorization"))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return string(data)
}
