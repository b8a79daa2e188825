package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
)

const backupUsage = `usage: mediator backup FILE   write a copy of the SQLite store to the new FILE, also while the server runs`

// backup runs "mediator backup FILE" against the store named by
// DATABASE_URL.
func backup(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] == "" {
		return errors.New(backupUsage)
	}
	dbURL, err := databaseURL()
	if err != nil {
		return err
	}
	return backupTo(ctx, dbURL, args[0], stdout)
}

// backupTo writes the backup of the store at dbURL to dest.
func backupTo(ctx context.Context, dbURL, dest string, stdout io.Writer) error {
	if err := store.Backup(ctx, dbURL, dest); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "backup written to", printable(dest))
	return nil
}

// databaseURL is DATABASE_URL from the environment and .env, for the
// commands that need only the store.
func databaseURL() (string, error) {
	v, err := config.NewViper(".env")
	if err != nil {
		return "", err
	}
	return config.LoadDatabaseURL(v)
}
