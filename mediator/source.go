package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// Source is a FHIR server besides openIMIS that the mediator takes claim
// outcomes from (spec §8; docs/upstreams/fhir-subscriptions.md). cmd builds
// one per FHIR_SOURCES name.
type Source struct {
	// Name is the source's name: its callback is /mediator/fhir/<Name>, its
	// claims are keyed by it.
	Name string
	// Client talks to the server.
	Client *fhir.Client
	// Dialect is the subscription model, "" to read it from the server's
	// CapabilityStatement (FHIR_<N>_DIALECT=auto).
	Dialect fhir.Dialect
	// Resource is the resource type that carries a claim outcome. Defaults
	// to ClaimResponse.
	Resource string
	// ClaimCodeSystem is the identifier system of the human claim code;
	// empty: the first identifier that is not a UUID.
	ClaimCodeSystem string

	// ManageSubscription makes the mediator create, renew and repair its
	// subscription on the server (FHIR_<N>_SUBSCRIPTION=manage).
	ManageSubscription bool
	// Criteria is the R4 criteria (FHIR_<N>_CRITERIA). Defaults to
	// "<Resource>?".
	Criteria string
	// Content is the notification content asked for: auto, full-resource,
	// id-only or empty (FHIR_<N>_CONTENT). On R4 criteria, empty means no
	// payload (pings) and anything else a payload of application/fhir+json.
	Content string
	// Endpoint is the absolute callback URL the server calls.
	Endpoint string
	// Auth names how the client authenticates (FHIR_<N>_AUTH: none, basic,
	// bearer, login, client-credentials), for the preflight check's fixes.
	// Defaults to none.
	Auth string

	// Topic is the SubscriptionTopic canonical of a topic dialect
	// (FHIR_<N>_TOPIC); empty: the one topic the server's
	// CapabilityStatement advertises.
	Topic string
	// Filters are the topic's filter criteria (FHIR_<N>_FILTER): sent as
	// written by the backport dialects, split into filterBy entries by R5
	// (fhir.SubscriptionSpec).
	Filters []string
	// Heartbeat, NotifyTimeout and MaxCount are asked of a topic
	// subscription (FHIR_<N>_HEARTBEAT, _NOTIFY_TIMEOUT, _MAX_COUNT); the
	// server's stored values are the ones the mediator then relies on
	// (docs/upstreams/fhir-subscriptions.md trap 16). Zero leaves them to
	// the server.
	Heartbeat, NotifyTimeout time.Duration
	MaxCount                 int

	// PollInterval is the catch-up search period; 0 disables it.
	PollInterval time.Duration
	// Search holds extra parameters of the catch-up search.
	Search url.Values
}

// sourceSettingPrefix namespaces a source's store settings:
// source/<name>/<setting>.
func sourceSetting(name, setting string) string { return "source/" + name + "/" + setting }

// jsonSetting reads a value stored as JSON in a setting; ok is false when
// the setting is absent or empty, and when it cannot be read: such a value
// is started again rather than failing for ever, with unreadable logged as
// a warning when not "".
func jsonSetting[T any](ctx context.Context, store storetype.Store, setting, unreadable string) (v T, ok bool, err error) {
	raw, ok, err := store.Setting(ctx, setting)
	if err != nil || !ok || raw == "" {
		return v, false, err
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		if unreadable != "" {
			zerolog.Ctx(ctx).Warn().Err(err).Str("setting", setting).Msg(unreadable)
		}
		var zero T
		return zero, false, nil
	}
	return v, true, nil
}

// setJSONSetting stores v as JSON in a setting.
func setJSONSetting(ctx context.Context, store storetype.Store, setting string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return store.SetSetting(ctx, setting, string(b))
}

// timeSetting reads a time stored in a setting (RFC 3339); zero when the
// setting is absent or empty. A value that is not a time is an error
// wrapping the *time.ParseError.
func timeSetting(ctx context.Context, store storetype.Store, setting string) (time.Time, error) {
	v, ok, err := store.Setting(ctx, setting)
	if err != nil || !ok || v == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the setting %s %q: %w", setting, v, err)
	}
	return t, nil
}

// Source subscription states, as /ready and /metrics report them.
const (
	sourceStateStarting    = "starting"
	sourceStateRequested   = "requested"
	sourceStateActive      = "active"
	sourceStateError       = "error"
	sourceStateOff         = "off"
	sourceStateFailing     = "failing"
	sourceStatePollingOnly = "polling-only"
	sourceStateDisabled    = "disabled"
)

// sourceStates lists every state, for the metric.
var sourceStates = []string{sourceStateStarting, sourceStateRequested, sourceStateActive, sourceStateError,
	sourceStateOff, sourceStateFailing, sourceStatePollingOnly, sourceStateDisabled}

// source is a Source at run time: its options and what the mediator knows
// of it.
type source struct {
	Source
	log zerolog.Logger

	mu      sync.Mutex
	state   string
	problem string
	dialect fhir.Dialect // detected or configured; "" before detection

	lastPoll atomic.Int64 // start of the last complete catch-up search (Unix ns)
	// handshaken is the id of the last subscription whose handshake the
	// callback answered: its server activates it (trap 9).
	handshaken atomic.Value
	lastHeard  atomic.Int64 // last notification of any kind (Unix ns)
	// silent is set while the server says the subscription is active but
	// nothing reaches the callback (the watchdog), cleared by the next
	// notification.
	silent atomic.Bool

	// trackMu serialises this process's updates of the event tracking
	// setting (source/<n>/events).
	trackMu sync.Mutex
	// caps are the server's capabilities once read (detection, topics).
	caps *fhir.Capabilities
}

// sources are the FHIR sources by name.
type sources struct {
	byName map[string]*source
	store  storetype.Store
	log    zerolog.Logger
	now    func() time.Time
}

func newSources(list []Source, store storetype.Store, log zerolog.Logger, now func() time.Time) (*sources, error) {
	s := &sources{byName: map[string]*source{}, store: store, log: log, now: now}
	for _, src := range list {
		switch {
		case src.Name == "" || src.Name == "openimis":
			return nil, fmt.Errorf("mediator: source name %q is not usable", src.Name)
		case s.byName[src.Name] != nil:
			return nil, fmt.Errorf("mediator: source %q twice", src.Name)
		case src.Client == nil:
			return nil, fmt.Errorf("mediator: source %q has no client", src.Name)
		case src.Dialect != "" && !src.Dialect.Valid():
			return nil, fmt.Errorf("mediator: source %q: unknown dialect %q", src.Name, src.Dialect)
		}
		if src.Resource == "" {
			src.Resource = "ClaimResponse"
		}
		if src.Criteria == "" {
			src.Criteria = src.Resource + "?"
		}
		state := sourceStateStarting
		if !src.ManageSubscription {
			state = sourceStatePollingOnly
		}
		s.byName[src.Name] = &source{
			Source: src, state: state, dialect: src.Dialect,
			log: log.With().Str("source", src.Name).Logger(),
		}
	}
	return s, nil
}

// get returns the named source, or nil.
func (s *sources) get(name string) *source {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

// names returns the source names, sorted.
func (s *sources) names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// setState records the subscription state and, when not "", what is wrong.
func (src *source) setState(state, problem string) {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.state, src.problem = state, problem
}

// setProblem records what is wrong ("" when nothing is), keeping the state.
func (src *source) setProblem(problem string) {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.problem = problem
}

// setFailing records what is wrong with the subscription's upkeep, keeping
// the state unless it is still starting, which becomes failing.
func (src *source) setFailing(problem string) {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.state == sourceStateStarting {
		src.state = sourceStateFailing
	}
	src.problem = problem
}

// activate records the subscription active, with no problem, when it was
// requested or starting; any other state is kept.
func (src *source) activate() {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.state == sourceStateRequested || src.state == sourceStateStarting {
		src.state, src.problem = sourceStateActive, ""
	}
}

// status returns the subscription state and the problem, if any.
func (src *source) status() (state, problem string, dialect fhir.Dialect) {
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.state, src.problem, src.dialect
}

func (src *source) setDialect(d fhir.Dialect) {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.dialect = d
}

// heard records a notification from the source.
func (src *source) heard(now time.Time) { src.lastHeard.Store(now.UnixNano()) }

func unixTime(ns int64) time.Time {
	if ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// sourceStatus is one source's line in /ready.
type sourceStatus struct {
	Dialect      string     `json:"dialect,omitempty"`
	Subscription string     `json:"subscription"`
	Problem      string     `json:"problem,omitempty"`
	LastPoll     *time.Time `json:"last_poll,omitempty"`
	LastHeard    *time.Time `json:"last_heard,omitempty"`
}

// report returns every source's status, for /ready.
func (s *sources) report() map[string]sourceStatus {
	if s == nil || len(s.byName) == 0 {
		return nil
	}
	out := map[string]sourceStatus{}
	for name, src := range s.byName {
		state, problem, dialect := src.status()
		st := sourceStatus{Dialect: string(dialect), Subscription: state, Problem: problem}
		if t := unixTime(src.lastPoll.Load()); !t.IsZero() {
			st.LastPoll = &t
		}
		if t := unixTime(src.lastHeard.Load()); !t.IsZero() {
			st.LastHeard = &t
		}
		out[name] = st
	}
	return out
}

// detect returns the source's dialect, reading the server's
// CapabilityStatement when none was configured. It never guesses a topic
// the server does not advertise (docs/upstreams/fhir-subscriptions.md trap
// 2); what it cannot tell is an error naming FHIR_<N>_DIALECT.
func (src *source) detect(ctx context.Context) (fhir.Dialect, error) {
	if _, _, d := src.status(); d != "" {
		return d, nil
	}
	caps, err := src.capabilities(ctx)
	var de *fhir.DetectError
	switch {
	case errors.As(err, &de):
		return "", fmt.Errorf("%w; set %s (%s)", err, sourceVar(src.Name, "DIALECT"), fhir.DialectChoices)
	case err != nil:
		return "", fmt.Errorf("read the server's CapabilityStatement to detect its dialect (set %s to skip): %w", sourceVar(src.Name, "DIALECT"), err)
	}
	d, vendor, err := fhir.Detect(caps)
	if err != nil {
		return "", fmt.Errorf("%w; set %s (%s)", err, sourceVar(src.Name, "DIALECT"), fhir.DialectChoices)
	}
	src.setDialect(d)
	src.log.Info().Str("dialect", string(d)).Str("vendor", string(vendor)).Str("software", caps.SoftwareName).
		Msg("source dialect detected")
	return d, nil
}

// capabilities reads the server's CapabilityStatement once.
func (src *source) capabilities(ctx context.Context) (fhir.Capabilities, error) {
	src.mu.Lock()
	caps := src.caps
	src.mu.Unlock()
	if caps != nil {
		return *caps, nil
	}
	read, err := src.Client.Metadata(ctx)
	if err != nil {
		return fhir.Capabilities{}, err
	}
	src.mu.Lock()
	src.caps = &read
	src.mu.Unlock()
	return read, nil
}

// topic returns the topic canonical to subscribe to: the configured one,
// else the single one the CapabilityStatement advertises (docs/upstreams/fhir-subscriptions.md §5).
// None or several is an error naming FHIR_<N>_TOPIC and the candidates: a
// topic is never guessed.
func (src *source) topic(ctx context.Context) (string, error) {
	if src.Topic != "" {
		return src.Topic, nil
	}
	caps, err := src.capabilities(ctx)
	if err != nil {
		return "", fmt.Errorf("read the server's CapabilityStatement for its topics (set %s to skip): %w", sourceVar(src.Name, "TOPIC"), err)
	}
	switch len(caps.Topics) {
	case 1:
		return caps.Topics[0], nil
	case 0:
		return "", fmt.Errorf("the server advertises no SubscriptionTopic; set %s to the topic canonical that triggers on %s",
			sourceVar(src.Name, "TOPIC"), src.Resource)
	}
	return "", fmt.Errorf("the server advertises several SubscriptionTopics (%s); set %s to the one that triggers on %s",
		strings.Join(caps.Topics, ", "), sourceVar(src.Name, "TOPIC"), src.Resource)
}

// endpointForLogs is the callback URL without a password it might carry:
// for logs and /ready.
func (src *source) endpointForLogs() string {
	u, err := url.Parse(src.Endpoint)
	if err != nil {
		return "the callback (an unreadable URL)"
	}
	return u.Redacted()
}

// sourceVar is the name of a source's variable, for messages.
func sourceVar(name, suffix string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c == '-':
			b[i] = '_'
		}
	}
	return "FHIR_" + string(b) + "_" + suffix
}

// claimSource names the FHIR source whose claim claimID is, when the
// mediator reported it for a source and not for openIMIS; "" otherwise
// (and always without sources).
func (s *sources) claimSource(ctx context.Context, claimID string) (string, error) {
	if s == nil || len(s.byName) == 0 {
		return "", nil
	}
	if _, ok, err := s.store.Delivered(ctx, kindClaim, claimKey(claimID)); err != nil || ok {
		return "", err
	}
	for _, name := range s.names() {
		src := s.byName[name]
		if _, ok, err := s.store.Delivered(ctx, kindSourceClaim, mapping.SourceClaimKey(name, src.Resource, claimID)); err != nil || ok {
			if ok {
				return name, nil
			}
			return "", err
		}
	}
	return "", nil
}

// A source's locks (store locks named like its settings): one catch-up
// search of the source at a time, and one of its subscription upkeep and
// its watchdog (which repairs with the upkeep), among all the replicas
// (design §10 G5).
const (
	lockSearch = "search"
	lockUpkeep = "upkeep"
)

// sourceLockWait is how long a source job whose lock another holds waits
// before it tries again.
const sourceLockWait = time.Second

// exclusive runs f, a job of src, under the source's lock what. When another
// job holds it (on another replica: one replica works its maintenance jobs
// one at a time), the job is snoozed: it has done nothing and uses no
// attempt, and runs once the other has ended, so that a ping that came
// during a search still leads to a search after it.
//
// A store lock rather than River's unique jobs: uniqueness cannot say "one
// running and one more waiting". Counting the running state drops the
// search a ping asks for during a search; not counting it lets the search
// start beside the running one on another replica. The store's lock is a
// PostgreSQL advisory lock, which goes with the session of the replica
// holding it (a replica that dies leaves no lease to expire, and an hour's
// search none to renew); on SQLite, which one process works, it is the
// process's own.
func (s *sources) exclusive(ctx context.Context, src *source, what string, f func() error) error {
	unlock, ok, err := s.store.TryLock(ctx, sourceSetting(src.Name, what))
	if err != nil {
		return err
	}
	if !ok {
		zerolog.Ctx(ctx).Debug().Str("lock", what).Msg("another replica runs this job of the source; waiting for it to end")
		return river.JobSnooze(sourceLockWait)
	}
	defer unlock()
	return f()
}

// periodicJobs are each source's periodic jobs: its catch-up search every
// PollInterval and, when the mediator manages its subscription, the upkeep
// (every check, or every poll interval when that is shorter: an R4
// criteria subscription has no heartbeat to miss, spec §8) and the
// watchdog of topic dialects (missed events and silence; it does nothing
// for the others).
func (s *sources) periodicJobs(check, watchdog time.Duration) []*river.PeriodicJob {
	var out []*river.PeriodicJob
	for _, name := range s.names() {
		src := s.byName[name]
		if src.PollInterval > 0 {
			out = append(out, river.NewPeriodicJob(river.PeriodicInterval(src.PollInterval),
				func() (river.JobArgs, *river.InsertOpts) { return sourceCatchupArgs{Source: name}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
		}
		if !src.ManageSubscription {
			continue
		}
		every := check
		if src.PollInterval > 0 {
			every = min(every, src.PollInterval)
		}
		out = append(out,
			river.NewPeriodicJob(river.PeriodicInterval(every),
				func() (river.JobArgs, *river.InsertOpts) { return sourceSubscriptionArgs{Source: name}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
		// The watchdog watches topic subscriptions only: none for a
		// source configured r4-criteria (an auto one may detect a topic
		// dialect).
		if src.Dialect == "" || src.Dialect.Topic() {
			out = append(out, river.NewPeriodicJob(river.PeriodicInterval(watchdog),
				func() (river.JobArgs, *river.InsertOpts) { return sourceWatchdogArgs{Source: name}, nil }, nil))
		}
	}
	return out
}
