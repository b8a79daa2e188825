// Command mediator runs the CHT–openIMIS mediator.
//
//	mediator            serve (the default)
//	mediator check      preflight check of the configured systems
//	mediator jobs …     list, show and retry jobs (mediator jobs for help)
//	mediator subscription show|delete|renew
//	mediator version    print the version
//
// Configuration comes from the environment and an optional .env file in the
// working directory; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cht-openimis/mediator/cmd/internal/app"
	"github.com/cht-openimis/mediator/config"
)

const usage = `usage: mediator [serve|check|jobs|subscription|version]
  serve          run the mediator (the default)
  check          verify the configured openIMIS, CHT and OpenHIM without writing anything
  jobs           list, show and retry jobs; "mediator jobs" for details
  subscription   show, delete or renew the openIMIS subscription
  version        print the version`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mediator:", err)
		os.Exit(1)
	}
}

// run dispatches the subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
		v, err := config.NewViper(".env")
		if err != nil {
			return err
		}
		cfg, err := config.Load(v)
		if err != nil {
			return err
		}
		return app.Serve(ctx, cfg, version, stdout, nil)
	case "jobs":
		return jobs(ctx, args[1:], stdout)
	case "check":
		return check(ctx, stdout, stderr)
	case "subscription":
		return subscription(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return errors.New("unknown command " + cmd + "\n" + usage)
}
