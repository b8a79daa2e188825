// Package store implements storetype.Store on SQLite (embedded, the default)
// and PostgreSQL (several replicas). River's own tables hold the jobs; the mediator's
// tables hold receipts, deliveries, insuree→person mappings and settings.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// errNoQueue is a queue operation before StartQueue.
var errNoQueue = errors.New("store: queue not started")

// errClosed is an operation on a closed store.
var errClosed = errors.New("store: closed")

// ErrUnreachable marks an Open that failed because the database server did
// not answer (not started yet, network): trying again may succeed. A server
// that answers with an error (credentials, a missing database) is not
// unreachable.
var ErrUnreachable = errors.New("database unreachable")

// Open opens the store named by a DATABASE_URL: sqlite://<file> creates the
// file and its directory on first use. It runs the migrations.
func Open(ctx context.Context, databaseURL string) (storetype.Store, error) {
	switch {
	case strings.HasPrefix(databaseURL, "sqlite://"):
		return OpenSQLite(ctx, strings.TrimPrefix(databaseURL, "sqlite://"))
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return OpenPostgres(ctx, databaseURL)
	}
	return nil, fmt.Errorf("store: DATABASE_URL must start with sqlite:// or postgres://")
}

// OpenWaiting is Open for a server starting beside its database: while the
// database is unreachable (ErrUnreachable) it tries again, 1 s doubling to
// 30 s apart, telling waiting of each failure, until ctx ends. Other errors
// (credentials, a missing database, a bad file) come back at once.
func OpenWaiting(ctx context.Context, databaseURL string, waiting func(err error, retryIn time.Duration)) (storetype.Store, error) {
	delay := time.Second
	for {
		st, err := Open(ctx, databaseURL)
		if err == nil || !errors.Is(err, ErrUnreachable) {
			return st, err
		}
		waiting(err, delay)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (stopped while waiting for the store)", context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// OpenExisting is Open for commands that inspect a store: it refuses to
// create an SQLite file that does not exist yet.
func OpenExisting(ctx context.Context, databaseURL string) (storetype.Store, error) {
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store: no SQLite store at %s (DATABASE_URL); run the command where the mediator runs, with its DATABASE_URL", path)
		}
	}
	return Open(ctx, databaseURL)
}
