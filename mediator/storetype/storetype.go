// Package storetype holds the types the mediator and its store implementations
// share (River's rivertype pattern): the Store interface, job filters and
// queue statistics. It imports no other package of this module, so the store
// builds without the HTTP framework or the upstream clients.
package storetype

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueStat describes the jobs of one kind that wait or run, and those kept
// as failed for an operator.
type QueueStat struct {
	// Depth counts the jobs waiting or running; Oldest is the creation of
	// the oldest of them (zero when none).
	Depth  int
	Oldest time.Time
	// Failed counts the jobs kept as failed (cancelled after a permanent
	// error, or discarded out of attempts) until an operator retries them.
	Failed int
}

// Store is the mediator's durable state: the job queue, the receipts that make
// inbound notifications idempotent, the insuree→person mapping and small
// settings (the subscription id, the catch-up watermark). It has one
// implementation per database (package mediator/store).
type Store interface {
	// StartQueue creates the River client with cfg and starts working jobs;
	// with no queues in cfg the client only enqueues.
	StartQueue(ctx context.Context, cfg *river.Config) error
	// StopQueue stops fetching jobs and waits for running ones until ctx ends,
	// then cancels them; a cancelled job runs again after a restart.
	StopQueue(ctx context.Context) error

	// Enqueue records the receipt (kind, key) and inserts the job args in one
	// transaction. It reports false, inserting nothing, when the receipt
	// exists: the notification was received before.
	Enqueue(ctx context.Context, kind, key string, args river.JobArgs) (bool, error)
	// EnqueueDigest is Enqueue that also records digest, a fingerprint of
	// what was received, in the receipt. When the receipt exists it reports
	// false, inserting nothing, with the digest recorded in it: "" when it
	// was recorded without one (by Enqueue, or before receipts kept
	// digests), which says nothing about what was received then.
	EnqueueDigest(ctx context.Context, kind, key, digest string, args river.JobArgs) (inserted bool, previous string, err error)
	// Insert inserts a job that has no receipt, such as an upkeep job run
	// on demand; its args' InsertOpts make it unique where it must be.
	Insert(ctx context.Context, args river.JobArgs) error
	// Delivered returns the result recorded by MarkDelivered for (kind, key).
	Delivered(ctx context.Context, kind, key string) (result string, ok bool, err error)
	// MarkDelivered records that the work for (kind, key) is done, with its
	// result (the CHT report id, the openIMIS feedback id).
	MarkDelivered(ctx context.Context, kind, key, result string) error

	// Person returns the CHT person id recorded for an insuree.
	Person(ctx context.Context, insureeUUID string) (personID string, ok bool, err error)
	// SavePerson records the CHT person id of an insuree.
	SavePerson(ctx context.Context, insureeUUID, personID string) error

	// Setting returns a named value.
	Setting(ctx context.Context, name string) (value string, ok bool, err error)
	// SetSetting stores a named value.
	SetSetting(ctx context.Context, name, value string) error

	// TryLock takes the lock called name when nobody holds it, in this
	// process or in another replica on the same database; ok is false, and
	// unlock nil, when it is held. unlock releases it. A lock goes with the
	// process that holds it, also when it is killed, so that no lock
	// outlives its job. The mediator runs each source's catch-up search,
	// and its subscription upkeep and watchdog, under one.
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)

	// ListJobs returns the jobs f selects, newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]*rivertype.JobRow, error)
	// GetJob returns one job; river.ErrNotFound when there is none.
	GetJob(ctx context.Context, id int64) (*rivertype.JobRow, error)
	// RetryJob makes a job that is not running available to run at once.
	RetryJob(ctx context.Context, id int64) (*rivertype.JobRow, error)

	// QueueStats counts the jobs waiting or running, by kind, with the
	// creation time of the oldest.
	QueueStats(ctx context.Context) (map[string]QueueStat, error)

	// Ping checks that the store is usable.
	Ping(ctx context.Context) error
	// CheckWrite checks that the store can commit: it writes a health row
	// in a transaction. A full disk, a read-only file system or a database
	// in recovery fail it while reads still work.
	CheckWrite(ctx context.Context) error
	// Close releases the database. Call StopQueue first.
	Close() error
}

// JobFilter selects jobs for Store.ListJobs.
type JobFilter struct {
	// States and Kinds select jobs in any of them; empty selects all.
	States []rivertype.JobState
	Kinds  []string
	// Before, when not 0, selects jobs older than the job of that id.
	Before int64
	// Limit bounds the jobs returned.
	Limit int
}
