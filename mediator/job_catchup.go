package mediator

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// settingWatermark is the store setting holding the start of the last
// complete catch-up poll (RFC 3339, UTC).
const settingWatermark = "catchup_watermark"

// catchupPageSize is the _count of each ClaimResponse search page.
const catchupPageSize = 100

// catchupArgs is the periodic job that polls openIMIS for claims the
// subscription did not bring: openIMIS never retries a notification, sends
// none for claims entered in its web UI, and older releases refuse Claim
// subscriptions altogether (docs/upstreams/openimis.md §3, §6).
type catchupArgs struct{}

// Kind implements river.JobArgs.
func (catchupArgs) Kind() string { return "claim_catchup" }

// InsertOpts implements river.JobArgsWithInsertOpts: one poll at a time, on
// the maintenance queue.
func (catchupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, UniqueOpts: uniqueWhileQueued}
}

// catchup polls openIMIS for the claims the subscription did not bring.
type catchup struct {
	oi    *openimis.Client
	store storetype.Store
	log   zerolog.Logger
	now   func() time.Time
	// dates reads openIMIS dates in its calendar.
	dates func() mapping.DateReader
	// lookback is how far back the very first poll looks; overlap how far
	// before the previous poll's start each poll looks again.
	lookback, overlap time.Duration

	// pollEvery is the poll period (a time.Duration; 0: off), which OpenHIM
	// runtime configuration may change.
	pollEvery atomic.Int64
	// lastPoll is when the last complete poll started (Unix ns).
	lastPoll atomic.Int64
}

// interval returns the poll period; 0 when polling is off.
func (c *catchup) interval() time.Duration { return time.Duration(c.pollEvery.Load()) }

// setInterval changes the poll period; 0 turns polling off.
func (c *catchup) setInterval(d time.Duration) { c.pollEvery.Store(int64(d)) }

// lastSuccess returns the start of the last complete poll; zero when none
// completed in this process.
func (c *catchup) lastSuccess() time.Time {
	if ns := c.lastPoll.Load(); ns > 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// pollSchedule runs the catch-up poll every ClaimPollInterval, read at each
// scheduling so that OpenHIM runtime configuration takes effect. While
// polling is off it looks again every minute.
type pollSchedule struct{ c *catchup }

// Next implements river.PeriodicSchedule.
func (s pollSchedule) Next(t time.Time) time.Time {
	if d := s.c.interval(); d > 0 {
		return t.Add(d)
	}
	return t.Add(time.Minute)
}

type catchupWorker struct {
	river.WorkerDefaults[catchupArgs]
	c *catchup
}

// catchupProgress is a poll under way, saved after each page so that a
// poll cut short (a timeout, a crash, an outage) resumes where it stopped
// instead of starting over and never finishing.
type catchupProgress struct {
	Page    int       `json:"page"`
	Since   time.Time `json:"since"`
	Started time.Time `json:"started"`
}

// settingCatchupProgress holds the catchupProgress of a poll under way.
const settingCatchupProgress = "catchup_progress"

// Timeout implements river.Worker: a poll after a long outage pages through
// a large window; it saves its progress page by page and is bounded here.
func (w *catchupWorker) Timeout(*river.Job[catchupArgs]) time.Duration { return time.Hour }

// Work implements river.Worker. It enqueues every claim created since the
// last complete poll, less an overlap for clock skew and for claims created
// while that poll ran; claims already received are skipped by their receipt.
// The watermark moves only after every page was read. Pages are ordered by
// creation, oldest first, so a poll resumes at its saved page. Each attempt
// shifts its bound by a second, because openIMIS caches a query's total for
// an hour and would cut a repeated query's last page short (docs/upstreams/openimis.md trap 14).
func (w *catchupWorker) Work(ctx context.Context, job *river.Job[catchupArgs]) error {
	c := w.c
	if c.interval() == 0 {
		return nil
	}
	ctx = jobLog(c.log, job.JobRow).Logger().WithContext(ctx)
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, c.poll(ctx, job.Attempt))
}

// poll is one catch-up poll (see catchupWorker.Work).
func (c *catchup) poll(ctx context.Context, attempt int) error {
	log := zerolog.Ctx(ctx)
	pr, err := c.start(ctx)
	if err != nil {
		return err
	}
	since := pr.Since.Add(-time.Duration(attempt-1) * time.Second)
	var seen, enqueued, invalid int
	for page := pr.Page; ; page++ {
		p, err := c.oi.SearchClaimResponses(ctx, since, page, catchupPageSize)
		if err != nil {
			return fmt.Errorf("search claims since %s, page %d: %w", since.Format(time.RFC3339), page, err)
		}
		for _, cr := range p.ClaimResponses {
			seen++
			claim, err := c.dates().ClaimFromResponse(cr)
			if err != nil {
				invalid++
				log.Warn().Str("claim_uuid", cr.ID).Str("problems", err.Error()).Msg("catch-up: skipping an unusable ClaimResponse")
				continue
			}
			inserted, err := c.store.Enqueue(ctx, kindClaim, claimKey(claim.UUID), claimArgs{Claim: claim, Polled: true})
			if err != nil {
				return err
			}
			if inserted {
				enqueued++
				log.Info().Str("claim_uuid", claim.UUID).Msg("catch-up: claim received")
			}
		}
		if p.Last {
			break
		}
		pr.Page = page + 1
		if err := c.save(ctx, pr); err != nil {
			return err
		}
	}
	if err := c.store.SetSetting(ctx, settingWatermark, pr.Started.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	if err := c.store.SetSetting(ctx, settingCatchupProgress, ""); err != nil {
		return err
	}
	c.lastPoll.Store(pr.Started.UnixNano())
	ev := log.Info()
	if enqueued == 0 && invalid == 0 {
		ev = log.Debug()
	}
	ev.Time("since", since).Int("seen", seen).Int("enqueued", enqueued).Int("invalid", invalid).Msg("catch-up poll done")
	return nil
}

// catchupStart returns the poll under way, or a new one from the watermark
// (less the overlap; the look-back for the very first poll).
func (c *catchup) start(ctx context.Context) (catchupProgress, error) {
	pr, ok, err := jsonSetting[catchupProgress](ctx, c.store, settingCatchupProgress,
		"the catch-up under way cannot be read; searching again from the watermark")
	if err != nil {
		return catchupProgress{}, err
	}
	if ok && pr.Page >= 1 {
		return pr, nil
	}
	started := c.now().UTC()
	since := started.Add(-c.lookback)
	watermark, err := timeSetting(ctx, c.store, settingWatermark)
	if err != nil {
		return catchupProgress{}, err
	}
	if !watermark.IsZero() {
		since = watermark
	}
	return catchupProgress{Page: 1, Since: since.Add(-c.overlap), Started: started}, nil
}

func (c *catchup) save(ctx context.Context, pr catchupProgress) error {
	return setJSONSetting(ctx, c.store, settingCatchupProgress, pr)
}
