package mediator

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// Metrics are the mediator's Prometheus series, in a registry of their own.
// Create them before the upstream clients, so that their transports can be
// instrumented (Transport), and hand them to New.
type Metrics struct {
	registry *prometheus.Registry

	jobDuration *prometheus.HistogramVec
	jobs        *prometheus.CounterVec
	logins      *prometheus.CounterVec
	authFails   *prometheus.CounterVec
	requests    *prometheus.CounterVec
	requestDur  *prometheus.HistogramVec
	state       *stateCollector
	upstream    *prometheus.HistogramVec

	feedbackEdits prometheus.Counter
}

// NewMetrics creates the series and registers the Go and process collectors.
func NewMetrics() *Metrics {
	mt := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mediator_http_requests_total",
			Help: "HTTP requests answered, by route and status.",
		}, []string{"route", "status"}),
		requestDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mediator_http_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by route: the mediator's own share of an acknowledgement's latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mediator_jobs_total",
			Help: "Job attempts by kind and outcome (done, retry, failed, snoozed).",
		}, []string{"kind", "outcome"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mediator_job_duration_seconds",
			Help:    "Duration of job attempts, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"kind"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mediator_upstream_request_duration_seconds",
			Help:    "Requests to openIMIS, the CHT and OpenHIM, by system, operation and status (0: no answer).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"system", "operation", "status"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mediator_openimis_logins_total",
			Help: "openIMIS login attempts, by outcome (ok, refused, error).",
		}, []string{"outcome"}),
		authFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mediator_auth_failures_total",
			Help: "Requests to /mediator/* refused for their Basic credentials: wrong_credentials (401), throttled (429 after repeated failures from one address).",
		}, []string{"reason"}),
	}
	mt.state = &stateCollector{
		depth: prometheus.NewDesc("mediator_queue_depth", "Jobs waiting or running, by kind.", []string{"kind"}, nil),
		oldest: prometheus.NewDesc("mediator_queue_oldest_job_age_seconds",
			"Age of the oldest job waiting or running (0 when none).", nil, nil),
		subscription: prometheus.NewDesc("mediator_openimis_subscription_state",
			"1 for the current state of the openIMIS Claim subscription.", []string{"state"}, nil),
		lastPoll: prometheus.NewDesc("mediator_catchup_last_success_timestamp_seconds",
			"Start of the last complete catch-up poll (0: none yet in this process).", nil, nil),
		openhim: prometheus.NewDesc("mediator_openhim_registered",
			"1 when registered with OpenHIM.", nil, nil),
		limit: prometheus.NewDesc("mediator_upstream_concurrency_limit",
			"Requests the mediator lets be in flight to an upstream at once (adaptive, up to WORKERS).", []string{"system"}, nil),
		inflight: prometheus.NewDesc("mediator_upstream_inflight_requests",
			"Requests in flight to an upstream.", []string{"system"}, nil),
		paused: prometheus.NewDesc("mediator_upstream_paused_seconds",
			"Seconds an upstream's client still sends nothing, after a 429 or a refused login (0: not paused).", []string{"system"}, nil),
		loginFailing: prometheus.NewDesc("mediator_openimis_login_failing",
			"1 while the latest openIMIS login failed (refused, expired password, or no answer): every job that needs openIMIS waits.", nil, nil),
		sourceState: prometheus.NewDesc("mediator_source_subscription_state",
			"1 for the current state of a FHIR source's subscription (starting, requested, active, error, off, failing, polling-only).", []string{"source", "state"}, nil),
		sourcePoll: prometheus.NewDesc("mediator_source_catchup_last_success_timestamp_seconds",
			"Start of a FHIR source's last complete catch-up search (0: none yet in this process).", []string{"source"}, nil),
		sourceHeard: prometheus.NewDesc("mediator_source_last_heard_timestamp_seconds",
			"When a FHIR source last called the callback, with anything (0: not yet in this process).", []string{"source"}, nil),
		sourceSilent: prometheus.NewDesc("mediator_source_silent",
			"1 while a topic source's server says its subscription is active but nothing reaches the callback.", []string{"source"}, nil),
		operator: operatorDescs{
			failed: prometheus.NewDesc("mediator_failed_jobs",
				"Jobs kept as failed (permanent error, or out of attempts) until an operator retries them, by kind.", []string{"kind"}, nil),
			storeUp: prometheus.NewDesc("mediator_store_up",
				"1 when the store answered this scrape's queue query, 0 when it did not.", nil, nil),
			subscriptionEnd: prometheus.NewDesc("mediator_openimis_subscription_end_timestamp_seconds",
				"End of the openIMIS Claim subscription in use (0: none known to this process).", nil, nil),
			pollInterval: prometheus.NewDesc("mediator_catchup_interval_seconds",
				"Period of the catch-up poll (0: polling off).", nil, nil),
			openhimState: prometheus.NewDesc("mediator_openhim_state",
				"1 for the current OpenHIM registration state: disabled, registering or registered.", []string{"state"}, nil),
			heartbeatFailing: prometheus.NewDesc("mediator_openhim_heartbeat_failing",
				"1 while the latest OpenHIM heartbeat failed.", nil, nil),
			limitMin: prometheus.NewDesc("mediator_upstream_concurrency_limit_min",
				"Lowest the adaptive concurrency limit of an upstream goes: a limit pinned there means the upstream keeps signalling overload.", []string{"system"}, nil),
		},
	}
	mt.registry.MustRegister(mt.requests, mt.requestDur, mt.jobs, mt.jobDuration, mt.upstream, mt.logins, mt.authFails, mt.state,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mt.feedbackEdits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mediator_feedback_edits_total",
		Help: "CHT feedback reports pushed again with changed answers after they were received (an edit in the CHT). The edit is not delivered: openIMIS keeps the first feedback of a claim.",
	})
	mt.registry.MustRegister(mt.feedbackEdits)
	return mt
}

// Handler serves the registry in the Prometheus text format.
func (mt *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(mt.registry, promhttp.HandlerOpts{})
}

// Transport wraps base (nil: http.DefaultTransport) to time every request to
// system by operation.
func (mt *Metrics) Transport(system string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &instrumented{mt: mt, system: system, base: base}
}

type instrumented struct {
	base   http.RoundTripper
	mt     *Metrics
	system string
}

// RoundTrip implements http.RoundTripper.
func (t *instrumented) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	op := operation(r)
	t.mt.upstream.WithLabelValues(t.system, op, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	if t.system == "openimis" && strings.HasSuffix(r.URL.Path, "/login/") {
		outcome := "ok"
		switch {
		case err != nil || status >= 500:
			outcome = "error"
		case status != http.StatusOK:
			outcome = "refused"
		}
		t.mt.logins.WithLabelValues(outcome).Inc()
	}
	return resp, err
}

// operation names a request to an upstream for the metrics and for the
// latency floors of its limit (limit.go): the method and the path with ids
// replaced by :id, so that the series stay few and GET Patient/<uuid>/ is
// one endpoint whatever the insuree.
func operation(r *http.Request) string {
	return r.Method + " " + operationPath(r.URL.Path)
}

// operationPath is the path with its id segments replaced by :id: UUIDs,
// numbers, CouchDB's 24-character hex ids, URNs, and the user OpenHIM's GET
// /authenticate/<user> names. It runs twice on every upstream request, so
// it builds the name in one allocation.
func operationPath(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	prev, first := "", true
	for seg := range strings.SplitSeq(p, "/") {
		if !first {
			b.WriteByte('/')
		}
		first = false
		if isIDSegment(seg) || strings.HasPrefix(seg, "urn:") || prev == "authenticate" {
			b.WriteString(":id")
		} else {
			b.WriteString(seg)
		}
		prev = seg
	}
	return b.String()
}

// isIDSegment reports whether a path segment is an id: 32 to 36 hex digits
// and dashes (a UUID), decimal digits, or 24 lower-case hex digits.
func isIDSegment(s string) bool {
	if s == "" {
		return false
	}
	digits, lowerHex, hexOrDash := true, true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		isDigit := c >= '0' && c <= '9'
		isLower := c >= 'a' && c <= 'f'
		digits = digits && isDigit
		lowerHex = lowerHex && (isDigit || isLower)
		hexOrDash = hexOrDash && (isDigit || isLower || c >= 'A' && c <= 'F' || c == '-')
	}
	return digits || lowerHex && len(s) == 24 || hexOrDash && len(s) >= 32 && len(s) <= 36
}

// authFailure counts one request refused for its credentials.
func (mt *Metrics) authFailure(reason string) {
	mt.authFails.WithLabelValues(reason).Inc()
}

// feedbackEdit counts one feedback report received again with changed
// answers.
func (mt *Metrics) feedbackEdit() {
	mt.feedbackEdits.Inc()
}

// request counts one answered request and times it.
func (mt *Metrics) request(route string, status int, took time.Duration) {
	mt.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	mt.requestDur.WithLabelValues(route).Observe(took.Seconds())
}

// jobMiddleware counts and times every job attempt, and completes the
// periodic jobs whose failure their next run will retry (periodicOutcome).
type jobMiddleware struct {
	river.MiddlewareDefaults
	mt *Metrics
}

// Work implements rivertype.WorkerMiddleware.
func (jm *jobMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	err := doInner(ctx)
	jm.mt.jobDuration.WithLabelValues(job.Kind).Observe(time.Since(start).Seconds())
	outcome := "done"
	var cancel *rivertype.JobCancelError
	var snooze *rivertype.JobSnoozeError
	var periodic *periodicFailure
	switch {
	case errors.As(err, &periodic):
		outcome, err = "failed", nil // logged; the next periodic run tries again
	case errors.As(err, &cancel):
		outcome = "failed"
	case errors.As(err, &snooze):
		outcome = "snoozed"
	case err != nil && job.Attempt >= job.MaxAttempts:
		outcome = "failed"
	case err != nil:
		outcome = "retry"
	}
	jm.mt.jobs.WithLabelValues(job.Kind, outcome).Inc()
	return err
}

// stateReaders read the mediator's state at scrape time.
type stateReaders struct {
	queue        func(context.Context) (map[string]storetype.QueueStat, error)
	subscription func() string
	lastPoll     func() time.Time
	openhim      func() string
	limits       map[string]*UpstreamLimit
	paused       func() map[string]upstreamPause
	loginFailing func() bool
	sources      *sources

	// kinds are the job kinds whose depth and failed count are reported even
	// while the store holds none of them.
	kinds            []string
	subscriptionEnd  func() time.Time
	pollInterval     func() time.Duration
	heartbeatFailing func() bool
}

// observe makes the state gauges (queue depth and oldest job age,
// subscription state, last catch-up poll, OpenHIM registration) read through
// r at scrape time.
func (mt *Metrics) observe(r stateReaders) {
	mt.state.readers.Store(&r)
}

type stateCollector struct {
	readers                                        atomic.Pointer[stateReaders]
	depth, oldest, subscription, lastPoll, openhim *prometheus.Desc
	limit, inflight, paused, loginFailing          *prometheus.Desc
	sourceState, sourcePoll, sourceHeard           *prometheus.Desc
	sourceSilent                                   *prometheus.Desc
	operator                                       operatorDescs
}

// operatorDescs are the series the alerting rules in deploy/prometheus need
// beyond the others: what waits for an operator, and the state of the
// store, the subscription, the catch-up poll and the OpenHIM link.
type operatorDescs struct {
	failed, storeUp, subscriptionEnd, pollInterval *prometheus.Desc
	openhimState, heartbeatFailing, limitMin       *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.oldest, c.subscription, c.lastPoll, c.openhim, c.limit, c.inflight, c.paused, c.loginFailing, c.sourceState, c.sourcePoll, c.sourceHeard, c.sourceSilent} {
		ch <- d
	}
	o := c.operator
	for _, d := range []*prometheus.Desc{o.failed, o.storeUp, o.subscriptionEnd, o.pollInterval, o.openhimState, o.heartbeatFailing, o.limitMin} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.readers.Load()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats, err := r.queue(ctx)
	if err == nil {
		oldest := 0.0
		for _, kind := range r.kinds {
			if _, ok := stats[kind]; !ok {
				stats[kind] = storetype.QueueStat{}
			}
		}
		for kind, s := range stats {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Depth), kind)
			ch <- prometheus.MustNewConstMetric(c.operator.failed, prometheus.GaugeValue, float64(s.Failed), kind)
			if !s.Oldest.IsZero() {
				oldest = max(oldest, time.Since(s.Oldest).Seconds())
			}
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
	}
	c.collectOperator(ch, r, err == nil)
	// A state set: every state is present, 1 for the current one, so that a
	// rule can tell a missing state from a missing series.
	current := r.subscription()
	for _, state := range []string{subscriptionActive, subscriptionRefused, subscriptionFailing, subscriptionDisabled, subscriptionUnknown} {
		v := 0.0
		if state == current {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.subscription, prometheus.GaugeValue, v, state)
	}
	last := 0.0
	if t := r.lastPoll(); !t.IsZero() {
		last = float64(t.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.lastPoll, prometheus.GaugeValue, last)
	registered := 0.0
	if r.openhim() == openHIMRegistered {
		registered = 1
	}
	ch <- prometheus.MustNewConstMetric(c.openhim, prometheus.GaugeValue, registered)
	if r.loginFailing != nil {
		failing := 0.0
		if r.loginFailing() {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(c.loginFailing, prometheus.GaugeValue, failing)
	}
	for system, l := range r.limits {
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(l.Limit()), system)
		ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(l.Inflight()), system)
	}
	for _, name := range r.sources.names() {
		src := r.sources.get(name)
		state, _, _ := src.status()
		for _, st := range sourceStates {
			v := 0.0
			if st == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.sourceState, prometheus.GaugeValue, v, name, st)
		}
		ch <- prometheus.MustNewConstMetric(c.sourcePoll, prometheus.GaugeValue, unixSeconds(src.lastPoll.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.sourceHeard, prometheus.GaugeValue, unixSeconds(src.lastHeard.Load()), name)
		silent := 0.0
		if src.silent.Load() {
			silent = 1
		}
		ch <- prometheus.MustNewConstMetric(c.sourceSilent, prometheus.GaugeValue, silent, name)
	}
	if r.paused != nil {
		for system, p := range r.paused() {
			left := 0.0
			if !p.Until.IsZero() {
				left = max(time.Until(p.Until).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, left, system)
		}
	}
}

// unixSeconds is a Unix nanosecond count in seconds; 0 stays 0.
func unixSeconds(ns int64) float64 {
	if ns <= 0 {
		return 0
	}
	return float64(ns) / 1e9
}

// collectOperator sends the operatorDescs series; storeAnswered says whether
// the store answered this scrape's queue query.
func (c *stateCollector) collectOperator(ch chan<- prometheus.Metric, r *stateReaders, storeAnswered bool) {
	o := c.operator
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(o.storeUp, flag(storeAnswered))
	if r.subscriptionEnd != nil {
		end := 0.0
		if t := r.subscriptionEnd(); !t.IsZero() {
			end = float64(t.UnixNano()) / 1e9
		}
		gauge(o.subscriptionEnd, end)
	}
	if r.pollInterval != nil {
		gauge(o.pollInterval, r.pollInterval().Seconds())
	}
	state := r.openhim()
	for _, s := range []string{openHIMDisabled, openHIMRegistering, openHIMRegistered} {
		gauge(o.openhimState, flag(s == state), s)
	}
	if r.heartbeatFailing != nil {
		gauge(o.heartbeatFailing, flag(r.heartbeatFailing()))
	}
	for system, l := range r.limits {
		gauge(o.limitMin, float64(l.Min()), system)
	}
}
