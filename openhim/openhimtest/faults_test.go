package openhimtest_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("FailNext", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.srv.FailNext(2, http.StatusServiceUnavailable)
		for range 2 {
			r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: mustJSON(t, mediatorDoc("1.0.0"))})
			require.Equal(t, http.StatusServiceUnavailable, r.status)
			require.Equal(t, "Service Unavailable", r.body)
		}
		require.Empty(t, b.srv.Mediators())
		b.register(t, mediatorDoc("1.0.0"))
		require.Len(t, b.srv.Requests(), 3)
	})

	t.Run("FailNextPath", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		b.srv.FailNextPath("/mediators/"+testURN+"/heartbeat", 1, http.StatusInternalServerError)
		require.Equal(t, http.StatusOK, b.do(t, req{method: http.MethodGet, path: "/mediators"}).status)
		r := b.heartbeat(t, `{"uptime":1}`)
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, "Internal Server Error", r.body)
		require.Equal(t, http.StatusOK, b.heartbeat(t, `{"uptime":1}`).status)
	})

	t.Run("SetDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.srv.SetDown(http.StatusBadGateway)
		r := b.do(t, req{auth: "-", method: http.MethodGet, path: "/authenticate/" + openhimtest.RootEmail})
		require.Equal(t, http.StatusBadGateway, r.status)
		require.Equal(t, "Bad Gateway", r.body)
		b.srv.SetDown(0)
		require.Equal(t, http.StatusOK, b.do(t, req{auth: "-", method: http.MethodGet, path: "/authenticate/" + openhimtest.RootEmail}).status)
	})

	t.Run("Requests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.do(t, req{method: http.MethodPost, path: "/mediators?x=1", body: `{"a":1}`})
		reqs := b.srv.Requests()
		require.Len(t, reqs, 1)
		require.Equal(t, http.MethodPost, reqs[0].Method)
		require.Equal(t, "/mediators", reqs[0].Path)
		require.Equal(t, "x=1", reqs[0].RawQuery)
		require.Equal(t, `{"a":1}`, string(reqs[0].Body))
		require.Equal(t, rootBasic, reqs[0].Header.Get("Authorization"))
		require.Equal(t, b.clock.Now(), reqs[0].Time)
	})

	t.Run("NotModelledRoutes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := b.do(t, req{method: http.MethodGet, path: "/channels"})
		require.Equal(t, http.StatusNotImplemented, r.status)
		require.Contains(t, r.body, "not modelled")
		require.Equal(t, http.StatusUnauthorized, b.do(t, req{auth: "-", method: http.MethodGet, path: "/channels"}).status)
		require.Equal(t, http.StatusNotImplemented, b.do(t, req{auth: "-", method: http.MethodGet, path: "/heartbeat"}).status)
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		client := b.srv.Client()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL+"/mediators/"+testURN+"/heartbeat", strings.NewReader(`{"uptime":1}`))
				if err != nil {
					return
				}
				hr.Header.Set("Authorization", rootBasic)
				hr.Header.Set("Content-Type", "application/json")
				if resp, err := client.Do(hr); err == nil {
					resp.Body.Close()
				}
				_ = b.srv.SetConfig(testURN, map[string]any{"timeout": 1})
				_ = b.srv.Mediators()
				_ = b.srv.Heartbeats()
			})
		}
		wg.Wait()
		require.Len(t, b.srv.Heartbeats(), 8)
	})
}

func TestNewHandler(t *testing.T) {
	t.Parallel()

	s := openhimtest.NewHandler(openhimtest.Options{})
	defer s.Close()
	require.Empty(t, s.URL)
	require.Same(t, http.DefaultClient, s.Client())
	require.Nil(t, s.Certificate())
}
