package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// sqliteSchema holds the mediator's own tables. River migrates its own.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS mediator_receipt (
	kind         TEXT NOT NULL,
	key          TEXT NOT NULL,
	received_at  TEXT NOT NULL,
	delivered_at TEXT,
	result       TEXT,
	digest       TEXT,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mediator_person (
	insuree_uuid TEXT PRIMARY KEY,
	person_id    TEXT NOT NULL,
	created_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mediator_setting (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mediator_health (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	checked_at TEXT NOT NULL
);
`

// SQLite is the embedded store. SQLite allows one writer at a time, so the
// pool holds one connection, as River's SQLite driver recommends; WAL with
// synchronous=FULL keeps every acknowledged commit across a process crash and
// a power loss (group commit spreads the cost of the flushes).
type SQLite struct {
	db   *sql.DB
	path string

	riverQueue[*sql.Tx]

	mu   sync.Mutex
	lock *os.File // held while this process works the jobs

	locks localLocks // TryLock's

	batcher
}

var _ storetype.Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database file at path and
// migrates it.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: empty SQLite file path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open(sqliteDriverName, "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &SQLite{db: db, path: path, batcher: newBatcher()}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	migrator, err := rivermigrate.New(riversqlite.New(s.db), nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river tables: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("mediator tables: %w", err)
	}
	if err := s.addReceiptDigest(ctx); err != nil {
		return fmt.Errorf("mediator tables: %w", err)
	}
	return nil
}

// addReceiptDigest upgrades a store created before receipts kept a digest:
// it adds the column, which old receipts leave NULL (unknown). The check and
// the change share one write transaction, so two processes opening the file
// at once (a server and an operator command) cannot both add it, and a
// crash leaves the table either as it was or upgraded.
func (s *SQLite) addReceiptDigest(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var n int
	if err := tx.QueryRowContext(ctx,
		`SELECT count(*) FROM pragma_table_info('mediator_receipt') WHERE name = 'digest'`).Scan(&n); err != nil {
		return fmt.Errorf("read the receipt columns: %w", err)
	}
	if n == 1 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE mediator_receipt ADD COLUMN digest TEXT`); err != nil {
		return fmt.Errorf("add the receipt digest: %w", err)
	}
	return tx.Commit()
}

// StartQueue implements storetype.Store. A client that works jobs first locks
// the store (one server per SQLite file) and puts back to work the jobs a
// crashed predecessor left running: they resume at once, with their attempt
// counted, instead of after River's stuck-job timeout.
func (s *SQLite) StartQueue(ctx context.Context, cfg *river.Config) error {
	if len(cfg.Queues) > 0 {
		lock, err := lockFile(s.path + ".lock")
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.lock = lock
		s.mu.Unlock()
		if _, err := s.db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`); err != nil {
			return fmt.Errorf("store: requeue jobs left running: %w", err)
		}
	}
	client, err := river.NewClient(riversqlite.New(s.db), cfg)
	if err != nil {
		return fmt.Errorf("store: create queue: %w", err)
	}
	if s.setClient(client) {
		go s.run(func(batch []writeRequest) ([]writeResult, error) { return s.writeBatch(s.queue(), batch) })
	}
	if len(cfg.Queues) == 0 {
		return nil // an insert-only client: it enqueues but works nothing
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("store: start queue: %w", err)
	}
	return nil
}

// Enqueue implements storetype.Store, in the group commit (batcher): SQLite
// has one writer.
func (s *SQLite) Enqueue(ctx context.Context, kind, key string, args river.JobArgs) (bool, error) {
	inserted, _, err := s.EnqueueDigest(ctx, kind, key, "", args)
	return inserted, err
}

// EnqueueDigest implements storetype.Store, in the group commit of Enqueue.
func (s *SQLite) EnqueueDigest(ctx context.Context, kind, key, digest string, args river.JobArgs) (bool, string, error) {
	if s.queue() == nil {
		return false, "", errNoQueue
	}
	res, err := s.write(ctx, writeRequest{op: opIntake, kind: kind, key: key, digest: digest, args: args})
	return res.inserted, res.previous, err
}

// MarkDelivered implements storetype.Store. Once the queue runs, delivery
// records share the group commit of the intakes (see Enqueue): the workers
// record as many deliveries a second as the intakes receive.
func (s *SQLite) MarkDelivered(ctx context.Context, kind, key, result string) error {
	if s.queue() == nil {
		return markDelivered(ctx, s.db, kind, key, result)
	}
	_, err := s.write(ctx, writeRequest{op: opDelivery, kind: kind, key: key, result: result})
	return err
}

// writeBatch records the receipts, inserts the jobs of the new ones and
// records the deliveries and persons in one transaction. An intake whose
// receipt exists reads the digest recorded in it; a receipt inserted earlier
// in the same batch is read too, so a repeat within one batch is a repeat
// like any other.
func (s *SQLite) writeBatch(client *river.Client[*sql.Tx], batch []writeRequest) ([]writeResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	results := make([]writeResult, len(batch))
	var params []river.InsertManyParams
	at := now()
	for i, req := range batch {
		switch req.op {
		case opDelivery:
			if err := markDelivered(ctx, tx, req.kind, req.key, req.result); err != nil {
				return nil, err
			}
			continue
		case opPerson:
			if err := savePerson(ctx, tx, req.key, req.result); err != nil {
				return nil, err
			}
			continue
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO mediator_receipt (kind, key, received_at, digest) VALUES (?, ?, ?, NULLIF(?, '')) ON CONFLICT DO NOTHING`,
			req.kind, req.key, at, req.digest)
		if err != nil {
			return nil, fmt.Errorf("store: record receipt: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("store: record receipt: %w", err)
		}
		if n == 1 {
			results[i].inserted = true
			params = append(params, river.InsertManyParams{Args: req.args})
			continue
		}
		if req.digest == "" {
			continue // an intake without a digest compares nothing
		}
		if err := tx.QueryRowContext(ctx,
			`SELECT coalesce(digest, '') FROM mediator_receipt WHERE kind = ? AND key = ?`,
			req.kind, req.key).Scan(&results[i].previous); err != nil {
			return nil, fmt.Errorf("store: read receipt: %w", err)
		}
	}
	if len(params) > 0 {
		if _, err := client.InsertManyFastTx(ctx, tx, params); err != nil {
			return nil, fmt.Errorf("store: insert jobs: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: commit: %w", err)
	}
	return results, nil
}

// QueueStats implements storetype.Store.
func (s *SQLite) QueueStats(ctx context.Context) (map[string]storetype.QueueStat, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT kind,
       count(*) FILTER (WHERE state NOT IN ('cancelled', 'discarded')),
       CAST(strftime('%s', min(created_at) FILTER (WHERE state NOT IN ('cancelled', 'discarded'))) AS INTEGER),
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
		var n, failed int
		var oldest sql.NullInt64
		if err := rows.Scan(&kind, &n, &oldest, &failed); err != nil {
			return nil, fmt.Errorf("store: queue stats: %w", err)
		}
		st := storetype.QueueStat{Depth: n, Failed: failed}
		if oldest.Valid {
			st.Oldest = time.Unix(oldest.Int64, 0)
		}
		stats[kind] = st
	}
	return stats, rows.Err()
}

// Delivered implements storetype.Store.
func (s *SQLite) Delivered(ctx context.Context, kind, key string) (string, bool, error) {
	var result sql.NullString
	err := s.db.QueryRowContext(ctx,
		`SELECT result FROM mediator_receipt WHERE kind = ? AND key = ? AND delivered_at IS NOT NULL`,
		kind, key).Scan(&result)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read delivery: %w", err)
	}
	return result.String, true, nil
}

// markDelivered records a delivery in the receipt (made if missing).
func markDelivered(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, kind, key, result string) error {
	at := now()
	_, err := db.ExecContext(ctx, `
INSERT INTO mediator_receipt (kind, key, received_at, delivered_at, result) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET delivered_at = excluded.delivered_at, result = excluded.result`,
		kind, key, at, at, result)
	if err != nil {
		return fmt.Errorf("store: record delivery: %w", err)
	}
	return nil
}

// Person implements storetype.Store.
func (s *SQLite) Person(ctx context.Context, insureeUUID string) (string, bool, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT person_id FROM mediator_person WHERE insuree_uuid = ?`, insureeUUID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read person: %w", err)
	}
	return id, true, nil
}

// SavePerson implements storetype.Store. Once the queue runs, person
// records share the group commit of the intakes (see Enqueue), like the
// delivery records: each new insuree's claim records one.
func (s *SQLite) SavePerson(ctx context.Context, insureeUUID, personID string) error {
	if s.queue() == nil {
		return savePerson(ctx, s.db, insureeUUID, personID)
	}
	_, err := s.write(ctx, writeRequest{op: opPerson, key: insureeUUID, result: personID})
	return err
}

// savePerson records the person of an insuree.
func savePerson(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, insureeUUID, personID string) error {
	_, err := db.ExecContext(ctx, `
INSERT INTO mediator_person (insuree_uuid, person_id, created_at) VALUES (?, ?, ?)
ON CONFLICT (insuree_uuid) DO UPDATE SET person_id = excluded.person_id`, insureeUUID, personID, now())
	if err != nil {
		return fmt.Errorf("store: record person: %w", err)
	}
	return nil
}

// Setting implements storetype.Store.
func (s *SQLite) Setting(ctx context.Context, name string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM mediator_setting WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read setting %s: %w", name, err)
	}
	return v, true, nil
}

// SetSetting implements storetype.Store.
func (s *SQLite) SetSetting(ctx context.Context, name, value string) error {
	_, err := s.db.ExecContext(ctx, `
INSERT INTO mediator_setting (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	if err != nil {
		return fmt.Errorf("store: write setting %s: %w", name, err)
	}
	return nil
}

// TryLock implements storetype.Store. The locks are the process's own:
// another process cannot work this file's jobs meanwhile (lockFile).
func (s *SQLite) TryLock(_ context.Context, name string) (func(), bool, error) {
	unlock, ok := s.locks.tryLock(name)
	return unlock, ok, nil
}

// Ping implements storetype.Store.
func (s *SQLite) Ping(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

// CheckWrite implements storetype.Store: it commits a write to the health
// row, as every request and job must be able to.
func (s *SQLite) CheckWrite(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, `
INSERT INTO mediator_health (id, checked_at) VALUES (1, ?)
ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`, now()); err != nil {
		return fmt.Errorf("store: write: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Close implements storetype.Store.
func (s *SQLite) Close() error {
	s.close()
	err := s.db.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
		s.lock = nil
	}
	return err
}

func now() string {
	return time.Now().UTC().Format(time.RFC3339Nano)
}
