// Command loadgen measures the real mediator binary under load. It starts
// the fake openIMIS and CHT in its own process (with an optional latency),
// runs the mediator binary against them, sends distinct ClaimResponses (or
// CHT feedback bodies) from N concurrent senders for a fixed duration, waits
// until everything acknowledged was delivered, and prints a table:
// acknowledged requests/s, ack latency percentiles, end-to-end deliveries/s,
// errors and the mediator's peak RSS.
//
//	go run ./cmd/loadgen                                   # claims for new insurees, 64 senders, 10 s, at 0, 5 and 50 ms
//	go run ./cmd/loadgen -latency 5ms -duration 20s -insurees 1000
//	go run ./cmd/loadgen -path feedback
//	go run ./cmd/loadgen -backlog 100000                   # queue first, then measure the drain
//	go run ./cmd/loadgen -cpuprofile cpu.out               # and profile the mediator meanwhile
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.StringVar(&o.path, "path", "claims", "what to send: claims or feedback")
	flag.IntVar(&o.senders, "senders", 64, "concurrent senders")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long the senders send")
	latencies := flag.String("latency", "0ms,5ms,50ms", "latency of every fake upstream answer; a comma-separated list runs once per latency")
	flag.IntVar(&o.backlog, "backlog", 0, "instead of timed sending: queue this many claims with the CHT down, then measure the drain")
	flag.IntVar(&o.insurees, "insurees", 0, "distinct insurees the claims are spread over; 0: a new insuree for every claim (each needs the Patient read, the CHT search and the person)")
	flag.IntVar(&o.workers, "workers", 0, "the mediator's WORKERS (0: its default)")
	flag.BoolVar(&o.pin, "pin", true, "pin the mediator to CPU 0 and the load generator (fakes and senders) to CPU 1, with taskset")
	flag.StringVar(&o.binary, "mediator", "", "mediator binary (default: build ./cmd/mediator)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the mediator, over the sending (or the drain) and at most -duration, to this file (builds the mediator with -tags pprof)")
	flag.StringVar(&o.database, "database", "", "DATABASE_URL for the mediator (default: SQLite in a temporary directory)")
	flag.StringVar(&o.logLevel, "log-level", "info", "the mediator's LOG_LEVEL (info, as the side-by-side harness runs it, logs every claim)")
	flag.Parse()
	// The fakes keep every document and request they receive, so this
	// process's heap grows through a run and its garbage collector would
	// take CPU from the mediator it measures.
	debug.SetGCPercent(400)
	if o.pin {
		if why := pinSelf(); why != "" {
			fmt.Fprintln(os.Stdout, "not pinned:", why)
			o.pin = false
		}
	}
	var rows []summaryRow
	if o.database != "" && strings.Contains(*latencies, ",") {
		// The runs send the same claim ids: on one store, the second run's
		// would all be duplicates that never reach the fake CHT.
		fmt.Fprintln(os.Stderr, "loadgen: -database takes one -latency (each run needs a fresh store)")
		os.Exit(2)
	}
	var durations []time.Duration
	for _, l := range strings.Split(*latencies, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(l))
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: -latency:", err)
			os.Exit(2)
		}
		durations = append(durations, d)
	}
	binDir := "" // a binary built here, removed at the end (os.Exit skips defers)
	if o.binary == "" {
		var err error
		if binDir, err = os.MkdirTemp("", "loadgen-bin-"); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stdout, "building the mediator…")
		if o.binary, err = buildMediator(binDir, o.cpuProfile != ""); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.RemoveAll(binDir)
			os.Exit(1)
		}
	}
	for _, d := range durations {
		o.latency = d
		row, err := run(ctx, o, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.RemoveAll(binDir)
			os.Exit(1)
		}
		rows = append(rows, row)
		fmt.Fprintln(os.Stdout)
	}
	summary(os.Stdout, o, rows)
	os.RemoveAll(binDir)
}
