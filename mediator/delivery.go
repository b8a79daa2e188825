package mediator

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// delivery is what the claim and feedback workers share: the two clients,
// the store, the insuree→person cache and the upstream slots that bound how
// many jobs talk to the upstreams at once.
type delivery struct {
	oi    *openimis.Client
	cht   *cht.Client
	store storetype.Store
	log   zerolog.Logger

	// dates reads openIMIS dates in its calendar.
	dates            func() mapping.DateReader
	placeID          string
	claimForm        string
	feedbackResource string
	// timeout is the upstream timeout in force (a time.Duration), which
	// OpenHIM runtime configuration may change.
	timeout atomic.Int64
	// lateSaveWait is how long after a failed report POST a retry waits
	// before it looks for the report (see lateSaveWait).
	saveWait time.Duration
	// slots holds a token for each job talking to an upstream: at most
	// Workers at once.
	slots chan struct{}

	persons personCache
	// sharedClaimIDs says claims come from more than one producer (openIMIS
	// and FHIR sources), whose ids may collide: a retry then checks that a
	// report it finds by id is its own (earlierReport).
	sharedClaimIDs bool
	// noQuestionnaireResponse is set once openIMIS answered that it has no
	// QuestionnaireResponse endpoint.
	noQuestionnaireResponse atomic.Bool
}

// upstreamTimeout is the upstream timeout in force: a job waits at most that
// long for an upstream slot, and a report POST without an answer may still be
// saving up to about that long after it failed.
func (d *delivery) upstreamTimeout() time.Duration { return time.Duration(d.timeout.Load()) }

// queueSlotsPerWorker is how many delivery jobs the queue runs per WORKERS
// slot. Only WORKERS of them talk to openIMIS and the CHT at once (the
// upstream slots); the others fetch, check and record in the store
// meanwhile, so that the store's latency does not leave an upstream slot
// idle. Two are enough since the store commits in groups: four delivered
// no more and held 2–4 MiB more (BENCHMARKS.md).
const queueSlotsPerWorker = 2

// withUpstream runs f in one of the WORKERS upstream slots. A job that
// finds no slot free within an upstream timeout (the upstreams are slow or
// down and the slots busy), or is stopped while waiting, is snoozed rather
// than failed: it has done nothing yet, and waiting must use up neither its
// attempts nor its job timeout.
func (d *delivery) withUpstream(ctx context.Context, f func() error) error {
	wait := time.NewTimer(d.upstreamTimeout())
	defer wait.Stop()
	select {
	case d.slots <- struct{}{}:
	case <-wait.C:
		return river.JobSnooze(time.Second)
	case <-ctx.Done():
		return river.JobSnooze(0)
	}
	defer func() { <-d.slots }()
	return f()
}

// delivered reports whether an earlier run of a job finished its work. A
// first attempt cannot have: the receipt makes it the only job for its key,
// and a rescued, re-queued or operator-retried job counts a later attempt.
func (d *delivery) delivered(ctx context.Context, attempt int, kind, key string) (bool, error) {
	if attempt <= 1 {
		return false, nil
	}
	result, done, err := d.store.Delivered(ctx, kind, key)
	if done {
		zerolog.Ctx(ctx).Info().Str("result", result).Msg("already delivered by an earlier run")
	}
	return done, err
}

// personCache caches the store's insuree→person mapping, which never
// changes once written (the person _id derives from the insuree UUID).
type personCache struct {
	m sync.Map
	n atomic.Int64
}

// maxCachedPersons bounds the in-memory insuree→person cache (about 200
// bytes an entry, twice that in heap the garbage collector lets grow);
// past it the cache starts over. It spares the store a read for the
// insurees seen lately; a larger cache bought no speed and cost up to 40 MiB
// of peak memory when every claim brings a new insuree.
const maxCachedPersons = 10_000

func (c *personCache) get(insureeUUID string) (string, bool) {
	id, ok := c.m.Load(insureeUUID)
	if !ok {
		return "", false
	}
	return id.(string), true
}

func (c *personCache) put(insureeUUID, personID string) {
	if c.n.Add(1) > maxCachedPersons {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(insureeUUID, personID)
}
