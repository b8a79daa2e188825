package mediator

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// sourceWatchdogArgs is a topic source's watchdog: every
// minute it fetches the event numbers missing past their grace, and asks
// $status when the subscription has been silent past its heartbeat.
type sourceWatchdogArgs struct {
	Source string `json:"source"`
}

// Kind implements river.JobArgs.
func (sourceWatchdogArgs) Kind() string { return "fhir_watchdog" }

// InsertOpts implements river.JobArgsWithInsertOpts: one per source at a
// time.
func (sourceWatchdogArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, UniqueOpts: uniquePerSource}
}

// minGapGrace is the shortest wait before a missing number is fetched:
// deliverers work in parallel, so a later number may arrive first
// (docs/upstreams/fhir-subscriptions.md trap 11).
const minGapGrace = 30 * time.Second

type sourceWatchdogWorker struct {
	river.WorkerDefaults[sourceWatchdogArgs]
	sources *sources
	// subs repairs the subscription at once when the server reports it
	// broken (the upkeep, run in the watchdog's job).
	subs *sourceSubscriptions
}

// Work implements river.Worker.
func (w *sourceWatchdogWorker) Work(ctx context.Context, job *river.Job[sourceWatchdogArgs]) error {
	src := w.sources.get(job.Args.Source)
	if src == nil || !src.ManageSubscription {
		return nil
	}
	ctx = jobLog(src.log, job.JobRow).Logger().WithContext(ctx)
	// A replica whose own upkeep has not run yet detects the dialect here:
	// any replica may run the watchdog. A failed detection is the
	// upkeep's to report.
	if d, err := src.detect(ctx); err != nil || !d.Topic() {
		return nil // criteria dialects have no numbers and no heartbeat
	}
	err := w.sources.exclusive(ctx, src, lockUpkeep, func() error { return w.watch(ctx, src) })
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
}

// watch is one watchdog round of a topic source.
func (w *sourceWatchdogWorker) watch(ctx context.Context, src *source) error {
	log, s := zerolog.Ctx(ctx), w.sources
	t, found, err := s.loadTrack(ctx, src)
	if err != nil || !found || t.SubscriptionID == "" {
		return err
	}
	up, err := s.loadUpkeep(ctx, src)
	if err != nil {
		return err
	}
	now := s.now()
	// A gap past its grace: the numbers did not merely arrive late.
	if grace := max(2*up.timeout(), minGapGrace); t.gapOpen() && !t.GapSince.IsZero() && now.Sub(t.GapSince) >= grace {
		log.Warn().Int64("contiguous", t.Contiguous).Int64("counter", t.Counter).Msg("events missed: fetching them with $events")
		return s.fetchMissing(ctx, src, t)
	}
	hb := up.heartbeat()
	if hb <= 0 || up.SubscriptionID != t.SubscriptionID || src.Client.Quirks().NoHeartbeats {
		// No heartbeat to miss (HAPI sends none whatever it stores, §3):
		// quiet is not silence; the catch-up search covers a subscription
		// that never fires (trap 25).
		return nil
	}
	// One probe per silence window, whichever replica runs the watchdog:
	// when it last asked is stored (source/<n>/probed).
	probedSetting := sourceSetting(src.Name, "probed")
	last := t.LastHeard
	// A value that is not a time is ignored: the probe is asked again.
	var unreadable *time.ParseError
	if p, err := timeSetting(ctx, s.store, probedSetting); err != nil && !errors.As(err, &unreadable) {
		return err
	} else if p.After(last) {
		last = p
	}
	if !now.After(last.Add(2*hb + up.timeout())) {
		return nil
	}
	// Silent past 2 heartbeats and the timeout: ask the server.
	if err := s.store.SetSetting(ctx, probedSetting, now.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	st, err := src.Client.Status(ctx, t.SubscriptionID)
	switch {
	case fhir.HasStatus(err, http.StatusNotFound, http.StatusGone):
		log.Warn().Str("subscription_id", t.SubscriptionID).Msg("silent subscription is gone from the source: upkeep now")
		return w.subs.upkeep(ctx, src)
	case fhir.HasStatus(err, http.StatusMethodNotAllowed, http.StatusNotImplemented):
		log.Warn().Msg("silent subscription and no $status on the source: searching")
		return s.searchSoon(ctx, src)
	case err != nil:
		return err
	}
	silentProblem := "the server says the subscription is " + st.Status + " but nothing reached " + src.endpointForLogs() +
		" since " + t.LastHeard.Format(time.RFC3339) + "; check that " + sourceVar(src.Name, "CALLBACK_ENDPOINT") +
		" is reachable from the server; claims arrive by the catch-up search meanwhile"
	switch st.Status {
	case "error", "off", "requested":
		log.Warn().Str("status", st.Status).Str("error", st.Error).Msg("silent subscription: the server reports it " + st.Status + "; upkeep now")
		return w.subs.upkeep(ctx, src)
	case "active":
		if st.HasEventsSinceStart && st.EventsSinceStart > t.Contiguous && t.Contiguous >= 0 {
			log.Warn().Int64("events_since_start", st.EventsSinceStart).Int64("contiguous", t.Contiguous).
				Msg("silent subscription with events the callback never got: fetching them with $events")
			t.Counter = max(t.Counter, st.EventsSinceStart)
			return s.fetchMissing(ctx, src, t)
		}
	}
	log.Error().Str("status", st.Status).Str("callback", src.endpointForLogs()).Msg(silentProblem)
	src.silent.Store(true)
	src.setProblem(silentProblem)
	return nil
}
