package fhir_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

func TestClient_Search(t *testing.T) {
	t.Parallel()
	t.Run("HeyDontoPageTokenLinksWithoutSite", func(t *testing.T) {
		t.Parallel()
		// HeyDonto's documented next link drops /site/<id> and adds a slash
		// (S003:247, docs/upstreams/fhir-subscriptions.md §6.3, trap 21):
		// the token goes onto the original query under the base.
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != basePath+"/claim-response" || r.URL.Query().Get("_lastUpdated") != "ge2025-06-30T10:00:00Z" {
				writeJSON(w, 404, `{}`)
				return
			}
			switch r.URL.Query().Get("_page_token") {
			case "":
				writeJSON(w, 200, `{"resourceType":"Bundle","type":"searchset","link":[
				  {"relation":"next","url":"https://api.heydonto.com/fhir/claim-response/?_count=2&_page_token=T2"}],
				  "entry":[{"resource":{"resourceType":"ClaimResponse","id":"a"}},{"resource":{"resourceType":"ClaimResponse","id":"b"}},
				   {"resource":{"resourceType":"Patient","id":"p"},"search":{"mode":"include"}}]}`)
			case "T2":
				writeJSON(w, 200, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"ClaimResponse","id":"c"}}]}`)
			default:
				writeJSON(w, 400, `{}`)
			}
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Vendor: fhir.VendorHeyDonto})
		since := time.Date(2025, 6, 30, 15, 45, 0, 0, time.FixedZone("NPT", 5*3600+45*60))
		page, err := c.Search(context.Background(), "ClaimResponse", url.Values{"_lastUpdated": {fhir.LastUpdatedSince(since)}, "_count": {"2"}})
		require.NoError(t, err)
		require.Len(t, page.Resources, 2, "include entries are no matches")
		next, err := url.Parse(page.Next)
		require.NoError(t, err)
		require.Equal(t, basePath+"/claim-response", next.Path)
		require.Equal(t, "T2", next.Query().Get("_page_token"))
		page, err = c.NextPage(context.Background(), page.Next)
		require.NoError(t, err)
		require.Len(t, page.Resources, 1)
		require.Empty(t, page.Next)
	})
	t.Run("InternalHostRerooted", func(t *testing.T) {
		t.Parallel()
		// openIMIS names its internal host in next links (§7).
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("page-offset") == "2" {
				writeJSON(w, 200, `{"resourceType":"Bundle","entry":[]}`)
				return
			}
			writeJSON(w, 200, fmt.Sprintf(`{"resourceType":"Bundle","link":[{"relation":"next","url":"http://backend:8000%s/ClaimResponse/?page-offset=2&_count=1"}]}`, basePath))
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		page, err := c.Search(context.Background(), "ClaimResponse", nil)
		require.NoError(t, err)
		require.Equal(t, srv.base()+"/ClaimResponse?page-offset=2&_count=1", page.Next)
		_, err = c.NextPage(context.Background(), page.Next)
		require.NoError(t, err)
	})
	t.Run("HAPIGetPagesAtBase", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, `{"resourceType":"Bundle","link":[{"relation":"next","url":"http://hapi.internal:8080/fhir?_getpages=abc&_getpagesoffset=20"}]}`)
		})
		c := newClient(t, fhir.Options{BaseURL: srv.base()})
		page, err := c.Search(context.Background(), "ClaimResponse", nil)
		require.NoError(t, err)
		require.Equal(t, srv.base()+"?_getpages=abc&_getpagesoffset=20", page.Next)
	})
	t.Run("NextPageOutsideBaseRefused", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, fhir.Options{BaseURL: "http://127.0.0.1:1/fhir", Auth: fhir.Bearer{Token: "t"}})
		_, err := c.NextPage(context.Background(), "http://evil.example.org/fhir/ClaimResponse?page=2")
		require.ErrorContains(t, err, "not under the base")
		require.ErrorIs(t, err, fhir.ErrOutsideBase)
	})
}
