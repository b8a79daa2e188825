package mediator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

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

// subscriptionState returns the subscription's state.
func (m *Mediator) subscriptionState() string {
	s, _ := m.subscription.Load().(string)
	return s
}

// settingSubscriptionID is the store setting holding the subscription's id.
const settingSubscriptionID = "subscription_id"

// renewWithin is how long before its end a subscription is replaced.
const renewWithin = 30 * 24 * time.Hour

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
	m *Mediator
}

// Work implements river.Worker.
func (w *subscriptionWorker) Work(ctx context.Context, job *river.Job[subscriptionArgs]) error {
	log := w.m.log.With().Int64("job_id", job.ID).Str("job_kind", job.Kind).Int("attempt", job.Attempt).Logger()
	ctx = log.WithContext(ctx)
	if disabled, err := w.m.subscriptionDisabled(ctx); err != nil {
		return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
	} else if disabled {
		w.m.subscription.Store(subscriptionDisabled)
		log.Debug().Msg("subscription disabled by an operator; leaving openIMIS alone")
		return nil
	}
	err := w.m.ensureSubscription(ctx, false)
	if errors.Is(err, errSubscriptionEndPassed) {
		// Said at every check: claims arrive only by polling meanwhile.
		w.m.subscription.Store(subscriptionFailing)
		log.Error().Err(err).Msg("no Claim subscription is made: claims arrive only through catch-up polling")
		return nil
	}
	if openimis.SubscriptionRefused(err) {
		// Releases without Claim notifications refuse the subscription (trap
		// 1). The next periodic run tries again; until then only catch-up
		// polling brings claims.
		ev, msg := log.Warn(), "openIMIS refused the Claim subscription; claims arrive only through catch-up polling"
		if w.m.subscription.Swap(subscriptionRefused) == subscriptionRefused {
			ev = log.Debug() // said once is enough
		}
		if time.Duration(w.m.pollInterval.Load()) <= 0 {
			// Nothing brings claims: said at every check.
			ev, msg = log.Error(), "openIMIS refused the Claim subscription and catch-up polling is off (CLAIM_POLL_INTERVAL=0): no claim arrives until openIMIS accepts it"
		}
		ev.Err(err).Dur("next_try_in", w.m.opts.SubscriptionCheck).Msg(msg)
		return nil
	}
	if err == nil {
		w.m.subscription.Store(subscriptionActive)
	} else {
		w.m.subscription.Store(subscriptionFailing)
	}
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
}

// errSubscriptionEndPassed is a configured subscription end (an instant)
// that is no longer ahead.
var errSubscriptionEndPassed = errors.New("SUBSCRIPTION_END has passed")

// wantSubscription is the subscription this mediator needs (openIMIS contract
// §2.1, traps 2–5): criteria and reason exactly "Claim", an absolute endpoint,
// and header[0] a JSON object carrying the Basic credentials of /mediator/*.
func (m *Mediator) wantSubscription(now time.Time) openimis.Subscription {
	header, _ := json.Marshal(map[string]string{"Authorization": "Basic " +
		base64.StdEncoding.EncodeToString([]byte(m.opts.Username+":"+m.opts.Password))})
	return openimis.Subscription{
		Status:   "active",
		Reason:   "Claim",
		Criteria: "Claim",
		End:      m.opts.SubscriptionEnd(now).UTC().Format(time.RFC3339),
		Channel: openimis.Channel{
			Type:     "rest-hook",
			Endpoint: m.opts.CallbackEndpoint,
			Header:   []string{string(header)},
		},
	}
}

// ensureSubscription reuses a matching active subscription, replaces it when
// it ends within renewWithin, carries stale credentials, or force is set, and
// removes duplicates. openIMIS cannot filter subscriptions, so it lists them
// all (trap 8); it creates before it deletes so that no notification is
// missed.
func (m *Mediator) ensureSubscription(ctx context.Context, force bool) error {
	log := zerolog.Ctx(ctx)
	now := m.opts.Now()
	if end := m.opts.SubscriptionEnd(now); !end.After(now) {
		// openIMIS would accept it and never notify through it.
		return fmt.Errorf("%w: %s; set a later instant or a duration ahead (8760h) and restart", errSubscriptionEndPassed, end.UTC().Format(time.RFC3339))
	}
	want := m.wantSubscription(now)
	all, err := m.opts.OpenIMIS.ListSubscriptions(ctx)
	if err != nil {
		return fmt.Errorf("list subscriptions: %w", err)
	}
	var keep *openimis.Subscription
	var stale []openimis.Subscription
	for _, s := range all {
		if s.Criteria != want.Criteria || s.Channel.Endpoint != want.Channel.Endpoint || s.Status != "active" {
			continue
		}
		end, err := time.Parse(time.RFC3339, s.End)
		usable := err == nil && end.After(now.Add(min(renewWithin, m.opts.SubscriptionEnd(now).Sub(now)/2))) &&
			len(s.Channel.Header) > 0 && s.Channel.Header[0] == want.Channel.Header[0]
		if usable && keep == nil && !force {
			keep = &s
			continue
		}
		stale = append(stale, s)
	}
	log.Debug().Int("listed", len(all)).Bool("usable", keep != nil).Int("stale", len(stale)).Msg("openIMIS subscriptions listed")
	if keep == nil {
		created, err := m.opts.OpenIMIS.CreateSubscription(ctx, want)
		if err != nil {
			return fmt.Errorf("create subscription: %w", err)
		}
		keep = created
		log.Info().Str("subscription_id", created.ID).Str("end", created.End).Msg("created openIMIS Claim subscription")
	} else {
		log.Debug().Str("subscription_id", keep.ID).Str("end", keep.End).Msg("reusing openIMIS Claim subscription")
	}
	if err := m.opts.Store.SetSetting(ctx, settingSubscriptionID, keep.ID); err != nil {
		return err
	}
	for _, s := range stale {
		if err := m.opts.OpenIMIS.DeleteSubscription(ctx, s.ID); err != nil {
			// Only the creating user may delete (§2.4): say so and go on.
			log.Warn().Err(err).Str("subscription_id", s.ID).Msg("could not delete a stale or duplicate subscription")
			continue
		}
		log.Info().Str("subscription_id", s.ID).Msg("deleted stale or duplicate openIMIS subscription")
	}
	return nil
}
