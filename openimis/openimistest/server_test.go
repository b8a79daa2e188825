package openimistest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestServer_URLs(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	require.True(t, strings.HasPrefix(b.srv.URL, "http://127.0.0.1:"))
	require.Equal(t, b.srv.URL+"/api/api_fhir_r4/", b.srv.FHIRURL())

	resp := b.do(t, req{path: ""})
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, b.srv.FHIRURL()+"Subscription/", resp.object(t)["Subscription"])
}

func TestServer_TrailingSlash(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})

	t.Run("GetRedirects", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "ClaimResponse?_count=5"})
		require.Equal(t, http.StatusMovedPermanently, resp.status)
		require.Equal(t, "/api/api_fhir_r4/ClaimResponse/?_count=5", resp.header.Get("Location"))
	})

	t.Run("GetDetailRedirects", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Patient/" + openimistest.SeedPatientID})
		require.Equal(t, http.StatusMovedPermanently, resp.status)
		require.Equal(t, "/api/api_fhir_r4/Patient/"+openimistest.SeedPatientID+"/", resp.header.Get("Location"))
	})

	t.Run("PostIsRuntimeError", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodPost, path: "login", auth: "-", body: `{"username":"admin","password":"admin"}`})
		require.Equal(t, http.StatusInternalServerError, resp.status)
		require.True(t, strings.HasPrefix(resp.header.Get("Content-Type"), "text/plain"))
		require.Contains(t, string(resp.body), "RuntimeError")
		require.Contains(t, string(resp.body), "APPEND_SLASH")
	})

	t.Run("PutIsRuntimeError", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodPut, path: "Subscription/" + openimistest.SeedClaimID, body: `{}`})
		require.Equal(t, http.StatusInternalServerError, resp.status)
		require.Contains(t, string(resp.body), "APPEND_SLASH")
	})

	t.Run("DeleteRedirects", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodDelete, path: "Subscription/" + openimistest.SeedClaimID})
		require.Equal(t, http.StatusMovedPermanently, resp.status)
	})

	t.Run("UnknownPathIsDjango404", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"Claim/", "subscription/", "/api/other/", "Subscription/a/b/", "Patient/x.json/"} {
			resp := b.do(t, req{path: path})
			require.Equal(t, http.StatusNotFound, resp.status, path)
			require.Equal(t, "text/html; charset=utf-8", resp.header.Get("Content-Type"), path)
			require.Contains(t, string(resp.body), "Page not found", path)
		}
	})
}

func TestServer_ContentNegotiation(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})

	t.Run("AcceptFHIRJSONAloneIs406", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "ClaimResponse/", header: map[string]string{"Accept": "application/fhir+json"}})
		resp.requireOutcome(t, http.StatusNotAcceptable, "fatal", "Could not satisfy the request Accept header.")
	})

	t.Run("AcceptListWithJSONIsFine", func(t *testing.T) {
		t.Parallel()
		for _, accept := range []string{
			"application/fhir+json, application/json;q=0.9", "application/json; charset=utf-8", "*/*", "application/*",
		} {
			resp := b.do(t, req{path: "ClaimResponse/", header: map[string]string{"Accept": accept}})
			require.Equal(t, http.StatusOK, resp.status, accept)
		}
	})

	t.Run("NotAcceptableComesBeforeAuth", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "ClaimResponse/", auth: "-", header: map[string]string{"Accept": "application/xml"}})
		require.Equal(t, http.StatusNotAcceptable, resp.status)
	})

	t.Run("FHIRJSONBodyIs415", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: `{}`, contentType: "application/fhir+json"})
		resp.requireOutcome(t, http.StatusUnsupportedMediaType, "fatal",
			`Unsupported media type "application/fhir+json" in request.`)
	})

	t.Run("BodyWithoutContentTypeIs415", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodPost, path: "Communication/", body: `{}`, contentType: "-"})
		resp.requireOutcome(t, http.StatusUnsupportedMediaType, "fatal", `Unsupported media type "" in request.`)
	})

	t.Run("JSONWithCharsetIsFine", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-",
			body: `{"username":"admin","password":"admin"}`, contentType: "application/json; charset=utf-8"})
		require.Equal(t, http.StatusOK, resp.status)
	})

	t.Run("InvalidJSONIs400", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{method: http.MethodPost, path: "Communication/", body: `{"status":`})
		require.Equal(t, http.StatusBadRequest, resp.status)
		sev, _, text := resp.outcome(t)
		require.Equal(t, "fatal", sev)
		require.True(t, strings.HasPrefix(text.(string), "JSON parse error"))
	})
}

func TestServer_Methods(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})

	t.Run("MethodNotAllowed", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "login/"})
		resp.requireOutcome(t, http.StatusMethodNotAllowed, "fatal", `Method "GET" not allowed.`)
		resp = b.do(t, req{method: http.MethodPatch, path: "Subscription/" + openimistest.SeedClaimID + "/", body: `{}`})
		require.Equal(t, http.StatusMethodNotAllowed, resp.status)
	})

	t.Run("NotModelledIs501", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Communication/"})
		require.Equal(t, http.StatusNotImplemented, resp.status)
		_, code, text := resp.outcome(t)
		require.Equal(t, "not-supported", code)
		require.Contains(t, text, "not modelled")
	})
}

func TestServer_Faults(t *testing.T) {
	t.Parallel()

	t.Run("FailNext", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.FailNext(2, http.StatusBadGateway)
		for range 2 {
			resp := b.do(t, req{path: "ClaimResponse/"})
			require.Equal(t, http.StatusBadGateway, resp.status)
			require.True(t, strings.HasPrefix(resp.header.Get("Content-Type"), "text/html"))
		}
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status)
	})

	t.Run("FailNextRateLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.FailNext(1, http.StatusTooManyRequests)
		resp := b.do(t, req{method: http.MethodPost, path: "login/", auth: "-", body: `{"username":"admin","password":"admin"}`})
		resp.requireOutcome(t, http.StatusTooManyRequests, "fatal", "Rate limit exceeded")
		require.Empty(t, resp.header.Get("Retry-After"))
		require.Equal(t, 0, b.srv.Logins())
	})

	t.Run("SetDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.SetDown(http.StatusServiceUnavailable)
		require.Equal(t, http.StatusServiceUnavailable, b.do(t, req{path: "ClaimResponse/"}).status)
		require.Equal(t, http.StatusServiceUnavailable, b.do(t, req{path: "Patient/" + openimistest.SeedPatientID + "/"}).status)
		b.srv.SetDown(0)
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status)
	})

	t.Run("SetLatencyAppliesAfterTheEffect", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{ClaimSubscriptions: true})
		b.srv.SetLatency(time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.FHIRURL()+"Subscription/",
			strings.NewReader(claimSubscription("http://127.0.0.1:9/cb")))
		require.NoError(t, err)
		hr.Header.Set("Content-Type", "application/json")
		hr.SetBasicAuth("admin", "admin")
		resp, err := http.DefaultClient.Do(hr)
		if err == nil {
			require.NoError(t, resp.Body.Close())
		}
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Len(t, b.srv.Subscriptions(), 1, "the POST took effect before the delay")
		b.srv.SetLatency(0)
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status)
	})

	t.Run("FailNextBodies", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.FailNext(1, http.StatusUnauthorized)
		b.do(t, req{path: "ClaimResponse/"}).requireOutcome(t, http.StatusUnauthorized, "fatal", "INCORRECT_CREDENTIALS")
		b.srv.FailNext(1, http.StatusInternalServerError)
		b.do(t, req{path: "ClaimResponse/"}).requireOutcome(t, http.StatusInternalServerError, "error", "openimistest: injected fault")
		b.srv.FailNext(1, http.StatusNotFound)
		resp := b.do(t, req{path: "ClaimResponse/"})
		require.Equal(t, http.StatusNotFound, resp.status)
		require.Contains(t, string(resp.body), "Page not found")
	})

	t.Run("FailNextPath", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.FailNextPath("/api/api_fhir_r4/Communication/", 1, http.StatusBadGateway)
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status)
		resp := b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)})
		require.Equal(t, http.StatusBadGateway, resp.status)
		require.Empty(t, b.srv.Communications(), "a failed request is not processed")
		resp = b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)})
		require.Equal(t, http.StatusCreated, resp.status)
	})

	t.Run("DropNextLosesTheAnswerNotTheEffect", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.DropNextPath("/api/api_fhir_r4/Communication/", 1)
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.FHIRURL()+"Communication/",
			strings.NewReader(feedbackFor(t, openimistest.SeedClaimID)))
		require.NoError(t, err)
		hr.Header.Set("Content-Type", "application/json")
		hr.SetBasicAuth("admin", "admin")
		resp, err := http.DefaultClient.Do(hr)
		if err == nil {
			require.NoError(t, resp.Body.Close())
		}
		require.Error(t, err)
		require.Len(t, b.srv.Communications(), 1)
		b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)}).
			requireOutcome(t, http.StatusInternalServerError, "error", "Feedback exists for this claim")
	})

	t.Run("NewLatencyAppliesToDelayedAnswers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.SetLatency(time.Hour)
		done := make(chan int, 1)
		go func() { done <- b.do(t, req{path: "ClaimResponse/"}).status }()
		require.Eventually(t, func() bool { return len(b.srv.Requests()) == 1 }, 5*time.Second, time.Millisecond)
		b.srv.SetLatency(time.Hour + time.Minute) // longer: still waiting
		select {
		case status := <-done:
			t.Fatalf("answered %d before the latency passed", status)
		case <-time.After(50 * time.Millisecond):
		}
		b.srv.SetLatency(0)
		select {
		case status := <-done:
			require.Equal(t, http.StatusOK, status)
		case <-time.After(5 * time.Second):
			t.Fatal("SetLatency(0) did not release the delayed answer")
		}
	})

	t.Run("CloseReleasesDelayedAnswers", func(t *testing.T) {
		t.Parallel()
		srv := openimistest.New(openimistest.Options{})
		srv.SetLatency(time.Hour)
		done := make(chan int, 1)
		go func() {
			status := 0
			defer func() { done <- status }()
			hr, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.FHIRURL()+"ClaimResponse/", nil)
			if err != nil {
				return
			}
			hr.SetBasicAuth("admin", "admin")
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				return
			}
			status = resp.StatusCode
			_ = resp.Body.Close()
		}()
		for len(srv.Requests()) == 0 {
			time.Sleep(time.Millisecond)
		}
		srv.Close()
		srv.Close()
		require.Equal(t, http.StatusOK, <-done)
	})
}

func TestNewHandler(t *testing.T) {
	t.Parallel()

	h := openimistest.NewHandler(openimistest.Options{SkipSeed: true})
	t.Cleanup(h.Close)
	require.Empty(t, h.URL)
	require.Equal(t, http.DefaultClient, h.Client())
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	h.AddClaim(openimistest.ClaimResponseFixture(openimistest.SeedClaimID, "C1", openimistest.SeedPatientID), time.Now())

	hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, front.URL+openimistest.FHIRPath+"ClaimResponse/", nil)
	require.NoError(t, err)
	hr.SetBasicAuth("admin", "admin")
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), `"fullUrl":"`+front.URL+openimistest.FHIRPath+"ClaimResponse/"+openimistest.SeedClaimID+`"`)
}

func TestServer_Requests(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	b.srv.FailNext(1, http.StatusInternalServerError)
	b.do(t, req{method: http.MethodPost, path: "Communication/", body: `{"a":1}`})
	b.do(t, req{path: "ClaimResponse/?_count=2&page-offset=1"})

	got := b.srv.Requests()
	require.Len(t, got, 2)
	require.Equal(t, http.MethodPost, got[0].Method)
	require.Equal(t, "/api/api_fhir_r4/Communication/", got[0].Path)
	require.JSONEq(t, `{"a":1}`, string(got[0].Body))
	require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
	require.Equal(t, "_count=2&page-offset=1", got[1].RawQuery)
	require.Equal(t, b.clock.Now(), got[1].Time)

	got[0].Header.Set("X-Mutated", "yes")
	require.Empty(t, b.srv.Requests()[0].Header.Get("X-Mutated"))
}

func TestServer_ConcurrentUse(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{ClaimSubscriptions: true})
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			var err error
			defer func() { errs <- err }()
			hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.FHIRURL()+"Subscription/",
				strings.NewReader(claimSubscription("http://127.0.0.1:1/cb")))
			if err != nil {
				return
			}
			hr.Header.Set("Content-Type", "application/json")
			hr.SetBasicAuth("admin", "admin")
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				return
			}
			err = resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				err = errors.New(resp.Status)
			}
			_ = b.srv.Subscriptions()
			_ = b.srv.Requests()
			if i%5 == 0 {
				b.srv.ExpireTokens()
			}
		}()
	}
	for range 20 {
		require.NoError(t, <-errs)
	}
	require.Len(t, b.srv.Subscriptions(), 20)
}
