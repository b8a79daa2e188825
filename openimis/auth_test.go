package openimis_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// badPassword is a password distinctive enough to be spotted in a message.
const badPassword = "Sup3r-s3cret-Pa55"

func TestClient_Login(t *testing.T) {
	t.Parallel()

	t.Run("JSONBodyWithoutAuthorization", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		require.NoError(t, b.client.Login(t.Context()))
		// A second login after the token is gone must not send the old one.
		b.server.ExpireTokens()
		_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		require.NoError(t, err)

		logins := b.requests("login/")
		require.Len(t, logins, 2)
		for _, r := range logins {
			require.Equal(t, http.MethodPost, r.Method)
			require.Empty(t, r.Header.Values("Authorization"), "login/ runs the authenticators: no Authorization header")
			require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			require.Equal(t, "application/json", r.Header.Get("Accept"))
			var body map[string]any
			require.NoError(t, json.Unmarshal(r.Body, &body))
			require.Equal(t, map[string]any{"username": "admin", "password": "admin"}, body)
		}
	})

	t.Run("WaitersKeepTheirOwnDeadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.SetLatency(2 * time.Second)

		first := make(chan error, 1)
		go func() { first <- b.client.Login(context.Background()) }()
		require.Eventually(t, func() bool { return len(b.requests("login/")) == 1 },
			5*time.Second, time.Millisecond, "the first login reaches openIMIS")

		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		select {
		case err := <-first:
			t.Fatalf("the waiter gave up only once the login ended (%v)", err)
		default:
		}
		require.NoError(t, <-first, "the login in progress is not disturbed")
		require.Len(t, b.requests("login/"), 1, "the waiter sent no login of its own")
		require.Empty(t, b.requests("Patient/"+openimistest.SeedPatientID+"/"))
	})

	t.Run("BearerTokenOnCalls", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		require.NoError(t, err)

		reqs := b.requests("Patient/" + openimistest.SeedPatientID + "/")
		require.Len(t, reqs, 1)
		require.Len(t, b.requests("login/"), 1)
		require.Regexp(t, `^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`, reqs[0].Header.Get("Authorization"))
	})

	t.Run("TokenReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()

		for range 3 {
			_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
			require.NoError(t, err)
			_, err = b.client.GetClaimResponse(ctx, openimistest.SeedClaimID)
			require.NoError(t, err)
		}
		require.NoError(t, b.client.Login(ctx), "Login with a valid token does not log in again")

		require.Equal(t, 1, b.server.Logins())
		require.Len(t, b.requests("login/"), 1)
		var auths []string
		for _, r := range b.server.Requests()[1:] {
			auths = append(auths, r.Header.Get("Authorization"))
		}
		require.Len(t, auths, 6)
		for _, a := range auths {
			require.Equal(t, auths[0], a, "every call carries the same token")
		}
	})

	t.Run("ConcurrentCallsShareOneLogin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() {
				_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 1, b.server.Logins())
	})

	t.Run("RefreshBeforeExpiry", func(t *testing.T) {
		t.Parallel()
		// A 10-minute token is refreshed a fifth of its lifetime (2 minutes)
		// before it expires.
		b := setup(t, func(c *testConfig) { c.server.TokenLifetime = 10 * time.Minute })
		ctx := t.Context()
		patientPath := "Patient/" + openimistest.SeedPatientID + "/"

		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		require.Equal(t, 1, b.server.Logins())

		b.clock.Add(8*time.Minute - time.Second)
		_, err = b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		require.Equal(t, 1, b.server.Logins(), "the token is still fresh enough")

		b.clock.Add(time.Second)
		_, err = b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		require.Equal(t, 2, b.server.Logins(), "the token is about to expire: log in again first")
		require.Len(t, b.requests(patientPath), 3, "no call was refused and retried")
	})

	t.Run("LongLifetimeRefreshesFiveMinutesBefore", func(t *testing.T) {
		t.Parallel()
		b := setup(t) // upstream default: one day
		ctx := t.Context()

		require.NoError(t, b.client.Login(ctx))
		b.clock.Add(24*time.Hour - 5*time.Minute - time.Second)
		require.NoError(t, b.client.Login(ctx))
		require.Equal(t, 1, b.server.Logins())
		b.clock.Add(time.Second)
		require.NoError(t, b.client.Login(ctx))
		require.Equal(t, 2, b.server.Logins())
	})

	t.Run("ReloginOnceOnUnauthorized", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()
		patientPath := "Patient/" + openimistest.SeedPatientID + "/"

		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		b.server.ExpireTokens()

		p, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		require.Equal(t, openimistest.SeedPatientID, p.ID)
		require.Equal(t, 2, b.server.Logins(), "exactly one re-login")

		reqs := b.requests(patientPath)
		require.Len(t, reqs, 3, "the refused call is retried exactly once")
		require.Equal(t, reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"))
		require.NotEqual(t, reqs[1].Header.Get("Authorization"), reqs[2].Header.Get("Authorization"), "the retry uses the new token")

		var paths []string
		for _, r := range b.server.Requests() {
			paths = append(paths, r.Method+" "+r.Path)
		}
		require.Equal(t, []string{
			"POST " + openimistest.FHIRPath + "login/",
			"GET " + openimistest.FHIRPath + patientPath,
			"GET " + openimistest.FHIRPath + patientPath,
			"POST " + openimistest.FHIRPath + "login/",
			"GET " + openimistest.FHIRPath + patientPath,
		}, paths)
	})

	t.Run("ConcurrentCallsShareOneRelogin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.ExpireTokens()

		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() {
				_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 2, b.server.Logins(), "callers refused with the same old token share one re-login")
	})

	t.Run("ReloginRetriesBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()
		require.NoError(t, b.client.Login(ctx))
		b.server.ExpireTokens()

		id, err := b.client.CreateCommunication(ctx, feedback(t))
		require.NoError(t, err)
		stored := b.server.Communications()
		require.Len(t, stored, 1)
		require.Equal(t, id, stored[0].FeedbackID)
		reqs := b.requests("Communication/")
		require.Len(t, reqs, 2)
		require.JSONEq(t, string(reqs[0].Body), string(reqs[1].Body), "the retry re-sends the whole body")
	})

	t.Run("UnauthorizedTwiceIsReturned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()
		patientPath := "Patient/" + openimistest.SeedPatientID + "/"
		require.NoError(t, b.client.Login(ctx))
		b.server.FailNextPath(openimistest.FHIRPath+patientPath, 3, http.StatusUnauthorized)

		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		ae := requireAPIError(t, err, http.StatusUnauthorized, false)
		require.Contains(t, ae.Message, "INCORRECT_CREDENTIALS")
		require.Equal(t, 2, b.server.Logins(), "one re-login, no more")
		require.Len(t, b.requests(patientPath), 2, "one retry, no more")
	})

	t.Run("WrongPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.Password = badPassword })

		_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		var le *openimis.LoginError
		require.ErrorAs(t, err, &le)
		require.Equal(t, http.StatusBadRequest, le.Status)
		require.Empty(t, le.Message, "openIMIS answers a wrong password with an empty body")
		require.Contains(t, err.Error(), "wrong password")
		require.NotContains(t, err.Error(), badPassword)
		var ae *openimis.APIError
		require.NotErrorAs(t, err, &ae)
		require.Empty(t, b.requests("Patient/"+openimistest.SeedPatientID+"/"), "nothing is sent without a token")
		require.False(t, b.client.LoggedIn())
	})

	t.Run("UnknownUser", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) {
			c.client.Username = "nobody"
			c.client.Password = badPassword
		})

		err := b.client.Login(t.Context())
		var le *openimis.LoginError
		require.ErrorAs(t, err, &le)
		require.Equal(t, http.StatusUnauthorized, le.Status)
		require.Equal(t, "INCORRECT_CREDENTIALS", le.Message)
		require.NotContains(t, err.Error(), badPassword)
		require.False(t, b.client.LoggedIn())
	})

	t.Run("NewerCoreWrongPasswordIs401", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) {
			c.client.Password = badPassword
			c.server.NewerCore = true
		})

		err := b.client.Login(t.Context())
		var le *openimis.LoginError
		require.ErrorAs(t, err, &le)
		require.Equal(t, http.StatusUnauthorized, le.Status)
		require.Equal(t, "INCORRECT_CREDENTIALS", le.Message)
		require.False(t, le.Expired())
		require.Equal(t, err, b.client.LoginFailure())
	})

	t.Run("ExpiredPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()
		require.NoError(t, b.client.Login(ctx))
		require.NoError(t, b.client.LoginFailure())

		b.server.ExpirePassword("admin")
		b.server.ExpireTokens()
		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		var le *openimis.LoginError
		require.ErrorAs(t, err, &le)
		require.True(t, le.Expired())
		require.Contains(t, err.Error(), "PASSWORD_EXPIRED")
		require.Contains(t, err.Error(), "set a new one in openIMIS and in OPENIMIS_PASSWORD")
		require.ErrorAs(t, b.client.LoginFailure(), &le, "the latest login failed")
		require.True(t, le.Expired())

		// A refusal under the lock-out-safe schedule: nothing is sent for a
		// second, then the login (the password renewed meanwhile) succeeds.
		b.server.SetPassword("admin", "admin")
		require.ErrorIs(t, b.client.Login(ctx), openimis.ErrLoginBackoff)
		require.Error(t, b.client.LoginFailure(), "waiting is no new login")
		b.clock.Add(time.Second)
		require.NoError(t, b.client.Login(ctx))
		require.NoError(t, b.client.LoginFailure(), "a login succeeded again")
	})

	t.Run("OtherLoginFailureIsAPIError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.FailNext(1, http.StatusBadGateway)

		err := b.client.Login(t.Context())
		ae := requireAPIError(t, err, http.StatusBadGateway, false)
		require.Equal(t, openimistest.FHIRPath+"login/", ae.Path)
		var le *openimis.LoginError
		require.NotErrorAs(t, err, &le)
	})

	t.Run("BackoffAfterFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.Password = badPassword })
		ctx := t.Context()

		err := b.client.Login(ctx)
		var le *openimis.LoginError
		require.ErrorAs(t, err, &le)
		require.Len(t, b.server.Requests(), 1)

		// Within the first backoff (one second) nothing is sent.
		_, err = b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.ErrorIs(t, err, openimis.ErrLoginBackoff)
		require.ErrorAs(t, err, &le, "the backoff error keeps the last login error")
		require.NotContains(t, err.Error(), badPassword)
		b.clock.Add(999 * time.Millisecond)
		require.ErrorIs(t, b.client.Login(ctx), openimis.ErrLoginBackoff)
		require.Len(t, b.server.Requests(), 1, "no request during the backoff")

		// After it, the client tries again; the second failure doubles it.
		b.clock.Add(time.Millisecond)
		err = b.client.Login(ctx)
		require.ErrorAs(t, err, &le)
		require.NotErrorIs(t, err, openimis.ErrLoginBackoff)
		require.Len(t, b.server.Requests(), 2)
		b.clock.Add(time.Second)
		require.ErrorIs(t, b.client.Login(ctx), openimis.ErrLoginBackoff)
		require.Len(t, b.server.Requests(), 2)

		// Once the password is right, the next attempt after the backoff
		// succeeds and clears it.
		b.server.AddUser("admin", badPassword, nil)
		b.clock.Add(time.Second)
		_, err = b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		require.True(t, b.client.LoggedIn())
		require.Equal(t, 1, b.server.Logins())
	})

	t.Run("RefusalsNeverLockTheAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.Password = badPassword })
		ctx := t.Context()
		// Whoever calls, as often as they like, for half an hour: the client
		// sends at most 3 refused logins in any 5 minutes (openIMIS locks
		// the account at 5), even when openIMIS fails in between (every
		// other login answers 503).
		var sent []time.Time
		start := b.clock.Now()
		for b.clock.Now().Sub(start) < 30*time.Minute {
			before := len(b.requests("login/"))
			if before%2 == 1 {
				b.server.SetDown(http.StatusServiceUnavailable)
			}
			_ = b.client.Login(ctx)
			b.server.SetDown(0)
			if n := len(b.requests("login/")); n > before && before%2 == 0 {
				sent = append(sent, b.clock.Now()) // a refused login
			}
			b.clock.Add(500 * time.Millisecond)
		}
		require.GreaterOrEqual(t, len(sent), 4, "it keeps trying")
		for i := range sent {
			inWindow := 0
			for _, at := range sent[i:] {
				if at.Sub(sent[i]) < 5*time.Minute {
					inWindow++
				}
			}
			require.LessOrEqual(t, inWindow, 3, "refused logins from %s", sent[i].Format(time.TimeOnly))
		}
	})

	t.Run("UnreachableOpenIMISBacksOffExponentially", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.SetDown(http.StatusServiceUnavailable)
		ctx := t.Context()
		require.Error(t, b.client.Login(ctx))
		for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
			b.clock.Add(wait - time.Millisecond)
			require.ErrorIs(t, b.client.Login(ctx), openimis.ErrLoginBackoff)
			b.clock.Add(time.Millisecond)
			err := b.client.Login(ctx)
			require.Error(t, err)
			require.NotErrorIs(t, err, openimis.ErrLoginBackoff)
		}
	})

	t.Run("CanceledLoginHasNoBackoff", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.SetLatency(time.Minute)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()

		require.Error(t, b.client.Login(ctx))
		b.server.SetLatency(0)
		require.NoError(t, b.client.Login(t.Context()), "a canceled attempt says nothing about the credentials")
	})

	t.Run("LoggedIn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()

		require.False(t, b.client.LoggedIn())
		b.server.FailNext(1, http.StatusServiceUnavailable)
		require.Error(t, b.client.Login(ctx))
		require.False(t, b.client.LoggedIn(), "a failed login is not a login")

		b.clock.Add(time.Minute)
		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		require.True(t, b.client.LoggedIn())

		b.server.ExpireTokens()
		b.server.SetDown(http.StatusServiceUnavailable)
		_, err = b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.Error(t, err)
		require.True(t, b.client.LoggedIn(), "LoggedIn reports whether a login ever succeeded")
	})
}
