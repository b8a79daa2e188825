package mediator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator"
	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

const (
	mediatorUser = "openimis-caller"
	mediatorPass = "callback-s3cret"
	imisUser     = "mediator-api"
	imisPass     = "imis-s3cret"
	chtPass      = "cht-s3cret"

	fixtureClaimUUID   = "ae580700-0277-4c98-adab-d98c0f7e681b"
	fixtureInsureeUUID = "76aca309-f8cf-4890-8f2e-b416d78de00b"
)

// testBundle is one mediator wired to fresh fake upstreams and a SQLite store
// in a temporary directory.
type testBundle struct {
	cht   *chttest.Server
	him   *openhimtest.Server
	dbURL string
	logs  *syncBuffer
	m     *mediator.Mediator
	oi    *openimistest.Server
	opts  mediator.Options
	srv   *httptest.Server
	store storetype.Store
	// level is the log level OpenHIM runtime configuration last set.
	level *logLevel
	// wrapStore, when set, wraps the store at each start.
	wrapStore func(storetype.Store) storetype.Store
}

// logLevel records the level the mediator sets through Options.SetLogLevel.
type logLevel struct{ v atomic.Int32 }

func (l *logLevel) set(level zerolog.Level) { l.v.Store(int32(level)) }
func (l *logLevel) get() zerolog.Level      { return zerolog.Level(l.v.Load()) }

type setupOpts struct {
	claimSubscriptions bool
	// newerCore makes the fake openIMIS answer a wrong password 401, as
	// cores after 24.10 do.
	newerCore bool
	// openimisLocation is the fake openIMIS server's local time zone.
	openimisLocation      *time.Location
	questionnaireResponse bool
	edit                  func(*mediator.Options)
	// seed runs on the fake openIMIS before the mediator starts.
	seed func(*openimistest.Server)
	// openhim, when set, puts a fake OpenHIM core with these options in
	// front of the mediator.
	openhim *openhimtest.Options
	// chtTransport, when set, carries the mediator's requests to the CHT.
	chtTransport http.RoundTripper
	// wrapStore, when set, wraps the store the mediator uses (fault
	// injection).
	wrapStore func(storetype.Store) storetype.Store
	// chtMaxConcurrent, when set, puts a proxy in front of the fake CHT that
	// answers 429 above that many requests in flight.
	chtMaxConcurrent int
	// dbURL, when set, is the store of another bundle: this one is its
	// replica. Default: a fresh store.
	dbURL string
}

func setup(t *testing.T, so setupOpts) *testBundle {
	t.Helper()
	b := &testBundle{
		oi: openimistest.NewServer(t, openimistest.Options{
			Username: imisUser, Password: imisPass,
			ClaimSubscriptions: so.claimSubscriptions, QuestionnaireResponse: so.questionnaireResponse,
			NewerCore: so.newerCore, Location: so.openimisLocation,
		}),
		cht:   chttest.NewServer(t, chttest.Options{Password: chtPass, MaxConcurrent: so.chtMaxConcurrent}),
		dbURL: so.dbURL,
		logs:  &syncBuffer{},
		level: &logLevel{},
	}
	if b.dbURL == "" {
		b.dbURL = storetest.DatabaseURL(t)
	}
	if so.seed != nil {
		so.seed(b.oi)
	}
	b.srv = httptest.NewUnstartedServer(nil)
	t.Cleanup(b.srv.Close)

	metrics := mediator.NewMetrics()
	limits := map[string]*mediator.UpstreamLimit{"openimis": mediator.NewUpstreamLimit(64), "cht": mediator.NewUpstreamLimit(64)}
	oi, err := openimis.New(openimis.Options{
		Transport: metrics.Transport("openimis", limits["openimis"].Transport(nil)),
		FHIRURL:   b.oi.FHIRURL(), Username: imisUser, Password: imisPass,
		Timeout: 5 * time.Second, RateLimitPause: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	ch, err := cht.New(cht.Options{
		Transport: metrics.Transport("cht", limits["cht"].Transport(so.chtTransport)),
		URL:       b.cht.URL, Username: chttest.DefaultUsername, Password: chtPass, Timeout: 5 * time.Second,
		AuthCooldown: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	b.opts = mediator.Options{
		OpenIMIS:         oi,
		CHT:              ch,
		SetLogLevel:      b.level.set,
		Username:         mediatorUser,
		Password:         mediatorPass,
		CallbackEndpoint: "http://" + b.srv.Listener.Addr().String() + "/mediator/claim-response",
		PlaceID:          chttest.DefaultPlaceID,
		UpstreamTimeout:  5 * time.Second,
		RetryBase:        20 * time.Millisecond,
		RetryMax:         200 * time.Millisecond,
		FetchInterval:    20 * time.Millisecond,
		Metrics:          metrics,
		UpstreamLimits:   limits,
	}
	b.level.set(zerolog.DebugLevel)
	b.opts.Logger = zerolog.New(io.MultiWriter(b.logs, zerolog.NewTestWriter(t))).With().Timestamp().Logger().
		Hook(zerolog.HookFunc(func(e *zerolog.Event, level zerolog.Level, _ string) {
			if level < b.level.get() {
				e.Discard() // below the level OpenHIM set
			}
		}))
	reg, err := openhim.PrepareRegistration(chtopenimis.OpenHIMMediatorJSON,
		&url.URL{Scheme: "http", Host: b.srv.Listener.Addr().String()},
		mediator.RuntimeConfig("debug", 5*time.Second, 0))
	require.NoError(t, err)
	b.opts.Registration = reg
	if so.openhim != nil {
		b.him = openhimtest.NewServer(t, *so.openhim)
		b.opts.OpenHIM, err = openhim.New(openhim.Options{
			APIURL: b.him.URL, Username: openhimtest.RootEmail, Password: openhimtest.RootPassword,
			Transport: b.him.Client().Transport,
		})
		require.NoError(t, err)
		b.opts.HeartbeatInterval = 50 * time.Millisecond
	}
	if so.edit != nil {
		so.edit(&b.opts)
	}
	b.wrapStore = so.wrapStore
	b.start(t)
	b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.handler().ServeHTTP(w, r) })
	b.srv.Start()
	return b
}

var handlerMu sync.Mutex

func (b *testBundle) handler() http.Handler {
	handlerMu.Lock()
	defer handlerMu.Unlock()
	return b.m.Handler()
}

// start opens the store and starts a mediator on it.
func (b *testBundle) start(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, b.dbURL)
	require.NoError(t, err)
	opts := b.opts
	opts.Store = st
	if b.wrapStore != nil {
		opts.Store = b.wrapStore(st)
	}
	m, err := mediator.New(opts)
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	handlerMu.Lock()
	b.m, b.store = m, st
	handlerMu.Unlock()
	t.Cleanup(func() { b.stop(t) })
}

// stop stops the mediator and closes its store, as a graceful shutdown does.
func (b *testBundle) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.m.Stop(ctx)
	_ = b.store.Close()
}

// restart stops the mediator and starts a new one on the same store file.
func (b *testBundle) restart(t *testing.T) {
	t.Helper()
	b.stop(t)
	b.start(t)
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", name))
	require.NoError(t, err)
	return body
}

// claimBody returns the fixture ClaimResponse with the given claim and
// insuree UUIDs and created date.
func claimBody(t testing.TB, claimUUID, insureeUUID, created string) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(readFixture(t, "openimis/test_claimResponse.json"), &doc))
	doc["id"] = claimUUID
	doc["identifier"].([]any)[0].(map[string]any)["value"] = claimUUID
	doc["created"] = created
	p := doc["patient"].(map[string]any)
	p["reference"] = "Patient/" + insureeUUID
	p["identifier"].(map[string]any)["value"] = insureeUUID
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return out
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *testBundle) post(t testing.TB, path, contentType string, body []byte, auth bool) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.SetBasicAuth(mediatorUser, mediatorPass)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

func (b *testBundle) postClaim(t testing.TB, body []byte) response {
	t.Helper()
	return b.post(t, "/mediator/claim-response", "application/json", body, true)
}

// waitDelivered waits until the claim's job has recorded its delivery.
func (b *testBundle) waitDelivered(t *testing.T, claimUUID string) string {
	t.Helper()
	var result string
	require.Eventually(t, func() bool {
		r, ok, err := b.store.Delivered(context.Background(), "claim", strings.ToLower(claimUUID))
		require.NoError(t, err)
		result = r
		return ok
	}, 15*time.Second, 10*time.Millisecond, "claim %s not delivered", claimUUID)
	return result
}

// waitLog waits until the mediator's log holds every one of parts.
func (b *testBundle) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		logs := b.logs.String()
		for _, p := range parts {
			if !strings.Contains(logs, p) {
				return false
			}
		}
		return true
	}, 15*time.Second, 10*time.Millisecond, "log lines %q", parts)
}

// reportsFor returns the CHT reports about a claim.
func (b *testBundle) reportsFor(claimUUID string) []chttest.Report {
	var out []chttest.Report
	for _, r := range b.cht.Reports() {
		if r.Fields["op_claim_uuid"] == claimUUID {
			out = append(out, r)
		}
	}
	return out
}

// peopleFor returns the CHT persons of an insuree.
func (b *testBundle) peopleFor(insureeUUID string) []chttest.Person {
	var out []chttest.Person
	for _, p := range b.cht.People() {
		if p.Doc["openimis_id"] == insureeUUID {
			out = append(out, p)
		}
	}
	return out
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
