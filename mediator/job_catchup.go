package mediator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// settingWatermark is the store setting holding the start of the last
// complete catch-up poll (RFC 3339, UTC).
const settingWatermark = "catchup_watermark"

// catchupPageSize is the _count of each ClaimResponse search page.
const catchupPageSize = 100

// catchupArgs is the periodic job that polls openIMIS for claims the
// subscription did not bring: openIMIS never retries a notification, sends
// none for claims entered in its web UI, and older releases refuse Claim
// subscriptions altogether (openIMIS contract §3, §6).
type catchupArgs struct{}

// Kind implements river.JobArgs.
func (catchupArgs) Kind() string { return "claim_catchup" }

// InsertOpts implements river.JobArgsWithInsertOpts: one poll at a time, on
// the maintenance queue.
func (catchupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, UniqueOpts: uniqueWhileQueued}
}

// pollSchedule runs the catch-up poll every ClaimPollInterval, read at each
// scheduling so that OpenHIM runtime configuration takes effect. While
// polling is off it looks again every minute.
type pollSchedule struct{ m *Mediator }

// Next implements river.PeriodicSchedule.
func (s pollSchedule) Next(t time.Time) time.Time {
	if d := time.Duration(s.m.pollInterval.Load()); d > 0 {
		return t.Add(d)
	}
	return t.Add(time.Minute)
}

type catchupWorker struct {
	river.WorkerDefaults[catchupArgs]
	m *Mediator
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
// an hour and would cut a repeated query's last page short (trap 14).
func (w *catchupWorker) Work(ctx context.Context, job *river.Job[catchupArgs]) error {
	m := w.m
	if m.pollInterval.Load() == 0 {
		return nil
	}
	log := m.log.With().Int64("job_id", job.ID).Str("job_kind", job.Kind).Int("attempt", job.Attempt).Logger()
	ctx = log.WithContext(ctx)
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, w.poll(ctx, job))
}

// poll is one catch-up poll (see Work).
func (w *catchupWorker) poll(ctx context.Context, job *river.Job[catchupArgs]) error {
	m, log := w.m, zerolog.Ctx(ctx)
	pr, err := m.catchupStart(ctx)
	if err != nil {
		return err
	}
	since := pr.Since.Add(-time.Duration(job.Attempt-1) * time.Second)
	var seen, enqueued, invalid int
	for page := pr.Page; ; page++ {
		p, err := m.opts.OpenIMIS.SearchClaimResponses(ctx, since, page, catchupPageSize)
		if err != nil {
			return fmt.Errorf("search claims since %s, page %d: %w", since.Format(time.RFC3339), page, err)
		}
		for _, cr := range p.ClaimResponses {
			seen++
			claim, err := mapping.ClaimFromResponse(cr)
			if err != nil {
				invalid++
				log.Warn().Str("claim_uuid", cr.ID).Str("problems", err.Error()).Msg("catch-up: skipping an unusable ClaimResponse")
				continue
			}
			inserted, err := m.opts.Store.Enqueue(ctx, kindClaim, claimKey(claim.UUID), claimArgs{Claim: claim})
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
		if err := m.saveCatchup(ctx, pr); err != nil {
			return err
		}
	}
	if err := m.opts.Store.SetSetting(ctx, settingWatermark, pr.Started.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	if err := m.opts.Store.SetSetting(ctx, settingCatchupProgress, ""); err != nil {
		return err
	}
	m.lastPoll.Store(pr.Started.UnixNano())
	ev := log.Info()
	if enqueued == 0 && invalid == 0 {
		ev = log.Debug()
	}
	ev.Time("since", since).Int("seen", seen).Int("enqueued", enqueued).Int("invalid", invalid).Msg("catch-up poll done")
	return nil
}

// catchupStart returns the poll under way, or a new one from the watermark
// (less the overlap; the look-back for the very first poll).
func (m *Mediator) catchupStart(ctx context.Context) (catchupProgress, error) {
	if v, ok, err := m.opts.Store.Setting(ctx, settingCatchupProgress); err != nil {
		return catchupProgress{}, err
	} else if ok && v != "" {
		var pr catchupProgress
		if err := json.Unmarshal([]byte(v), &pr); err == nil && pr.Page >= 1 {
			return pr, nil
		}
	}
	started := m.opts.Now().UTC()
	since := started.Add(-m.opts.CatchupLookback)
	if v, ok, err := m.opts.Store.Setting(ctx, settingWatermark); err != nil {
		return catchupProgress{}, err
	} else if ok {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return catchupProgress{}, fmt.Errorf("read catch-up watermark %q: %w", v, err)
		}
	}
	return catchupProgress{Page: 1, Since: since.Add(-m.opts.CatchupOverlap), Started: started}, nil
}

func (m *Mediator) saveCatchup(ctx context.Context, pr catchupProgress) error {
	b, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	return m.opts.Store.SetSetting(ctx, settingCatchupProgress, string(b))
}
