package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
)

const jobsUsage = `usage:
  mediator jobs list [--state STATE] [--limit N]   jobs not completed (or in STATE), newest first
  mediator jobs show ID                            one job: subject, attempts, errors, payload
  mediator jobs retry ID                           run a job again now
  mediator jobs retry --all-failed                 run every failed job again now
STATE is one of: `

// jobs runs the operator's job commands against the store named by
// DATABASE_URL; they work beside a running server.
func jobs(ctx context.Context, args []string, stdout io.Writer) error {
	usage := errors.New(jobsUsage + strings.Join(mediator.JobStateNames(), ", "))
	if len(args) == 0 {
		return usage
	}
	dbURL, err := databaseURL()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("jobs "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	state := fs.String("state", "", "")
	limit := fs.Int("limit", 100, "")
	allFailed := fs.Bool("all-failed", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w\n%w", err, usage)
	}
	id := func() (int64, error) {
		if fs.NArg() != 1 {
			return 0, usage
		}
		n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("job id %q is not a positive number", fs.Arg(0))
		}
		return n, nil
	}

	st, err := store.OpenExisting(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	js, err := mediator.OpenJobs(ctx, st)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		if fs.NArg() != 0 || *limit < 1 {
			return usage
		}
		list, err := js.List(ctx, *state, *limit)
		if err != nil {
			return err
		}
		return printJobs(stdout, list)
	case "show":
		n, err := id()
		if err != nil {
			return err
		}
		j, err := js.Get(ctx, n)
		if err != nil {
			return err
		}
		printJob(stdout, j)
		return nil
	case "retry":
		if *allFailed {
			if fs.NArg() != 0 {
				return usage
			}
			n, err := js.RetryFailed(ctx)
			fmt.Fprintf(stdout, "%d failed jobs made available again\n", n)
			return err
		}
		n, err := id()
		if err != nil {
			return err
		}
		j, err := js.Retry(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "job %d (%s %s) is %s\n", j.ID, printable(j.Kind), printable(j.Subject), j.State)
		return nil
	}
	return usage
}
