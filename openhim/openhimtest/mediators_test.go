package openhimtest_test

import (
	"cmp"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

const testURN = "urn:mediator:test"

// mediatorDoc is a valid registration with a config of every type the
// mediator's document uses.
func mediatorDoc(version string) map[string]any {
	return map[string]any{
		"urn": testURN, "version": version, "name": "Test Mediator",
		"endpoints": []any{map[string]any{"name": "Mediator", "host": "mediator", "port": 6000, "path": "/"}},
		"defaultChannelConfig": []any{map[string]any{
			"name": "Claims", "urlPattern": "^/claims$", "routes": []any{map[string]any{"name": "r", "host": "mediator", "port": 6000}},
		}},
		"configDefs": []any{
			map[string]any{"param": "baseUrl", "type": "string"},
			map[string]any{"param": "password", "type": "password"},
			map[string]any{"param": "timeout", "type": "number"},
			map[string]any{"param": "logLevel", "type": "option", "values": []any{"debug", "info"}},
			map[string]any{"param": "enabled", "type": "bool"},
			map[string]any{"param": "hosts", "type": "string", "array": true},
		},
		"config": map[string]any{"baseUrl": "http://openimis", "timeout": 30, "logLevel": "info"},
	}
}

func (b *testBundle) register(t *testing.T, doc map[string]any) {
	t.Helper()
	status, body := b.do(t, http.MethodPost, "/mediators", mustJSON(t, doc), nil)
	require.Equal(t, http.StatusCreated, status, body)
	require.Equal(t, "Created", body)
}

func (b *testBundle) heartbeat(t *testing.T, body string) (int, string) {
	t.Helper()
	return b.do(t, http.MethodPost, "/mediators/"+testURN+"/heartbeat", body, nil)
}

// TestRegister_Refused pins §1 and traps 3 and 4: what core refuses with
// 400, and what it accepts.
func TestRegister_Refused(t *testing.T) {
	t.Parallel()
	const prefix = "Could not add Mediator via the API: ValidationError: "
	cfg := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["config"].(map[string]any)[k] = v }
	}
	tests := []struct {
		name        string
		modify      func(map[string]any)
		contentType string
		want        string // "" for 201
	}{
		{name: "Valid", modify: func(map[string]any) {}},
		{name: "EveryType", modify: func(m map[string]any) {
			m["config"] = map[string]any{"password": "p", "enabled": false, "hosts": []any{"a", "b"}, "logLevel": "debug"}
		}},
		{name: "ConfigWithoutConfigDefsIsNotChecked", modify: func(m map[string]any) { delete(m, "configDefs"); cfg("extra", 1)(m) }},
		{name: "WithoutJSONContentTypeBodyIsIgnored", modify: func(map[string]any) {}, contentType: "text/plain", want: "URN is required"},
		{name: "URNMissing", modify: func(m map[string]any) { delete(m, "urn") }, want: "URN is required"},
		{name: "VersionNotSemver", modify: func(m map[string]any) { m["version"] = "1.0" }, want: "Version is required. Must be in SemVer form x.y.z"},
		{name: "NameMissing", modify: func(m map[string]any) { delete(m, "name") }, want: "Mediator validation failed: name: Path `name` is required."},
		{name: "EndpointsEmpty", modify: func(m map[string]any) { m["endpoints"] = []any{} }, want: "At least 1 endpoint is required"},
		{name: "EndpointNameMissing", modify: func(m map[string]any) { delete(m["endpoints"].([]any)[0].(map[string]any), "name") },
			want: "Mediator validation failed: endpoints.0.name: Path `name` is required."},
		{name: "ChannelURLPatternMissing", modify: func(m map[string]any) { delete(m["defaultChannelConfig"].([]any)[0].(map[string]any), "urlPattern") },
			want: "Mediator validation failed: defaultChannelConfig.0.urlPattern: Path `urlPattern` is required."},
		{name: "ConfigDefType", modify: func(m map[string]any) {
			m["configDefs"], m["config"] = []any{map[string]any{"param": "p", "type": "integer"}}, nil
		},
			want: "Mediator validation failed: configDefs.0.type: `integer` is not a valid enum value for path `type`."},
		{name: "OptionWithoutValues", modify: func(m map[string]any) { m["configDefs"] = []any{map[string]any{"param": "p", "type": "option"}} },
			want: "Expected field 'values' to be an array (option param 'p')"},
		{name: "ConfigKeyWithoutDef", modify: cfg("extra", "x"), want: "No config definition found for parameter extra"},
		{name: "OptionNotListed", modify: cfg("logLevel", "trace"), want: "Expected config param logLevel to be one of debug,info"},
		{name: "NumberAsString", modify: cfg("timeout", "30"), want: "Expected config param timeout to be a number."},
		{name: "BoolAsString", modify: cfg("enabled", "true"), want: "Expected config param enabled to be a boolean."},
		{name: "PasswordNumber", modify: cfg("password", 5), want: "Expected config param password to be a string representing a password."},
		{name: "ArrayNotArray", modify: cfg("hosts", "a"), want: "Expected config param hosts to be an array of type string"},
		{name: "ArrayElement", modify: cfg("hosts", []any{"a", 1}), want: "Expected config param hosts[1] to be a string."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openhimtest.Options{})
			doc := mediatorDoc("1.0.0")
			tt.modify(doc)
			status, body := b.do(t, http.MethodPost, "/mediators", mustJSON(t, doc), map[string]string{"Content-Type": cmp.Or(tt.contentType, "application/json")})
			regs := b.srv.Registrations()
			require.Len(t, regs, 1)
			if tt.want == "" {
				require.Equal(t, http.StatusCreated, status, body)
				require.Equal(t, openhimtest.RegistrationCreated, regs[0].Outcome)
				return
			}
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, prefix+tt.want, body)
			require.Equal(t, openhimtest.RegistrationRejected, regs[0].Outcome)
			_, ok := b.srv.Mediator(testURN)
			require.False(t, ok)
		})
	}
}

// TestRegister_Again pins trap 1, §1.1 and trap 22: 201 every time, the
// same or a lower version changes nothing, a higher one replaces the
// fields sent while the stored config values win, and the first
// registration's config is what config: true returns.
func TestRegister_Again(t *testing.T) {
	t.Parallel()
	b := setup(t, openhimtest.Options{})
	b.register(t, mediatorDoc("1.2.0"))
	for _, v := range []string{"1.2.0", "1.1.9", "1.2.0-rc.1"} {
		doc := mediatorDoc(v)
		doc["name"], doc["config"] = "Changed", map[string]any{"timeout": 99}
		b.register(t, doc)
	}
	m, ok := b.srv.Mediator(testURN)
	require.True(t, ok)
	require.Equal(t, "1.2.0", m.Version)
	require.Equal(t, "Test Mediator", m.Doc["name"])
	require.Equal(t, openhimtest.RegistrationUnchanged, b.srv.Registrations()[1].Outcome)

	doc := mediatorDoc("1.10.0")
	doc["name"], doc["unknownField"] = "Release 1.10", true
	doc["config"] = map[string]any{"timeout": 99, "logLevel": "debug", "enabled": true} // baseUrl left out
	b.register(t, doc)
	m, _ = b.srv.Mediator(testURN)
	require.Equal(t, "1.10.0", m.Version)
	require.Equal(t, "Release 1.10", m.Doc["name"])
	require.NotContains(t, m.Doc, "unknownField", "mongoose drops unknown fields")
	require.Equal(t, map[string]any{"timeout": 30.0, "logLevel": "info", "enabled": true}, m.Config)
	require.True(t, m.ConfigModified.IsZero(), "an update does not bump _configModifiedTS")
	require.Equal(t, openhimtest.RegistrationUpdated, b.srv.Registrations()[4].Outcome)

	delete(doc, "config")
	doc["version"] = "2.0.0"
	b.register(t, doc)
	status, body := b.heartbeat(t, `{"uptime":1,"config":true}`)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"timeout":30,"logLevel":"info","enabled":true}`, body, "no config keeps the stored one")
}

// TestHeartbeat pins §3 and traps 3, 5 and 20.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		noConfig bool
		urn      string
		body     string
		header   map[string]string
		status   int
		answer   string
		sent     bool
		unseen   bool // refused before the heartbeat handler
	}{
		{name: "Empty", body: `{"uptime":12.5}`, status: 200, answer: ""},
		{name: "ConfigRequested", body: `{"uptime":1,"config":true}`, status: 200,
			answer: `{"baseUrl":"http://openimis","logLevel":"info","timeout":30}`, sent: true},
		{name: "ConfigMustBeTrueNotTruthy", body: `{"uptime":1,"config":"yes"}`, status: 200, answer: ""},
		{name: "OKWhenNoConfigStored", noConfig: true, body: `{"uptime":1,"config":true}`, status: 200, answer: "OK", sent: true},
		{name: "UnknownURN", urn: "urn:other", body: `{"uptime":1}`, status: 404, answer: "Not Found"},
		{name: "UptimeMissing", body: `{"config":true}`, status: 400, answer: "Bad Request"},
		{name: "NotJSONContentType", body: `{"uptime":1}`, header: map[string]string{"Content-Type": "text/plain"}, status: 400, answer: "Bad Request"},
		{name: "InvalidJSON", body: `{"uptime":`, status: 400, answer: "Bad Request", unseen: true},
		{name: "UptimeNotANumber", body: `{"uptime":"soon"}`, status: 500},
		{name: "NotAnAdmin", body: `{"uptime":1}`, header: basic("clerk@openhim.org", "clerk-pass"), status: 403,
			answer: "User clerk@openhim.org is not an admin, API access to removeMediator denied.", unseen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openhimtest.Options{})
			b.srv.AddUser(openhimtest.User{Email: "clerk@openhim.org", Password: "clerk-pass", Groups: []string{"clerk"}})
			doc := mediatorDoc("1.0.0")
			if tt.noConfig {
				delete(doc, "config")
			}
			b.register(t, doc)
			status, answer := b.do(t, http.MethodPost, "/mediators/"+cmp.Or(tt.urn, testURN)+"/heartbeat", tt.body, tt.header)
			require.Equal(t, tt.status, status, answer)
			if tt.status != 500 {
				require.Equal(t, tt.answer, answer)
			}
			if tt.unseen {
				require.Empty(t, b.srv.Heartbeats())
				return
			}
			hb := b.srv.Heartbeats()[0]
			require.Equal(t, tt.status, hb.Status)
			require.Equal(t, tt.sent, hb.ConfigSent)
			m, _ := b.srv.Mediator(testURN)
			require.Equal(t, tt.status == 200, !m.LastHeartbeat.IsZero(), "_lastHeartbeat is stored after a 200 only")
		})
	}
}

// TestConfigEdit pins §3 and traps 6 and 23: a console edit is checked,
// stored whole, returned once by the next heartbeat (never before a first
// heartbeat, and not when made in the millisecond of the last one);
// passwords are masked by GET /mediators/{urn}, in clear elsewhere.
func TestConfigEdit(t *testing.T) {
	t.Parallel()
	b := setup(t, openhimtest.Options{})
	b.register(t, mediatorDoc("1.0.0"))
	path := "/mediators/" + testURN

	b.clock.Add(time.Second)
	require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"password": "secret", "timeout": 7}))
	b.clock.Add(time.Second)
	status, body := b.heartbeat(t, `{"uptime":1}`)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, body, "no delivery before a first heartbeat")

	b.clock.Add(time.Second)
	status, body = b.do(t, http.MethodPut, path+"/config", `{"password":"**********","timeout":8,"enabled":true}`, nil)
	require.Equal(t, http.StatusOK, status, body)
	b.clock.Add(time.Second)
	_, body = b.heartbeat(t, `{"uptime":2}`)
	require.JSONEq(t, `{"password":"secret","timeout":8,"enabled":true}`, body, "the masked password is restored")
	_, body = b.heartbeat(t, `{"uptime":3}`)
	require.Empty(t, body, "delivered once")

	require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"timeout": 9}))
	_, body = b.heartbeat(t, `{"uptime":4}`)
	require.Empty(t, body, "an edit in the millisecond of the last heartbeat is missed")

	_, body = b.do(t, http.MethodGet, path, "", nil)
	require.Contains(t, body, `"config":{"timeout":9}`, "the whole config is replaced")
	require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"password": "secret"}))
	_, body = b.do(t, http.MethodGet, path, "", nil)
	require.Contains(t, body, `"password":"**********"`)
	_, body = b.do(t, http.MethodGet, "/mediators", "", nil)
	require.Contains(t, body, `"password":"secret"`, "GET /mediators masks nothing")

	for _, tt := range []struct {
		urn, body string
		status    int
		want      string
	}{
		{testURN, `{"timeout":"9"}`, 400, "Expected config param timeout to be a number."},
		{testURN, `{"other":1}`, 400, "No config definition found for parameter other"},
		{"urn:other", `{}`, 404, "No mediator found for this urn."},
	} {
		status, body := b.do(t, http.MethodPut, "/mediators/"+tt.urn+"/config", tt.body, nil)
		require.Equal(t, tt.status, status)
		require.Equal(t, tt.want, body)
	}
	require.ErrorContains(t, b.srv.SetConfig(testURN, map[string]any{"logLevel": "trace"}), "to be one of debug,info")
}
