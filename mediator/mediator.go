// Package mediator connects openIMIS and the CHT: it owns the HTTP interface,
// the durable job queue and the orchestration of the claim and feedback paths.
// It talks to the systems through the typed clients of packages openimis and
// cht, translates with package mapping, and keeps state in a Store.
package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// Options configures a Mediator. Fields without a documented default are
// required.
type Options struct {
	// OpenIMIS and CHT are the clients of the two systems.
	OpenIMIS *openimis.Client
	CHT      *cht.Client
	// Store is the durable state.
	Store Store
	// Logger receives every log line. Defaults to a disabled logger.
	Logger zerolog.Logger

	// Username and Password are the Basic credentials callers of /mediator/*
	// must present. The openIMIS subscription carries them in its header.
	Username, Password string
	// CallbackEndpoint is the absolute URL openIMIS posts ClaimResponses to.
	CallbackEndpoint string
	// PlaceID is the CHT place new persons are created under.
	PlaceID string
	// ClaimForm is the CHT JSON form code of the claim report. Defaults to OP.
	ClaimForm string
	// FeedbackResource is how feedback reaches openIMIS: FeedbackAuto (the
	// default), FeedbackQuestionnaireResponse or FeedbackCommunication.
	FeedbackResource string

	// SubscriptionEnd returns the end of a subscription created at now.
	// Defaults to one year ahead.
	SubscriptionEnd func(now time.Time) time.Time
	// SubscriptionCheck is how often the subscription is checked and renewed.
	// Defaults to 1 hour.
	SubscriptionCheck time.Duration
	// UpstreamTimeout bounds one request to openIMIS or the CHT; a job may make
	// several. Defaults to 30 seconds.
	UpstreamTimeout time.Duration
	// Workers is how many jobs talk to openIMIS and the CHT at once.
	// Defaults to 8. The queue runs more jobs than that (see upstreamSlots),
	// so that their store reads and writes overlap other jobs' requests.
	Workers int
	// RetryBase and RetryMax shape the exponential backoff between attempts of
	// a failing job: RetryBase doubled per attempt, at most RetryMax, with
	// jitter. Default 1 second and 5 minutes, which with MaxAttempts retries
	// for more than 24 hours.
	RetryBase, RetryMax time.Duration
	// FetchInterval is how often workers look for new jobs when idle.
	// Defaults to 20 milliseconds.
	FetchInterval time.Duration
	// LogLevel, when set, is the level of Logger that OpenHIM runtime
	// configuration may change.
	LogLevel *LogLevel
	// ClaimPollInterval is the catch-up poll period; 0 disables it. OpenHIM
	// runtime configuration may change it.
	ClaimPollInterval time.Duration
	// CatchupLookback is how far back the very first catch-up poll looks.
	// Defaults to 24 hours.
	CatchupLookback time.Duration
	// CatchupOverlap is how far before the previous poll's start each poll
	// looks again, for clock skew and claims created while it ran. Defaults
	// to 10 minutes.
	CatchupOverlap time.Duration

	// OpenHIM, when set, is the core the mediator registers with and
	// heartbeats to.
	OpenHIM *openhim.Client
	// Registration is the prepared registration document. Its URN also names
	// the mediator in the OpenHIM response envelope, with or without OpenHIM.
	Registration openhim.Registration
	// HeartbeatInterval is the OpenHIM heartbeat period. Defaults to 10 seconds.
	HeartbeatInterval time.Duration
	// ConfigRefresh is how often a heartbeat asks for the whole runtime
	// configuration. Defaults to 5 minutes.
	ConfigRefresh time.Duration

	// Metrics are the Prometheus series served at /metrics. Defaults to new
	// ones; pass the ones the clients' transports were instrumented with.
	Metrics *Metrics

	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// MaxAttempts is how many times a job runs before it is kept as failed.
// With the default backoff this is about 25 hours of retries.
const MaxAttempts = 300

// Mediator is the running service. Create it with New, serve Handler, and run
// the background work between Start and Stop.
type Mediator struct {
	opts    Options
	log     zerolog.Logger
	handler http.Handler

	started time.Time
	// openhim is the OpenHIM registration state.
	openhim openHIMState
	// appliedConfig is the OpenHIM runtime config last applied, by key
	// (heartbeat goroutine only).
	appliedConfig map[string]any
	// pollInterval is the catch-up poll period (a time.Duration).
	pollInterval atomic.Int64
	// lastPoll is when the last complete catch-up poll started (Unix ns).
	lastPoll atomic.Int64
	// persons caches the store's insuree→person mapping, which never changes
	// once written (the person _id derives from the insuree UUID).
	persons       sync.Map
	cachedPersons atomic.Int64
	// subscription is the subscription's state, for /metrics.
	subscription atomic.Value // string
	// noQuestionnaireResponse is set once openIMIS answered that it has no
	// QuestionnaireResponse endpoint.
	noQuestionnaireResponse atomic.Bool
	// upstream holds a token for each delivery job talking to an upstream:
	// at most Workers at once.
	upstream chan struct{}

	startOnce sync.Once
	stopOnce  sync.Once
	cancel    context.CancelFunc
	bg        sync.WaitGroup
}

// New checks opts and returns a Mediator.
func New(opts Options) (*Mediator, error) {
	var missing []string
	if opts.OpenIMIS == nil {
		missing = append(missing, "OpenIMIS")
	}
	if opts.CHT == nil {
		missing = append(missing, "CHT")
	}
	if opts.Store == nil {
		missing = append(missing, "Store")
	}
	if opts.Username == "" || opts.Password == "" {
		missing = append(missing, "Username/Password")
	}
	if opts.CallbackEndpoint == "" {
		missing = append(missing, "CallbackEndpoint")
	}
	if opts.PlaceID == "" {
		missing = append(missing, "PlaceID")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("mediator: missing options %v", missing)
	}
	if opts.ClaimForm == "" {
		opts.ClaimForm = "OP"
	}
	switch opts.FeedbackResource {
	case "":
		opts.FeedbackResource = FeedbackAuto
	case FeedbackAuto, FeedbackQuestionnaireResponse, FeedbackCommunication:
	default:
		return nil, fmt.Errorf("mediator: unknown feedback resource %q", opts.FeedbackResource)
	}
	if opts.SubscriptionEnd == nil {
		opts.SubscriptionEnd = func(now time.Time) time.Time { return now.AddDate(1, 0, 0) }
	}
	if opts.SubscriptionCheck <= 0 {
		opts.SubscriptionCheck = time.Hour
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 30 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.FetchInterval <= 0 {
		opts.FetchInterval = 20 * time.Millisecond
	}
	if opts.CatchupLookback <= 0 {
		opts.CatchupLookback = 24 * time.Hour
	}
	if opts.CatchupOverlap <= 0 {
		opts.CatchupOverlap = 10 * time.Minute
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 10 * time.Second
	}
	if opts.ConfigRefresh <= 0 {
		opts.ConfigRefresh = 5 * time.Minute
	}
	if opts.OpenHIM != nil && opts.Registration.URN == "" {
		return nil, errors.New("mediator: OpenHIM needs a Registration")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	m := &Mediator{opts: opts, log: opts.Logger, started: time.Now(), upstream: make(chan struct{}, opts.Workers)}
	m.subscription.Store(subscriptionUnknown)
	opts.Metrics.observe(m)
	m.pollInterval.Store(int64(opts.ClaimPollInterval))
	m.openhim.set(openHIMDisabled)
	m.handler = m.routes()
	return m, nil
}

// Handler returns the HTTP interface.
func (m *Mediator) Handler() http.Handler { return m.handler }

// Start starts the job queue and the background work: the openIMIS login
// (retried with backoff until it succeeds) and the subscription upkeep.
func (m *Mediator) Start(ctx context.Context) error {
	err := errors.New("mediator: already started")
	m.startOnce.Do(func() {
		bgctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		m.cancel = cancel
		// River stops abruptly, cancelling running jobs, when the context
		// given to Start ends; Stop is the graceful way, so the queue gets a
		// context that a signal does not end.
		if err = m.opts.Store.StartQueue(context.WithoutCancel(ctx), m.riverConfig()); err != nil {
			cancel()
			return
		}
		m.bg.Go(func() { m.loginLoop(bgctx) })
		if m.opts.OpenHIM != nil {
			m.openhim.set(openHIMRegistering)
			m.bg.Go(func() { m.openHIMLoop(bgctx) })
		}
		if !deliverableEndpoint(m.opts.CallbackEndpoint) {
			m.log.Warn().Str("endpoint", m.opts.CallbackEndpoint).
				Msg("openIMIS delivers only to a domain name with a dot, localhost or an IP address; " +
					"it will accept the subscription but send nothing to this callback endpoint")
		}
	})
	return err
}

// deliverableEndpoint mirrors the host rule of the URL validator openIMIS
// runs before each notification (openIMIS contract §3.3): an IP address,
// localhost, or a name with a top-level domain of two letters or more. A
// bare container name such as "mediator" fails it.
func deliverableEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	i := strings.LastIndex(strings.TrimSuffix(host, "."), ".")
	if i <= 0 {
		return false
	}
	tld := strings.TrimSuffix(host, ".")[i+1:]
	if len(tld) < 2 {
		return false
	}
	for _, r := range tld {
		if r >= '0' && r <= '9' {
			return false
		}
	}
	return true
}

// Stop stops the background work and the queue. Running jobs get until ctx
// ends to finish; after that they are cancelled and run again after a
// restart. It does not close the store.
func (m *Mediator) Stop(ctx context.Context) error {
	var err error
	m.stopOnce.Do(func() {
		if m.cancel != nil {
			m.cancel()
		}
		err = m.opts.Store.StopQueue(ctx)
		m.bg.Wait()
	})
	return err
}

func (m *Mediator) riverConfig() *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &claimWorker{m: m})
	river.AddWorker(workers, &feedbackWorker{m: m})
	river.AddWorker(workers, &subscriptionWorker{m: m})
	river.AddWorker(workers, &catchupWorker{m: m})
	return &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: queueSlotsPerWorker * m.opts.Workers},
			queueMaintenance:   {MaxWorkers: 1},
		},
		Workers:           workers,
		MaxAttempts:       MaxAttempts,
		RetryPolicy:       &retryPolicy{base: m.opts.RetryBase, max: m.opts.RetryMax},
		ErrorHandler:      &errorHandler{log: m.log},
		Middleware:        []rivertype.Middleware{&jobMiddleware{m: m.opts.Metrics}},
		JobTimeout:        6 * m.opts.UpstreamTimeout,
		FetchCooldown:     min(m.opts.FetchInterval, time.Millisecond),
		FetchPollInterval: m.opts.FetchInterval,
		// Jobs left running by a replica that died are picked up again
		// after this (with SQLite, a restart picks them up at once).
		RescueStuckJobsAfter: 6*m.opts.UpstreamTimeout + 15*time.Second,
		// Failed jobs (a permanent error, or out of attempts) wait for an
		// operator however long it takes: River would delete them after a
		// day or a week, and their receipts would then answer repeats as
		// duplicates, so the claim or feedback would be lost.
		CancelledJobRetentionPeriod: -1,
		DiscardedJobRetentionPeriod: -1,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(m.opts.SubscriptionCheck),
				func() (river.JobArgs, *river.InsertOpts) { return subscriptionArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(pollSchedule{m},
				func() (river.JobArgs, *river.InsertOpts) { return catchupArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		},
		Logger: slog.New(zerolog.NewSlogHandler(m.log.With().Str("component", "river").Logger().Level(max(m.log.GetLevel(), zerolog.WarnLevel)))),
	}
}

// loginLoop logs in to openIMIS at startup so that /ready reflects whether
// the credentials work, retrying with the client's own backoff.
func (m *Mediator) loginLoop(ctx context.Context) {
	delay := time.Second
	for {
		err := m.opts.OpenIMIS.Login(ctx)
		if err == nil {
			m.log.Info().Msg("openimis login succeeded")
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, openimis.ErrLoginBackoff) {
			m.log.Warn().Err(err).Dur("retry_in", delay).Msg("openimis login failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Minute)
	}
}

// Serve serves the HTTP interface on addr until ctx ends, then shuts the
// server down gracefully: it stops accepting and lets requests in flight
// finish for up to 10 seconds. Bind errors come back at once.
func (m *Mediator) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(zerolog.NewSlogHandler(m.log.With().Str("component", "http").Logger()), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("mediator: shutdown: %w", err)
	}
	return nil
}
