package openhimtest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestHeartbeat(t *testing.T) {
	t.Parallel()

	const configJSON = `{"baseUrl":"http://openimis","timeout":30,"logLevel":"info"}`

	t.Run("UnknownURN", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := b.heartbeat(t, `{"uptime":1}`)
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "Not Found", r.body)
		hbs := b.srv.Heartbeats()
		require.Len(t, hbs, 1)
		require.Equal(t, http.StatusNotFound, hbs[0].Status)
	})

	t.Run("UptimeMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		for _, body := range []string{`{}`, `{"uptime":null,"config":true}`, `[]`} {
			r := b.heartbeat(t, body)
			require.Equal(t, http.StatusBadRequest, r.status, body)
			require.Equal(t, "Bad Request", r.body)
		}
		got, _ := b.srv.Mediator(testURN)
		require.True(t, got.LastHeartbeat.IsZero())
	})

	t.Run("NotJSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.do(t, req{method: http.MethodPost, path: "/mediators/" + testURN + "/heartbeat", body: `{"uptime":1}`, contentType: "text/plain"})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "Bad Request", r.body)
		r = b.heartbeat(t, `{"uptime":`)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "Bad Request", r.body)
	})

	t.Run("UptimeNotNumeric", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.heartbeat(t, `{"uptime":"long"}`)
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, `Could not process mediator heartbeat (urn: `+testURN+`): CastError: Cast to Number failed for value "long" (type string) at path "_uptime"`, r.body)
	})

	t.Run("ConfigRequested", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.heartbeat(t, `{"uptime":12.5,"config":true}`)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
		require.JSONEq(t, configJSON, r.body)

		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, b.clock.Now(), got.LastHeartbeat)
		require.InDelta(t, 12.5, got.Uptime, 0)
		hbs := b.srv.Heartbeats()
		require.Len(t, hbs, 1)
		require.True(t, hbs[0].Config)
		require.True(t, hbs[0].ConfigSent)
		require.Equal(t, "12.5", string(hbs[0].Uptime))
		require.JSONEq(t, configJSON, string(hbs[0].Response))
	})

	t.Run("ConfigMustBeTrueNotTruthy", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.heartbeat(t, `{"uptime":1,"config":"true"}`)
		require.Equal(t, http.StatusOK, r.status)
		require.Empty(t, r.body)
	})

	t.Run("OKWhenNoConfigStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		m := mediatorDoc("1.0.0")
		delete(m, "config")
		b.register(t, m)
		r := b.heartbeat(t, `{"uptime":1,"config":true}`)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "OK", r.body)
		require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	})

	t.Run("EmptyWhenNothingChanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.heartbeat(t, `{"uptime":1}`)
		require.Equal(t, http.StatusOK, r.status)
		require.Empty(t, r.body)
		require.Equal(t, "0", r.header.Get("Content-Length"))
		require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	})

	t.Run("ConfigDeliveredOnceAfterConsoleEdit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		b.clock.Add(time.Second)
		require.Empty(t, b.heartbeat(t, `{"uptime":1}`).body)

		b.clock.Add(time.Second)
		require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"baseUrl": "http://edited", "logLevel": "debug"}))
		b.clock.Add(time.Second)
		r := b.heartbeat(t, `{"uptime":3}`)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, `{"baseUrl":"http://edited","logLevel":"debug"}`, r.body)

		b.clock.Add(time.Second)
		require.Empty(t, b.heartbeat(t, `{"uptime":4}`).body)
		hbs := b.srv.Heartbeats()
		require.Len(t, hbs, 3)
		require.Equal(t, []bool{false, true, false}, []bool{hbs[0].ConfigSent, hbs[1].ConfigSent, hbs[2].ConfigSent})
	})

	t.Run("NoDeliveryBeforeFirstHeartbeat", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"timeout": 5}))
		b.clock.Add(time.Second)
		require.Empty(t, b.heartbeat(t, `{"uptime":1}`).body)
		require.Equal(t, `{"timeout":5}`, b.heartbeat(t, `{"uptime":1,"config":true}`).body)
	})

	t.Run("EditInSameMillisecondIsMissed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		require.Empty(t, b.heartbeat(t, `{"uptime":1}`).body)
		require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"timeout": 5}))
		// _configModifiedTS == _lastHeartbeat: not greater, not delivered.
		require.Empty(t, b.heartbeat(t, `{"uptime":1}`).body)
	})

	t.Run("LostAnswerLosesDelivery", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		b.clock.Add(time.Second)
		b.heartbeat(t, `{"uptime":1}`)
		b.clock.Add(time.Second)
		require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"timeout": 5}))
		b.clock.Add(time.Second)
		b.srv.DropNextPath("/mediators/"+testURN+"/heartbeat", 1)
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL+"/mediators/"+testURN+"/heartbeat", strings.NewReader(`{"uptime":2}`))
		require.NoError(t, err)
		hr.Header.Set("Authorization", rootBasic)
		hr.Header.Set("Content-Type", "application/json")
		resp, err := b.srv.Client().Do(hr)
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		b.clock.Add(time.Second)
		require.Empty(t, b.heartbeat(t, `{"uptime":3}`).body)
		require.Equal(t, `{"timeout":5}`, b.heartbeat(t, `{"uptime":3,"config":true}`).body)
	})

	t.Run("EncodedURN", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.do(t, req{method: http.MethodPost, path: "/Mediators/urn%3Amediator%3Acht-openimis-test/heartbeat/", body: `{"uptime":1}`})
		require.Equal(t, http.StatusOK, r.status)
	})
}
