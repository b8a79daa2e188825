package openimistest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// receiver is a subscriber endpoint that records notifications.
type receiver struct {
	URL string

	mu          sync.Mutex
	body        string
	contentType string
	got         []received
	status      int
}

// received is one recorded notification.
type received struct {
	body   []byte
	header http.Header
	method string
}

// newReceiver starts a subscriber answering status with the content type and
// body.
func newReceiver(t *testing.T, status int, contentType, body string) *receiver {
	t.Helper()
	rc := &receiver{body: body, contentType: contentType, status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{body: data, header: r.Header.Clone(), method: r.Method})
		rc.mu.Unlock()
		if rc.contentType != "" {
			w.Header().Set("Content-Type", rc.contentType)
		} else {
			w.Header()["Content-Type"] = nil
		}
		w.WriteHeader(rc.status)
		_, _ = io.WriteString(w, rc.body)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/mediator/claim-response"
	return rc
}

// received returns the recorded notifications.
func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// subscribe creates a subscription from the Claim template changed by f.
func (b *testBundle) subscribe(t *testing.T, endpoint string, f func(m map[string]any)) string {
	t.Helper()
	body := claimSubscription(endpoint)
	if f != nil {
		body = mutate(t, body, f)
	}
	resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: body})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	return resp.object(t)["id"].(string)
}

// setHeader replaces channel.header.
func setHeader(header any) func(m map[string]any) {
	return func(m map[string]any) {
		ch := m["channel"].(map[string]any)
		if header == nil {
			delete(ch, "header")
			return
		}
		ch["header"] = []any{header}
	}
}

func TestEmitClaim_Headers(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{ClaimSubscriptions: true})
	rc := newReceiver(t, http.StatusOK, "application/json", `{"status":"accepted"}`)
	id := b.subscribe(t, rc.URL, setHeader(`{"Authorization":"Basic bWVkOnB3","X-Extra":"1","Content-Type":"application/fhir+json"}`))

	claimID := uuid.NewString()
	claim := openimistest.ClaimResponseFixture(claimID, "CLM-1", openimistest.SeedPatientID)
	deliveries := b.srv.EmitClaim(t.Context(), claim)
	require.Len(t, deliveries, 1)
	d := deliveries[0]
	require.NoError(t, d.Err)
	require.True(t, d.Success)
	require.Equal(t, id, d.SubscriptionID)
	require.JSONEq(t, `{"status":"accepted"}`, string(d.ResponseBody))

	got := rc.received()
	require.Len(t, got, 1)
	require.Equal(t, "Basic bWVkOnB3", got[0].header.Get("Authorization"))
	require.Equal(t, []string{"application/json"}, got[0].header.Values("Accept"))
	// A "Content-Type" key in the header JSON adds a second line.
	require.ElementsMatch(t, []string{"application/json", "application/fhir+json"}, got[0].header.Values("Content-Type"))
	require.JSONEq(t, string(claim), string(got[0].body), "the bare ClaimResponse, not a Bundle")

	require.Equal(t, http.StatusOK, b.do(t, req{path: "ClaimResponse/" + claimID + "/"}).status, "the claim is stored")
}

func TestEmitClaim_SuccessRule(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		success     bool
	}{
		{name: "JSON200", status: http.StatusOK, contentType: "application/json", body: `{}`, success: true},
		{name: "JSONCharset", status: http.StatusOK, contentType: "application/json; charset=utf-8", body: `{"a":1}`, success: true},
		{name: "FHIRJSON", status: http.StatusOK, contentType: "application/fhir+json", body: `{}`, success: true},
		{name: "EmptyJSONBody", status: http.StatusOK, contentType: "application/json", body: "", success: true},
		{name: "Accepted202", status: http.StatusAccepted, contentType: "application/json", body: `{}`, success: true},
		{name: "NoContent204", status: http.StatusNoContent, contentType: "", body: "", success: false},
		{name: "PlainText", status: http.StatusOK, contentType: "text/plain; charset=utf-8", body: "OK", success: false},
		{name: "NoContentType", status: http.StatusOK, contentType: "", body: "", success: false},
		{name: "InvalidJSON", status: http.StatusOK, contentType: "application/json", body: "OK", success: false},
		{name: "ServerErrorJSON", status: http.StatusInternalServerError, contentType: "application/json", body: `{}`, success: false},
		{name: "BadRequestJSON", status: http.StatusBadRequest, contentType: "application/json", body: `{"e":1}`, success: false},
		{name: "UnauthorizedHTML", status: http.StatusUnauthorized, contentType: "text/html", body: "<h1>no</h1>", success: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openimistest.Options{ClaimSubscriptions: true})
			rc := newReceiver(t, tt.status, tt.contentType, tt.body)
			b.subscribe(t, rc.URL, nil)
			d := b.srv.EmitClaim(t.Context(), openimistest.ClaimResponseFixture(uuid.NewString(), "C", openimistest.SeedPatientID))
			require.Len(t, d, 1)
			require.True(t, d[0].Sent)
			require.Equal(t, tt.status, d[0].Status)
			require.Equal(t, tt.success, d[0].Success, d[0].Err)
			require.Equal(t, tt.success, d[0].Err == nil)
			require.Len(t, rc.received(), 1, "no retries")
		})
	}
}

func TestEmitClaim_NotSent(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		endpoint string
		mutate   func(m map[string]any)
	}{
		{name: "QueryStringHeader", mutate: setHeader("TestKey1=TestValue1&TestKey2=TestValue2")},
		{name: "NoHeader", mutate: setHeader(nil)},
		{name: "ArrayHeader", mutate: setHeader(`["Authorization","x"]`)},
		{name: "NumberValue", mutate: setHeader(`{"X-Count":1}`)},
		{name: "HostWithoutTLD", endpoint: "http://mediator:6000/mediator/claim-response"},
		{name: "RelativeEndpoint", endpoint: "/mediator/claim-response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openimistest.Options{ClaimSubscriptions: true})
			rc := newReceiver(t, http.StatusOK, "application/json", `{}`)
			endpoint := rc.URL
			if tt.endpoint != "" {
				endpoint = tt.endpoint
			}
			b.subscribe(t, endpoint, tt.mutate)
			d := b.srv.EmitClaim(t.Context(), openimistest.ClaimResponseFixture(uuid.NewString(), "C", openimistest.SeedPatientID))
			require.Len(t, d, 1)
			require.False(t, d[0].Success)
			require.False(t, d[0].Sent)
			require.Error(t, d[0].Err)
			require.Empty(t, rc.received())
		})
	}
}

func TestEmitClaim_Matching(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{ClaimSubscriptions: true})
	rc := newReceiver(t, http.StatusOK, "application/json", `{}`)
	want := b.subscribe(t, rc.URL, nil)
	b.subscribe(t, rc.URL, func(m map[string]any) { m["status"] = "off" })
	b.subscribe(t, rc.URL, func(m map[string]any) { m["end"] = "2025-06-30T09:59:59Z" }) // expired
	b.subscribe(t, rc.URL, func(m map[string]any) { m["criteria"] = "claim"; m["reason"] = "claim" })
	b.subscribe(t, rc.URL, func(m map[string]any) { m["criteria"] = "Patient"; m["reason"] = "Patient" })
	deleted := b.subscribe(t, rc.URL, nil)
	require.True(t, b.srv.DeleteSubscriptionAsAdmin(deleted))

	d := b.srv.EmitClaim(t.Context(), openimistest.ClaimResponseFixture(uuid.NewString(), "C", openimistest.SeedPatientID))
	require.Len(t, d, 1)
	require.Equal(t, want, d[0].SubscriptionID)
	require.True(t, d[0].Success)
	require.Len(t, rc.received(), 1)
}

func TestEmitClaim_CriteriaFiltersAbortAll(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{ClaimSubscriptions: true})
	rc := newReceiver(t, http.StatusOK, "application/json", `{}`)
	b.subscribe(t, rc.URL, nil)
	b.subscribe(t, rc.URL, func(m map[string]any) { m["criteria"] = "Claim?status=2" })
	d := b.srv.EmitClaim(t.Context(), openimistest.ClaimResponseFixture(uuid.NewString(), "C", openimistest.SeedPatientID))
	require.Len(t, d, 2)
	for _, one := range d {
		require.False(t, one.Sent)
		require.ErrorContains(t, one.Err, "abort")
	}
	require.Empty(t, rc.received())
}

func TestValidDjangoURL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:6000/mediator/claim-response", true},
		{"https://mediator.example.org/mediator/claim-response", true},
		{"http://localhost:6000/x", true},
		{"http://user:pw@openhim.example.org:5001/claim", true},
		{"http://[::1]:6000/x", true},
		{"HTTP://EXAMPLE.ORG", true},
		{"http://example.org./x", true},
		{"http://xn--80ak6aa92e.xn--p1ai/", true},
		{"http://mediator:6000/mediator/claim-response", false},
		{"http://mediator/x", false},
		{"http://example.123/x", false},
		{"http://-bad.example.org/", false},
		{"http://010.0.0.1/", false},
		{"http://1.2.3/", false},
		{"http://example.org:123456/", false},
		{"http://example.org/a b", false},
		{"ws://example.org/", false},
		{"/mediator/claim-response", false},
		{"example.org/x", false},
		{"http://[::1/x", false},
		{"http://my_host.example.org/x", false},
		{"http://mediator_1:6000/x", false},
		{"http://a.b-c.example.org/x", true},
		{"http://example.o/x", false},
		{"http://example.or-g/x", false},
		{"http://0.0.0.0:6000/x", true},
		{"http://256.1.1.1/x", false},
		{"http://[fe80::1%25eth0]/x", false},
		{"https://him.example.org:5000/mediator/claim-response", true},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, openimistest.ValidDjangoURL(tt.url), tt.url)
		// The mediator's own check, which warns and fails "mediator check",
		// follows the same rules.
		require.Equal(t, tt.want, openimis.CheckCallbackEndpoint(tt.url) == nil, "openimis.CheckCallbackEndpoint(%q): %v", tt.url, openimis.CheckCallbackEndpoint(tt.url))
	}
	require.False(t, openimistest.ValidDjangoURL("http://"+strings.Repeat("a", 2050)+".org/"))
}
