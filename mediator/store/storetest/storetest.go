// Package storetest gives tests a fresh store: SQLite in a temporary
// directory, or, when TEST_DATABASE_URL names a PostgreSQL server, a schema
// of its own in that database, dropped when the test ends. The same
// integration tests thus run on both stores.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the PostgreSQL server tests use, e.g.
// postgres://postgres@127.0.0.1:5432/test.
const EnvPostgres = "TEST_DATABASE_URL"

// Postgres reports whether the tests run on PostgreSQL.
func Postgres() bool { return os.Getenv(EnvPostgres) != "" }

// DatabaseURL returns a DATABASE_URL for a fresh, empty store: a SQLite file
// in a temporary directory, or a new PostgreSQL schema when
// TEST_DATABASE_URL is set.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	if Postgres() {
		return PostgresURL(tb)
	}
	return "sqlite://" + filepath.Join(tb.TempDir(), "data", "mediator.db")
}

// PostgresURL creates a schema of its own in the TEST_DATABASE_URL database
// and returns a URL whose connections use it. It skips the test, saying how
// to run it, when TEST_DATABASE_URL is not set, and fails it when the server
// is unreachable.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		tb.Skip("PostgreSQL tests skipped: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run them")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("storetest: connect to TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("storetest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("storetest: TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
