package fhirtest_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

// ids returns the ids of a searchset's entries and its next link.
func ids(t *testing.T, b []byte) ([]string, string) {
	t.Helper()
	bundle := decode(t, b)
	require.Equal(t, "searchset", bundle["type"], string(b))
	var out []string
	for _, e := range bundle["entry"].([]any) {
		out = append(out, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
	}
	next := ""
	for _, l := range bundle["link"].([]any) {
		if l.(map[string]any)["relation"] == "next" {
			next = l.(map[string]any)["url"].(string)
		}
	}
	return out, next
}

// seed creates n claims c0..c(n-1), one second apart on the fake's clock.
func seed(s *fhirtest.Server, n int) []time.Time {
	var times []time.Time
	for i := range n {
		times = append(times, s.CreateClaimResponse(claimJSON("c"+strconv.Itoa(i), "complete")).LastUpdated)
		s.Clock.Advance(time.Second)
	}
	return times
}

func TestSearch_Filters(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
	times := seed(s, 3)
	s.CreateClaimResponse(claimJSON("q", "queued"))
	get := func(query string) []string {
		t.Helper()
		resp, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse?"+query, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		got, _ := ids(t, b)
		return got
	}
	at := func(i int) string { return url.QueryEscape(times[i].Format(time.RFC3339Nano)) }
	require.Equal(t, []string{"c1", "c2", "q"}, get("_lastUpdated=ge"+at(1)))
	require.Equal(t, []string{"c2", "q"}, get("_lastUpdated=gt"+at(1)))
	require.Equal(t, []string{"c0"}, get("_lastUpdated=lt"+at(1)))
	require.Equal(t, []string{"c1"}, get("_lastUpdated=ge"+at(1)+"&_lastUpdated=lt"+at(2)))
	require.Equal(t, []string{"q", "c2", "c1", "c0"}, get("_sort=-_lastUpdated"))
	require.Equal(t, []string{"q"}, get("outcome=queued"))
	require.Equal(t, []string{"c0", "c1", "c2", "q"}, get("patient=Patient/p1"))
	require.Equal(t, []string{"c2"}, get("identifier=CLM-c2"))
	require.Equal(t, []string{"c0", "c2"}, get("_id=c0,c2"))
	require.Empty(t, get("_id=C0"), "HAPI ids are case-sensitive")
	tomorrow := times[0].AddDate(0, 0, 1).Format("2006-01-02")
	require.Empty(t, get("_lastUpdated=ge"+tomorrow))
	require.Len(t, get("_lastUpdated=lt"+tomorrow), 4)

	for query, text := range map[string]string{
		"colour=red":                "Unknown search parameter",
		"_count=0":                  "_count",
		"_count=ten":                "_count",
		"_lastUpdated=gx2025-01-01": "_lastUpdated",
		"_lastUpdated=ge01/02/2025": "_lastUpdated",
		"_sort=status":              "_sort",
		"_offset=10":                "Unknown search parameter", // Kodjin's, not HAPI's
	} {
		resp, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse?"+query, "")
		requireOutcome(t, resp, b, http.StatusBadRequest, text)
	}
}

func TestSearch_Subscription(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
	body := strings.Replace(subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/a", ""), "{",
		`{"meta":{"tag":[{"system":"https://example.org/source","code":"s1"}]},`, 1)
	tagged := subscribe(t, s, "/fhir/Subscription", body)
	subscribe(t, s, "/fhir/Subscription", subscriptionJSON("requested", "ClaimResponse?", "http://cb.example/b", ""))
	for query, want := range map[string][]string{
		"_tag=" + url.QueryEscape("https://example.org/source|s1"): {tagged},
		"url=" + url.QueryEscape("http://cb.example/a"):            {tagged},
		"status=active": {tagged, "2"},
	} {
		_, b := call(t, s, http.MethodGet, "/fhir/Subscription?"+query, "")
		got, _ := ids(t, b)
		require.Equal(t, want, got, query)
	}
}

func TestSearch_PagingHAPI(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI})
	seed(s, 5)
	resp, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse?_count=2", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var all []string
	page, next := ids(t, b)
	all = append(all, page...)
	for next != "" {
		require.True(t, strings.HasPrefix(next, s.BaseURL+"?_getpages="), next)
		resp, b = call(t, s, http.MethodGet, strings.TrimPrefix(next, s.URL), "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		page, next = ids(t, b)
		all = append(all, page...)
	}
	require.Equal(t, []string{"c0", "c1", "c2", "c3", "c4"}, all)
	resp, b = call(t, s, http.MethodGet, "/fhir?_getpages=unknown&_getpagesoffset=2&_count=2", "")
	requireOutcome(t, resp, b, http.StatusGone, "may have expired")
}

func TestSearch_PagingKodjin(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	seed(s, 3)
	_, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse?_count=2&outcome=complete", "")
	page, next := ids(t, b)
	require.Equal(t, []string{"c0", "c1"}, page)
	u, err := url.Parse(next)
	require.NoError(t, err)
	require.Equal(t, "/fhir/ClaimResponse", u.Path)
	require.Equal(t, url.Values{"_count": {"2"}, "outcome": {"complete"}, "_offset": {"2"}}, u.Query())
	_, b = call(t, s, http.MethodGet, u.RequestURI(), "")
	page, next = ids(t, b)
	require.Equal(t, []string{"c2"}, page)
	require.Empty(t, next)
}

func TestSearch_PagingHeyDonto(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T, opts fhirtest.Options) (*fhirtest.Server, string, []time.Time) {
		t.Helper()
		opts.Vendor = fhirtest.HeyDonto
		opts.BasePath = "/site/7/fhir"
		s := fhirtest.NewServer(t, opts)
		return s, login(t, s), seed(s, 5)
	}

	t.Run("NextLinkAsDocumented", func(t *testing.T) {
		t.Parallel()
		s, auth, times := setup(t, fhirtest.Options{})
		query := "_count=2&_lastUpdated=ge" + url.QueryEscape(times[1].Format(time.RFC3339Nano))
		_, b := call(t, s, http.MethodGet, "/site/7/fhir/claim-response?"+query, "", "Authorization", auth)
		page, next := ids(t, b)
		require.Equal(t, []string{"c1", "c2"}, page)
		u, err := url.Parse(next)
		require.NoError(t, err)
		require.Equal(t, "/fhir/claim-response/", u.Path, "the documented next link drops /site/<id>")
		require.ElementsMatch(t, []string{"_count", "_page_token"}, keys(u.Query()))

		// Followed as given, the link is not under the base.
		resp, _ := call(t, s, http.MethodGet, u.RequestURI(), "", "Authorization", auth)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		// Re-rooted but without the original query, the token is refused.
		resp, b = call(t, s, http.MethodGet, "/site/7/fhir/claim-response/?"+u.RawQuery, "", "Authorization", auth)
		requireOutcome(t, resp, b, http.StatusBadRequest, "another query")
		// The token copied onto the original query pages on.
		token := u.Query().Get("_page_token")
		var all []string
		for token != "" {
			resp, b = call(t, s, http.MethodGet, "/site/7/fhir/claim-response?"+query+"&_page_token="+url.QueryEscape(token), "", "Authorization", auth)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
			page, next = ids(t, b)
			all = append(all, page...)
			token = ""
			if next != "" {
				u, err = url.Parse(next)
				require.NoError(t, err)
				token = u.Query().Get("_page_token")
			}
		}
		require.Equal(t, []string{"c3", "c4"}, all)
	})

	t.Run("FixedNextLinks", func(t *testing.T) {
		t.Parallel()
		s, auth, _ := setup(t, fhirtest.Options{FixedNextLinks: true})
		_, b := call(t, s, http.MethodGet, "/site/7/fhir/claim-response?_count=3&outcome=complete", "", "Authorization", auth)
		_, next := ids(t, b)
		require.True(t, strings.HasPrefix(next, s.BaseURL+"/claim-response?"), next)
		resp, b := call(t, s, http.MethodGet, strings.TrimPrefix(next, s.URL), "", "Authorization", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		page, _ := ids(t, b)
		require.Equal(t, []string{"c3", "c4"}, page)
	})

	t.Run("ExpiredToken", func(t *testing.T) {
		t.Parallel()
		s, auth, _ := setup(t, fhirtest.Options{FixedNextLinks: true})
		_, b := call(t, s, http.MethodGet, "/site/7/fhir/claim-response?_count=2", "", "Authorization", auth)
		_, next := ids(t, b)
		s.ExpirePageTokens()
		resp, b := call(t, s, http.MethodGet, strings.TrimPrefix(next, s.URL), "", "Authorization", auth)
		requireOutcome(t, resp, b, http.StatusBadRequest, "expired")
	})

	t.Run("CountCapped", func(t *testing.T) {
		t.Parallel()
		s, auth, _ := setup(t, fhirtest.Options{})
		for i := range 101 {
			s.CreateClaimResponse(claimJSON("x"+strconv.Itoa(i), "complete"))
		}
		_, b := call(t, s, http.MethodGet, "/site/7/fhir/claim-response?_count=500", "", "Authorization", auth)
		page, next := ids(t, b)
		require.Len(t, page, 100)
		require.NotEmpty(t, next)
	})
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

// SearchOverlaps counts the search pages that began while another of their
// type was being answered: none for pages read one after the other (HAPI's
// _getpages included), one for a search sent during another, none for a
// search of another type. Each page lasts a second, so that the last
// search surely begins while the first is answered on a loaded machine.
func TestSearch_Overlaps(t *testing.T) {
	t.Parallel()
	s := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, SearchLatency: time.Second})
	seed(s, 3)
	_, b := call(t, s, http.MethodGet, "/fhir/ClaimResponse?_count=2", "")
	_, next := ids(t, b)
	require.NotEmpty(t, next)
	resp, b := call(t, s, http.MethodGet, strings.TrimPrefix(next, s.URL), "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.Zero(t, s.SearchOverlaps("ClaimResponse"), "one page after the other")

	var wg sync.WaitGroup
	defer wg.Wait()
	for i, path := range []string{"/fhir/ClaimResponse", "/fhir/Subscription"} {
		wg.Go(func() { // no require off the test's goroutine: the page's answer is not the point
			if resp, err := http.Get(s.URL + path); err == nil {
				resp.Body.Close()
			}
		})
		require.Eventually(t, func() bool { return len(s.Requests()) == 3+i }, 5*time.Second, time.Millisecond)
	}
	call(t, s, http.MethodGet, "/fhir/ClaimResponse", "")
	require.Equal(t, 1, s.SearchOverlaps("ClaimResponse"), "a search during another")
	require.Zero(t, s.SearchOverlaps("Subscription"), "a search of another type")
}
