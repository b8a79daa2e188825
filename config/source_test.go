package config_test

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/config"
)

func TestLoad_NoSources(t *testing.T) {
	t.Parallel()
	c, err := load(validEnv())
	require.NoError(t, err)
	require.Empty(t, c.Sources)
	require.Equal(t, "", c.Summary()["FHIR_SOURCES"])
}

func TestLoad_SourceDefaults(t *testing.T) {
	t.Parallel()
	env := validEnv()
	env["FHIR_SOURCES"] = " aidbox , hapi-eu "
	env["FHIR_AIDBOX_URL"] = "https://box.example.org/fhir"
	env["FHIR_HAPI_EU_URL"] = "http://hapi.example.org/fhir"
	env["CLAIM_POLL_INTERVAL"] = "10m"
	c, err := load(env)
	require.NoError(t, err)
	require.Len(t, c.Sources, 2)

	s := c.Sources[0]
	require.Equal(t, "aidbox", s.Name)
	require.Equal(t, "https://box.example.org/fhir", s.URL.String())
	require.Equal(t, "auto", s.Dialect)
	require.Equal(t, "auto", s.Vendor)
	require.Equal(t, "none", s.Auth)
	require.Equal(t, "ClaimResponse", s.Resource)
	require.Equal(t, "ClaimResponse?", s.Criteria, "HAPI refuses a bare type")
	require.Equal(t, "auto", s.Content)
	require.Equal(t, 5*time.Minute, s.Heartbeat)
	require.Equal(t, 30*time.Second, s.NotifyTimeout)
	require.Equal(t, 1, s.MaxCount)
	require.Equal(t, "manage", s.Subscription)
	require.Equal(t, 10*time.Minute, s.PollInterval, "CLAIM_POLL_INTERVAL by default")
	require.Equal(t, "https://him.example.org/mediator/fhir/aidbox", s.CallbackEndpoint.String())
	require.Empty(t, s.PathStyle, "the vendor's")

	require.Equal(t, "hapi-eu", c.Sources[1].Name)
	require.Equal(t, "FHIR_HAPI_EU_DIALECT", c.Sources[1].Var("DIALECT"))
	require.Equal(t, "https://him.example.org/mediator/fhir/hapi-eu", c.Sources[1].CallbackEndpoint.String())
}

func TestLoad_SourceValues(t *testing.T) {
	t.Parallel()
	env := validEnv()
	env["CHT_OPENIMIS_CALLBACK_ENDPOINT"] = "https://proxy.example.org:8443/hie/mediator/claim-response"
	env["FHIR_SOURCES"] = "kodjin,heydonto,box"
	env["FHIR_KODJIN_URL"] = "https://kodjin.example.org/fhir"
	env["FHIR_KODJIN_DIALECT"] = "R4-Criteria"
	env["FHIR_KODJIN_VENDOR"] = "kodjin"
	env["FHIR_KODJIN_AUTH"] = "client-credentials"
	env["FHIR_KODJIN_CLIENT_ID"] = "mediator"
	env["FHIR_KODJIN_CLIENT_SECRET"] = "kodjin-secret"
	env["FHIR_KODJIN_CRITERIA"] = "ClaimResponse?outcome=complete"
	env["FHIR_KODJIN_CONTENT"] = "empty"
	env["FHIR_KODJIN_SEARCH"] = "?insurer=Organization/org-1"
	env["FHIR_KODJIN_POLL_INTERVAL"] = "0"
	env["FHIR_HEYDONTO_URL"] = "https://api.heydonto.example/site/42/fhir"
	env["FHIR_HEYDONTO_VENDOR"] = "heydonto"
	env["FHIR_HEYDONTO_AUTH"] = "login"
	env["FHIR_HEYDONTO_USERNAME"] = "ops@example.org"
	env["FHIR_HEYDONTO_PASSWORD"] = "heydonto-secret"
	env["FHIR_HEYDONTO_PATH_STYLE"] = "kebab-lower"
	env["FHIR_HEYDONTO_SUBSCRIPTION"] = "off"
	env["FHIR_HEYDONTO_POLL_INTERVAL"] = "1m"
	env["FHIR_BOX_URL"] = "https://box.example.org/fhir"
	env["FHIR_BOX_DIALECT"] = "r4b-backport"
	env["FHIR_BOX_AUTH"] = "bearer"
	env["FHIR_BOX_TOKEN"] = "box-token"
	env["FHIR_BOX_TOPIC"] = "http://example.org/SubscriptionTopic/claim-response"
	env["FHIR_BOX_FILTER"] = "ClaimResponse?outcome=complete"
	env["FHIR_BOX_HEARTBEAT"] = "1m"
	env["FHIR_BOX_MAX_COUNT"] = "5"
	env["FHIR_BOX_CALLBACK_ENDPOINT"] = "https://him.example.org/box"
	c, err := load(env)
	require.NoError(t, err)
	require.Len(t, c.Sources, 3)

	k := c.Sources[0]
	require.Equal(t, "r4-criteria", k.Dialect)
	require.Equal(t, "client-credentials", k.Auth)
	require.Equal(t, "kodjin-secret", k.ClientSecret.Value())
	require.Equal(t, "ClaimResponse?outcome=complete", k.Criteria)
	require.Equal(t, "empty", k.Content)
	require.Equal(t, url.Values{"insurer": {"Organization/org-1"}}, k.Search)
	require.Zero(t, k.PollInterval)
	require.Equal(t, "https://proxy.example.org:8443/hie/mediator/fhir/kodjin", k.CallbackEndpoint.String(),
		"the openIMIS callback's path prefix is kept")

	h := c.Sources[1]
	require.Equal(t, "login", h.Auth)
	require.Nil(t, h.LoginURL, "the heydonto vendor's default")
	require.Equal(t, "kebab-lower", h.PathStyle)
	require.Equal(t, "off", h.Subscription)
	require.Equal(t, time.Minute, h.PollInterval)

	b := c.Sources[2]
	require.Equal(t, "r4b-backport", b.Dialect)
	require.Equal(t, "box-token", b.Token.Value())
	require.Equal(t, time.Minute, b.Heartbeat)
	require.Equal(t, 5, b.MaxCount)
	require.Equal(t, "https://him.example.org/box", b.CallbackEndpoint.String())

	sum := c.Summary()
	require.Equal(t, "kodjin,heydonto,box", sum["FHIR_SOURCES"])
	require.Equal(t, config.Redacted, sum["FHIR_KODJIN_CLIENT_SECRET"])
	require.Equal(t, config.Redacted, sum["FHIR_HEYDONTO_PASSWORD"])
	require.Equal(t, config.Redacted, sum["FHIR_BOX_TOKEN"])
	require.Equal(t, "ops@example.org", sum["FHIR_HEYDONTO_USERNAME"])
	for k, v := range sum {
		for _, secret := range []string{"kodjin-secret", "heydonto-secret", "box-token"} {
			require.NotContains(t, v, secret, "summary of %s", k)
		}
	}
}

func TestLoad_SourceErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad name", map[string]string{"FHIR_SOURCES": "Aidbox"}, `FHIR_SOURCES names must be 1 to 20 lower-case letters, digits or -, got "Aidbox"`},
		{"too long", map[string]string{"FHIR_SOURCES": strings.Repeat("a", 21)}, "FHIR_SOURCES names must be 1 to 20"},
		{"empty entry", map[string]string{"FHIR_SOURCES": "a,,b", "FHIR_A_URL": "http://a", "FHIR_B_URL": "http://b"}, `got ""`},
		{"reserved", map[string]string{"FHIR_SOURCES": "openimis"}, "FHIR_SOURCES must not name openimis"},
		{"twice", map[string]string{"FHIR_SOURCES": "a,a", "FHIR_A_URL": "http://a"}, `FHIR_SOURCES names "a" twice`},
		{"no url", map[string]string{"FHIR_SOURCES": "a"}, "FHIR_A_URL is required for every source in FHIR_SOURCES"},
		{"bad url", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "box.example.org"}, "FHIR_A_URL must be an absolute http:// or https:// URL"},
		{"url with user", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "https://u:p@box"}, "FHIR_A_URL must not carry credentials"},
		{"dialect", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_DIALECT": "r3"}, "FHIR_A_DIALECT must be one of auto, r4-criteria, r4-backport, r4b-backport, r5"},
		{"vendor", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_VENDOR": "epic"}, "FHIR_A_VENDOR must be one of"},
		{"basic needs password", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_AUTH": "basic", "FHIR_A_USERNAME": "u"}, "FHIR_A_PASSWORD is required when FHIR_A_AUTH is basic"},
		{"bearer needs token", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_AUTH": "bearer"}, "FHIR_A_TOKEN is required when FHIR_A_AUTH is bearer"},
		{"login needs url", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_AUTH": "login", "FHIR_A_USERNAME": "u", "FHIR_A_PASSWORD": "p"}, "FHIR_A_LOGIN_URL is required when FHIR_A_AUTH is login"},
		{"client credentials", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_AUTH": "client-credentials", "FHIR_A_CLIENT_ID": "c"}, "FHIR_A_CLIENT_SECRET is required when FHIR_A_AUTH is client-credentials"},
		{"forgotten auth", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_PASSWORD": "p"}, "FHIR_A_PASSWORD is set but FHIR_A_AUTH is none, which does not use it"},
		{"resource", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_RESOURCE": "claim-response"}, "FHIR_A_RESOURCE must be a FHIR resource type"},
		{"bare criteria", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_CRITERIA": "ClaimResponse"}, "FHIR_A_CRITERIA must be a search on ClaimResponse in the form ClaimResponse?param=value"},
		{"topic", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_TOPIC": "claim-response"}, "FHIR_A_TOPIC must be the absolute canonical URL"},
		{"content", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_CONTENT": "full"}, "FHIR_A_CONTENT must be one of auto, full-resource, id-only, empty"},
		{"heartbeat", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_HEARTBEAT": "1500ms"}, "FHIR_A_HEARTBEAT must be a duration of whole seconds"},
		{"max count", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_MAX_COUNT": "0"}, "FHIR_A_MAX_COUNT must be a whole number from 1 to 1000"},
		{"subscription", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_SUBSCRIPTION": "on"}, "FHIR_A_SUBSCRIPTION must be one of manage, off"},
		{"nothing brings claims", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_SUBSCRIPTION": "off", "FHIR_A_POLL_INTERVAL": "0"}, "FHIR_A_POLL_INTERVAL must not be 0 when FHIR_A_SUBSCRIPTION is off"},
		{"poll", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_POLL_INTERVAL": "10ms"}, "FHIR_A_POLL_INTERVAL must be 0 (disabled) or a duration of at least 1s"},
		{"path style", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_PATH_STYLE": "snake"}, "FHIR_A_PATH_STYLE must be one of fhir, kebab-lower"},
		{"search sets own", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_SEARCH": "_count=5"}, "FHIR_A_SEARCH must not set _count"},
		{"search syntax", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_SEARCH": "a=%zz"}, "FHIR_A_SEARCH must be search parameters"},
		{"callback", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_CALLBACK_ENDPOINT": "/mediator/fhir/a"}, "FHIR_A_CALLBACK_ENDPOINT must be an absolute http:// or https:// URL"},
		{"code system", map[string]string{"FHIR_SOURCES": "a", "FHIR_A_URL": "http://a", "FHIR_A_CLAIM_CODE_SYSTEM": "claim-code"}, "FHIR_A_CLAIM_CODE_SYSTEM must be an absolute URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := validEnv()
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := load(env)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLoad_SourceErrorsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	env := validEnv()
	env["FHIR_SOURCES"] = "a"
	env["FHIR_A_URL"] = "not a url"
	env["FHIR_A_PASSWORD"] = "pw-in-the-wrong-place"
	env["FHIR_A_TOKEN"] = "token-in-the-wrong-place"
	env["FHIR_A_CLIENT_SECRET"] = "secret-in-the-wrong-place"
	_, err := load(env)
	require.Error(t, err)
	require.Contains(t, err.Error(), "FHIR_A_TOKEN is set but FHIR_A_AUTH is none")
	for _, s := range []string{"pw-in-the-wrong-place", "token-in-the-wrong-place", "secret-in-the-wrong-place"} {
		require.NotContains(t, err.Error(), s)
	}
}

// The README documents every per-source variable as FHIR_<N>_<SUFFIX>, and
// .env.example shows them.
func TestReadme_DocumentsEverySourceVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	example, err := os.ReadFile("../.env.example")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`FHIR_<N>_([A-Z_]+)`").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	for _, v := range config.SourceVariables {
		require.True(t, documented[v.Name], "README lacks FHIR_<N>_%s", v.Name)
		delete(documented, v.Name)
		require.Regexp(t, "(?m)^#?FHIR_[A-Z0-9_]+_"+v.Name+"=", string(example), ".env.example lacks FHIR_<N>_%s", v.Name)
	}
	require.Empty(t, documented, "README documents source variables the code does not read")
}
