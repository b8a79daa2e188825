package mediator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator"
	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func (b *testBundle) ready(t *testing.T) (int, map[string]any) {
	t.Helper()
	resp, err := b.srv.Client().Get(b.srv.URL + "/ready")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func (b *testBundle) waitRegistered(t *testing.T) openhimtest.Mediator {
	t.Helper()
	var med openhimtest.Mediator
	require.Eventually(t, func() bool {
		var ok bool
		med, ok = b.him.Mediator(b.opts.Registration.URN)
		return ok && len(b.him.Heartbeats()) > 0
	}, 15*time.Second, 10*time.Millisecond)
	return med
}

func TestOpenHIM_RegistersAndHeartbeats(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	med := b.waitRegistered(t)
	require.Equal(t, b.opts.Registration.Version, med.Version)
	regs := b.him.Registrations()
	require.Equal(t, http.StatusCreated, regs[0].Status)

	// The endpoint and routes name this mediator's address.
	endpoints := med.Doc["endpoints"].([]any)
	host := b.srv.Listener.Addr().String()
	require.Equal(t, host[:strings.LastIndex(host, ":")], endpoints[0].(map[string]any)["host"])

	require.Eventually(t, func() bool { return len(b.him.Heartbeats()) >= 3 }, 15*time.Second, 10*time.Millisecond)
	hbs := b.him.Heartbeats()
	require.True(t, hbs[0].Config, "the first heartbeat asks for the configuration")
	for _, hb := range hbs {
		var uptime float64
		require.NoError(t, json.Unmarshal(hb.Uptime, &uptime), "uptime is a JSON number: %s", hb.Uptime)
		require.GreaterOrEqual(t, uptime, 0.0)
		require.Equal(t, http.StatusOK, hb.Status)
	}
	status, body := b.ready(t)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "registered", body["openhim"])
}

func TestOpenHIM_SameVersionChangesNothingHigherReplaces(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	first := b.waitRegistered(t)

	b.restart(t)
	require.Eventually(t, func() bool { return len(b.him.Registrations()) == 2 }, 15*time.Second, 10*time.Millisecond)
	again, _ := b.him.Mediator(b.opts.Registration.URN)
	require.Equal(t, withoutCoreFields(first.Doc), withoutCoreFields(again.Doc), "same version: nothing changed")

	// A new release of the registration document.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b.opts.Registration.Doc, &doc))
	doc["version"], doc["description"] = "99.0.0", "a new release"
	b.opts.Registration.Doc, _ = json.Marshal(doc)
	b.opts.Registration.Version = "99.0.0"
	b.restart(t)
	require.Eventually(t, func() bool {
		m, _ := b.him.Mediator(b.opts.Registration.URN)
		return m.Version == "99.0.0" && m.Doc["description"] == "a new release"
	}, 15*time.Second, 10*time.Millisecond)
}

func TestOpenHIM_WarnsWhenCoreKeepsAnOlderRegistration(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	require.NotContains(t, b.logs.String(), "OpenHIM keeps another registration")

	// The mediator moved (MEDIATOR_URL), but the document's version did not:
	// core answers 201 and keeps the old endpoint.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b.opts.Registration.Doc, &doc))
	for _, e := range doc["endpoints"].([]any) {
		e.(map[string]any)["host"] = "moved.example.org"
	}
	b.opts.Registration.Doc, _ = json.Marshal(doc)
	b.restart(t)
	require.Eventually(t, func() bool { return len(b.him.Registrations()) == 2 }, 15*time.Second, 10*time.Millisecond)
	b.waitLog(t, "OpenHIM keeps another registration")
	require.Contains(t, b.logs.String(), "moved.example.org")
}

func TestOpenHIM_WarnsWhenCoreKeepsAnotherScheme(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	// MEDIATOR_URL went from http to https on the same host and port.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b.opts.Registration.Doc, &doc))
	for _, e := range doc["endpoints"].([]any) {
		e.(map[string]any)["secured"] = !e.(map[string]any)["secured"].(bool)
	}
	b.opts.Registration.Doc, _ = json.Marshal(doc)
	b.restart(t)
	b.waitLog(t, "OpenHIM keeps another registration")
}

// withoutCoreFields drops what core maintains itself (_lastHeartbeat…).
func withoutCoreFields(doc map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range doc {
		if k != "_lastHeartbeat" && k != "_uptime" {
			out[k] = v
		}
	}
	return out
}

func TestOpenHIM_ConfigChangeTakesEffect(t *testing.T) {
	t.Parallel()
	// Core sends a console change once, in the answer to the next
	// heartbeat; a change saved while a heartbeat is being answered is only
	// seen by the periodic full request (docs/upstreams/openhim.md trap 6), which is short here.
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}, edit: func(o *mediator.Options) { o.ConfigRefresh = 300 * time.Millisecond }})
	b.waitRegistered(t)
	require.Equal(t, zerolog.DebugLevel, b.level.get())
	// The whole config comes back at every periodic request: a setting is
	// logged once, when it changes.
	require.Eventually(t, func() bool {
		n := 0
		for _, hb := range b.him.Heartbeats() {
			if hb.ConfigSent {
				n++
			}
		}
		return n >= 3
	}, 15*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, strings.Count(b.logs.String(), `"key":"logLevel","value":"debug"`), b.logs.String())
	require.Equal(t, 1, strings.Count(b.logs.String(), `"key":"upstreamTimeoutSeconds","value":5,`), b.logs.String())

	require.NoError(t, b.him.SetConfig(b.opts.Registration.URN, map[string]any{
		"logLevel": "warn", "upstreamTimeoutSeconds": 7.0, "claimPollIntervalSeconds": 0.0,
	}))
	require.Eventually(t, func() bool { return b.level.get() == zerolog.WarnLevel }, 15*time.Second, 10*time.Millisecond)
	var sent bool
	for _, hb := range b.him.Heartbeats() {
		sent = sent || hb.ConfigSent
	}
	require.True(t, sent, "the config came back in a heartbeat answer")
	require.Equal(t, 1, strings.Count(b.logs.String(), `"key":"logLevel","value":"warn"`),
		"logged before the new level silences it")

	// Info lines are now dropped: a claim is accepted without its log line.
	before := strings.Count(b.logs.String(), `"message":"claim received"`)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitDelivered(t, fixtureClaimUUID)
	require.Equal(t, before, strings.Count(b.logs.String(), `"message":"claim received"`))
}

func TestOpenHIM_DownAtStartDoesNotStopClaims(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.him.SetDown(http.StatusServiceUnavailable)
	// Restart so that the core is down from the start.
	b.restart(t)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitDelivered(t, fixtureClaimUUID)
	require.Eventually(t, func() bool {
		status, body := b.ready(t)
		return status == http.StatusOK && body["openhim"] == "registering"
	}, 15*time.Second, 10*time.Millisecond)

	b.him.SetDown(0)
	require.Eventually(t, func() bool {
		_, body := b.ready(t)
		return body["openhim"] == "registered"
	}, 30*time.Second, 20*time.Millisecond)
}

// A user outside OpenHIM's admin group is refused with 403 (docs/upstreams/openhim.md trap 9): the
// mediator says what to fix, keeps trying, and claims still flow.
func TestOpenHIM_NotAnAdminIsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.him.AddUser(openhimtest.User{Email: "clerk@openhim.org", Password: "clerk-pass", Groups: []string{"clerk"}})
	b.opts.OpenHIM = mustOpenHIM(t, b.him, "clerk@openhim.org", "clerk-pass")
	b.restart(t)
	b.waitLog(t, "must be those of an OpenHIM user in the admin group")
	require.Contains(t, b.logs.String(), `"level":"error"`)
	require.Contains(t, b.logs.String(), "is not an admin")
	require.NotContains(t, b.logs.String(), "clerk-pass")
	_, body := b.ready(t)
	require.Equal(t, "registering", body["openhim"])
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitDelivered(t, fixtureClaimUUID)
}

// OpenHIM refuses a registration whose config holds a value its configDefs
// do not list (docs/upstreams/openhim.md trap 4): every LOG_LEVEL the mediator accepts is one.
func TestOpenHIM_RegistrationTakesEveryLogLevel(t *testing.T) {
	t.Parallel()
	him := openhimtest.NewServer(t, openhimtest.Options{})
	client := mustOpenHIM(t, him, openhimtest.RootEmail, openhimtest.RootPassword)
	for _, level := range config.LogLevels {
		reg, err := openhim.PrepareRegistration(chtopenimis.OpenHIMMediatorJSON, nil, mediator.RuntimeConfig(level, 30*time.Second, time.Minute))
		require.NoError(t, err)
		require.NoError(t, client.Register(t.Context(), reg.Doc), level)
	}
}

func mustOpenHIM(t *testing.T, him *openhimtest.Server, user, pass string) *openhim.Client {
	t.Helper()
	c, err := openhim.New(openhim.Options{APIURL: him.URL, Username: user, Password: pass, Transport: him.Client().Transport})
	require.NoError(t, err)
	return c
}

func TestOpenHIM_TokenFallbackForOldCores(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{DisableBasic: true}})
	b.waitRegistered(t)
	signed := 0
	for _, r := range b.him.Requests() {
		if r.Header.Get("auth-token") != "" {
			require.Empty(t, r.Header.Get("Authorization"), "never Basic and token together")
			signed++
		}
	}
	require.Positive(t, signed, "registered and heartbeating with the token scheme")
}

func TestOpenHIM_EnvelopeForEveryAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	good := claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")
	feedback := feedbackBody(t, "env-1", "claimUUID", "insureeUUID", "76aca309-f8cf-4890-8f2e-b416d78de00b")
	tests := []struct {
		name, path, contentType string
		body                    []byte
		routeAuth               bool
		status                  int
		txStatus                string
	}{
		{"Accepted", "/mediator/claim-response", "application/json", good, true, http.StatusOK, "Successful"},
		{"Duplicate", "/mediator/claim-response", "application/json", good, true, http.StatusOK, "Successful"},
		{"FeedbackAccepted", "/mediator/claims-feedback", "application/json", feedback, true, http.StatusAccepted, "Successful"},
		{"BadBody", "/mediator/claim-response", "application/json", []byte(`{}`), true, http.StatusBadRequest, "Completed"},
		{"NoCredentials", "/mediator/claim-response", "application/json", good, false, http.StatusUnauthorized, "Completed"},
		{"WrongContentType", "/mediator/claims-feedback", "text/plain", feedback, true, http.StatusUnsupportedMediaType, "Completed"},
		{"TooLarge", "/mediator/claims-feedback", "application/json", []byte(`{"x":"` + strings.Repeat("y", 70<<10) + `"}`), true, http.StatusRequestEntityTooLarge, "Completed"},
		{"UnknownRoute", "/mediator/nothing", "application/json", good, true, http.StatusNotFound, "Completed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := openhimtest.ForwardRequest{
				URL: b.srv.URL, Method: http.MethodPost, Path: tt.path, Body: tt.body, ClientID: "openimis",
				Header: http.Header{"Content-Type": {tt.contentType}, "Authorization": {"Basic c29tZW9uZTplbHNl"}},
			}
			if tt.routeAuth {
				req.RouteUsername, req.RoutePassword = mediatorUser, mediatorPass
			}
			res, err := b.him.Forward(context.Background(), req)
			require.NoError(t, err)
			require.True(t, res.IsEnvelope, "answered in the envelope: %s", res.MediatorBody)
			require.Empty(t, res.Problems)
			require.Equal(t, tt.status, res.Status)
			require.Equal(t, tt.txStatus, res.TransactionStatus)
			require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"), res.Header.Get("Content-Type"))
			require.Equal(t, b.opts.Registration.URN, res.Envelope.URN)
			require.True(t, json.Valid(res.Body), "the client gets the JSON answer: %s", res.Body)
			// The transaction id reached the logs of that request.
			require.Contains(t, b.logs.String(), `"openhim_transaction_id":"`+res.TransactionID+`"`)
		})
	}

	// Without OpenHIM's header, the answer is plain JSON.
	resp := b.postClaim(t, good)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	_, _ = io.Discard.Write(resp.body)
}

// withEnvironment prepares the registration again with other runtime
// settings in the environment (LOG_LEVEL, UPSTREAM_TIMEOUT,
// CLAIM_POLL_INTERVAL), as a changed deployment would at its next start.
func (b *testBundle) withEnvironment(t *testing.T, level string, timeout, poll time.Duration) {
	t.Helper()
	reg, err := openhim.PrepareRegistration(chtopenimis.OpenHIMMediatorJSON,
		&url.URL{Scheme: "http", Host: b.srv.Listener.Addr().String()}, mediator.RuntimeConfig(level, timeout, poll))
	require.NoError(t, err)
	b.opts.Registration = reg
}

// heldConfig is the runtime configuration core keeps for the mediator.
func (b *testBundle) heldConfig(t *testing.T) map[string]any {
	t.Helper()
	med, ok := b.him.Mediator(b.opts.Registration.URN)
	require.True(t, ok)
	return med.Config
}

// Core keeps the config of the first registration and returns it at every
// start (docs/upstreams/openhim.md trap 22): a later change in the
// environment must still take effect when nobody edited the console.
func TestOpenHIM_EnvironmentChangeTakesEffect(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	require.Equal(t, "debug", b.heldConfig(t)["logLevel"])

	b.withEnvironment(t, "warn", 7*time.Second, time.Minute)
	b.restart(t)
	require.Eventually(t, func() bool { return b.level.get() == zerolog.WarnLevel }, 15*time.Second, 10*time.Millisecond)
	// The console shows what is in force.
	require.Eventually(t, func() bool {
		cfg := b.heldConfig(t)
		return cfg["logLevel"] == "warn" && cfg["upstreamTimeoutSeconds"] == 7.0 && cfg["claimPollIntervalSeconds"] == 60.0
	}, 15*time.Second, 10*time.Millisecond)
	// And it stays so: later answers are not taken for console edits.
	n := len(b.him.Heartbeats())
	require.Eventually(t, func() bool { return len(b.him.Heartbeats()) > n+5 }, 15*time.Second, 10*time.Millisecond)
	require.Equal(t, zerolog.WarnLevel, b.level.get())
}

// A console edit wins over an unchanged environment, also after a restart;
// a variable changed after the edit wins at the next start.
func TestOpenHIM_ConsoleEditSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	require.NoError(t, b.him.SetConfig(b.opts.Registration.URN, map[string]any{
		"logLevel": "warn", "upstreamTimeoutSeconds": 5.0, "claimPollIntervalSeconds": 0.0,
	}))
	require.Eventually(t, func() bool { return b.level.get() == zerolog.WarnLevel }, 15*time.Second, 10*time.Millisecond)

	before := len(b.him.Heartbeats())
	b.restart(t)
	require.Eventually(t, func() bool { return countConfigSent(b.him.Heartbeats()[before:]) >= 1 }, 15*time.Second, 10*time.Millisecond)
	n := len(b.him.Heartbeats())
	require.Eventually(t, func() bool { return len(b.him.Heartbeats()) > n+5 }, 15*time.Second, 10*time.Millisecond)
	require.Equal(t, zerolog.WarnLevel, b.level.get(), "the console's edit still wins")
	require.Equal(t, "warn", b.heldConfig(t)["logLevel"])

	// The operator changes LOG_LEVEL and restarts: the environment wins.
	b.withEnvironment(t, "error", 5*time.Second, 0)
	b.restart(t)
	require.Eventually(t, func() bool { return b.level.get() == zerolog.ErrorLevel }, 15*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return b.heldConfig(t)["logLevel"] == "error" }, 15*time.Second, 10*time.Millisecond)
}

// Without a record of the previous registration (a store from before the
// record existed), a value core holds that differs from the environment is
// taken as a console edit, and the mediator says so.
func TestOpenHIM_UnrecordedRegistrationKeepsCoreValue(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	b.stop(t)
	st, err := store.Open(context.Background(), b.dbURL)
	require.NoError(t, err)
	require.NoError(t, st.SetSetting(context.Background(), "openhim_registered_config", ""))
	require.NoError(t, st.Close())

	b.withEnvironment(t, "info", 5*time.Second, 0)
	b.start(t)
	b.waitLog(t, "no record of registering it")
	require.Equal(t, zerolog.DebugLevel, b.level.get())
	require.Equal(t, "debug", b.heldConfig(t)["logLevel"])
}

func countConfigSent(hbs []openhimtest.Heartbeat) int {
	n := 0
	for _, hb := range hbs {
		if hb.ConfigSent {
			n++
		}
	}
	return n
}
