package openimistest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestServer_Routing(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	require.True(t, strings.HasPrefix(b.srv.URL, "http://127.0.0.1:"))
	require.Equal(t, b.srv.URL+"/api/api_fhir_r4/", b.srv.FHIRURL())
	login := `{"username":"admin","password":"admin"}`
	tests := []struct {
		name        string
		r           req
		status      int
		contentType string // prefix
		location    string
		text        any // OperationOutcome details.text
	}{
		{name: "GetWithoutSlashRedirects", r: req{path: "ClaimResponse?_count=5"}, status: http.StatusMovedPermanently,
			location: "/api/api_fhir_r4/ClaimResponse/?_count=5"},
		{name: "DetailWithoutSlashRedirects", r: req{path: "Patient/" + openimistest.SeedPatientID}, status: http.StatusMovedPermanently,
			location: "/api/api_fhir_r4/Patient/" + openimistest.SeedPatientID + "/"},
		{name: "DeleteWithoutSlashRedirects", r: req{method: http.MethodDelete, path: "Subscription/x"}, status: http.StatusMovedPermanently},
		{name: "PostWithoutSlashIsRuntimeError", r: req{method: http.MethodPost, path: "login", auth: "-", body: login},
			status: http.StatusInternalServerError, contentType: "text/plain"},
		{name: "PutWithoutSlashIsRuntimeError", r: req{method: http.MethodPut, path: "Subscription/x", body: `{}`},
			status: http.StatusInternalServerError, contentType: "text/plain"},
		{name: "UnknownRouteIsDjango404", r: req{path: "ClaimV2/"}, status: http.StatusNotFound, contentType: "text/html"},
		{name: "ClaimListNotModelled", r: req{path: "Claim/"}, status: http.StatusNotImplemented},
		{name: "RoutesAreCaseSensitive", r: req{path: "subscription/"}, status: http.StatusNotFound, contentType: "text/html"},
		{name: "OutsideTheModule", r: req{path: "/api/other/"}, status: http.StatusNotFound, contentType: "text/html"},
		{name: "QuestionnaireResponseDoesNotExist", r: req{method: http.MethodPost, path: "QuestionnaireResponse/", body: `{}`},
			status: http.StatusNotFound, contentType: "text/html"},
		{name: "AcceptFHIRJSONAloneIs406", r: req{path: "ClaimResponse/", header: map[string]string{"Accept": "application/fhir+json"}},
			status: http.StatusNotAcceptable, text: "Could not satisfy the request Accept header."},
		{name: "AcceptListWithJSON", r: req{path: "ClaimResponse/", header: map[string]string{"Accept": "application/fhir+json, application/json;q=0.9"}},
			status: http.StatusOK},
		{name: "NotAcceptableBeforeAuth", r: req{path: "ClaimResponse/", auth: "-", header: map[string]string{"Accept": "application/fhir+json"}},
			status: http.StatusNotAcceptable},
		{name: "FHIRJSONBodyIs415", r: req{method: http.MethodPost, path: "login/", auth: "-", body: login, contentType: "application/fhir+json"},
			status: http.StatusUnsupportedMediaType, text: `Unsupported media type "application/fhir+json" in request.`},
		{name: "BodyWithoutContentTypeIs415", r: req{method: http.MethodPost, path: "login/", auth: "-", body: login, contentType: "-"},
			status: http.StatusUnsupportedMediaType},
		{name: "JSONWithCharset", r: req{method: http.MethodPost, path: "login/", auth: "-", body: login, contentType: "application/json; charset=utf-8"},
			status: http.StatusOK},
		{name: "InvalidJSONIs400", r: req{method: http.MethodPost, path: "login/", auth: "-", body: `{"username":`}, status: http.StatusBadRequest},
		{name: "MethodNotServedIs405", r: req{method: http.MethodPatch, path: "Subscription/"}, status: http.StatusMethodNotAllowed,
			text: `Method "PATCH" not allowed.`},
		{name: "ServedButNotModelledIs501", r: req{path: "Communication/"}, status: http.StatusNotImplemented},
		{name: "PutSubscriptionNotModelled", r: req{method: http.MethodPut, path: "Subscription/x/", body: `{}`}, status: http.StatusNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := b.do(t, tt.r)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			if tt.contentType != "" {
				require.True(t, strings.HasPrefix(resp.header.Get("Content-Type"), tt.contentType), resp.header.Get("Content-Type"))
			}
			if tt.location != "" {
				require.Equal(t, tt.location, resp.header.Get("Location"))
			}
			if tt.text != nil {
				_, _, text := resp.outcome(t)
				require.Equal(t, tt.text, text)
			}
		})
	}
}

func TestServer_InjectedFaults(t *testing.T) {
	t.Parallel()

	tests := []struct {
		status      int
		contentType string
		contains    string
	}{
		{http.StatusUnauthorized, "application/json", "INCORRECT_CREDENTIALS"},
		{http.StatusForbidden, "application/json", "You do not have permission"},
		{http.StatusTooManyRequests, "application/json", "Rate limit exceeded"},
		{http.StatusInternalServerError, "application/json", "OperationOutcome"},
		{http.StatusNotFound, "text/html", "Page not found"},
		{http.StatusBadGateway, "text/html", "nginx"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, openimistest.Options{})
			b.srv.FailNextPath(openimistest.FHIRPath+"Patient/"+openimistest.SeedPatientID+"/", 1, tt.status)
			require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status, "another path")
			resp := b.do(t, req{path: "Patient/" + openimistest.SeedPatientID + "/"})
			require.Equal(t, tt.status, resp.status)
			require.True(t, strings.HasPrefix(resp.header.Get("Content-Type"), tt.contentType))
			require.Contains(t, string(resp.body), tt.contains)
			require.Empty(t, resp.header.Get("Retry-After"))
			require.Equal(t, http.StatusOK, b.do(t, req{path: "Patient/" + openimistest.SeedPatientID + "/"}).status, "used up")
		})
	}

	t.Run("SetDownProcessesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{ClaimSubscriptions: true})
		b.srv.SetDown(http.StatusServiceUnavailable)
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: claimSubscription("http://127.0.0.1:9/cb")})
		require.Equal(t, http.StatusServiceUnavailable, resp.status)
		require.Empty(t, b.srv.Subscriptions())
		b.srv.SetDown(0)
		require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/"}).status)
	})

	t.Run("DropNextLosesTheAnswerNotTheEffect", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.DropNextPath(openimistest.FHIRPath+"Communication/", 1)
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.FHIRURL()+"Communication/",
			strings.NewReader(feedbackFor(t, openimistest.SeedClaimID)))
		require.NoError(t, err)
		hr.Header.Set("Content-Type", "application/json")
		hr.SetBasicAuth("admin", "admin")
		resp, err := b.client.Do(hr)
		if err == nil {
			_ = resp.Body.Close()
		}
		require.Error(t, err, "no answer")
		require.Len(t, b.srv.Communications(), 1, "the feedback was stored")
		again := b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)})
		again.requireOutcome(t, http.StatusInternalServerError, "error", "Feedback exists for this claim")
	})
}

func TestServer_Requests(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	b.srv.FailNext(1, http.StatusInternalServerError)
	b.do(t, req{method: http.MethodPost, path: "Communication/", body: `{"a":1}`})
	b.do(t, req{path: "ClaimResponse/?_count=2&page-offset=1"})

	got := b.srv.Requests()
	require.Len(t, got, 2, "requests answered by a fault are recorded too")
	require.Equal(t, http.MethodPost, got[0].Method)
	require.Equal(t, "/api/api_fhir_r4/Communication/", got[0].Path)
	require.JSONEq(t, `{"a":1}`, string(got[0].Body))
	require.Equal(t, "_count=2&page-offset=1", got[1].RawQuery)
	require.Equal(t, b.clock.Now(), got[1].Time, "on the server's clock")
}
