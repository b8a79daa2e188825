package mediator_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitReady waits until /ready answers status with a reason containing
// reason ("" for none).
func (b *testBundle) waitReady(t *testing.T, status int, reason string) {
	t.Helper()
	var last readyAnswer
	require.Eventually(t, func() bool {
		got, raw := b.ready(t)
		var body readyAnswer
		enc, _ := json.Marshal(raw)
		require.NoError(t, json.Unmarshal(enc, &body))
		last = body
		if got != status {
			return false
		}
		if reason == "" {
			return len(body.Reasons) == 0
		}
		return strings.Contains(strings.Join(body.Reasons, "; "), reason)
	}, 15*time.Second, 10*time.Millisecond, "/ready %d %q; last answer %+v", status, reason, last)
}

// TestReady_OpenIMISLoginRefused: an expired or changed openIMIS password
// makes /ready 503 naming the cause (docs/upstreams/openimis.md trap 18), with
// one error line and a gauge, and /ready returns to 200 by itself once a
// login succeeds again.
func TestReady_OpenIMISLoginRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{newerCore: true})
	b.waitReady(t, http.StatusOK, "")
	require.Contains(t, b.scrape(t), "mediator_openimis_login_failing 0")

	// The password expires; the token in hand does too, so the next claim
	// job logs in again and is refused.
	b.oi.ExpirePassword(imisUser)
	b.oi.ExpireTokens()
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, "11111111-2222-4333-8444-555555555555", fixtureInsureeUUID, "2025-06-30")).status)
	b.waitReady(t, http.StatusServiceUnavailable,
		"openIMIS refused the login: password expired (PASSWORD_EXPIRED); set a new OPENIMIS_PASSWORD")
	b.waitLog(t, `"level":"error"`, "openIMIS refused the login")
	require.Contains(t, b.scrape(t), "mediator_openimis_login_failing 1")
	require.Contains(t, b.scrape(t), `mediator_openimis_logins_total{outcome="refused"}`)

	// An administrator renews it: the next login succeeds, by itself.
	b.oi.SetPassword(imisUser, imisPass)
	b.waitReady(t, http.StatusOK, "")
	b.waitDelivered(t, "11111111-2222-4333-8444-555555555555")
	b.waitLog(t, "openimis login works again")
	require.Contains(t, b.scrape(t), "mediator_openimis_login_failing 0")
	require.Equal(t, 1, strings.Count(b.logs.String(), "openIMIS refused the login;"), "one error line per change, not one per job")

	// The password is changed in openIMIS but not in the mediator. (Another
	// insuree, whose person is not known yet: the job needs openIMIS.)
	b.oi.SetPassword(imisUser, "changed-elsewhere")
	b.oi.ExpireTokens()
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, "11111111-2222-4333-8444-666666666666", "99999999-2222-4333-8444-666666666666", "2025-06-30")).status)
	b.waitReady(t, http.StatusServiceUnavailable, "openIMIS refused the login: wrong username or password")
}
