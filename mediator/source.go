package mediator

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
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
	// Topic is the topic canonical of topic-based dialects
	// (FHIR_<N>_TOPIC); empty: the one the server advertises.
	Topic string
	// Auth names how the client authenticates (FHIR_<N>_AUTH: none, basic,
	// bearer, login, client-credentials), for the preflight check's fixes.
	// Defaults to none.
	Auth string

	// PollInterval is the catch-up search period; 0 disables it.
	PollInterval time.Duration
	// Search holds extra parameters of the catch-up search.
	Search url.Values
}

// sourceSettingPrefix namespaces a source's store settings:
// source/<name>/<setting>.
func sourceSetting(name, setting string) string { return "source/" + name + "/" + setting }

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

	lastPoll  atomic.Int64 // start of the last complete catch-up search (Unix ns)
	lastHeard atomic.Int64 // last notification of any kind (Unix ns)
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
	caps, err := src.Client.Metadata(ctx)
	if err != nil {
		return "", fmt.Errorf("read the server's CapabilityStatement to detect its dialect (set %s to skip): %w", sourceVar(src.Name, "DIALECT"), err)
	}
	d, vendor, err := fhir.Detect(caps)
	if err != nil {
		return "", fmt.Errorf("detect the dialect (set %s): %w", sourceVar(src.Name, "DIALECT"), err)
	}
	src.setDialect(d)
	src.log.Info().Str("dialect", string(d)).Str("vendor", string(vendor)).Str("software", caps.SoftwareName).
		Msg("source dialect detected")
	return d, nil
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
