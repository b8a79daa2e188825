// Package store implements mediator.Store on SQLite (embedded, the default)
// and PostgreSQL (several replicas). River's own tables hold the jobs; the mediator's
// tables hold receipts, deliveries, insuree→person mappings and settings.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cht-openimis/mediator/mediator"
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
func Open(ctx context.Context, databaseURL string) (mediator.Store, error) {
	switch {
	case strings.HasPrefix(databaseURL, "sqlite://"):
		return OpenSQLite(ctx, strings.TrimPrefix(databaseURL, "sqlite://"))
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return OpenPostgres(ctx, databaseURL)
	}
	return nil, fmt.Errorf("store: DATABASE_URL must start with sqlite:// or postgres://")
}

// OpenExisting is Open for commands that inspect a store: it refuses to
// create an SQLite file that does not exist yet.
func OpenExisting(ctx context.Context, databaseURL string) (mediator.Store, error) {
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store: no SQLite store at %s (DATABASE_URL); run the command where the mediator runs, with its DATABASE_URL", path)
		}
	}
	return Open(ctx, databaseURL)
}
