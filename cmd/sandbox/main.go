// Command sandbox plays the whole mediator story on one machine, with nothing
// but Go: it starts fake openIMIS, CHT and OpenHIM servers (the ones the tests
// use) and the real mediator wired to them on 127.0.0.1, then a claim goes
// from openIMIS to the CHT and a health worker's feedback comes back.
//
//	go run ./cmd/sandbox                  play the story and exit
//	go run ./cmd/sandbox --keep           then leave everything running for curl
//	go run ./cmd/sandbox --source kodjin  also a FHIR server besides openIMIS (aidbox,
//	                                      aidbox-zen, kodjin, heydonto or hapi): its claim
//	                                      reaches the CHT too
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
	source := fs.String("source", "", "also run a fake FHIR server besides openIMIS: "+strings.Join(sourceNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, ok := sourceFakes[*source]; *source != "" && !ok {
		return fmt.Errorf("--source %q: use one of %s", *source, strings.Join(sourceNames(), ", "))
	}
	s, err := start(ctx, out, *source)
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
