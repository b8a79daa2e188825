package mediator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// errCrashed is what a store answers once its process has "died".
var errCrashed = errors.New("the process stopped here")

// crash is shared by the crashingStore of every start: it fires once, at
// the first non-empty write of setting, and then the process writes
// nothing more until revived.
type crash struct {
	setting string
	armed   atomic.Bool
	dead    atomic.Bool
	saved   chan struct{}
}

// crashingStore is a process that dies right after it saved a setting:
// the write is kept, and every later Enqueue and SetSetting fails, as if
// the mediator had been killed there.
type crashingStore struct {
	storetype.Store
	c *crash
}

func (s crashingStore) SetSetting(ctx context.Context, name, value string) error {
	if s.c.dead.Load() {
		return errCrashed
	}
	if name == s.c.setting && value != "" && s.c.armed.CompareAndSwap(true, false) {
		if err := s.Store.SetSetting(ctx, name, value); err != nil {
			return err
		}
		s.c.dead.Store(true)
		close(s.c.saved)
		return errCrashed
	}
	return s.Store.SetSetting(ctx, name, value)
}

func (s crashingStore) Enqueue(ctx context.Context, kind, key string, args river.JobArgs) (bool, error) {
	if s.c.dead.Load() {
		return false, errCrashed
	}
	return s.Store.Enqueue(ctx, kind, key, args)
}

// claimSearches returns the catch-up searches the HeyDonto fake received
// from the i-th request on.
func claimSearches(t *testing.T, hd *fhirtest.Server, from int) []url.Values {
	t.Helper()
	var out []url.Values
	for _, r := range hd.Requests()[from:] {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/claim-response") {
			q, err := url.ParseQuery(r.RawQuery)
			require.NoError(t, err)
			out = append(out, q)
		}
	}
	return out
}

// HeyDonto (H3): a catch-up search over 250 claims (three pages of 100,
// by page token) is cut short by a crash right after its first page's
// progress was saved. The restarted mediator resumes at the saved token,
// or, when the server has expired it (400), searches again from the
// watermark; either way every claim is reported once, and the watermark
// moves only after the last page.
func TestSource_CatchupResumesAcrossARestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		expired bool
	}{{"SavedToken", false}, {"ExpiredToken", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto}) // notifications: none
			const n = 250
			for i := range n {
				hd.CreateClaimResponse(sourceClaim(fmt.Sprintf("hd-%03d", i), fmt.Sprintf("p-%d", i%5), fmt.Sprintf("H-%d", i), "2025-06-30"))
			}
			c := &crash{setting: "source/heydonto/catchup_progress", saved: make(chan struct{})}
			c.armed.Store(true)
			b := setup(t, setupOpts{
				wrapStore: func(st storetype.Store) storetype.Store { return crashingStore{Store: st, c: c} },
				edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: heyDontoLogin(t, hd),
					edit: func(s *mediator.Source) { s.PollInterval = time.Hour }}),
			})
			select {
			case <-c.saved:
			case <-time.After(15 * time.Second):
				t.Fatal("the catch-up search saved no progress")
			}
			b.stop(t)

			// What the crash left: the next page's token on the first
			// page's query, and no watermark yet.
			ctx := context.Background()
			_, ok, err := settingOf(t, b, "source/heydonto/watermark")
			require.NoError(t, err)
			require.False(t, ok, "the watermark moves only after the last page")
			saved, _, err := settingOf(t, b, c.setting)
			require.NoError(t, err)
			var progress struct {
				Next    string    `json:"next"`
				Page    int       `json:"page"`
				Started time.Time `json:"started"`
			}
			require.NoError(t, json.Unmarshal([]byte(saved), &progress), saved)
			require.Equal(t, 2, progress.Page)
			next, err := url.Parse(progress.Next)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(progress.Next, hd.BaseURL+"/claim-response?"), "re-rooted under the site: %s", progress.Next)
			require.NotEmpty(t, next.Query().Get("_page_token"))
			first := claimSearches(t, hd, 0)[0]
			require.Equal(t, first.Get("_lastUpdated"), next.Query().Get("_lastUpdated"), "the token rides on the original query")

			if tc.expired {
				hd.ExpirePageTokens()
			}
			from := len(hd.Requests())
			c.dead.Store(false)
			b.start(t)
			require.Eventually(t, func() bool { return len(b.cht.Reports()) >= n }, 15*time.Second, 10*time.Millisecond, "%d reports", n)
			require.Eventually(t, func() bool {
				v, ok, err := b.store.Setting(ctx, "source/heydonto/watermark")
				require.NoError(t, err)
				p, _, err := b.store.Setting(ctx, c.setting)
				require.NoError(t, err)
				return ok && v != "" && p == ""
			}, 15*time.Second, 10*time.Millisecond, "the search finished: watermark written, progress cleared")

			after := claimSearches(t, hd, from)
			require.GreaterOrEqual(t, len(after), 2)
			require.Equal(t, next.Query().Get("_page_token"), after[0].Get("_page_token"), "the restarted mediator asked for the saved page first")
			if tc.expired {
				require.Empty(t, after[1].Get("_page_token"), "a refused token: a new search from the watermark")
				b.waitLog(t, "searching again from the watermark")
			} else {
				require.Equal(t, next.Query().Get("_lastUpdated"), after[1].Get("_lastUpdated"), "the resumed search's next page")
				require.NotEmpty(t, after[1].Get("_page_token"), "the third page follows the second")
				require.NotContains(t, b.logs.String(), "searching again from the watermark")
			}
			b.waitLog(t, "resuming a search cut short")

			time.Sleep(200 * time.Millisecond) // any duplicate would be under way by now
			perClaim := map[any]int{}
			for _, r := range b.cht.Reports() {
				perClaim[r.Fields["op_claim_uuid"]]++
			}
			require.Len(t, perClaim, n, "every claim reported")
			for id, count := range perClaim {
				require.Equal(t, 1, count, "claim %v reported once", id)
			}
		})
	}
}

// settingOf reads a setting from the stopped mediator's store file.
func settingOf(t *testing.T, b *testBundle, name string) (string, bool, error) {
	t.Helper()
	st, err := store.Open(context.Background(), b.dbURL)
	require.NoError(t, err)
	defer st.Close()
	return st.Setting(context.Background(), name)
}
