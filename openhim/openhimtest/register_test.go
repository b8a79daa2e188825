package openhimtest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestRegister_Validation(t *testing.T) {
	t.Parallel()

	const prefix = "Could not add Mediator via the API: ValidationError: "
	endpoint := func(m map[string]any) map[string]any {
		return m["endpoints"].([]any)[0].(map[string]any)
	}
	channel := func(m map[string]any) map[string]any {
		return m["defaultChannelConfig"].([]any)[0].(map[string]any)
	}
	defs := func(m map[string]any, d ...any) {
		m["configDefs"] = d
		m["config"] = map[string]any{}
	}
	tests := []struct {
		name   string
		modify func(m map[string]any)
		want   string
	}{
		{"URNMissing", func(m map[string]any) { delete(m, "urn") }, "URN is required"},
		{"URNEmpty", func(m map[string]any) { m["urn"] = "" }, "URN is required"},
		{"VersionMissing", func(m map[string]any) { delete(m, "version") }, "Version is required. Must be in SemVer form x.y.z"},
		{"VersionNotSemver", func(m map[string]any) { m["version"] = "1.0" }, "Version is required. Must be in SemVer form x.y.z"},
		{"VersionLeadingZero", func(m map[string]any) { m["version"] = "1.01.0" }, "Version is required. Must be in SemVer form x.y.z"},
		{"VersionNumber", func(m map[string]any) { m["version"] = 1 }, "Version is required. Must be in SemVer form x.y.z"},
		{"NameMissing", func(m map[string]any) { delete(m, "name") }, "Mediator validation failed: name: Path `name` is required."},
		{"EndpointsMissing", func(m map[string]any) { delete(m, "endpoints") }, "At least 1 endpoint is required"},
		{"EndpointsEmpty", func(m map[string]any) { m["endpoints"] = []any{} }, "At least 1 endpoint is required"},
		{"EndpointNameMissing", func(m map[string]any) { delete(endpoint(m), "name") }, "Mediator validation failed: endpoints.0.name: Path `name` is required."},
		{"EndpointPortTooHigh", func(m map[string]any) { endpoint(m)["port"] = 70000 }, "Mediator validation failed: endpoints.0.port: Path `port` (70000) is more than maximum allowed value (65536)."},
		{"EndpointPortNegative", func(m map[string]any) { endpoint(m)["port"] = -1 }, "Mediator validation failed: endpoints.0.port: Path `port` (-1) is less than minimum allowed value (0)."},
		{"EndpointPortNotNumeric", func(m map[string]any) { endpoint(m)["port"] = "http" }, `Mediator validation failed: endpoints.0.port: Cast to Number failed for value "http" (type string) at path "port"`},
		{"EndpointType", func(m map[string]any) { endpoint(m)["type"] = "ftp" }, "Mediator validation failed: endpoints.0.type: `ftp` is not a valid enum value for path `type`."},
		{"ChannelNameMissing", func(m map[string]any) { delete(channel(m), "name") }, "Mediator validation failed: defaultChannelConfig.0.name: Path `name` is required."},
		{"ChannelURLPatternMissing", func(m map[string]any) { delete(channel(m), "urlPattern") }, "Mediator validation failed: defaultChannelConfig.0.urlPattern: Path `urlPattern` is required."},
		{"ChannelMethod", func(m map[string]any) { channel(m)["methods"] = []any{"FETCH"} }, "Mediator validation failed: defaultChannelConfig.0.methods.0: `FETCH` is not a valid enum value for path `methods.0`."},
		{"ConfigDefType", func(m map[string]any) { defs(m, map[string]any{"param": "p", "type": "integer"}) }, "Mediator validation failed: configDefs.0.type: `integer` is not a valid enum value for path `type`."},
		{"OptionWithoutValues", func(m map[string]any) { defs(m, map[string]any{"param": "p", "type": "option"}) }, "Expected field 'values' to be an array (option param 'p')"},
		{"OptionEmptyValues", func(m map[string]any) { defs(m, map[string]any{"param": "p", "type": "option", "values": []any{}}) }, "Must specify a values array for option param 'p'"},
		{"StructWithoutTemplate", func(m map[string]any) { defs(m, map[string]any{"param": "p", "type": "struct"}) }, "Must specify a template for struct param 'p'"},
		{"StructTemplateWithoutType", func(m map[string]any) {
			defs(m, map[string]any{"param": "p", "type": "struct", "template": []any{map[string]any{"param": "a"}}})
		}, "Must specify field 'type' in template definition for param 'p'"},
		{"StructInStruct", func(m map[string]any) {
			defs(m, map[string]any{"param": "p", "type": "struct", "template": []any{map[string]any{"param": "a", "type": "struct"}}})
		}, "May not recursively specify 'struct' in template definitions (param 'p')"},
		{"ConfigKeyWithoutDef", func(m map[string]any) { m["config"].(map[string]any)["extra"] = "x" }, "No config definition found for parameter extra"},
		{"ConfigNumberAsString", func(m map[string]any) { m["config"].(map[string]any)["timeout"] = "30" }, "Expected config param timeout to be a number."},
		{"ConfigStringAsNumber", func(m map[string]any) { m["config"].(map[string]any)["baseUrl"] = 1 }, "Expected config param baseUrl to be a string."},
		{"ConfigBoolAsString", func(m map[string]any) { m["config"].(map[string]any)["enabled"] = "true" }, "Expected config param enabled to be a boolean."},
		{"ConfigOptionNotListed", func(m map[string]any) { m["config"].(map[string]any)["logLevel"] = "trace" }, "Expected config param logLevel to be one of debug,info"},
		{"ConfigPasswordNumber", func(m map[string]any) { m["config"].(map[string]any)["password"] = 5 }, "Expected config param password to be a string representing a password."},
		{"ConfigMapNonString", func(m map[string]any) {
			defs(m, map[string]any{"param": "p", "type": "map"})
			m["config"] = map[string]any{"p": map[string]any{"a": 1}}
		}, "Expected config param p to only contain string values."},
		{"ConfigStructUnknownField", func(m map[string]any) {
			defs(m, map[string]any{"param": "p", "type": "struct", "template": []any{map[string]any{"param": "a", "type": "string"}}})
			m["config"] = map[string]any{"p": map[string]any{"b": "x"}}
		}, "Field b is not defined in template definition for config param p."},
		{"ConfigArrayNotArray", func(m map[string]any) {
			defs(m, map[string]any{"param": "p", "type": "string", "array": true})
			m["config"] = map[string]any{"p": "x"}
		}, "Expected config param p to be an array of type string"},
		{"ConfigArrayElement", func(m map[string]any) {
			defs(m, map[string]any{"param": "p", "type": "string", "array": true})
			m["config"] = map[string]any{"p": []any{"x", 2}}
		}, "Expected config param p[1] to be a string."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openhimtest.Options{})
			m := mediatorDoc("1.0.0")
			tt.modify(m)
			r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: mustJSON(t, m)})
			require.Equal(t, http.StatusBadRequest, r.status, r.body)
			require.Equal(t, prefix+tt.want, r.body)
			require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
			require.Empty(t, b.srv.Mediators())
			regs := b.srv.Registrations()
			require.Len(t, regs, 1)
			require.Equal(t, openhimtest.RegistrationRejected, regs[0].Outcome)
			require.Equal(t, http.StatusBadRequest, regs[0].Status)
			require.Equal(t, r.body, regs[0].Response)
		})
	}
}

func TestRegister_Body(t *testing.T) {
	t.Parallel()

	t.Run("WithoutJSONContentTypeBodyIsIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		for _, ct := range []string{"-", "text/plain", "application/json+openhim"} {
			r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: mustJSON(t, mediatorDoc("1.0.0")), contentType: ct})
			require.Equal(t, http.StatusBadRequest, r.status, ct)
			require.Equal(t, "Could not add Mediator via the API: ValidationError: URN is required", r.body)
		}
	})

	t.Run("JSONWithCharset", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: mustJSON(t, mediatorDoc("1.0.0")), contentType: "Application/JSON; charset=utf-8"})
		require.Equal(t, http.StatusCreated, r.status, r.body)
	})

	t.Run("InvalidJSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		for _, body := range []string{`{"urn":`, `"urn"`, `42`} {
			r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: body})
			require.Equal(t, http.StatusBadRequest, r.status, body)
			require.Equal(t, "Bad Request", r.body)
		}
		// The body parser runs before authentication.
		r := b.do(t, req{auth: "-", method: http.MethodPost, path: "/mediators", body: `{`})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Empty(t, b.srv.Registrations())
	})
}

func TestRegister_New(t *testing.T) {
	t.Parallel()

	b := setup(t, openhimtest.Options{})
	m := mediatorDoc("1.0.0")
	m["unknownField"] = true
	ep := m["endpoints"].([]any)[0].(map[string]any)
	ep["secure"] = true // the field is "secured"; mongoose drops this
	ep["port"] = "6000"
	b.register(t, m)

	got, ok := b.srv.Mediator(testURN)
	require.True(t, ok)
	require.Equal(t, "1.0.0", got.Version)
	require.Equal(t, "CHT-openIMIS Test Mediator", got.Name)
	require.Equal(t, map[string]any{"baseUrl": "http://openimis", "timeout": float64(30), "logLevel": "info"}, got.Config)
	require.JSONEq(t, `{"baseUrl":"http://openimis","timeout":30,"logLevel":"info"}`, string(got.ConfigJSON))
	require.True(t, got.LastHeartbeat.IsZero())
	require.True(t, got.ConfigModified.IsZero())
	require.Equal(t, b.clock.Now(), got.Registered)

	require.NotContains(t, got.Doc, "unknownField")
	require.Regexp(t, `^[0-9a-f]{24}$`, got.Doc["_id"])
	require.Equal(t, float64(0), got.Doc["__v"])
	gotEP := got.Doc["endpoints"].([]any)[0].(map[string]any)
	require.NotContains(t, gotEP, "secure")
	require.Equal(t, float64(6000), gotEP["port"])
	require.Equal(t, "enabled", gotEP["status"])
	require.Equal(t, false, gotEP["forwardAuthHeader"])
	require.Regexp(t, `^[0-9a-f]{24}$`, gotEP["_id"])
	ch := got.Doc["defaultChannelConfig"].([]any)[0].(map[string]any)
	require.Equal(t, "private", ch["authType"])
	require.Equal(t, "enabled", ch["status"])
	require.Equal(t, float64(60), ch["autoRetryPeriodMinutes"])
	require.Equal(t, []any{}, ch["whitelist"])
	def := got.Doc["configDefs"].([]any)[0].(map[string]any)
	require.Equal(t, []any{}, def["values"])

	regs := b.srv.Registrations()
	require.Len(t, regs, 1)
	require.Equal(t, openhimtest.RegistrationCreated, regs[0].Outcome)
	require.Equal(t, testURN, regs[0].URN)
	require.Equal(t, "1.0.0", regs[0].Version)

	// GET /mediators and GET /mediators/{urn} show it.
	r := b.do(t, req{method: http.MethodGet, path: "/mediators/" + testURN})
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.JSONEq(t, string(got.DocJSON), r.body)
	r = b.do(t, req{method: http.MethodGet, path: "/MEDIATORS/"})
	require.Equal(t, http.StatusOK, r.status)
	var list []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &list))
	require.Len(t, list, 1)

	r = b.do(t, req{method: http.MethodGet, path: "/mediators/urn:mediator:unknown"})
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "Not Found", r.body)
}

func TestRegister_ConfigWithoutDefsIsNotChecked(t *testing.T) {
	t.Parallel()

	b := setup(t, openhimtest.Options{})
	m := mediatorDoc("1.0.0")
	delete(m, "configDefs")
	m["config"] = map[string]any{"anything": []any{1, 2}}
	b.register(t, m)
	got, _ := b.srv.Mediator(testURN)
	require.Equal(t, map[string]any{"anything": []any{float64(1), float64(2)}}, got.Config)
}

func TestRegister_Again(t *testing.T) {
	t.Parallel()

	t.Run("SameOrLowerVersionChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.2.0"))
		before, _ := b.srv.Mediator(testURN)
		for _, v := range []string{"1.2.0", "1.1.9", "1.2.0-rc.1", "v1.2.0"} {
			m := mediatorDoc(v)
			m["name"] = "Renamed"
			m["endpoints"] = []any{}
			b.register(t, m)
		}
		after, _ := b.srv.Mediator(testURN)
		require.Equal(t, before, after)
		regs := b.srv.Registrations()
		require.Len(t, regs, 5)
		for _, r := range regs[1:] {
			require.Equal(t, openhimtest.RegistrationUnchanged, r.Outcome, r.Version)
			require.Equal(t, http.StatusCreated, r.Status)
		}
	})

	t.Run("HigherVersionReplacesAndMergesConfig", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.9.0"))
		// A console edit of timeout.
		require.NoError(t, b.srv.SetConfig(testURN, map[string]any{"baseUrl": "http://openimis", "timeout": 45, "logLevel": "info"}))
		edited, _ := b.srv.Mediator(testURN)
		b.clock.Add(time.Minute)

		m := mediatorDoc("1.10.0")
		delete(m, "description")
		m["name"] = "Renamed"
		m["endpoints"] = []any{}
		m["config"] = map[string]any{"baseUrl": "http://new-default", "timeout": 60, "enabled": true}
		b.register(t, m)

		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, "1.10.0", got.Version)
		require.Equal(t, "Renamed", got.Name)
		require.Equal(t, []any{}, got.Doc["endpoints"])
		require.Equal(t, "test", got.Doc["description"], "fields not sent are kept ($set)")
		// Stored values win for keys in the new config; new keys take the
		// new defaults; logLevel, missing from the new config, is dropped.
		require.Equal(t, map[string]any{"baseUrl": "http://openimis", "timeout": float64(45), "enabled": true}, got.Config)
		require.Equal(t, edited.ConfigModified, got.ConfigModified, "_configModifiedTS is not bumped")
		require.Equal(t, openhimtest.RegistrationUpdated, b.srv.Registrations()[1].Outcome)
	})

	t.Run("HigherVersionWithoutConfigKeepsStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0-rc.1"))
		m := mediatorDoc("1.0.0")
		delete(m, "config")
		b.register(t, m)
		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, "1.0.0", got.Version)
		require.Equal(t, map[string]any{"baseUrl": "http://openimis", "timeout": float64(30), "logLevel": "info"}, got.Config)
	})

	t.Run("UpdateIsNotValidated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		m := mediatorDoc("2.0.0")
		delete(m, "name")
		m["endpoints"].([]any)[0].(map[string]any)["type"] = "ftp"
		b.register(t, m)
		got, _ := b.srv.Mediator(testURN)
		require.Equal(t, "2.0.0", got.Version)
		require.Equal(t, "ftp", got.Doc["endpoints"].([]any)[0].(map[string]any)["type"])
	})

	t.Run("UpdateCastErrorIs500", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		m := mediatorDoc("2.0.0")
		m["endpoints"].([]any)[0].(map[string]any)["port"] = "http"
		r := b.do(t, req{method: http.MethodPost, path: "/mediators", body: mustJSON(t, m)})
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, `Could not add Mediator via the API: CastError: Cast to Number failed for value "http" (type string) at path "port"`, r.body)
	})
}

func TestMediator_Delete(t *testing.T) {
	t.Parallel()

	b := setup(t, openhimtest.Options{})
	b.register(t, mediatorDoc("1.0.0"))
	for range 2 {
		r := b.do(t, req{method: http.MethodDelete, path: "/mediators/" + testURN})
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "Mediator with urn "+testURN+" has been successfully removed by root@openhim.org", r.body)
	}
	require.Empty(t, b.srv.Mediators())
}
