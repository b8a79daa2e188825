// Command sandbox plays the whole mediator story on one machine, with nothing
// but Go: it starts fake openIMIS, CHT and OpenHIM servers (the ones the tests
// use) and the real mediator wired to them on 127.0.0.1, then a claim goes
// from openIMIS to the CHT and a health worker's feedback comes back.
//
//	go run ./cmd/sandbox          play the story and exit
//	go run ./cmd/sandbox --keep   then leave everything running for curl
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(out)
	keep := fs.Bool("keep", false, "leave everything running after the story, until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := start(ctx, out)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.play(ctx); err != nil {
		return err
	}
	if *keep {
		s.printAccess()
		<-ctx.Done()
		fmt.Fprintln(out, "\nstopping")
	}
	return nil
}
