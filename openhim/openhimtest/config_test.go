package openhimtest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestPutConfig(t *testing.T) {
	t.Parallel()

	put := func(t *testing.T, b *testBundle, body string) response {
		t.Helper()
		return b.do(t, req{method: http.MethodPut, path: "/mediators/" + testURN + "/config", body: body})
	}

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, body, want string
		}{
			{"UnknownKey", `{"nope":1}`, "No config definition found for parameter nope"},
			{"NumberAsString", `{"timeout":"30"}`, "Expected config param timeout to be a number."},
			{"OptionNotListed", `{"logLevel":"warn"}`, "Expected config param logLevel to be one of debug,info"},
			{"BoolAsNumber", `{"enabled":1}`, "Expected config param enabled to be a boolean."},
			{"ArrayBody", `["x"]`, "No config definition found for parameter 0"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, openhimtest.Options{})
				b.register(t, mediatorDoc("1.0.0"))
				r := put(t, b, tt.body)
				require.Equal(t, http.StatusBadRequest, r.status)
				require.Equal(t, tt.want, r.body)
				got, _ := b.srv.Mediator(testURN)
				require.True(t, got.ConfigModified.IsZero())
				require.Equal(t, "info", got.Config["logLevel"])
			})
		}
	})

	t.Run("UnknownURN", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := put(t, b, `{}`)
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "No mediator found for this urn.", r.body)
	})

	t.Run("StoresWholeConfigAndBumpsModified", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		b.clock.Add(time.Minute)
		r := put(t, b, `{"timeout":5,"password":"s3cret"}`)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "OK", r.body)
		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, map[string]any{"timeout": float64(5), "password": "s3cret"}, got.Config)
		require.Equal(t, b.clock.Now(), got.ConfigModified)
	})

	t.Run("WithoutContentTypeWipesConfig", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := b.do(t, req{method: http.MethodPut, path: "/mediators/" + testURN + "/config", body: `{"timeout":5}`, contentType: "-"})
		require.Equal(t, http.StatusOK, r.status)
		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, map[string]any{}, got.Config)
	})

	t.Run("MaskedPasswordsRestored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		require.Equal(t, http.StatusOK, put(t, b, `{"password":"s3cret","timeout":1}`).status)
		// The console sends back what GET showed, masks included.
		require.Equal(t, http.StatusOK, put(t, b, `{"password":"**********","timeout":2}`).status)
		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, map[string]any{"password": "s3cret", "timeout": float64(2)}, got.Config)
		require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"password": "**********", "timeout": 3}))
		got, _ = b.srv.Mediator(testURN)
		require.Equal(t, "s3cret", got.Config["password"])
	})
}

func TestGetMediator_MasksPasswords(t *testing.T) {
	t.Parallel()

	b := setup(t, openhimtest.Options{})
	m := mediatorDoc("1.0.0")
	m["configDefs"] = append(m["configDefs"].([]any),
		map[string]any{"param": "keys", "type": "password", "array": true},
		map[string]any{"param": "db", "type": "struct", "template": []any{
			map[string]any{"param": "user", "type": "string"},
			map[string]any{"param": "pass", "type": "password"},
		}},
	)
	m["config"] = map[string]any{
		"password": "s3cret", "keys": []any{"k1", "k2"}, "db": map[string]any{"user": "u", "pass": "p"},
	}
	b.register(t, m)

	r := b.do(t, req{method: http.MethodGet, path: "/mediators/" + testURN})
	require.Equal(t, http.StatusOK, r.status)
	var doc struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &doc))
	require.Equal(t, map[string]any{
		"password": "**********", "keys": []any{"**********", "**********"},
		"db": map[string]any{"user": "u", "pass": "**********"},
	}, doc.Config)

	// GET /mediators masks nothing (core calls maskPasswords on the array).
	r = b.do(t, req{method: http.MethodGet, path: "/mediators"})
	require.Equal(t, http.StatusOK, r.status)
	var list []struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &list))
	require.Equal(t, "s3cret", list[0].Config["password"])

	// The heartbeat returns them in clear; the store is unchanged.
	require.JSONEq(t, `{"password":"s3cret","keys":["k1","k2"],"db":{"user":"u","pass":"p"}}`, b.heartbeat(t, `{"uptime":1,"config":true}`).body)
	got, _ := b.srv.Mediator(testURN)
	require.Equal(t, "s3cret", got.Config["password"])
}

func TestSetConfig_Errors(t *testing.T) {
	t.Parallel()

	b := setup(t, openhimtest.Options{})
	err := b.srv.SetConfig(testURN, map[string]any{})
	require.EqualError(t, err, "No mediator found for this urn.")
	b.register(t, mediatorDoc("1.0.0"))
	err = b.srv.SetConfig(testURN, map[string]any{"timeout": "5"})
	require.EqualError(t, err, "Expected config param timeout to be a number.")
	require.NoError(t, b.srv.SetConfig(testURN, nil))
	got, _ := b.srv.Mediator(testURN)
	require.Equal(t, map[string]any{}, got.Config)
}
