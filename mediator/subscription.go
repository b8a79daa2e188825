package mediator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// Subscription states, as /metrics reports them.
const (
	subscriptionUnknown  = "unknown"
	subscriptionActive   = "active"
	subscriptionRefused  = "refused"
	subscriptionFailing  = "failing"
	subscriptionDisabled = "disabled"
)

// Store settings of the subscription.
const (
	// settingSubscriptionID holds the subscription's id.
	settingSubscriptionID = "subscription_id"
	// settingSubscriptionDisabled is set while an operator has deleted the
	// subscription with "mediator subscription delete": the upkeep then
	// leaves openIMIS alone until "mediator subscription renew".
	settingSubscriptionDisabled = "subscription_disabled"
)

// renewWithin is how long before its end a subscription is replaced.
const renewWithin = 30 * 24 * time.Hour

// subscriptions keeps exactly one active Claim subscription pointing at this
// mediator, and serves the operator's show, delete and renew.
type subscriptions struct {
	oi    *openimis.Client
	store storetype.Store
	log   zerolog.Logger
	now   func() time.Time

	username, password string
	endpoint           string
	end                func(now time.Time) time.Time
	checkEvery         time.Duration
	// pollInterval reads the catch-up poll period: with polling off, a
	// refused subscription means no claim arrives at all.
	pollInterval func() time.Duration

	current atomic.Value // string: the state, for /metrics
	// endAt is the end of the subscription in use (Unix ns; 0: none known),
	// for /metrics.
	endAt atomic.Int64
}

// endTime returns the end of the subscription in use; zero when none is
// known (not checked yet in this process, refused, or disabled).
func (s *subscriptions) endTime() time.Time {
	if ns := s.endAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// state returns the subscription's state.
func (s *subscriptions) state() string {
	if v, _ := s.current.Load().(string); v != "" {
		return v
	}
	return subscriptionUnknown
}

// subscriptionArgs is the periodic job that keeps exactly one active Claim
// subscription pointing at this mediator.
type subscriptionArgs struct{}

// Kind implements river.JobArgs.
func (subscriptionArgs) Kind() string { return "subscription_upkeep" }

// InsertOpts implements river.JobArgsWithInsertOpts: one upkeep job at a
// time, on the maintenance queue.
func (subscriptionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, UniqueOpts: uniqueWhileQueued}
}

// uniqueWhileQueued makes a periodic job's insert a no-op while the previous
// one has not finished (for example while it waits for a retry).
var uniqueWhileQueued = river.UniqueOpts{ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}}

type subscriptionWorker struct {
	river.WorkerDefaults[subscriptionArgs]
	s *subscriptions
}

// Work implements river.Worker.
func (w *subscriptionWorker) Work(ctx context.Context, job *river.Job[subscriptionArgs]) error {
	s := w.s
	log := jobLog(s.log, job.JobRow).Logger()
	ctx = log.WithContext(ctx)
	if disabled, err := s.disabled(ctx); err != nil {
		return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
	} else if disabled {
		s.current.Store(subscriptionDisabled)
		s.endAt.Store(0)
		log.Debug().Msg("subscription disabled by an operator; leaving openIMIS alone")
		return nil
	}
	err := s.ensure(ctx, false)
	if errors.Is(err, errSubscriptionEndPassed) {
		// Said at every check: claims arrive only by polling meanwhile.
		s.current.Store(subscriptionFailing)
		log.Error().Err(err).Msg("no Claim subscription is made: claims arrive only through catch-up polling")
		return nil
	}
	if openimis.SubscriptionRefused(err) {
		// Releases without Claim notifications refuse the subscription
		// (docs/upstreams/openimis.md trap 1). The next periodic run tries
		// again; until then only catch-up polling brings claims.
		ev, msg := log.Warn(), "openIMIS refused the Claim subscription; claims arrive only through catch-up polling"
		s.endAt.Store(0)
		if s.current.Swap(subscriptionRefused) == subscriptionRefused {
			ev = log.Debug() // said once is enough
		}
		if s.pollInterval() <= 0 {
			// Nothing brings claims: said at every check.
			ev, msg = log.Error(), "openIMIS refused the Claim subscription and catch-up polling is off (CLAIM_POLL_INTERVAL=0): no claim arrives until openIMIS accepts it"
		}
		ev.Err(err).Dur("next_try_in", s.checkEvery).Msg(msg)
		return nil
	}
	if err == nil {
		s.current.Store(subscriptionActive)
	} else {
		s.current.Store(subscriptionFailing)
	}
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
}

// errSubscriptionEndPassed is a configured subscription end (an instant)
// that is no longer ahead.
var errSubscriptionEndPassed = errors.New("SUBSCRIPTION_END has passed")

// want is the subscription this mediator needs (docs/upstreams/openimis.md
// §2.1, traps 2–5): criteria and reason exactly "Claim", an absolute
// endpoint, and header[0] a JSON object carrying the Basic credentials of
// /mediator/*.
func (s *subscriptions) want(now time.Time) openimis.Subscription {
	header, _ := json.Marshal(map[string]string{"Authorization": "Basic " +
		base64.StdEncoding.EncodeToString([]byte(s.username+":"+s.password))})
	return openimis.Subscription{
		Status:   "active",
		Reason:   "Claim",
		Criteria: "Claim",
		End:      s.end(now).UTC().Format(time.RFC3339),
		Channel: openimis.Channel{
			Type:     "rest-hook",
			Endpoint: s.endpoint,
			Header:   []string{string(header)},
		},
	}
}

// ensure reuses a matching active subscription, replaces it when it ends
// within renewWithin, carries stale credentials, or force is set, and
// removes duplicates. openIMIS cannot filter subscriptions, so it lists them
// all (docs/upstreams/openimis.md trap 8); it creates before it deletes so
// that no notification is missed.
func (s *subscriptions) ensure(ctx context.Context, force bool) error {
	log := zerolog.Ctx(ctx)
	now := s.now()
	if end := s.end(now); !end.After(now) {
		// openIMIS would accept it and never notify through it.
		return fmt.Errorf("%w: %s; set a later instant or a duration ahead (8760h) and restart", errSubscriptionEndPassed, end.UTC().Format(time.RFC3339))
	}
	want := s.want(now)
	all, err := s.oi.ListSubscriptions(ctx)
	if err != nil {
		return fmt.Errorf("list subscriptions: %w", err)
	}
	var keep *openimis.Subscription
	var stale []openimis.Subscription
	for _, sub := range all {
		if sub.Criteria != want.Criteria || sub.Channel.Endpoint != want.Channel.Endpoint || sub.Status != "active" {
			continue
		}
		// openIMIS renders end as isoformat() of its local time: its own
		// offset, with microseconds when there are any (docs/upstreams/openimis.md
		// trap 20), e.g. 2027-12-06T10:15:30.123456+05:45.
		end, err := time.Parse(time.RFC3339Nano, sub.End)
		usable := err == nil && end.After(now.Add(min(renewWithin, s.end(now).Sub(now)/2))) &&
			len(sub.Channel.Header) > 0 && sub.Channel.Header[0] == want.Channel.Header[0]
		if usable && keep == nil && !force {
			keep = &sub
			continue
		}
		stale = append(stale, sub)
	}
	log.Debug().Int("listed", len(all)).Bool("usable", keep != nil).Int("stale", len(stale)).Msg("openIMIS subscriptions listed")
	if keep == nil {
		created, err := s.oi.CreateSubscription(ctx, want)
		if err != nil {
			return fmt.Errorf("create subscription: %w", err)
		}
		keep = created
		log.Info().Str("subscription_id", created.ID).Str("end", created.End).Msg("created openIMIS Claim subscription")
	} else {
		log.Debug().Str("subscription_id", keep.ID).Str("end", keep.End).Msg("reusing openIMIS Claim subscription")
	}
	if err := s.store.SetSetting(ctx, settingSubscriptionID, keep.ID); err != nil {
		return err
	}
	if end, err := time.Parse(time.RFC3339Nano, keep.End); err == nil {
		s.endAt.Store(end.UnixNano())
	}
	for _, sub := range stale {
		if err := s.oi.DeleteSubscription(ctx, sub.ID); err != nil {
			// Only the creating user may delete (docs/upstreams/openimis.md
			// §2.4): say so and go on.
			log.Warn().Err(err).Str("subscription_id", sub.ID).Msg("could not delete a stale or duplicate subscription")
			continue
		}
		log.Info().Str("subscription_id", sub.ID).Msg("deleted stale or duplicate openIMIS subscription")
	}
	return nil
}

// disabled reports whether an operator deleted the subscription.
func (s *subscriptions) disabled(ctx context.Context) (bool, error) {
	v, ok, err := s.store.Setting(ctx, settingSubscriptionDisabled)
	return ok && v == "true", err
}

// own lists the Claim subscriptions of this mediator's endpoint.
func (s *subscriptions) own(ctx context.Context) ([]openimis.Subscription, error) {
	all, err := s.oi.ListSubscriptions(ctx)
	if err != nil {
		return nil, err
	}
	var own []openimis.Subscription
	for _, sub := range all {
		if sub.Criteria == "Claim" && sub.Channel.Endpoint == s.endpoint {
			own = append(own, sub)
		}
	}
	return own, nil
}

// warnUndeliverable warns at start when openIMIS will accept the callback
// endpoint and then send nothing to it ("mediator check" fails then).
func (s *subscriptions) warnUndeliverable(log zerolog.Logger) {
	if err := deliverableEndpoint(s.endpoint); err != nil {
		log.Warn().Str("endpoint", s.endpoint).Str("problem", err.Error()).
			Msg("openIMIS will accept the subscription but send nothing to this callback endpoint: " + callbackFix)
	}
}

// callbackFix says how to make the callback endpoint one openIMIS calls.
const callbackFix = "set CHT_OPENIMIS_CALLBACK_ENDPOINT to a URL whose host is an IP address, localhost, " +
	"or a domain name with a dot and a top-level domain of letters (letters, digits and hyphens only, no underscores)"

// deliverableEndpoint applies the URL validator openIMIS runs before each
// notification (docs/upstreams/openimis.md §3.3, trap 4): nil when openIMIS
// would call endpoint, else why not.
func deliverableEndpoint(endpoint string) error {
	return openimis.CheckCallbackEndpoint(endpoint)
}

// maskHeader shows a subscription header with credential values masked.
func maskHeader(header []string) string {
	if len(header) == 0 {
		return "(none)"
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(header[0]), &h); err != nil {
		return "(not a JSON object: openIMIS cannot deliver with it)"
	}
	parts := make([]string, 0, len(h))
	for k, v := range h {
		if scheme, _, ok := strings.Cut(v, " "); ok {
			v = scheme + " ****"
		} else {
			v = "****"
		}
		parts = append(parts, k+": "+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
