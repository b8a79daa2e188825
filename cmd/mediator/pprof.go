//go:build pprof

package main

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// A binary built with -tags pprof serves Go's profiles on PPROF_ADDR
// (127.0.0.1:6060 by default), apart from the mediator's own port. Release
// builds have no such listener.
func init() {
	addr := os.Getenv("PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(os.Stderr, "mediator: profiling listener:", err)
		}
	}()
}
