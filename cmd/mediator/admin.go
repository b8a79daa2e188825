package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
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

const checkUsage = `usage:
  mediator check                  openIMIS, the CHT, OpenHIM and every FHIR source
  mediator check --source NAME    the FHIR source NAME alone (one of FHIR_SOURCES)`

// check runs the preflight check against the configured systems, or
// against one FHIR source with --source.
func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	source := fs.String("source", "", "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errors.New(checkUsage)
	}
	return withApp(ctx, stderr, func(a *app.App) error {
		var results []mediator.CheckResult
		if *source == "" {
			results = a.Mediator.Check(ctx)
		} else {
			var err error
			if results, err = a.Mediator.CheckSource(ctx, *source); err != nil {
				return err
			}
		}
		if !printChecks(stdout, results) {
			return errChecksFailed
		}
		return nil
	})
}

const subscriptionUsage = `usage:
  mediator subscription show     the openIMIS Claim subscription of this mediator (secret masked)
  mediator subscription delete   unsubscribe, for decommissioning; the server will not recreate it
  mediator subscription renew    re-enable it and replace it now with a fresh one
  each with --source NAME: the subscription on the FHIR source NAME (one of FHIR_SOURCES) instead`

// subscription runs the subscription commands, of openIMIS or, with
// --source, of one FHIR source.
func subscription(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(subscriptionUsage)
	}
	fs := flag.NewFlagSet("subscription", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	source := fs.String("source", "", "")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return errors.New(subscriptionUsage)
	}
	if *source != "" {
		switch args[0] {
		case "show", "delete", "renew":
		default:
			return errors.New(subscriptionUsage)
		}
		return withApp(ctx, stderr, func(a *app.App) error { return sourceSubscription(ctx, a, args[0], *source, stdout) })
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

// sourceSubscription runs show, delete or renew on the FHIR source name.
func sourceSubscription(ctx context.Context, a *app.App, verb, name string, stdout io.Writer) error {
	switch verb {
	case "show":
		r, err := a.Mediator.SourceSubscription(ctx, name)
		if err != nil {
			return err
		}
		printSourceSubscription(stdout, r)
		return nil
	case "delete":
		deleted, err := a.Mediator.DeleteSourceSubscription(ctx, name)
		for _, id := range deleted {
			fmt.Fprintln(stdout, "deleted subscription", printable(id), "on", printable(name))
		}
		if len(deleted) == 0 && err == nil {
			fmt.Fprintln(stdout, "no subscription to delete on", printable(name))
		}
		if err == nil || len(deleted) > 0 { // else it may not even be disabled
			fmt.Fprintf(stdout, "the server will not recreate it; \"mediator subscription renew --source %s\" re-enables it\n", printable(name))
		}
		return err
	}
	id, err := a.Mediator.RenewSourceSubscription(ctx, name)
	switch {
	case err != nil && id == "":
		return err
	case id == "":
		fmt.Fprintln(stdout, "re-enabled; this version makes no subscription for the dialect of", printable(name)+": claims arrive by the catch-up search")
	default:
		fmt.Fprintln(stdout, "subscription", printable(id), "on", printable(name), "replaced; the server keeps it renewed")
	}
	return err
}
