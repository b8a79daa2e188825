package mediator

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// sourceCatchupArgs is a FHIR source's catch-up search: periodic, and run at
// once when the source pings (an R4 criteria subscription without payload,
// docs/upstreams/fhir-subscriptions.md trap 12). Every source keeps one,
// since no subscription model delivers every event (§4).
type sourceCatchupArgs struct {
	Source string `json:"source"`
	// Ping is the Unix second (real time) in which a ping, or another
	// reason to search, came; 0 for the periodic search. The job waits for
	// that second to end (InsertOpts), so that every ping of the second is
	// in one job (unique by args) that starts after the last of them, and
	// it searches no more when a search that started after that second
	// has completed: a burst of pings is one search per second it spans.
	Ping int64 `json:"ping,omitempty"`
}

// Kind implements river.JobArgs.
func (sourceCatchupArgs) Kind() string { return "fhir_catchup" }

// InsertOpts implements river.JobArgsWithInsertOpts: one search per source
// queued at a time, and one per second of pings, run when that second ends.
func (a sourceCatchupArgs) InsertOpts() river.InsertOpts {
	opts := river.InsertOpts{Queue: queueMaintenance, UniqueOpts: uniquePerSource}
	if a.Ping > 0 {
		opts.ScheduledAt = time.Unix(a.Ping+1, 0)
	}
	return opts
}

// searchSoon queues a catch-up search of src for now: after a ping, a
// counter reset, a replaced subscription or events $events could not give.
func (s *sources) searchSoon(ctx context.Context, src *source) error {
	return s.store.Insert(ctx, sourceCatchupArgs{Source: src.Name, Ping: time.Now().Unix()})
}

// uniquePerSource is uniqueWhileQueued for a job per source: unique by its
// args (the source's name).
var uniquePerSource = river.UniqueOpts{ByArgs: true, ByState: uniqueWhileQueued.ByState}

// sourceCatchup searches the FHIR sources for the claim outcomes their
// subscriptions did not bring.
type sourceCatchup struct {
	sources *sources
	// lookback is how far back a source's very first search looks; overlap
	// how far before the previous search's start each search looks again.
	lookback, overlap time.Duration
}

type sourceCatchupWorker struct {
	river.WorkerDefaults[sourceCatchupArgs]
	c *sourceCatchup
}

// Timeout implements river.Worker: a search after a long outage pages
// through a large window.
func (w *sourceCatchupWorker) Timeout(*river.Job[sourceCatchupArgs]) time.Duration { return time.Hour }

// Work implements river.Worker: it enqueues every claim outcome of the
// source updated since its last complete search, less an overlap; those
// already received are skipped by their receipt. The watermark moves only
// after the last page.
func (w *sourceCatchupWorker) Work(ctx context.Context, job *river.Job[sourceCatchupArgs]) error {
	src := w.c.sources.get(job.Args.Source)
	if src == nil {
		return nil // a source since removed from FHIR_SOURCES
	}
	ctx = jobLog(src.log, job.JobRow).Logger().WithContext(ctx)
	// A search that started after the ping's second saw what it announced.
	if p := job.Args.Ping; p > 0 && src.searchedFrom.Load() >= time.Unix(p+1, 0).UnixNano() {
		zerolog.Ctx(ctx).Debug().Msg("catch-up search for a ping: a later search already ran")
		return nil
	}
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, w.c.poll(ctx, src))
}

// sourcePageSize is the _count of each catch-up search page.
const sourcePageSize = 100

// sourceMaxPages bounds one search: a server whose next links loop must not
// keep it busy for ever.
const sourceMaxPages = 10_000

// poll is one catch-up search of src.
func (c *sourceCatchup) poll(ctx context.Context, src *source) error {
	log := zerolog.Ctx(ctx)
	store := c.sources.store
	started, startedReal := c.sources.now().UTC(), time.Now()
	since := started.Add(-c.lookback)
	setting := sourceSetting(src.Name, "watermark")
	if v, ok, err := store.Setting(ctx, setting); err != nil {
		return err
	} else if ok && v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return fmt.Errorf("read the catch-up watermark %q: %w", v, err)
		}
		since = since.Add(-c.overlap)
	}
	params := url.Values{}
	for k, vs := range src.Search {
		params[k] = append([]string(nil), vs...)
	}
	params.Set("_lastUpdated", fhir.LastUpdatedSince(since))
	params.Set("_count", strconv.Itoa(sourcePageSize))

	page, err := src.Client.Search(ctx, src.Resource, params)
	var seen, enqueued, invalid int
	for n := 1; ; n++ {
		if err != nil {
			return fmt.Errorf("search %s updated since %s, page %d: %w", src.Resource, since.Format(time.RFC3339), n, err)
		}
		for _, raw := range page.Resources {
			if resourceType(raw) != src.Resource {
				continue // an included resource
			}
			seen++
			claim, err := sourceClaimOf(src, raw)
			if err != nil {
				invalid++
				log.Warn().Str("problems", err.Error()).Msg("catch-up: skipping an unusable claim outcome")
				continue
			}
			inserted, err := store.Enqueue(ctx, kindSourceClaim, claim.Key(),
				sourceClaimArgs{Source: src.Name, Type: src.Resource, ID: claim.UUID, Claim: &claim})
			if err != nil {
				return err
			}
			if inserted {
				enqueued++
				log.Info().Str("claim_id", claim.UUID).Msg("catch-up: claim received")
			}
		}
		if page.Next == "" {
			break
		}
		if n >= sourceMaxPages {
			return fmt.Errorf("search %s: more than %d pages", src.Resource, sourceMaxPages)
		}
		page, err = src.Client.NextPage(ctx, page.Next)
	}
	if err := store.SetSetting(ctx, setting, started.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	src.lastPoll.Store(started.UnixNano())
	src.searchedFrom.Store(startedReal.UnixNano())
	ev := log.Info()
	if enqueued == 0 && invalid == 0 {
		ev = log.Debug()
	}
	ev.Time("since", since).Int("seen", seen).Int("enqueued", enqueued).Int("invalid", invalid).Msg("catch-up search done")
	return nil
}
