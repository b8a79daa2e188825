package openimis_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// testBundle is one test's fake openIMIS, a client logged into it as the
// default user, and the clock both of them read.
type testBundle struct {
	client *openimis.Client
	clock  *clock
	server *openimistest.Server
}

// clock is a settable time source shared by the fake and the client.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testConfig is what a test may change before setup starts the fake and
// builds the client.
type testConfig struct {
	client openimis.Options
	server openimistest.Options
}

// setup starts a fake openIMIS (release 24.10 unless configure says
// otherwise) and a client for its default user admin/admin. Both read the
// same fixed clock, 2025-06-30T10:00:00Z, which only moves when the test
// moves it.
func setup(t *testing.T, configure ...func(*testConfig)) *testBundle {
	t.Helper()
	clk := &clock{now: time.Date(2025, 6, 30, 10, 0, 0, 0, time.UTC)}
	cfg := &testConfig{
		client: openimis.Options{Username: "admin", Password: "admin", Timeout: 5 * time.Second, Now: clk.Now},
		server: openimistest.Options{Now: clk.Now},
	}
	for _, f := range configure {
		f(cfg)
	}
	srv := openimistest.NewServer(t, cfg.server)
	cfg.client.FHIRURL = srv.FHIRURL()
	c, err := openimis.New(cfg.client)
	require.NoError(t, err)
	return &testBundle{client: c, clock: clk, server: srv}
}

// newClient returns a second client of the bundle's fake, logged in as
// another user, on the same clock.
func (b *testBundle) newClient(t *testing.T, username, password string) *openimis.Client {
	t.Helper()
	c, err := openimis.New(openimis.Options{
		FHIRURL: b.server.FHIRURL(), Username: username, Password: password, Timeout: 5 * time.Second, Now: b.clock.Now,
	})
	require.NoError(t, err)
	return c
}

// requests returns the requests the fake received on path (relative to the
// FHIR base).
func (b *testBundle) requests(path string) []openimistest.Request {
	var out []openimistest.Request
	for _, r := range b.server.Requests() {
		if r.Path == openimistest.FHIRPath+path {
			out = append(out, r)
		}
	}
	return out
}

// requireAPIError asserts that err wraps an *openimis.APIError with the
// given status and permanence, and returns it.
func requireAPIError(t *testing.T, err error, status int, permanent bool) *openimis.APIError {
	t.Helper()
	var ae *openimis.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, status, ae.Status, ae.Error())
	require.Equal(t, permanent, ae.Permanent(), ae.Error())
	return ae
}

// feedback returns the upstream Communication fixture about the seeded
// claim, as the mediator would post it.
func feedback(t *testing.T) openimis.Communication {
	t.Helper()
	data, err := os.ReadFile("../testdata/openimis/test_communication.json")
	require.NoError(t, err)
	var comm openimis.Communication
	require.NoError(t, json.Unmarshal(data, &comm))
	require.Len(t, comm.About, 1)
	comm.About[0].Reference = "Claim/" + openimistest.SeedClaimID
	return comm
}

// claimSubscription is the subscription the mediator asks for
// (docs/upstreams/openimis.md traps 2-5).
func claimSubscription(endpoint string) openimis.Subscription {
	return openimis.Subscription{
		Channel: openimis.Channel{
			Endpoint: endpoint,
			Header:   []string{`{"Authorization":"Bearer s3cret"}`},
			Type:     "rest-hook",
		},
		Criteria: "Claim",
		End:      "2030-12-31T23:59:59Z",
		Reason:   "Claim",
		Status:   "active",
	}
}

func TestClient_New(t *testing.T) {
	t.Parallel()

	valid := openimis.Options{FHIRURL: "https://imis.example.org/api/api_fhir_r4/", Username: "admin", Password: "admin"}
	tests := []struct {
		name    string
		change  func(*openimis.Options)
		wantErr string
	}{
		{name: "OK", change: func(*openimis.Options) {}},
		{name: "RelativeURL", change: func(o *openimis.Options) { o.FHIRURL = "/api/api_fhir_r4/" }, wantErr: "absolute"},
		{name: "URLWithoutScheme", change: func(o *openimis.Options) { o.FHIRURL = "imis.example.org/api/api_fhir_r4/" }, wantErr: "absolute"},
		{name: "MissingTrailingSlash", change: func(o *openimis.Options) { o.FHIRURL = "https://imis.example.org/api/api_fhir_r4" }, wantErr: "end in /"},
		{name: "EmptyURL", change: func(o *openimis.Options) { o.FHIRURL = "" }, wantErr: "FHIR URL"},
		{name: "MissingUsername", change: func(o *openimis.Options) { o.Username = "" }, wantErr: "username and password are required"},
		{name: "MissingPassword", change: func(o *openimis.Options) { o.Password = "" }, wantErr: "username and password are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := valid
			tt.change(&opts)
			c, err := openimis.New(opts)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, c)
				require.False(t, c.LoggedIn(), "New does not contact the server")
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, c)
		})
	}
}

func TestClient_Requests(t *testing.T) {
	t.Parallel()

	t.Run("HeadersAndPaths", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.ClaimSubscriptions = true })
		ctx := t.Context()

		_, err := b.client.GetPatient(ctx, openimistest.SeedPatientID)
		require.NoError(t, err)
		_, err = b.client.GetClaimResponse(ctx, openimistest.SeedClaimID)
		require.NoError(t, err)
		sub, err := b.client.CreateSubscription(ctx, claimSubscription("https://mediator.example.org/claims"))
		require.NoError(t, err)
		_, err = b.client.GetSubscription(ctx, sub.ID)
		require.NoError(t, err)
		_, err = b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.NoError(t, b.client.DeleteSubscription(ctx, sub.ID))
		_, err = b.client.CreateCommunication(ctx, feedback(t))
		require.NoError(t, err)

		reqs := b.server.Requests()
		require.Len(t, reqs, 8, "one login, then one request per call")
		withBody := 0
		for _, r := range reqs {
			require.Equal(t, "application/json", r.Header.Get("Accept"), "%s %s", r.Method, r.Path)
			require.True(t, strings.HasPrefix(r.Path, openimistest.FHIRPath), "%s %s is under the FHIR base", r.Method, r.Path)
			require.True(t, strings.HasSuffix(r.Path, "/"), "%s %s has a trailing slash", r.Method, r.Path)
			if len(r.Body) > 0 {
				withBody++
				require.Equal(t, "application/json", r.Header.Get("Content-Type"), "%s %s", r.Method, r.Path)
				require.True(t, json.Valid(r.Body), "%s %s body is JSON", r.Method, r.Path)
			}
		}
		require.Equal(t, 3, withBody, "login, Subscription and Communication carry a body")

		var methods []string
		for _, r := range reqs {
			methods = append(methods, r.Method+" "+strings.TrimPrefix(r.Path, openimistest.FHIRPath))
		}
		require.Equal(t, []string{
			"POST login/",
			"GET Patient/" + openimistest.SeedPatientID + "/",
			"GET ClaimResponse/" + openimistest.SeedClaimID + "/",
			"POST Subscription/",
			"GET Subscription/" + sub.ID + "/",
			"GET Subscription/",
			"DELETE Subscription/" + sub.ID + "/",
			"POST Communication/",
		}, methods)
	})

	t.Run("FHIRURLWithoutPath", func(t *testing.T) {
		t.Parallel()
		// A FHIR base at the site root still gets trailing-slashed paths.
		var mu sync.Mutex
		var paths []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			paths = append(paths, r.Method+" "+r.URL.Path)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path == "/login/" {
				_, _ = w.Write([]byte(`{"token":"t.t.t","exp":4102444800}`))
				return
			}
			_, _ = w.Write([]byte(`{"resourceType":"Patient","id":"p"}`))
		}))
		t.Cleanup(srv.Close)
		c, err := openimis.New(openimis.Options{FHIRURL: srv.URL + "/", Username: "admin", Password: "admin"})
		require.NoError(t, err)

		p, err := c.GetPatient(t.Context(), "p")
		require.NoError(t, err)
		require.Equal(t, "p", p.ID)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []string{"POST /login/", "GET /Patient/p/"}, paths)
	})
}

func TestClient_GetPatient(t *testing.T) {
	t.Parallel()

	t.Run("Seed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		p, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		require.NoError(t, err)
		require.Equal(t, "Patient", p.ResourceType)
		require.Equal(t, openimistest.SeedPatientID, p.ID)
		require.Len(t, p.Name, 1)
		require.Equal(t, "TEST_LAST_NAME", p.Name[0].Family)
		require.Equal(t, []string{"TEST_OTHER_NAME"}, p.Name[0].Given)
		require.Equal(t, "usual", p.Name[0].Use)
		require.Equal(t, "male", p.Gender)
		require.Equal(t, "1990-03-24", p.BirthDate)
		require.Contains(t, p.Telecom, openimis.ContactPoint{System: "phone", Use: "home", Value: "813-996-476"})
		require.Contains(t, p.Telecom, openimis.ContactPoint{System: "email", Use: "home", Value: "TEST@TEST.com"})

		codes := map[string]string{}
		for _, id := range p.Identifier {
			codes[id.Type.Code()] = id.Value
		}
		require.Equal(t, openimistest.SeedPatientID, codes["UUID"])
		require.Equal(t, openimistest.SeedPatientCHFID, codes["Code"])
	})

	t.Run("UnknownUUIDIsServerError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const unknown = "00000000-0000-4000-8000-000000000000"

		p, err := b.client.GetPatient(t.Context(), unknown)
		require.Nil(t, p)
		ae := requireAPIError(t, err, http.StatusInternalServerError, true)
		require.Equal(t, http.MethodGet, ae.Method)
		require.Equal(t, openimistest.FHIRPath+"Patient/"+unknown+"/", ae.Path)
		require.Contains(t, ae.Message, "Insuree matching query does not exist")
		require.True(t, openimis.NotShown(err))
		require.False(t, openimis.NotShown(&openimis.APIError{Status: http.StatusInternalServerError, Message: "Claim does not exist"}))
		require.False(t, openimis.NotShown(&openimis.APIError{Status: http.StatusNotFound, Message: "matching query does not exist"}))
		require.Len(t, b.requests("Patient/"+unknown+"/"), 1, "a 500 is not retried")
	})

	t.Run("MissingRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) {
			c.server.Rights = []int{openimistest.RightClaimRead, openimistest.RightFeedbackDeliver}
		})

		_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		ae := requireAPIError(t, err, http.StatusForbidden, true)
		require.Contains(t, ae.Message, "You do not have permission to perform this action.")
	})
}

func TestClient_GetClaimResponse(t *testing.T) {
	t.Parallel()

	t.Run("Seed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		cr, err := b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		require.NoError(t, err)
		require.Equal(t, "ClaimResponse", cr.ResourceType)
		require.Equal(t, openimistest.SeedClaimID, cr.ID)
		require.NotNil(t, cr.Patient)
		require.Equal(t, "Patient/"+openimistest.SeedPatientID, cr.Patient.Reference)
		require.NotNil(t, cr.Request)
		require.Equal(t, "ClaimV2/"+openimistest.SeedClaimID, cr.Request.Reference)
		require.Empty(t, cr.Communication, "no feedback stored yet")

		codes := map[string]string{}
		for _, id := range cr.Identifier {
			codes[id.Type.Code()] = id.Value
		}
		require.Equal(t, openimistest.SeedClaimID, codes["UUID"])
		require.Equal(t, openimistest.SeedClaimCode, codes["Code"])
	})

	t.Run("UnknownUUIDIsServerError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		_, err := b.client.GetClaimResponse(t.Context(), "00000000-0000-4000-8000-000000000000")
		requireAPIError(t, err, http.StatusInternalServerError, true)
	})
}

func TestClient_CreateQuestionnaireResponse(t *testing.T) {
	t.Parallel()

	yes := true
	rating := 4
	qr := openimis.QuestionnaireResponse{
		Questionnaire: "https://example.org/Questionnaire/claim-feedback",
		Status:        "completed",
		Subject:       &openimis.Reference{Reference: "Patient/" + openimistest.SeedPatientID},
		Item: []openimis.QRItem{
			{LinkID: "claim", Answer: []openimis.QRAnswer{{ValueReference: &openimis.Reference{Reference: "Claim/" + openimistest.SeedClaimID}}}},
			{LinkID: "care-rendered", Answer: []openimis.QRAnswer{{ValueBoolean: &yes}}},
			{LinkID: "rating", Answer: []openimis.QRAnswer{{ValueInteger: &rating}}},
		},
	}

	t.Run("NotSupportedOn2410", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		id, err := b.client.CreateQuestionnaireResponse(t.Context(), qr)
		require.Empty(t, id)
		require.True(t, openimis.NoQuestionnaireResponse(err), "%v", err)
		requireAPIError(t, err, http.StatusNotFound, true)
		require.Empty(t, b.server.QuestionnaireResponses())
	})

	t.Run("Supported", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.QuestionnaireResponse = true })

		id, err := b.client.CreateQuestionnaireResponse(t.Context(), qr)
		require.NoError(t, err)
		require.NotEmpty(t, id)
		stored := b.server.QuestionnaireResponses()
		require.Len(t, stored, 1)
		require.Equal(t, id, stored[0].ID)
		require.Equal(t, openimistest.SeedClaimID, stored[0].ClaimID)
		require.Equal(t, "admin", stored[0].Owner)

		var body map[string]any
		require.NoError(t, json.Unmarshal(stored[0].Body, &body))
		require.Equal(t, "QuestionnaireResponse", body["resourceType"], "the client sets resourceType")
	})

	t.Run("OtherErrorIsNotNoQuestionnaireResponse", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.QuestionnaireResponse = true })

		_, err := b.client.CreateQuestionnaireResponse(t.Context(), qr)
		require.NoError(t, err)
		_, err = b.client.CreateQuestionnaireResponse(t.Context(), qr)
		require.False(t, openimis.NoQuestionnaireResponse(err), "%v", err)
		require.True(t, openimis.FeedbackExists(err), "%v", err)
	})
}

func TestClient_TransientErrors(t *testing.T) {
	t.Parallel()

	t.Run("ServiceUnavailable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.SetDown(http.StatusServiceUnavailable)

		_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		requireAPIError(t, err, http.StatusServiceUnavailable, false)

		b.server.SetDown(0)
		_, err = b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		require.NoError(t, err, "the client recovers once the server is back")
		require.Equal(t, 1, b.server.Logins(), "a 503 does not cost the token")
	})

	t.Run("TooManyRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.FailNext(1, http.StatusTooManyRequests)

		_, err := b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		ae := requireAPIError(t, err, http.StatusTooManyRequests, false)
		require.Contains(t, ae.Message, "Rate limit exceeded")
		require.Len(t, b.requests("ClaimResponse/"+openimistest.SeedClaimID+"/"), 1, "the client does not retry")
	})

	t.Run("TooManyRequestsPausesTheClient", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.RateLimitPause = 10 * time.Second })
		require.NoError(t, b.client.Login(t.Context()))
		path := "ClaimResponse/" + openimistest.SeedClaimID + "/"
		sent := func() int { return len(b.server.Requests()) }

		b.server.FailNext(1, http.StatusTooManyRequests)
		_, err := b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		requireAPIError(t, err, http.StatusTooManyRequests, false)
		var rl *openimis.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 10*time.Second, rl.RetryAfterDuration(), "the 429 says how long the client waits")

		// Every request waits, whatever its path, and none reaches openIMIS.
		before := sent()
		b.clock.Add(9 * time.Second)
		_, err = b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		require.ErrorIs(t, err, openimis.ErrRateLimited)
		require.ErrorAs(t, err, &rl)
		require.Equal(t, time.Second, rl.RetryAfterDuration())
		require.Equal(t, before, sent(), "nothing is sent while the client waits")

		// A second 429 right after the wait doubles it.
		b.clock.Add(time.Second)
		b.server.FailNext(1, http.StatusTooManyRequests)
		_, err = b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 20*time.Second, rl.RetryAfterDuration())
		b.clock.Add(19 * time.Second)
		_, err = b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		require.ErrorIs(t, err, openimis.ErrRateLimited)

		// An answer ends the doubling.
		b.clock.Add(time.Second)
		_, err = b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		require.NoError(t, err)
		b.server.FailNext(1, http.StatusTooManyRequests)
		_, err = b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 10*time.Second, rl.RetryAfterDuration())
		require.Len(t, b.requests(path), 4)
	})

	t.Run("TooManyRequestsInABurstPauseOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.RateLimitPause = 10 * time.Second })
		require.NoError(t, b.client.Login(t.Context()))
		// Four requests in flight when the first 429 comes back: one pause,
		// not a pause doubled by each of their 429s.
		b.server.SetLatency(200 * time.Millisecond)
		b.server.FailNext(4, http.StatusTooManyRequests)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				_, err := b.client.GetClaimResponse(context.Background(), openimistest.SeedClaimID)
				errs <- err
			}()
		}
		for range 4 {
			var rl *openimis.RateLimitError
			require.ErrorAs(t, <-errs, &rl)
			require.Equal(t, 10*time.Second, rl.RetryAfterDuration())
		}
		require.Len(t, b.requests("ClaimResponse/"+openimistest.SeedClaimID+"/"), 4)

		// After the pause, the next 429 is one in a row: doubled once.
		b.server.SetLatency(0)
		b.clock.Add(10 * time.Second)
		b.server.FailNext(1, http.StatusTooManyRequests)
		_, err := b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		var rl *openimis.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 20*time.Second, rl.RetryAfterDuration())
	})

	t.Run("TooManyRequestsDoNotDelayLogins", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.RateLimitPause = 10 * time.Second })
		b.server.FailNext(1, http.StatusTooManyRequests)
		require.ErrorIs(t, b.client.Login(t.Context()), openimis.ErrRateLimited)
		for range 5 { // callers keep trying during the pause
			b.clock.Add(time.Second)
			require.ErrorIs(t, b.client.Login(t.Context()), openimis.ErrRateLimited)
		}
		// The login backoff (wrong passwords) did not grow meanwhile: the
		// login goes out as soon as the pause ends.
		b.clock.Add(5 * time.Second)
		require.NoError(t, b.client.Login(t.Context()))
	})

	t.Run("TooManyRequestsOnLogin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.FailNext(1, http.StatusTooManyRequests)
		err := b.client.Login(t.Context())
		require.ErrorIs(t, err, openimis.ErrRateLimited)
		requireAPIError(t, err, http.StatusTooManyRequests, false)
		logins := b.server.Logins()
		b.clock.Add(5 * time.Second)
		require.ErrorIs(t, b.client.Login(t.Context()), openimis.ErrRateLimited)
		require.Equal(t, logins, b.server.Logins(), "no login is sent while the client waits")
	})

	t.Run("UnexpectedServerError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.FailNext(1, http.StatusInternalServerError)

		_, err := b.client.CreateCommunication(t.Context(), feedback(t))
		requireAPIError(t, err, http.StatusInternalServerError, false)
		require.Empty(t, b.server.Communications())
	})

	t.Run("DroppedAnswer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.DropNext(1)

		_, err := b.client.CreateCommunication(t.Context(), feedback(t))
		require.Error(t, err)
		var ae *openimis.APIError
		require.NotErrorAs(t, err, &ae, "no answer is not an APIError: %v", err)
		require.False(t, openimis.FeedbackExists(err))
		require.Len(t, b.server.Communications(), 1, "the feedback was stored before the answer was lost")
		require.Len(t, b.requests("Communication/"), 1, "a POST is not re-sent")
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.client.Timeout = 50 * time.Millisecond })
		require.NoError(t, b.client.Login(t.Context()))
		b.server.SetLatency(time.Minute)

		_, err := b.client.GetPatient(t.Context(), openimistest.SeedPatientID)
		require.Error(t, err)
		var ae *openimis.APIError
		require.NotErrorAs(t, err, &ae, "%v", err)
	})
}

func TestClient_Redirect(t *testing.T) {
	t.Parallel()

	// redirector is a server that answers 301 to every request (optionally
	// except login/) and records what it was asked.
	type redirector struct {
		mu    sync.Mutex
		paths []string
		srv   *httptest.Server
	}
	start := func(t *testing.T, answerLogin bool) *redirector {
		t.Helper()
		rd := &redirector{}
		rd.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rd.mu.Lock()
			rd.paths = append(rd.paths, r.Method+" "+r.URL.Path)
			rd.mu.Unlock()
			if answerLogin && r.URL.Path == "/api/api_fhir_r4/login/" {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"token":"a.b.c","exp":4102444800}`))
				return
			}
			http.Redirect(w, r, "/elsewhere/", http.StatusMovedPermanently)
		}))
		t.Cleanup(rd.srv.Close)
		return rd
	}
	newClient := func(t *testing.T, rd *redirector) *openimis.Client {
		t.Helper()
		c, err := openimis.New(openimis.Options{FHIRURL: rd.srv.URL + "/api/api_fhir_r4/", Username: "admin", Password: "admin"})
		require.NoError(t, err)
		return c
	}
	requireNotFollowed := func(t *testing.T, rd *redirector, want []string) {
		t.Helper()
		rd.mu.Lock()
		defer rd.mu.Unlock()
		require.Equal(t, want, rd.paths)
		for _, p := range rd.paths {
			require.NotContains(t, p, "/elsewhere/")
		}
	}

	t.Run("OnLogin", func(t *testing.T) {
		t.Parallel()
		rd := start(t, false)
		c := newClient(t, rd)

		_, err := c.GetPatient(t.Context(), openimistest.SeedPatientID)
		ae := requireAPIError(t, err, http.StatusMovedPermanently, true)
		require.Equal(t, http.MethodPost, ae.Method)
		require.Equal(t, "/api/api_fhir_r4/login/", ae.Path)
		require.False(t, c.LoggedIn())
		requireNotFollowed(t, rd, []string{"POST /api/api_fhir_r4/login/"})
	})

	t.Run("OnGet", func(t *testing.T) {
		t.Parallel()
		rd := start(t, true)
		c := newClient(t, rd)

		_, err := c.GetPatient(t.Context(), openimistest.SeedPatientID)
		ae := requireAPIError(t, err, http.StatusMovedPermanently, true)
		require.Equal(t, http.MethodGet, ae.Method)
		require.Equal(t, "/api/api_fhir_r4/Patient/"+openimistest.SeedPatientID+"/", ae.Path)
		requireNotFollowed(t, rd, []string{
			"POST /api/api_fhir_r4/login/",
			"GET /api/api_fhir_r4/Patient/" + openimistest.SeedPatientID + "/",
		})
	})

	t.Run("OnPost", func(t *testing.T) {
		t.Parallel()
		rd := start(t, true)
		c := newClient(t, rd)

		_, err := c.CreateCommunication(t.Context(), feedback(t))
		ae := requireAPIError(t, err, http.StatusMovedPermanently, true)
		require.Equal(t, http.MethodPost, ae.Method)
		requireNotFollowed(t, rd, []string{"POST /api/api_fhir_r4/login/", "POST /api/api_fhir_r4/Communication/"})
	})
}

func TestClient_RetryAfterIsBounded(t *testing.T) {
	t.Parallel()
	// A proxy in front of openIMIS answers 429 with a Retry-After of some
	// 31 years.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "999999999")
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
	}))
	t.Cleanup(proxy.Close)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := openimis.New(openimis.Options{FHIRURL: proxy.URL + "/api/api_fhir_r4/", Username: "u", Password: "p",
		Now: func() time.Time { return now }, RateLimitPause: 24 * time.Hour})
	require.NoError(t, err)

	_, err = c.GetPatient(t.Context(), openimistest.SeedPatientID)
	var rl *openimis.RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, openimis.MaxPause, rl.RetryAfterDuration(), "the Retry-After is honoured up to MaxPause")
	require.Equal(t, now.Add(openimis.MaxPause), c.Paused())

	_, err = c.GetPatient(t.Context(), openimistest.SeedPatientID)
	require.ErrorAs(t, err, &rl)
	require.Equal(t, openimis.MaxPause, rl.RetryAfterDuration())
}

func TestClient_GetClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)

	cl, err := b.client.GetClaim(t.Context(), openimistest.SeedClaimID)
	require.NoError(t, err)
	require.Equal(t, "2021-09-27", cl.Created, "the claim's own date")
	require.Equal(t, openimistest.SeedClaimID, cl.ID)

	_, err = b.client.GetClaim(t.Context(), "00000000-0000-4000-8000-00000000dead")
	require.True(t, openimis.NotShown(err), "an unknown claim is openIMIS's 500: %v", err)
}
