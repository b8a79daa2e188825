package openimistest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// claimSubscription is the Subscription the mediator is expected to post.
func claimSubscription(endpoint string) string {
	return `{"resourceType":"Subscription","status":"active","end":"2030-12-31T23:59:59Z","reason":"Claim",` +
		`"criteria":"Claim","channel":{"type":"rest-hook","endpoint":"` + endpoint + `",` +
		`"header":["{\"Authorization\":\"Bearer s3cret\"}"]}}`
}

func TestSubscription_Create(t *testing.T) {
	t.Parallel()

	t.Run("ClaimAcceptedWhenEnabled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{ClaimSubscriptions: true})
		body := strings.Replace(claimSubscription("http://127.0.0.1:9/cb"), `"reason":"Claim"`, `"reason":"CLAIM"`, 1)
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: body})
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		require.Empty(t, resp.header.Get("Location"))
		m := resp.object(t)
		id, ok := m["id"].(string)
		require.True(t, ok)
		require.NoError(t, uuid.Validate(id))
		require.JSONEq(t, `{"resourceType":"Subscription","id":"`+id+`","status":"active","end":"2030-12-31T23:59:59+00:00",`+
			`"reason":"Claim","criteria":"Claim","channel":{"type":"rest-hook","endpoint":"http://127.0.0.1:9/cb",`+
			`"header":["{\"Authorization\":\"Bearer s3cret\"}"]}}`, string(resp.body))

		subs := b.srv.Subscriptions()
		require.Len(t, subs, 1)
		require.Equal(t, id, subs[0].ID)
		require.Equal(t, "admin", subs[0].Owner)
		require.Equal(t, "Claim", subs[0].CriteriaResource)
		require.Equal(t, `{"Authorization":"Bearer s3cret"}`, subs[0].Header)
		require.Equal(t, time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC), subs[0].End)
		require.JSONEq(t, body, string(subs[0].Body))
		require.JSONEq(t, string(resp.body), string(subs[0].JSON))
	})

	t.Run("ClaimRefusedIn2410", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: claimSubscription("http://127.0.0.1:9/cb")})
		resp.requireOutcome(t, http.StatusBadRequest, "fatal",
			[]any{"Error while saving a subscription: Invalid resource (claim)"})
		require.Empty(t, b.srv.Subscriptions())
	})

	t.Run("ClaimNeedsClaimRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{ClaimSubscriptions: true, Rights: []int{openimistest.RightSubscriptionCreate}})
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: claimSubscription("http://127.0.0.1:9/cb")})
		resp.requireOutcome(t, http.StatusForbidden, "fatal",
			"Error while saving a subscription: You have no permissions to subscribe to claim")
	})

	t.Run("PatientNeedsInsureeRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{Rights: []int{openimistest.RightSubscriptionCreate}})
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: fixture(t, "test_subscription.json")})
		resp.requireOutcome(t, http.StatusForbidden, "fatal",
			"Error while saving a subscription: You have no permissions to subscribe to patient")
	})

	t.Run("EndInTheServersOffsetWithMicroseconds", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{ClaimSubscriptions: true, Location: time.FixedZone("+0545", 5*3600+45*60)})
		body := strings.Replace(claimSubscription("http://127.0.0.1:9/cb"), `"end":"2030-12-31T23:59:59Z"`, `"end":"2027-12-06T04:30:30.123456Z"`, 1)
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: body})
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		require.Equal(t, "2027-12-06T10:15:30.123456+05:45", resp.object(t)["end"], "expiring.astimezone().isoformat()")
	})

	t.Run("UpstreamFixture", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: fixture(t, "test_subscription.json")})
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		m := resp.object(t)
		require.Equal(t, "Patient?chfid__startswith=0", m["criteria"])
		require.Equal(t, "Patient", m["reason"])
		require.Equal(t, "2020-01-01T00:00:00+00:00", m["end"], "a past end is accepted, rendered by isoformat()")
	})
}

func TestSubscription_Validation(t *testing.T) {
	t.Parallel()

	valid := claimSubscription("http://127.0.0.1:9/cb")
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		text   string // exact, or prefix when it ends with "..."
	}{
		{name: "StatusRequested", mutate: func(m map[string]any) { m["status"] = "requested" },
			text: "Missing or invalid `status` attribute"},
		{name: "StatusMissing", mutate: func(m map[string]any) { delete(m, "status") },
			text: "1 validation error for Subscription\nstatus\n  field required"},
		{name: "EndMissing", mutate: func(m map[string]any) { delete(m, "end") },
			text: "Missing or invalid `end` attribute"},
		{name: "EndWithoutTimezone", mutate: func(m map[string]any) { m["end"] = "2030-12-31T23:59:59" },
			text: "1 validation error for Subscription\nend..."},
		{name: "EndWithoutSeconds", mutate: func(m map[string]any) { m["end"] = "2030-12-31T23:59Z" },
			text: "1 validation error for Subscription\nend..."},
		{name: "EndDateOnly", mutate: func(m map[string]any) { m["end"] = "2030-12-31" },
			text: "1 validation error for Subscription\nend..."},
		{name: "ReasonSentence", mutate: func(m map[string]any) { m["reason"] = "Notify on new Claims" },
			text: "Missing or invalid `reason` attribute"},
		{name: "ErrorElement", mutate: func(m map[string]any) { m["error"] = "boom" },
			text: "`error` attribute forbidden"},
		{name: "ChannelWebsocket", mutate: func(m map[string]any) { m["channel"].(map[string]any)["type"] = "websocket" },
			text: "Missing or invalid `channel.type` attribute"},
		{name: "EndpointMissing", mutate: func(m map[string]any) { delete(m["channel"].(map[string]any), "endpoint") },
			text: "Missing or invalid `channel.endpoint` attribute"},
		{name: "UnknownElement", mutate: func(m map[string]any) { m["owner"] = "me" },
			text: "1 validation error for Subscription\nowner\n  extra fields not permitted"},
		{name: "WrongResourceType", mutate: func(m map[string]any) { m["resourceType"] = "Claim" },
			text: "1 validation error for Subscription\nresourceType..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest} {
				b := setup(t, openimistest.Options{ClaimSubscriptions: true, ValidationStatus: status})
				resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: mutate(t, valid, tt.mutate)})
				require.Equal(t, status, resp.status, string(resp.body))
				sev, code, text := resp.outcome(t)
				require.Equal(t, "error", sev)
				require.Equal(t, "exception", code)
				if prefix, ok := strings.CutSuffix(tt.text, "..."); ok {
					require.True(t, strings.HasPrefix(text.(string), prefix), text)
				} else {
					require.Equal(t, tt.text, text)
				}
				require.Empty(t, b.srv.Subscriptions())
			}
		})
	}

	t.Run("OrganizationSpellingRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		body := mutate(t, valid, func(m map[string]any) { m["criteria"] = "Organization"; m["reason"] = "Organization" })
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: body})
		resp.requireOutcome(t, http.StatusBadRequest, "fatal",
			[]any{"Error while saving a subscription: Invalid resource (organization)"})
		body = mutate(t, valid, func(m map[string]any) { m["criteria"] = "Organisation"; m["reason"] = "organisation" })
		require.Equal(t, http.StatusCreated, b.do(t, req{method: http.MethodPost, path: "Subscription/", body: body}).status)
	})
}

func TestSubscription_ListAndGet(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{ClaimSubscriptions: true, CountCacheTTL: -1})
	b.srv.AddUser("other", "pw", nil)
	var ids []string
	for i := range 3 {
		auth := ""
		if i == 1 {
			auth = basic("other", "pw")
		}
		resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", auth: auth,
			body: claimSubscription("http://127.0.0.1:9/cb" + string(rune('a'+i)))})
		require.Equal(t, http.StatusCreated, resp.status)
		ids = append(ids, resp.object(t)["id"].(string))
		b.clock.Add(time.Minute)
	}

	t.Run("ListAllUsers", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Subscription/?_count=2"})
		require.Equal(t, http.StatusOK, resp.status)
		bundle := decodeBundle(t, resp)
		require.Equal(t, 3, bundle.Total)
		require.Equal(t, []string{ids[0], ids[1]}, bundle.ids())
		require.Equal(t, b.srv.FHIRURL()+"Subscription/"+ids[0], bundle.Entry[0].FullURL)
		next := bundle.link(t, "next")
		require.Equal(t, b.srv.FHIRURL()+"Subscription/?_count=2&page-offset=2", next)
	})

	t.Run("LastUpdatedFiltersDateUpdated", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Subscription/?_lastUpdated=ge2025-06-30T10:01:00"})
		require.Equal(t, []string{ids[1], ids[2]}, decodeBundle(t, resp).ids())
	})

	t.Run("GetByID", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Subscription/" + strings.ToUpper(ids[1]) + "/"})
		require.Equal(t, http.StatusOK, resp.status)
		require.Equal(t, ids[1], resp.object(t)["id"])
	})

	t.Run("GetUnknownIs404", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
			resp := b.do(t, req{path: "Subscription/" + id + "/"})
			require.Equal(t, http.StatusNotFound, resp.status)
			sev, code, text := resp.outcome(t)
			require.Equal(t, "error", sev)
			require.Equal(t, "not-found", code)
			require.Equal(t, "No Subscription matches the given query.", text)
		}
	})
}

func TestSubscription_Delete(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{ClaimSubscriptions: true})
	b.srv.AddUser("other", "pw", nil)
	resp := b.do(t, req{method: http.MethodPost, path: "Subscription/", body: claimSubscription("http://127.0.0.1:9/cb")})
	id := resp.object(t)["id"].(string)

	resp = b.do(t, req{method: http.MethodDelete, path: "Subscription/" + id + "/", auth: basic("other", "pw")})
	resp.requireOutcome(t, http.StatusForbidden, "fatal",
		"Error while deleting a subscription: You are not the owner of this subscription")
	require.Len(t, b.srv.Subscriptions(), 1)

	resp = b.do(t, req{method: http.MethodDelete, path: "Subscription/" + id + "/"})
	require.Equal(t, http.StatusNoContent, resp.status)
	require.Empty(t, resp.body)
	require.Empty(t, b.srv.Subscriptions())

	require.Equal(t, http.StatusNotFound, b.do(t, req{path: "Subscription/" + id + "/"}).status)
	require.Equal(t, http.StatusNotFound, b.do(t, req{method: http.MethodDelete, path: "Subscription/" + id + "/"}).status)

	resp = b.do(t, req{method: http.MethodPost, path: "Subscription/", body: claimSubscription("http://127.0.0.1:9/cb")})
	id = resp.object(t)["id"].(string)
	require.True(t, b.srv.DeleteSubscriptionAsAdmin(id), "an administrator deletes whatever the owner")
	require.False(t, b.srv.DeleteSubscriptionAsAdmin(id))
	require.Empty(t, b.srv.Subscriptions())
}

// searchset is a decoded Bundle.
type searchset struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        int    `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
	} `json:"entry"`
}

// decodeBundle decodes a 200 searchset Bundle.
func decodeBundle(t *testing.T, resp *response) *searchset {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	var s searchset
	require.NoError(t, json.Unmarshal(resp.body, &s))
	require.Equal(t, "Bundle", s.ResourceType)
	require.Equal(t, "searchset", s.Type)
	return &s
}

// ids lists the entries' resource ids.
func (s *searchset) ids() []string {
	out := []string{}
	for _, e := range s.Entry {
		out = append(out, e.Resource["id"].(string))
	}
	return out
}

// link returns the decoded URL of the link with the relation, "" if absent.
func (s *searchset) link(t *testing.T, relation string) string {
	t.Helper()
	for _, l := range s.Link {
		if l.Relation == relation {
			u, err := url.QueryUnescape(l.URL)
			require.NoError(t, err)
			return u
		}
	}
	return ""
}
