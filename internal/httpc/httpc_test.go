package httpc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/internal/httpc"
)

func TestNewResty(t *testing.T) {
	t.Parallel()
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r)
		switch r.URL.Path {
		case "/api/moved":
			http.Redirect(w, r, "/api/elsewhere", http.StatusMovedPermanently)
		case "/api/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(srv.Close)

	rc := httpc.NewResty(httpc.Options{BaseURL: srv.URL + "/api/", Accept: "application/json", BodyLimit: 10})
	resp, err := rc.R().Post("/moved")
	require.NoError(t, err)
	require.Equal(t, http.StatusMovedPermanently, resp.StatusCode(), "a redirect comes back as it is")
	require.Len(t, got, 1, "and is not followed")
	require.Equal(t, "application/json", got[0].Header.Get("Accept"))
	require.Equal(t, httpc.UserAgent, got[0].Header.Get("User-Agent"))

	_, err = rc.R().Get("/big")
	require.Error(t, err, "an answer above the limit is refused")

	rc = httpc.NewResty(httpc.Options{BaseURL: srv.URL, UserAgent: "probe"})
	_, err = rc.R().Get("/x")
	require.NoError(t, err)
	last := got[len(got)-1]
	require.Equal(t, "probe", last.Header.Get("User-Agent"))
	require.Empty(t, last.Header.Get("Accept"), "no Accept unless asked")
}

func TestParseBase(t *testing.T) {
	t.Parallel()
	for raw, ok := range map[string]bool{
		"http://cht:5988":         true,
		"https://oi.example/api/": true,
		"ftp://x":                 false,
		"cht:5988":                false,
		"/relative":               false,
		"http://":                 false,
		"http://a b":              false,
	} {
		_, got := httpc.ParseBase(raw)
		require.Equal(t, ok, got, raw)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	var to httpc.Timeout
	to.Set(time.Minute)
	to.Set(0)
	to.Set(-time.Second)
	require.Equal(t, time.Minute, to.Get(), "non-positive values are ignored")
	ctx, cancel := to.Bound(context.Background())
	defer cancel()
	deadline, ok := ctx.Deadline()
	require.True(t, ok)
	require.WithinDuration(t, time.Now().Add(time.Minute), deadline, 5*time.Second)
}
