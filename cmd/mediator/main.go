// Command mediator runs the CHT–openIMIS mediator.
//
//	mediator            serve (the default)
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

	"github.com/cht-openimis/mediator/config"
)

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
		return serve(ctx, cfg, stdout, nil)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: mediator [serve|version]")
		return nil
	}
	return errors.New("unknown command " + cmd + " (usage: mediator [serve|version])")
}
