package mediator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// sourceCatchupArgs is a FHIR source's catch-up search: periodic, and run
// when the source pings (an R4 criteria subscription without payload,
// docs/upstreams/fhir-subscriptions.md trap 12), scheduled for the end of
// the ping's second (Ping). Every source keeps one,
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
	err := w.c.sources.exclusive(ctx, src, lockSearch, func() error {
		// A search that started after the ping's second saw what it
		// announced, whichever replica ran it.
		p := job.Args.Ping
		if p > 0 {
			from, err := w.c.sources.searchedFrom(ctx, src)
			if err != nil {
				return err
			}
			if !from.Before(time.Unix(p+1, 0)) {
				zerolog.Ctx(ctx).Debug().Msg("catch-up search for a ping: a later search already ran")
				return nil
			}
		}
		startedReal, err := w.c.poll(ctx, src)
		if err == nil && p > 0 && startedReal.Before(time.Unix(p+1, 0)) {
			// The search resumed was started before the ping's second
			// ended: its query may not see what the ping announced (a
			// HAPI snapshot), so one more.
			_, err = w.c.poll(ctx, src)
		}
		return err
	})
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
}

// searchedFrom is when the last complete search of src started, on the real
// clock, which River's schedule of the ping searches follows: stored
// (source/<n>/searched_from), so that a replica skips a ping search another
// replica's later search made needless. Zero before the first.
func (s *sources) searchedFrom(ctx context.Context, src *source) (time.Time, error) {
	return timeSetting(ctx, s.store, sourceSetting(src.Name, "searched_from"))
}

// sourcePageSize is the _count of each catch-up search page.
const sourcePageSize = 100

// sourceMaxPages bounds one search: a server whose next links loop must not
// keep it busy for ever.
const sourceMaxPages = 10_000

// sourceCatchupProgress is a search under way, saved after each page as
// catchupProgress is for openIMIS (docs/upstreams/fhir-subscriptions.md
// §7): a search cut short (a timeout, a crash, an outage) resumes at its
// next page instead of starting over and never finishing.
type sourceCatchupProgress struct {
	// Next is the next page's URL: the server's next link under the base,
	// or its page token on the original query (fhir.Page.Next).
	Next string `json:"next"`
	// Page is the number of the next page, for messages.
	Page int `json:"page"`
	// Since is the search's _lastUpdated bound; Started when it started,
	// the watermark once its last page is read; StartedReal the same on
	// the real clock, which River's schedule of ping searches follows.
	Since       time.Time `json:"since"`
	Started     time.Time `json:"started"`
	StartedReal time.Time `json:"started_real"`
}

// poll is one catch-up search of src, resumed from its saved progress if a
// search was cut short. It returns when the search started, on the real
// clock.
func (c *sourceCatchup) poll(ctx context.Context, src *source) (time.Time, error) {
	log := zerolog.Ctx(ctx)
	store := c.sources.store
	setting := sourceSetting(src.Name, "catchup_progress")
	pr, err := c.resume(ctx, src, setting)
	if err != nil {
		return time.Time{}, err
	}
	if pr.Next == "" {
		if pr, err = c.fresh(ctx, src); err != nil {
			return time.Time{}, err
		}
	}
	var page fhir.Page
	if pr.Next != "" {
		page, err = src.Client.NextPage(ctx, pr.Next)
	} else {
		page, err = src.Client.Search(ctx, src.Resource, catchupParams(src, pr.Since))
	}
	restarted := false
	var seen, enqueued, invalid int
	for {
		if err != nil && pr.Next != "" && !restarted && pageRejected(err) {
			// The server no longer knows the page: its token expired
			// (HeyDonto's _page_token, HAPI's search snapshot; trap 21),
			// or the base changed since it was saved. Once per search, it
			// starts again from the watermark.
			restarted = true
			log.Warn().Err(err).Int("page", pr.Page).
				Msg("catch-up: the server refused the next page (an expired page token?); searching again from the watermark")
			if err := store.SetSetting(ctx, setting, ""); err != nil {
				return time.Time{}, err
			}
			if pr, err = c.fresh(ctx, src); err != nil {
				return time.Time{}, err
			}
			page, err = src.Client.Search(ctx, src.Resource, catchupParams(src, pr.Since))
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("search %s updated since %s, page %d: %w", src.Resource, pr.Since.Format(time.RFC3339), pr.Page, err)
		}
		for _, raw := range page.Resources {
			if fhir.ResourceType(raw) != src.Resource {
				continue // an included resource
			}
			seen++
			claim, err := sourceClaimOf(src, raw)
			if err != nil {
				invalid++
				log.Warn().Str("problems", err.Error()).Msg("catch-up: skipping an unusable claim outcome")
				continue
			}
			inserted, err := c.sources.enqueueClaim(ctx, src, claim.UUID, &claim)
			if err != nil {
				return time.Time{}, err
			}
			if inserted {
				enqueued++
				log.Info().Str("claim_id", claim.UUID).Msg("catch-up: claim received")
			}
		}
		if page.Next == "" {
			break
		}
		if pr.Page >= sourceMaxPages {
			return time.Time{}, fmt.Errorf("search %s: more than %d pages", src.Resource, sourceMaxPages)
		}
		pr.Next, pr.Page = page.Next, pr.Page+1
		if err := c.save(ctx, setting, pr); err != nil {
			return time.Time{}, err
		}
		page, err = src.Client.NextPage(ctx, pr.Next)
	}
	if err := store.SetSetting(ctx, sourceSetting(src.Name, "watermark"), pr.Started.Format(time.RFC3339Nano)); err != nil {
		return time.Time{}, err
	}
	if err := store.SetSetting(ctx, setting, ""); err != nil {
		return time.Time{}, err
	}
	if err := store.SetSetting(ctx, sourceSetting(src.Name, "searched_from"), pr.StartedReal.Format(time.RFC3339Nano)); err != nil {
		return time.Time{}, err
	}
	src.lastPoll.Store(pr.Started.UnixNano())
	ev := log.Info()
	if enqueued == 0 && invalid == 0 {
		ev = log.Debug()
	}
	ev.Time("since", pr.Since).Int("seen", seen).Int("enqueued", enqueued).Int("invalid", invalid).Msg("catch-up search done")
	return pr.StartedReal, nil
}

// pageRejected reports whether a next page failed for good: refused by the
// server (400, or 404/410 for a vanished snapshot) or outside the base.
func pageRejected(err error) bool {
	return fhir.HasStatus(err, http.StatusBadRequest, http.StatusNotFound, http.StatusGone) ||
		errors.Is(err, fhir.ErrOutsideBase)
}

// resume returns the saved progress of a search cut short; a zero one when
// there is none (or it cannot be read: the search then starts again).
func (c *sourceCatchup) resume(ctx context.Context, src *source, setting string) (sourceCatchupProgress, error) {
	const unreadable = "catch-up: unreadable saved progress; searching again from the watermark"
	pr, ok, err := jsonSetting[sourceCatchupProgress](ctx, c.sources.store, setting, unreadable)
	if err != nil || !ok {
		return sourceCatchupProgress{}, err
	}
	if pr.Next == "" || pr.Page < 2 || pr.Started.IsZero() || pr.StartedReal.IsZero() {
		zerolog.Ctx(ctx).Warn().Msg(unreadable)
		return sourceCatchupProgress{}, nil
	}
	zerolog.Ctx(ctx).Info().Int("page", pr.Page).Time("since", pr.Since).Msg("catch-up: resuming a search cut short")
	return pr, nil
}

// fresh returns a new search from the watermark, less the overlap (the
// look-back for the very first search).
func (c *sourceCatchup) fresh(ctx context.Context, src *source) (sourceCatchupProgress, error) {
	started, startedReal := c.sources.now().UTC(), time.Now()
	since := started.Add(-c.lookback)
	if watermark, err := timeSetting(ctx, c.sources.store, sourceSetting(src.Name, "watermark")); err != nil {
		return sourceCatchupProgress{}, err
	} else if !watermark.IsZero() {
		since = watermark.Add(-c.overlap)
	}
	return sourceCatchupProgress{Page: 1, Since: since, Started: started, StartedReal: startedReal}, nil
}

// catchupParams is the first page's query of src's catch-up search: the
// source's extra parameters, the _lastUpdated bound and the page size.
func catchupParams(src *source, since time.Time) url.Values {
	params := url.Values{}
	for k, vs := range src.Search {
		params[k] = append([]string(nil), vs...)
	}
	params.Set("_lastUpdated", fhir.LastUpdatedSince(since))
	params.Set("_count", strconv.Itoa(sourcePageSize))
	return params
}

func (c *sourceCatchup) save(ctx context.Context, setting string, pr sourceCatchupProgress) error {
	return setJSONSetting(ctx, c.sources.store, setting, pr)
}
