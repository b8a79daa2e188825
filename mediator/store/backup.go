package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupPostgres is Backup's answer for a PostgreSQL store: its own tools
// back it up.
var ErrBackupPostgres = errors.New("store: a PostgreSQL store is backed up with pg_dump (e.g. pg_dump -Fc -f mediator.dump \"$DATABASE_URL\"), not by the mediator")

// Backup writes a consistent copy of the SQLite store named by databaseURL to
// the new file dest, while a server may be using the store: VACUUM INTO
// reads one snapshot, recent commits still in the WAL included, and writes
// one self-contained database file. It refuses to overwrite an existing file.
func Backup(ctx context.Context, databaseURL, dest string) error {
	path, ok := strings.CutPrefix(databaseURL, "sqlite://")
	if !ok {
		if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
			return ErrBackupPostgres
		}
		return fmt.Errorf("store: DATABASE_URL must start with sqlite:// or postgres://")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store: no SQLite store at %s (DATABASE_URL)", path)
	}
	// The backup only reads: it never migrates, writes to or locks the store.
	db, err := sql.Open(sqliteDriverName, "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return sqliteBackup(ctx, db, dest)
}

// sqliteBackup runs VACUUM INTO a temporary file beside dest, then links it
// to dest, which fails when dest exists: no existing file is overwritten and
// no partial backup is left under dest's name.
func sqliteBackup(ctx context.Context, db *sql.DB, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("store: backup: %s exists; choose a new file", dest)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*.tmp")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	os.Remove(tmpName) // VACUUM INTO wants to create the file
	defer os.Remove(tmpName)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmpName); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := os.Link(tmpName, dest); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("store: backup: %s exists; choose a new file", dest)
		}
		// File systems without hard links: rename, having checked above.
		if err := os.Rename(tmpName, dest); err != nil {
			return fmt.Errorf("store: backup: %w", err)
		}
	}
	return nil
}
