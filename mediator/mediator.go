// Package mediator connects openIMIS and the CHT: it owns the HTTP interface,
// the durable job queue and the orchestration of the claim and feedback paths.
// It talks to the systems through the typed clients of packages openimis, cht
// and openhim, translates with package mapping, and keeps state in a
// storetype.Store.
//
// A Mediator is composed of parts with one job each, and each River worker
// holds only the part it uses:
//
//   - delivery (delivery.go, job_claim.go, job_feedback.go): the claim and
//     feedback workers' clients, store, person cache and upstream slots;
//   - subscriptions (subscription.go): the openIMIS Claim subscription's
//     upkeep and the operator's show, delete and renew;
//   - catchup (job_catchup.go): the periodic poll for claims the subscription
//     missed;
//   - openHIMLink (openhim_link.go): registration, heartbeats and runtime
//     configuration;
//   - api (api.go, handle_*.go, respond.go): the HTTP interface;
//   - Server (server.go): the listening socket, from bind to shutdown.
package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
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
	Store storetype.Store
	// Logger receives every log line. Defaults to a disabled logger.
	Logger zerolog.Logger
	// SetLogLevel, when set, changes the level of Logger; OpenHIM runtime
	// configuration calls it.
	SetLogLevel func(zerolog.Level)

	// Username and Password are the Basic credentials callers of /mediator/*
	// must present. The openIMIS subscription carries them in its header.
	// When RouteUsername is set, /mediator/* accepts only the route
	// credentials, and Username and Password are only what openIMIS presents
	// to OpenHIM.
	Username, Password string
	// RouteUsername and RoutePassword, optional, are the Basic credentials
	// OpenHIM's channel routes present to the mediator: written into the
	// registration's default channel routes, and then the only credentials
	// /mediator/* accepts. OpenHIM keeps each caller's Authorization in its
	// transaction log (docs/upstreams/openhim.md trap 21), so the credential
	// openIMIS presents to OpenHIM must not be the mediator's own. Without
	// them the routes carry Username and Password.
	RouteUsername, RoutePassword string
	// CallbackEndpoint is the absolute URL openIMIS posts ClaimResponses to.
	CallbackEndpoint string
	// PlaceID is the CHT place new persons are created under.
	PlaceID string
	// ClaimForm is the CHT JSON form code of the claim report. Defaults to OP.
	ClaimForm string
	// Calendar is the calendar of openIMIS's dates (OPENIMIS_CALENDAR):
	// "gregorian" (the default), "bikram-sambat" or "auto", as
	// mapping.DateReader reads them (docs/upstreams/openimis.md trap 19).
	Calendar string
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
	// Workers is the most jobs that talk to openIMIS and the CHT at once
	// (the ceiling of the upstream limits). Defaults to 64. The queue runs more jobs than that (see
	// queueSlotsPerWorker), so that their store reads and writes overlap
	// other jobs' requests.
	Workers int
	// LateSaveWait is how long after a report POST that got no usable answer
	// a retried claim job waits before it looks for that report in the CHT,
	// which saves a report after its synchronous transitions, also when the
	// client has given up. Defaults to twice the upstream timeout in force.
	LateSaveWait time.Duration
	// RetryBase and RetryMax shape the exponential backoff between attempts of
	// a failing job: RetryBase doubled per attempt, at most RetryMax, with
	// jitter. Default 1 second and 5 minutes, which with MaxAttempts retries
	// for more than 24 hours.
	RetryBase, RetryMax time.Duration
	// FetchInterval is how often workers look for new jobs when idle.
	// Defaults to 20 milliseconds.
	FetchInterval time.Duration
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

	// UpstreamLimits are the adaptive concurrency limits of the upstreams'
	// transports, by system ("openimis", "cht"), reported by /ready and
	// /metrics. Optional.
	UpstreamLimits map[string]*UpstreamLimit

	// Metrics are the Prometheus series served at /metrics. Defaults to new
	// ones; pass the ones the clients' transports were instrumented with.
	Metrics *Metrics

	// Sources are the FHIR servers besides openIMIS that claims come from
	// (spec §8). Optional.
	Sources []Source
	// SourceWatchdog is how often the watchdog of each topic source looks
	// for missed events and silence. Defaults to a minute.
	SourceWatchdog time.Duration

	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// withDefaults checks the required options and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	var missing []string
	if o.OpenIMIS == nil {
		missing = append(missing, "OpenIMIS")
	}
	if o.CHT == nil {
		missing = append(missing, "CHT")
	}
	if o.Store == nil {
		missing = append(missing, "Store")
	}
	if o.Username == "" || o.Password == "" {
		missing = append(missing, "Username/Password")
	}
	if o.CallbackEndpoint == "" {
		missing = append(missing, "CallbackEndpoint")
	}
	if o.PlaceID == "" {
		missing = append(missing, "PlaceID")
	}
	if len(missing) > 0 {
		return o, fmt.Errorf("mediator: missing options %v", missing)
	}
	switch o.FeedbackResource {
	case "":
		o.FeedbackResource = FeedbackAuto
	case FeedbackAuto, FeedbackQuestionnaireResponse, FeedbackCommunication:
	default:
		return o, fmt.Errorf("mediator: unknown feedback resource %q", o.FeedbackResource)
	}
	switch mapping.Calendar(o.Calendar) {
	case "":
		o.Calendar = string(mapping.CalendarGregorian)
	case mapping.CalendarGregorian, mapping.CalendarBikramSambat, mapping.CalendarAuto:
	default:
		return o, fmt.Errorf("mediator: unknown calendar %q", o.Calendar)
	}
	if o.OpenHIM != nil && o.Registration.URN == "" {
		return o, errors.New("mediator: OpenHIM needs a Registration")
	}
	if (o.RouteUsername == "") != (o.RoutePassword == "") {
		return o, errors.New("mediator: RouteUsername and RoutePassword go together")
	}
	if o.OpenHIM != nil {
		user, pass := o.acceptedCredentials()
		reg, err := o.Registration.WithRouteCredentials(user, pass)
		if err != nil {
			return o, err
		}
		o.Registration = reg
	}
	orDefault := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	orDefault(&o.SubscriptionCheck, time.Hour)
	orDefault(&o.UpstreamTimeout, 30*time.Second)
	orDefault(&o.RetryBase, time.Second)
	orDefault(&o.RetryMax, 5*time.Minute)
	orDefault(&o.FetchInterval, 20*time.Millisecond)
	orDefault(&o.CatchupLookback, 24*time.Hour)
	orDefault(&o.CatchupOverlap, 10*time.Minute)
	orDefault(&o.HeartbeatInterval, 10*time.Second)
	orDefault(&o.ConfigRefresh, 5*time.Minute)
	orDefault(&o.SourceWatchdog, time.Minute)
	if o.ClaimForm == "" {
		o.ClaimForm = "OP"
	}
	if o.SubscriptionEnd == nil {
		o.SubscriptionEnd = func(now time.Time) time.Time { return now.AddDate(1, 0, 0) }
	}
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return o, nil
}

// acceptedCredentials are the Basic credentials /mediator/* accepts: the
// route credentials when set, else Username and Password.
func (o Options) acceptedCredentials() (string, string) {
	if o.RouteUsername != "" {
		return o.RouteUsername, o.RoutePassword
	}
	return o.Username, o.Password
}

// MaxAttempts is how many times a job runs before it is kept as failed.
// With the default backoff this is about 25 hours of retries.
const MaxAttempts = 300

// Mediator is the running service: its parts, composed. Create it with New,
// serve Handler (Server.Serve does), and run the background work between
// Start and Stop.
type Mediator struct {
	opts    Options
	log     zerolog.Logger
	handler http.Handler

	delivery      *delivery
	subscriptions *subscriptions
	catchup       *catchup
	openhim       *openHIMLink // nil without OpenHIM

	sources             *sources
	sourceCatchup       *sourceCatchup
	sourceSubscriptions *sourceSubscriptions

	startOnce sync.Once
	stopOnce  sync.Once
	cancel    context.CancelFunc
	bg        sync.WaitGroup
}

// New checks opts and returns a Mediator.
func New(opts Options) (*Mediator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Mediator{opts: opts, log: opts.Logger}
	dates := func() mapping.DateReader {
		return mapping.DateReader{Calendar: mapping.Calendar(opts.Calendar), Now: opts.Now()}
	}
	m.delivery = &delivery{
		oi: opts.OpenIMIS, cht: opts.CHT, store: opts.Store, log: opts.Logger,
		dates: dates, placeID: opts.PlaceID, claimForm: opts.ClaimForm, feedbackResource: opts.FeedbackResource,
		slots: make(chan struct{}, opts.Workers), saveWait: opts.LateSaveWait,
		sharedClaimIDs: len(opts.Sources) > 0,
	}
	m.delivery.timeout.Store(int64(opts.UpstreamTimeout))
	m.catchup = &catchup{
		oi: opts.OpenIMIS, store: opts.Store, log: opts.Logger, now: opts.Now, dates: dates,
		lookback: opts.CatchupLookback, overlap: opts.CatchupOverlap,
	}
	m.catchup.setInterval(opts.ClaimPollInterval)
	if m.sources, err = newSources(opts.Sources, opts.Store, opts.Logger, opts.Now); err != nil {
		return nil, err
	}
	m.sourceCatchup = &sourceCatchup{sources: m.sources, lookback: opts.CatchupLookback, overlap: opts.CatchupOverlap}
	m.sourceSubscriptions = &sourceSubscriptions{
		sources: m.sources, username: opts.Username, password: opts.Password, end: opts.SubscriptionEnd,
	}
	m.subscriptions = &subscriptions{
		oi: opts.OpenIMIS, store: opts.Store, log: opts.Logger, now: opts.Now,
		username: opts.Username, password: opts.Password,
		endpoint: opts.CallbackEndpoint, end: opts.SubscriptionEnd, checkEvery: opts.SubscriptionCheck,
		pollInterval: m.catchup.interval,
	}
	if opts.OpenHIM != nil {
		m.openhim = &openHIMLink{
			client: opts.OpenHIM, registration: opts.Registration, store: opts.Store,
			log: opts.Logger.With().Str("component", "openhim").Str("urn", opts.Registration.URN).Logger(),
			now: opts.Now, started: time.Now(),
			heartbeatEvery: opts.HeartbeatInterval, configRefresh: opts.ConfigRefresh,
			setLogLevel: opts.SetLogLevel,
			setTimeout: func(d time.Duration) {
				opts.OpenIMIS.SetTimeout(d)
				opts.CHT.SetTimeout(d)
				m.delivery.timeout.Store(int64(d))
			},
			setPollInterval: m.catchup.setInterval,
		}
	}
	opts.Metrics.observe(stateReaders{
		queue:        opts.Store.QueueStats,
		subscription: m.subscriptions.state,
		lastPoll:     m.catchup.lastSuccess,
		openhim:      m.openHIMState,
		limits:       opts.UpstreamLimits,
		paused:       m.paused,
		loginFailing: func() bool { return opts.OpenIMIS.LoginFailure() != nil },
		sources:      m.sources,
		// The jobs that wait for an operator when they fail: their series
		// exist from the start, so that an alert sees the first failure.
		kinds:           []string{kindClaim, kindFeedback},
		subscriptionEnd: m.subscriptions.endTime,
		pollInterval:    m.catchup.interval,
		heartbeatFailing: func() bool {
			return m.openhim != nil && m.openhim.heartbeatFailing.Load()
		},
	})
	apiUser, apiPass := opts.acceptedCredentials()
	m.handler = (&api{
		store:        opts.Store,
		dates:        dates,
		log:          opts.Logger,
		metrics:      opts.Metrics,
		urn:          opts.Registration.URN,
		username:     apiUser,
		password:     apiPass,
		loginProblem: func() string { return loginProblem(opts.OpenIMIS) },
		openhim:      m.openHIMState,
		limits:       opts.UpstreamLimits,
		paused:       m.paused,
		throttle:     newAuthThrottle(opts.Now),
		writeCheck:   &writeCheck{log: opts.Logger, now: opts.Now},
		sources:      m.sources,
	}).routes()
	return m, nil
}

// Handler returns the HTTP interface.
func (m *Mediator) Handler() http.Handler { return m.handler }

// openHIMState is the OpenHIM registration state /ready and /metrics report.
func (m *Mediator) openHIMState() string {
	if m.openhim == nil {
		return openHIMDisabled
	}
	return m.openhim.state()
}

// Start starts the job queue and the background work: the openIMIS login
// watch (it logs in at start and again, on the client's backoff, while
// logins fail, so that /ready follows) and the OpenHIM link.
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
		m.bg.Go(func() { loginWatch(bgctx, m.opts.OpenIMIS, m.log) })
		if m.openhim != nil {
			m.bg.Go(func() { m.openhim.run(bgctx) })
		}
		m.subscriptions.warnUndeliverable(m.log)
	})
	return err
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

// riverConfig is the queue: each worker gets the one part it uses.
func (m *Mediator) riverConfig() *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &claimWorker{d: m.delivery})
	river.AddWorker(workers, &feedbackWorker{d: m.delivery, sources: m.sources})
	river.AddWorker(workers, &subscriptionWorker{s: m.subscriptions})
	river.AddWorker(workers, &catchupWorker{c: m.catchup})
	river.AddWorker(workers, &sourceClaimWorker{d: m.delivery, sources: m.sources})
	river.AddWorker(workers, &sourceCatchupWorker{c: m.sourceCatchup})
	river.AddWorker(workers, &sourceSubscriptionWorker{s: m.sourceSubscriptions})
	river.AddWorker(workers, &sourceWatchdogWorker{sources: m.sources, subs: m.sourceSubscriptions})
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(m.opts.SubscriptionCheck),
			func() (river.JobArgs, *river.InsertOpts) { return subscriptionArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(pollSchedule{c: m.catchup},
			func() (river.JobArgs, *river.InsertOpts) { return catchupArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
	periodic = append(periodic, m.sources.periodicJobs(m.opts.SubscriptionCheck, m.opts.SourceWatchdog)...)
	return &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: queueSlotsPerWorker * m.opts.Workers},
			queueMaintenance:   {MaxWorkers: 1},
		},
		Workers:           workers,
		MaxAttempts:       MaxAttempts,
		RetryPolicy:       &retryPolicy{base: m.opts.RetryBase, max: m.opts.RetryMax},
		ErrorHandler:      &errorHandler{log: m.log},
		Middleware:        []rivertype.Middleware{&jobMiddleware{mt: m.opts.Metrics}},
		JobTimeout:        6 * m.opts.UpstreamTimeout,
		FetchCooldown:     min(m.opts.FetchInterval, time.Millisecond),
		FetchPollInterval: m.opts.FetchInterval,
		// A job may run six start-up upstream timeouts, also when runtime
		// configuration raised the timeout since (its requests are then cut
		// with the job, and the retry looks before it creates): the rescue
		// of jobs a dead replica left running stays safely after that.
		// Jobs left running by a replica that died are picked up again
		// after this (with SQLite, a restart picks them up at once).
		RescueStuckJobsAfter: 6*m.opts.UpstreamTimeout + 15*time.Second,
		// Failed jobs (a permanent error, or out of attempts) wait for an
		// operator however long it takes: River would delete them after a
		// day or a week, and their receipts would then answer repeats as
		// duplicates, so the claim or feedback would be lost.
		CancelledJobRetentionPeriod: -1,
		DiscardedJobRetentionPeriod: -1,
		PeriodicJobs:                periodic,
		Logger:                      slog.New(zerolog.NewSlogHandler(m.log.With().Str("component", "river").Logger().Level(max(m.log.GetLevel(), zerolog.WarnLevel)))),
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
