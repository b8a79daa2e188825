package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// postgresSchema holds the mediator's own tables. River migrates its own.
const postgresSchema = `
CREATE TABLE IF NOT EXISTS mediator_receipt (
	kind         text NOT NULL,
	key          text NOT NULL,
	received_at  timestamptz NOT NULL DEFAULT now(),
	delivered_at timestamptz,
	result       text,
	digest       text,
	PRIMARY KEY (kind, key)
);
-- Stores created before receipts kept a digest: old receipts keep NULL
-- (unknown).
ALTER TABLE mediator_receipt ADD COLUMN IF NOT EXISTS digest text;
CREATE TABLE IF NOT EXISTS mediator_person (
	insuree_uuid text PRIMARY KEY,
	person_id    text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS mediator_setting (
	name  text PRIMARY KEY,
	value text NOT NULL
);
CREATE TABLE IF NOT EXISTS mediator_health (
	id         integer PRIMARY KEY CHECK (id = 1),
	checked_at timestamptz NOT NULL
);
`

// migrationLock is the advisory lock that serialises migrations of replicas
// starting at once.
const migrationLock = 0x6d65646961746f72 // "mediator"

// Postgres is the store for several replicas: they share its queue, and
// River's LISTEN/NOTIFY makes a job inserted by one replica start at once on
// any. Only River's elected leader runs the periodic jobs (catch-up poll,
// subscription upkeep). Jobs of a replica that died are rescued by River
// once they have been running longer than RescueStuckJobsAfter.
type Postgres struct {
	riverQueue[pgx.Tx]
	batcher

	pool *pgxpool.Pool
}

var _ storetype.Store = (*Postgres)(nil)

// OpenPostgres connects to the database at url and migrates it. Replicas
// may start at once: migrations run under an advisory lock.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: DATABASE_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		var answered *pgconn.PgError
		if !errors.As(err, &answered) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return nil, fmt.Errorf("store: PostgreSQL at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	p := &Postgres{pool: pool, batcher: newBatcher()}
	if err := p.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	return p, nil
}

func (p *Postgres) migrate(ctx context.Context) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)) //nolint:errcheck // released with the session anyway
	migrator, err := rivermigrate.New(riverpgxv5.New(p.pool), nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river tables: %w", err)
	}
	if _, err := conn.Exec(ctx, postgresSchema); err != nil {
		return fmt.Errorf("mediator tables: %w", err)
	}
	return nil
}

// StartQueue implements storetype.Store.
func (p *Postgres) StartQueue(ctx context.Context, cfg *river.Config) error {
	client, err := river.NewClient(riverpgxv5.New(p.pool), cfg)
	if err != nil {
		return fmt.Errorf("store: create queue: %w", err)
	}
	if p.setClient(client) {
		go p.run(func(batch []writeRequest) ([]writeResult, error) { return p.writeBatch(p.queue(), batch) })
	}
	if len(cfg.Queues) == 0 {
		return nil
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("store: start queue: %w", err)
	}
	return nil
}

// Enqueue implements storetype.Store.
func (p *Postgres) Enqueue(ctx context.Context, kind, key string, args river.JobArgs) (bool, error) {
	inserted, _, err := p.EnqueueDigest(ctx, kind, key, "", args)
	return inserted, err
}

// EnqueueDigest implements storetype.Store, in the group commit (batcher).
// When another replica's transaction is inserting the same receipt, the
// insert waits for it; the digest read after it is then the one that
// transaction committed.
func (p *Postgres) EnqueueDigest(ctx context.Context, kind, key, digest string, args river.JobArgs) (bool, string, error) {
	if p.queue() == nil {
		return false, "", errNoQueue
	}
	res, err := p.write(ctx, writeRequest{op: opIntake, kind: kind, key: key, digest: digest, args: args})
	return res.inserted, res.previous, err
}

// SQL of the writes, alone or in a batch.
const (
	pgInsertReceipt = `INSERT INTO mediator_receipt (kind, key, digest) VALUES ($1, $2, NULLIF($3, '')) ON CONFLICT DO NOTHING`
	pgMarkDelivered = `
INSERT INTO mediator_receipt (kind, key, delivered_at, result) VALUES ($1, $2, now(), $3)
ON CONFLICT (kind, key) DO UPDATE SET delivered_at = excluded.delivered_at, result = excluded.result`
	pgReceiptDigest = `SELECT coalesce(digest, '') FROM mediator_receipt WHERE kind = $1 AND key = $2`
	pgSavePerson    = `
INSERT INTO mediator_person (insuree_uuid, person_id) VALUES ($1, $2)
ON CONFLICT (insuree_uuid) DO UPDATE SET person_id = excluded.person_id`
)

// writeBatch records the receipts, inserts the jobs of the new ones and
// records the deliveries and persons in one transaction, its statements
// sent in one round trip. Rows are written in one order (table, then kind
// and key) whatever order the requests came in: two replicas' batches that
// touch the same rows then wait for each other instead of deadlocking. A
// receipt inserted earlier in the same batch makes a later intake of it a
// repeat like any other.
func (p *Postgres) writeBatch(client *river.Client[pgx.Tx], batch []writeRequest) ([]writeResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	table := func(op writeOp) int { // receipts, then persons
		if op == opPerson {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := batch[a], batch[b]
		return cmp.Or(cmp.Compare(table(x.op), table(y.op)), cmp.Compare(x.kind, y.kind), cmp.Compare(x.key, y.key))
	})
	var qb pgx.Batch
	for _, i := range order {
		switch req := batch[i]; req.op {
		case opDelivery:
			qb.Queue(pgMarkDelivered, req.kind, req.key, req.result)
		case opPerson:
			qb.Queue(pgSavePerson, req.key, req.result)
		default:
			qb.Queue(pgInsertReceipt, req.kind, req.key, req.digest)
			if req.digest != "" {
				// The digest a repeat is compared with (an intake
				// without one compares nothing), read after the
				// insert has waited for any transaction inserting the
				// same receipt.
				qb.Queue(pgReceiptDigest, req.kind, req.key)
			}
		}
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	results := make([]writeResult, len(batch))
	var params []river.InsertManyParams
	br := tx.SendBatch(ctx, &qb)
	fail := func(what string, err error) ([]writeResult, error) {
		br.Close() //nolint:errcheck // the first error is the one to report
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	for _, i := range order {
		req := batch[i]
		tag, err := br.Exec()
		if err != nil {
			return fail(req.op.String(), err)
		}
		if req.op != opIntake {
			continue
		}
		inserted := tag.RowsAffected() == 1
		if req.digest != "" {
			var previous string
			if err := br.QueryRow().Scan(&previous); err != nil {
				return fail("read receipt", err)
			}
			if !inserted {
				results[i].previous = previous
			}
		}
		if inserted {
			results[i].inserted = true
			params = append(params, river.InsertManyParams{Args: req.args})
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("store: write: %w", err)
	}
	if len(params) > 0 {
		if _, err := client.InsertManyFastTx(ctx, tx, params); err != nil {
			return nil, fmt.Errorf("store: insert jobs: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("store: commit: %w", err)
	}
	return results, nil
}

// Delivered implements storetype.Store.
func (p *Postgres) Delivered(ctx context.Context, kind, key string) (string, bool, error) {
	var result *string
	err := p.pool.QueryRow(ctx,
		`SELECT result FROM mediator_receipt WHERE kind = $1 AND key = $2 AND delivered_at IS NOT NULL`,
		kind, key).Scan(&result)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read delivery: %w", err)
	}
	if result == nil {
		return "", true, nil
	}
	return *result, true, nil
}

// MarkDelivered implements storetype.Store, in the group commit once the
// queue runs.
func (p *Postgres) MarkDelivered(ctx context.Context, kind, key, result string) error {
	if p.queue() != nil {
		_, err := p.write(ctx, writeRequest{op: opDelivery, kind: kind, key: key, result: result})
		return err
	}
	_, err := p.pool.Exec(ctx, pgMarkDelivered, kind, key, result)
	if err != nil {
		return fmt.Errorf("store: record delivery: %w", err)
	}
	return nil
}

// Person implements storetype.Store.
func (p *Postgres) Person(ctx context.Context, insureeUUID string) (string, bool, error) {
	var id string
	err := p.pool.QueryRow(ctx, `SELECT person_id FROM mediator_person WHERE insuree_uuid = $1`, insureeUUID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read person: %w", err)
	}
	return id, true, nil
}

// SavePerson implements storetype.Store, in the group commit once the queue
// runs.
func (p *Postgres) SavePerson(ctx context.Context, insureeUUID, personID string) error {
	if p.queue() != nil {
		_, err := p.write(ctx, writeRequest{op: opPerson, key: insureeUUID, result: personID})
		return err
	}
	_, err := p.pool.Exec(ctx, pgSavePerson, insureeUUID, personID)
	if err != nil {
		return fmt.Errorf("store: record person: %w", err)
	}
	return nil
}

// Setting implements storetype.Store.
func (p *Postgres) Setting(ctx context.Context, name string) (string, bool, error) {
	var v string
	err := p.pool.QueryRow(ctx, `SELECT value FROM mediator_setting WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read setting %s: %w", name, err)
	}
	return v, true, nil
}

// SetSetting implements storetype.Store.
func (p *Postgres) SetSetting(ctx context.Context, name, value string) error {
	_, err := p.pool.Exec(ctx, `
INSERT INTO mediator_setting (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	if err != nil {
		return fmt.Errorf("store: write setting %s: %w", name, err)
	}
	return nil
}

// QueueStats implements storetype.Store.
func (p *Postgres) QueueStats(ctx context.Context) (map[string]storetype.QueueStat, error) {
	rows, err := p.pool.Query(ctx, `
SELECT kind,
       count(*) FILTER (WHERE state NOT IN ('cancelled', 'discarded')),
       min(created_at) FILTER (WHERE state NOT IN ('cancelled', 'discarded')),
       count(*) FILTER (WHERE state IN ('cancelled', 'discarded'))
FROM river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled', 'cancelled', 'discarded')
GROUP BY kind`)
	if err != nil {
		return nil, fmt.Errorf("store: queue stats: %w", err)
	}
	defer rows.Close()
	stats := map[string]storetype.QueueStat{}
	for rows.Next() {
		var kind string
		var st storetype.QueueStat
		var oldest *time.Time
		if err := rows.Scan(&kind, &st.Depth, &oldest, &st.Failed); err != nil {
			return nil, fmt.Errorf("store: queue stats: %w", err)
		}
		if oldest != nil {
			st.Oldest = *oldest
		}
		stats[kind] = st
	}
	return stats, rows.Err()
}

// lockKey is the advisory lock key of the name $1: the name within the
// current schema, as advisory locks are per database.
const lockKey = `hashtextextended(current_schema() || '/' || $1::text, 0)`

// TryLock implements storetype.Store with a session-level advisory lock,
// tried on a connection of the pool. A lock taken keeps its connection out
// of the pool (hijacked; the pool opens another), so that an hour's search
// does not take a connection from the intake and the queue, and unlock
// closes it. PostgreSQL releases the lock when that session ends, so a
// replica that dies (or loses the connection) never leaves a lock behind,
// and a long job needs no lease to renew. A lock not taken costs no new
// connection: its job tries again each second while the other runs.
func (p *Postgres) TryLock(ctx context.Context, name string) (func(), bool, error) {
	pc, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
	}
	var ok bool
	err = pc.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+lockKey+`)`, name).Scan(&ok)
	if err != nil || !ok {
		pc.Release()
		if err != nil {
			return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
		}
		return nil, false, nil
	}
	conn := pc.Hijack()
	var once sync.Once
	return func() {
		once.Do(func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			// Unlocked first, so that the lock is free when unlock
			// returns; the session's end would free it a moment later.
			conn.Exec(cctx, `SELECT pg_advisory_unlock(`+lockKey+`)`, name) //nolint:errcheck // closing ends the lock anyway
			conn.Close(cctx)                                                //nolint:errcheck // the session, and the lock, end with the connection either way
		})
	}, true, nil
}

// Ping implements storetype.Store.
func (p *Postgres) Ping(ctx context.Context) error {
	return p.pool.Ping(ctx)
}

// CheckWrite implements storetype.Store: it commits a write to the health
// row, as every request and job must be able to.
func (p *Postgres) CheckWrite(ctx context.Context) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit, a no-op
	if _, err := tx.Exec(ctx, `
INSERT INTO mediator_health (id, checked_at) VALUES (1, now())
ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`); err != nil {
		return fmt.Errorf("store: write: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Close implements storetype.Store.
func (p *Postgres) Close() error {
	p.close()
	p.pool.Close()
	return nil
}
