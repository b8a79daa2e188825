package cht_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
)

type testBundle struct {
	client *cht.Client
	server *chttest.Server
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	s := chttest.NewServer(t, chttest.Options{})
	c, err := cht.New(cht.Options{URL: s.URL, Username: chttest.DefaultUsername, Password: chttest.DefaultPassword, Timeout: 2 * time.Second})
	require.NoError(t, err)
	return &testBundle{client: c, server: s}
}

func requireAPIError(t *testing.T, err error, status int, permanent bool) *cht.APIError {
	t.Helper()
	var ae *cht.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, status, ae.Status, ae.Error())
	require.Equal(t, permanent, ae.Permanent(), ae.Error())
	return ae
}

func TestClient_CreatePerson(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := cht.Person{ID: "0f8e7c0a-5c55-5d1b-8f0e-6f6a2b1c9d10", Name: "Asha", OpenIMISID: "76aca309-f8cf-4890-8f2e-b416d78de00b",
			Place: chttest.DefaultPlaceID, Sex: "female", DateOfBirth: "1990-03-24", Phone: "+9779800000000"}
		id, err := b.client.CreatePerson(ctx, p)
		require.NoError(t, err)
		require.Equal(t, p.ID, id)
		got, ok := b.server.Person(id)
		require.True(t, ok)
		require.Equal(t, "Asha", got.Doc["name"])
		require.Equal(t, "person", got.Doc["type"])
		require.Equal(t, p.OpenIMISID, got.Doc["openimis_id"])
		require.Equal(t, "female", got.Doc["sex"])

		req := b.server.Requests()[0]
		require.Equal(t, "application/json", req.Header.Get("Content-Type"), "exactly, no charset")
		require.Equal(t, "application/json", req.Header.Get("Accept"))
		user, _, ok := (&http.Request{Header: req.Header}).BasicAuth()
		require.True(t, ok, "credentials are sent pre-emptively")
		require.Equal(t, chttest.DefaultUsername, user)

		doc, err := b.client.GetPerson(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "Asha", doc["name"])
	})
	t.Run("ExistingIDConflicts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := cht.Person{ID: "0f8e7c0a-5c55-5d1b-8f0e-6f6a2b1c9d11", Name: "Asha", Place: chttest.DefaultPlaceID}
		_, err := b.client.CreatePerson(ctx, p)
		require.NoError(t, err)
		_, err = b.client.CreatePerson(ctx, p)
		require.True(t, cht.IsConflict(err), "%v", err)
		requireAPIError(t, err, http.StatusConflict, false)
		require.Len(t, b.server.People(), 1)
	})
	t.Run("UnknownPlace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreatePerson(ctx, cht.Person{Name: "Asha", Place: "no-such-place"})
		requireAPIError(t, err, http.StatusNotFound, true)
	})
	t.Run("MissingPerson", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.GetPerson(ctx, "nobody")
		require.True(t, cht.IsNotFound(err), "%v", err)
	})
}

func TestClient_CreateReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fields := map[string]any{
		"patient_id": "0f8e7c0a-5c55-5d1b-8f0e-6f6a2b1c9d10", "op_claim_id": "CLM1",
		"op_claim_uuid": "ae580700-0277-4c98-adab-d98c0f7e681b", "op_year": "2082", "op_month": "03",
		"op_day": "16", "op_date": int64(1751220900000),
	}

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id, err := b.client.CreateReport(ctx, cht.Report{Form: "OP", Fields: fields})
		require.NoError(t, err)
		r, ok := b.server.Report(id)
		require.True(t, ok)
		require.Equal(t, "OP", r.Form)
		require.Empty(t, r.Errors)
		require.Equal(t, "2082", r.Fields["op_year"])
		require.EqualValues(t, 1751220900000, r.Fields["op_date"])

		ids, err := b.client.FindReports(ctx, "op_claim_uuid", "AE580700-0277-4C98-ADAB-D98C0F7E681B")
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids, "the search is case-insensitive")
	})
	t.Run("FindReportsReadsEveryPage", func(t *testing.T) {
		t.Parallel()
		// A person's reports can be more than one page of 100: the look-up
		// follows the cursor (docs/upstreams/cht.md §3).
		b := setup(t)
		var want []string
		for i := range 150 {
			f := maps.Clone(fields)
			f["op_claim_uuid"] = fmt.Sprintf("claim-%03d", i)
			id, err := b.client.CreateReport(ctx, cht.Report{Form: "OP", Fields: f})
			require.NoError(t, err)
			want = append(want, id)
		}
		ids, err := b.client.FindReports(ctx, "patient_id", fields["patient_id"].(string))
		require.NoError(t, err)
		require.ElementsMatch(t, want, ids)
	})
	t.Run("UnknownFormIsPermanent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateReport(ctx, cht.Report{Form: "XX", Fields: fields})
		ae := requireAPIError(t, err, http.StatusInternalServerError, true)
		require.Contains(t, ae.Message, "Form not found")
	})
	t.Run("ServerStartingIsTransient", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.SetDown(http.StatusServiceUnavailable)
		_, err := b.client.CreateReport(ctx, cht.Report{Form: "OP", Fields: fields})
		requireAPIError(t, err, http.StatusServiceUnavailable, false)
	})
	t.Run("LostAnswer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.DropNext(1)
		_, err := b.client.CreateReport(ctx, cht.Report{Form: "OP", Fields: fields})
		require.Error(t, err)
		var ae *cht.APIError
		require.False(t, errors.As(err, &ae), "a transport error, not an answer")
		require.Len(t, b.server.Reports(), 1, "the CHT stored it all the same")
	})
	t.Run("SaveFailedBehindA200", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.LoseNextSaves(1)
		_, err := b.client.CreateReport(ctx, cht.Report{Form: "OP", Fields: fields})
		require.ErrorIs(t, err, cht.ErrNoReportID)
		var perm interface{ Permanent() bool }
		require.False(t, errors.As(err, &perm) && perm.Permanent(), "worth retrying")
		require.Empty(t, b.server.Reports())

		id, err := b.client.CreateReport(ctx, cht.Report{Form: "OP", Fields: fields})
		require.NoError(t, err)
		require.NotEmpty(t, id)
	})
}

func TestClient_FindContacts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	id := b.server.AddPerson(map[string]any{"type": "person", "name": "Asha", "openimis_id": "76aca309-f8cf-4890-8f2e-b416d78de00b"})
	ids, err := b.client.FindContacts(ctx, "openimis_id", "76ACA309-F8CF-4890-8F2E-B416D78DE00B")
	require.NoError(t, err)
	require.Equal(t, []string{id}, ids)
	ids, err = b.client.FindContacts(ctx, "openimis_id", "00000000-0000-4000-8000-000000000000")
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestClient_WrongCredentials(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	c, err := cht.New(cht.Options{URL: s.URL, Username: chttest.DefaultUsername, Password: "wrong"})
	require.NoError(t, err)
	_, err = c.CreateReport(context.Background(), cht.Report{Form: "OP"})
	requireAPIError(t, err, http.StatusUnauthorized, false)
	require.NotContains(t, err.Error(), "wrong", "the password is not in the error")
}

func TestClient_RedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
	t.Cleanup(target.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	t.Cleanup(front.Close)
	c, err := cht.New(cht.Options{URL: front.URL, Username: "u", Password: "p"})
	require.NoError(t, err)
	_, err = c.CreateReport(context.Background(), cht.Report{Form: "OP"})
	requireAPIError(t, err, http.StatusMovedPermanently, true)
	require.Zero(t, followed.Load(), "a POST is never re-sent as a GET")
}

func TestNew_Validates(t *testing.T) {
	t.Parallel()
	_, err := cht.New(cht.Options{URL: "cht.example.org", Username: "u", Password: "p"})
	require.Error(t, err)
	_, err = cht.New(cht.Options{URL: "https://cht.example.org"})
	require.Error(t, err)
}

func TestClient_CoolsDownAfterRefusedLogin(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c, err := cht.New(cht.Options{URL: s.URL, Username: chttest.DefaultUsername, Password: chttest.DefaultPassword,
		AuthCooldown: 10 * time.Second, Now: clock})
	require.NoError(t, err)
	ctx := context.Background()

	s.FailNext(1, http.StatusTooManyRequests)
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	requireAPIError(t, err, http.StatusTooManyRequests, false)
	sent := len(s.Requests())

	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	require.ErrorIs(t, err, cht.ErrCoolingDown)
	require.Contains(t, err.Error(), "429")
	require.Len(t, s.Requests(), sent, "nothing sent while cooling down")

	advance(10 * time.Second)
	s.FailNext(1, http.StatusUnauthorized)
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	requireAPIError(t, err, http.StatusUnauthorized, false)
	advance(15 * time.Second)
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	require.ErrorIs(t, err, cht.ErrCoolingDown, "a second refusal doubles the pause")

	advance(5 * time.Second)
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	require.NoError(t, err)
}

func TestClient_PauseAfterRetryAfterIsBounded(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c, err := cht.New(cht.Options{URL: s.URL, Username: chttest.DefaultUsername, Password: chttest.DefaultPassword,
		AuthCooldown: 10 * time.Second, Now: clock})
	require.NoError(t, err)
	ctx := context.Background()

	// A proxy answers 429 with a Retry-After of some 31 years.
	s.SetFaultHeader(http.StatusTooManyRequests, "Retry-After", "999999999")
	s.FailNextPath("/api/v2/records", 1, http.StatusTooManyRequests)
	_, err = c.CreateReport(ctx, cht.Report{Form: "OP", Fields: map[string]any{"patient_id": "x"}})
	ae := requireAPIError(t, err, http.StatusTooManyRequests, false)
	require.Equal(t, cht.MaxPause, ae.RetryAfter, "Retry-After is bounded")
	require.Equal(t, cht.MaxPause, ae.RetryAfterDuration(), "the 429 itself is a wait, not a failure")

	until, cause := c.Paused()
	require.Equal(t, now.Add(cht.MaxPause), until, "the client pauses at most MaxPause")
	require.Contains(t, cause, "429 Too Many Requests")

	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	require.ErrorIs(t, err, cht.ErrCoolingDown)
	var pe *cht.PauseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, cht.MaxPause, pe.RetryAfterDuration(), "a job waits out the pause")
	require.Contains(t, err.Error(), "paused after 429 Too Many Requests (Retry-After 5m0s)")
	require.NotContains(t, err.Error(), "refused login", "a 429 is not a refused login")

	advance(cht.MaxPause)
	until, _ = c.Paused()
	require.True(t, until.IsZero(), "the pause ended")
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	require.NoError(t, err)

	s.FailNext(1, http.StatusUnauthorized)
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	requireAPIError(t, err, http.StatusUnauthorized, false)
	_, err = c.FindContacts(ctx, "openimis_id", "abc")
	require.ErrorContains(t, err, "paused after a refused login (401)")
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, value string
		want        time.Duration
	}{
		{"Empty", "", 0},
		{"Seconds", "30", 30 * time.Second},
		{"Huge", "999999999", cht.MaxPause},
		{"Overflow", "99999999999999999999", cht.MaxPause},
		{"Negative", "-5", 0},
		{"Date", now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{"FarDate", now.AddDate(30, 0, 0).Format(http.TimeFormat), cht.MaxPause},
		{"Garbage", "soon", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, cht.ParseRetryAfter(tt.value, now))
		})
	}
}

func TestClient_RedirectsTemporaryOrNot(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusMovedPermanently, true},
		{http.StatusFound, false},
		{http.StatusSeeOther, false},
		{http.StatusTemporaryRedirect, false},
		{http.StatusPermanentRedirect, true},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.server.SetFaultHeader(tt.status, "Location", "https://admin:s3cret@maintenance.example.org/down?token=abc123&x=1#frag")
			b.server.FailNextPath("/api/v2/records", 1, tt.status)
			_, err := b.client.CreateReport(context.Background(), cht.Report{Form: "OP", Fields: map[string]any{"patient_id": "p"}})
			requireAPIError(t, err, tt.status, tt.permanent)
			require.Contains(t, err.Error(), "redirected to https://REDACTED@maintenance.example.org/down?token=REDACTED&x=REDACTED")
			require.NotContains(t, err.Error(), "s3cret")
			require.NotContains(t, err.Error(), "abc123")
			require.NotContains(t, err.Error(), "admin")
			if tt.permanent {
				require.Contains(t, err.Error(), "CHT_URL")
			}
		})
	}
}
