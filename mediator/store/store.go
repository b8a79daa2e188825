// Package store implements mediator.Store on SQLite (embedded, the default)
// and, later, PostgreSQL. River's own tables hold the jobs; the mediator's
// tables hold receipts, deliveries, insuree→person mappings and settings.
package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/cht-openimis/mediator/mediator"
)

// Open opens the store named by a DATABASE_URL: sqlite://<file> creates the
// file and its directory on first use. It runs the migrations.
func Open(ctx context.Context, databaseURL string) (mediator.Store, error) {
	switch {
	case strings.HasPrefix(databaseURL, "sqlite://"):
		return OpenSQLite(ctx, strings.TrimPrefix(databaseURL, "sqlite://"))
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return nil, fmt.Errorf("store: PostgreSQL is not supported yet; use sqlite://<file>")
	}
	return nil, fmt.Errorf("store: DATABASE_URL must start with sqlite:// or postgres://")
}
