package config_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/config"
)

func validEnv() map[string]string {
	return map[string]string{
		"OPENIMIS_API_URL":               "https://imis.example.org",
		"OPENIMIS_USERNAME":              "Admin",
		"OPENIMIS_PASSWORD":              "imis-secret",
		"CHT_OPENIMIS_CALLBACK_ENDPOINT": "https://him.example.org/mediator/claim-response",
		"CHT_URL":                        "https://cht.example.org",
		"CHT_USERNAME":                   "interop",
		"CHT_PASSWORD":                   "cht-secret",
		"CHT_PLACE_ID":                   "3ab2d2f7-8a9e-4c8e-9d51-5b7e0c1f2a11",
		"MEDIATOR_USERNAME":              "mediator",
		"MEDIATOR_PASSWORD":              "mediator-secret",
	}
}

func load(env map[string]string) (config.Config, error) {
	v := viper.New()
	for k, val := range env {
		v.Set(k, val)
	}
	return config.Load(v)
}

func TestLoad_Defaults(t *testing.T) {
	t.Parallel()
	c, err := load(validEnv())
	require.NoError(t, err)
	require.Equal(t, 6000, c.Port)
	require.Equal(t, "/api/api_fhir_r4/", c.OpenIMISFHIRPath)
	require.Equal(t, "OP", c.CHTClaimForm)
	require.Equal(t, "sqlite://data/mediator.db", c.DatabaseURL)
	require.Equal(t, "auto", c.FeedbackResource)
	require.Equal(t, 5*time.Minute, c.ClaimPollInterval)
	require.Equal(t, 24*time.Hour, c.ClaimBackfill)
	require.Empty(t, c.ListenAddress, "every interface")
	require.Equal(t, "gregorian", c.OpenIMISCalendar)
	require.Equal(t, 30*time.Second, c.UpstreamTimeout)
	require.Equal(t, 64, c.Workers)
	require.Equal(t, "info", c.LogLevel)
	require.Equal(t, "json", c.LogFormat)
	require.Nil(t, c.OpenHIMAPIURL)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, now.Add(365*24*time.Hour), c.SubscriptionEnd.Time(now))
}

func TestLoad_Values(t *testing.T) {
	t.Parallel()
	env := validEnv()
	env["PORT"] = "7000"
	env["OPENIMIS_FHIR_PATH"] = "/fhir"
	env["CLAIM_POLL_INTERVAL"] = "0"
	env["SUBSCRIPTION_END"] = "2030-12-31T23:59:59Z"
	env["FEEDBACK_RESOURCE"] = "communication"
	env["LOG_LEVEL"] = "DEBUG"
	env["CHT_CLAIM_FORM"] = "op"
	c, err := load(env)
	require.NoError(t, err)
	require.Equal(t, 7000, c.Port)
	require.Equal(t, "/fhir/", c.OpenIMISFHIRPath)
	require.Zero(t, c.ClaimPollInterval)
	require.Equal(t, time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC), c.SubscriptionEnd.Time(time.Now()))
	require.Equal(t, "Communication", c.FeedbackResource)
	require.Equal(t, "debug", c.LogLevel)
	require.Equal(t, "OP", c.CHTClaimForm)

	env["SUBSCRIPTION_END"] = "30d"
	c, err = load(env)
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, c.SubscriptionEnd.Ahead)

	for _, addr := range []string{"127.0.0.1", "::1", "0.0.0.0", "localhost", "mediator.internal", "host-1"} {
		env["LISTEN_ADDRESS"] = addr
		c, err = load(env)
		require.NoError(t, err, addr)
		require.Equal(t, addr, c.ListenAddress)
	}
	delete(env, "LISTEN_ADDRESS")

	for _, cal := range []string{"gregorian", "bikram-sambat", "auto", "Bikram-Sambat"} {
		env["OPENIMIS_CALENDAR"] = cal
		c, err = load(env)
		require.NoError(t, err, cal)
		require.Contains(t, []string{"gregorian", "bikram-sambat", "auto"}, c.OpenIMISCalendar)
	}
	delete(env, "OPENIMIS_CALENDAR")

	for value, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "72h": 72 * time.Hour, "90m": 90 * time.Minute} {
		env["CLAIM_BACKFILL"] = value
		c, err = load(env)
		require.NoError(t, err, value)
		require.Equal(t, want, c.ClaimBackfill, value)
	}

	// Every zerolog level; a place id as CouchDB generates ids, or upper case.
	for _, level := range config.LogLevels {
		env["LOG_LEVEL"] = level
		c, err = load(env)
		require.NoError(t, err, level)
		require.Equal(t, level, c.LogLevel)
	}
	for _, id := range []string{"3ab2d2f78a9e4c8e9d515b7e0c1f2a11", "3AB2D2F7-8A9E-4C8E-9D51-5B7E0C1F2A11"} {
		env["CHT_PLACE_ID"] = id
		c, err = load(env)
		require.NoError(t, err, id)
		require.Equal(t, id, c.CHTPlaceID)
	}
}

func TestLoad_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, variable, value string
	}{
		{"MissingRequired", "CHT_URL", ""},
		{"RelativeURL", "OPENIMIS_API_URL", "imis.example.org"},
		{"URLWithCredentials", "CHT_URL", "https://u:p@cht.example.org"},
		{"BadPort", "PORT", "70000"},
		{"UnknownLogLevel", "LOG_LEVEL", "verbose"},
		{"UnknownLogFormat", "LOG_FORMAT", "xml"},
		{"BadDuration", "UPSTREAM_TIMEOUT", "soon"},
		{"TimeoutOverOpenHIM", "UPSTREAM_TIMEOUT", "60s"},
		{"TinyPollInterval", "CLAIM_POLL_INTERVAL", "10ms"},
		{"BadSubscriptionEnd", "SUBSCRIPTION_END", "tomorrow"},
		{"BadBackfill", "CLAIM_BACKFILL", "a month"},
		{"UnknownCalendar", "OPENIMIS_CALENDAR", "nepali"},
		{"ListenAddressWithPort", "LISTEN_ADDRESS", "127.0.0.1:6000"},
		{"ListenAddressURL", "LISTEN_ADDRESS", "http://localhost"},
		{"ListenAddressUnderscore", "LISTEN_ADDRESS", "my_host"},
		{"ZeroBackfill", "CLAIM_BACKFILL", "0"},
		{"NegativeBackfill", "CLAIM_BACKFILL", "-1h"},
		{"BadWorkers", "WORKERS", "0"},
		{"BadBool", "OPENHIM_TRUST_SELF_SIGNED", "maybe"},
		{"BadFeedbackResource", "FEEDBACK_RESOURCE", "Email"},
		{"BadDatabaseURL", "DATABASE_URL", "mysql://x"},
		{"BadPlaceID", "CHT_PLACE_ID", "a/b"},
		{"PlaceIDNotUUID", "CHT_PLACE_ID", "not-a-uuid"},
		{"PlaceIDDashesMisplaced", "CHT_PLACE_ID", "3ab2d2f78-a9e-4c8e-9d51-5b7e0c1f2a11"},
		{"PlaceIDNotHex", "CHT_PLACE_ID", "3ab2d2f7-8a9e-4c8e-9d51-5b7e0c1f2a1g"},
		{"OpenHIMWithoutMediatorURL", "MEDIATOR_URL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := validEnv()
			if tt.name == "OpenHIMWithoutMediatorURL" {
				env["OPENHIM_API_URL"] = "https://him.example.org:8080"
				env["OPENHIM_USERNAME"] = "root@openhim.org"
				env["OPENHIM_PASSWORD"] = "him-secret"
			}
			env[tt.variable] = tt.value
			_, err := load(env)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "\n", "one line")
			require.Contains(t, err.Error(), tt.variable)
			for _, secret := range []string{"imis-secret", "cht-secret", "mediator-secret", "him-secret"} {
				require.NotContains(t, err.Error(), secret)
			}
		})
	}
}

func TestSecret_NeverPrints(t *testing.T) {
	t.Parallel()
	c, err := load(validEnv())
	require.NoError(t, err)
	b, err := json.Marshal(c)
	require.NoError(t, err)
	printed := strings.Join([]string{string(b), fmt.Sprintf("%v %+v %#v %s", c, c, c, c.MediatorPassword)}, " ")
	summary, err := json.Marshal(c.Summary())
	require.NoError(t, err)
	printed += string(summary)
	for _, secret := range []string{"imis-secret", "cht-secret", "mediator-secret"} {
		require.NotContains(t, printed, secret)
	}
	require.Equal(t, "mediator-secret", c.MediatorPassword.Value())
}

func TestSummary_RedactsDatabasePasswords(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"postgres://mediator:db-secret@db.example.org/mediator",
		"postgres://db.example.org/mediator?password=db-secret&sslmode=require",
		"postgres://mediator:db%zzsecret@db.example.org/mediator",
	} {
		env := validEnv()
		env["DATABASE_URL"] = u
		c, err := load(env)
		require.NoError(t, err)
		require.NotContains(t, c.Summary()["DATABASE_URL"], "secret", u)
	}
}

func TestSummary_CoversEveryVariable(t *testing.T) {
	t.Parallel()
	c, err := load(validEnv())
	require.NoError(t, err)
	s := c.Summary()
	for _, v := range config.Variables {
		require.Contains(t, s, v.Name)
	}
	require.Len(t, s, len(config.Variables))
}

func TestNewViper_DotEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(path, []byte("CHT_CLAIM_FORM=XY\nWORKERS=3\n"), 0o600))
	v, err := config.NewViper(path)
	require.NoError(t, err)
	require.Equal(t, "XY", v.GetString("CHT_CLAIM_FORM"))
	require.Equal(t, "3", v.GetString("WORKERS"))

	v, err = config.NewViper(filepath.Join(dir, "missing.env"))
	require.NoError(t, err)
	require.Empty(t, v.GetString("CHT_CLAIM_FORM"))
}

func TestCheckServe_SubscriptionEndInThePast(t *testing.T) {
	t.Parallel()
	env := validEnv()
	env["SUBSCRIPTION_END"] = "2027-01-01T00:00:00Z"
	cfg, err := load(env)
	require.NoError(t, err, "the admin commands load it")
	require.NoError(t, cfg.CheckServe(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)))
	require.ErrorContains(t, cfg.CheckServe(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)), "SUBSCRIPTION_END 2027-01-01T00:00:00Z is in the past")
	env["SUBSCRIPTION_END"] = "8760h"
	cfg, err = load(env)
	require.NoError(t, err)
	require.NoError(t, cfg.CheckServe(time.Now()), "a duration is always ahead")
}

func TestLoad_RouteCredentials(t *testing.T) {
	t.Parallel()
	him := func(extra map[string]string) map[string]string {
		env := validEnv()
		env["OPENHIM_API_URL"] = "https://him.example.org:8080"
		env["OPENHIM_USERNAME"] = "mediator@example.org"
		env["OPENHIM_PASSWORD"] = "him-secret"
		env["MEDIATOR_URL"] = "http://mediator:6000"
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	c, err := load(him(map[string]string{"OPENHIM_ROUTE_USERNAME": "routes", "OPENHIM_ROUTE_PASSWORD": "route-secret"}))
	require.NoError(t, err)
	require.Equal(t, "routes", c.OpenHIMRouteUsername)
	require.Equal(t, "route-secret", c.OpenHIMRoutePassword.Value())
	require.Equal(t, config.Redacted, c.Summary()["OPENHIM_ROUTE_PASSWORD"])

	c, err = load(him(nil))
	require.NoError(t, err, "optional")
	require.Empty(t, c.OpenHIMRouteUsername)

	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"PasswordAlone", him(map[string]string{"OPENHIM_ROUTE_PASSWORD": "route-secret"}), "OPENHIM_ROUTE_USERNAME is required"},
		{"UsernameAlone", him(map[string]string{"OPENHIM_ROUTE_USERNAME": "routes"}), "OPENHIM_ROUTE_PASSWORD is required"},
		{"WithoutOpenHIM", func() map[string]string {
			env := validEnv()
			env["OPENHIM_ROUTE_USERNAME"], env["OPENHIM_ROUTE_PASSWORD"] = "routes", "route-secret"
			return env
		}(), "OPENHIM_ROUTE_USERNAME needs OPENHIM_API_URL"},
		{"SameAsMediatorPassword", him(map[string]string{"OPENHIM_ROUTE_USERNAME": "routes", "OPENHIM_ROUTE_PASSWORD": "mediator-secret"}),
			"OPENHIM_ROUTE_PASSWORD must differ from MEDIATOR_PASSWORD"},
		{"CallbackStraightToTheMediator", him(map[string]string{
			"OPENHIM_ROUTE_USERNAME": "routes", "OPENHIM_ROUTE_PASSWORD": "route-secret",
			"CHT_OPENIMIS_CALLBACK_ENDPOINT": "http://MEDIATOR:6000/mediator/claim-response",
		}), "CHT_OPENIMIS_CALLBACK_ENDPOINT must be an OpenHIM channel URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(tt.env)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "route-secret")
			require.NotContains(t, err.Error(), "mediator-secret")
		})
	}
}
