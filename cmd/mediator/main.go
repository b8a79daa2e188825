// Command mediator runs the CHT–openIMIS mediator.
//
//	mediator            serve (the default)
//	mediator check [--source NAME]  preflight check of the configured systems
//	mediator jobs …     list, show and retry jobs (mediator jobs for help)
//	mediator subscription show|delete|renew [--source NAME]
//	mediator backup FILE  copy the SQLite store to FILE while the server runs
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/config"
)

const usage = `usage: mediator [serve|check|jobs|subscription|backup|healthcheck|version]
  serve          run the mediator (the default)
  check          verify the configured openIMIS, CHT, OpenHIM and FHIR sources, changing nothing in them
                 (--source NAME: that FHIR source alone)
  jobs           list, show and retry jobs; "mediator jobs" for details
  subscription   show, delete or renew the openIMIS subscription (--source NAME: a FHIR source's)
  backup FILE    write a copy of the SQLite store to the new FILE, also while the server runs
  healthcheck    exit 0 when the local server answers /health (for container health checks)
  version        print the version`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mediator:", printableLines(err.Error()))
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
		return check(ctx, args[1:], stdout, stderr)
	case "subscription":
		return subscription(ctx, args[1:], stdout, stderr)
	case "backup":
		return backup(ctx, args[1:], stdout)
	case "healthcheck":
		// The same sources as serve: the environment, then .env.
		v, err := config.NewViper(".env")
		if err != nil {
			return err
		}
		return healthcheck(ctx, v.GetString("LISTEN_ADDRESS"), v.GetString("PORT"))
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return errors.New("unknown command " + cmd + "\n" + usage)
}

// healthcheck asks the server on this machine (at LISTEN_ADDRESS, else
// 127.0.0.1) for /health, for container images without a shell or curl.
func healthcheck(ctx context.Context, listen, port string) error {
	if port == "" {
		port = "6000"
	}
	// The server listens on LISTEN_ADDRESS, or on every interface.
	host := strings.TrimSpace(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}
