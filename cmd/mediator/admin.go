package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/config"
)

// errChecksFailed makes "mediator check" exit non-zero after its report.
var errChecksFailed = errors.New("some checks failed")

// withApp loads the configuration, builds the mediator (quiet: warnings
// only, to stderr) and runs f with it.
func withApp(ctx context.Context, stderr io.Writer, f func(*app.App) error) error {
	v, err := config.NewViper(".env")
	if err != nil {
		return err
	}
	cfg, err := config.Load(v)
	if err != nil {
		return err
	}
	cfg.LogLevel = "warn"
	a, err := app.Build(ctx, cfg, stderr, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	return f(a)
}

// check runs the preflight check against the configured systems.
func check(ctx context.Context, stdout, stderr io.Writer) error {
	return withApp(ctx, stderr, func(a *app.App) error {
		if !printChecks(stdout, a.Mediator.Check(ctx)) {
			return errChecksFailed
		}
		return nil
	})
}

const subscriptionUsage = `usage:
  mediator subscription show     the openIMIS Claim subscription of this mediator (secret masked)
  mediator subscription delete   unsubscribe, for decommissioning; the server will not recreate it
  mediator subscription renew    re-enable it and replace it now with a fresh one`

// subscription runs the subscription commands.
func subscription(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return errors.New(subscriptionUsage)
	}
	return withApp(ctx, stderr, func(a *app.App) error {
		switch args[0] {
		case "show":
			r, err := a.Mediator.Subscription(ctx)
			if err != nil {
				return err
			}
			printSubscription(stdout, r)
			return nil
		case "delete":
			deleted, err := a.Mediator.DeleteSubscription(ctx)
			for _, id := range deleted {
				fmt.Fprintln(stdout, "deleted subscription", printable(id))
			}
			if len(deleted) == 0 && err == nil {
				fmt.Fprintln(stdout, "no Claim subscription to delete")
			}
			if err == nil || len(deleted) > 0 { // else it may not even be disabled
				fmt.Fprintln(stdout, "the server will not recreate it; \"mediator subscription renew\" re-enables it")
			}
			return err
		case "renew":
			id, err := a.Mediator.RenewSubscription(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, "subscription", printable(id), "active; the server keeps it renewed")
			return nil
		}
		return errors.New(subscriptionUsage)
	})
}
