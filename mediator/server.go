package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Server is the mediator's HTTP server, from the moment its port is bound to
// its shutdown. The port answers at once: while the mediator is being built
// (the store awaited) a starting handler answers GET /health 200 and
// everything else 503 with the reason, in the OpenHIM envelope for a request
// OpenHIM forwarded; Serve then hands the same socket to the mediator, so
// that no connection is lost in between.
//
// The starting handler answers only once StoreUnreachable was called: on a
// normal start requests wait the few milliseconds until the mediator itself
// answers, so that a 200 from /health always means the same.
type Server struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	close sync.Once

	starting     *http.Server
	startingOnce sync.Once
	urn          string
	openhim      string // the OpenHIM state /ready reports while starting
	mu           sync.Mutex
	reason       string
}

// Listen binds addr ("host:port"; host empty for every interface). urn names
// the mediator in the OpenHIM envelope, and openhimConfigured says whether
// /ready reports OpenHIM as registering or disabled while starting.
func Listen(addr, urn string, openhimConfigured bool) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, conns: make(chan net.Conn), done: make(chan struct{}), urn: urn, openhim: openHIMDisabled}
	if openhimConfigured {
		s.openhim = openHIMRegistering
	}
	s.starting = &http.Server{
		Handler:           http.HandlerFunc(s.serveStarting),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	go s.accept()
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// StoreUnreachable records that the store does not answer yet, and starts
// answering as a starting server. The error itself goes to the log only: it
// names the database's host and user.
func (s *Server) StoreUnreachable(error) {
	s.mu.Lock()
	s.reason = "store unreachable: waiting for the database"
	s.mu.Unlock()
	s.startingOnce.Do(func() { go func() { _ = s.starting.Serve(s.listener()) }() })
}

// Serve serves m until ctx ends, then shuts down gracefully: it stops
// accepting and lets requests in flight finish for up to 10 seconds. It
// closes the socket before it returns.
func (s *Server) Serve(ctx context.Context, m *Mediator) error {
	s.stopStarting()
	defer s.Close()
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(zerolog.NewSlogHandler(m.log.With().Str("component", "http").Logger()), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.listener()) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("mediator: shutdown: %w", err)
	}
	return nil
}

// Close stops accepting and closes the socket; the starting handler, if it
// answers, stops too.
func (s *Server) Close() error {
	s.stopStarting()
	s.close.Do(func() { close(s.done) })
	return s.ln.Close()
}

// stopStarting stops the starting handler, if it started; requests in flight
// finish. It never starts after this.
func (s *Server) stopStarting() {
	s.startingOnce.Do(func() {})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.starting.Shutdown(ctx) != nil {
		_ = s.starting.Close() // e.g. a probe's idle connection without a request
	}
}

// serveStarting answers while the mediator is being built.
func (s *Server) serveStarting(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	status := http.StatusServiceUnavailable
	var body any = errorBody{Error: "the mediator is starting: " + reason}
	probe := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case probe && r.URL.Path == "/health":
		status, body = http.StatusOK, map[string]string{"status": "ok"}
	case probe && r.URL.Path == "/ready":
		body = readyBody{Status: "not ready", Reasons: []string{reason}, OpenHIM: s.openhim}
	}
	if status != http.StatusOK {
		w.Header().Set("Retry-After", "5")
	}
	writeAnswer(w, r, s.urn, status, body)
}

// accept takes the socket's connections and hands them to whichever server
// listens: the starting one, then the mediator's.
func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		select {
		case s.conns <- c:
		case <-s.done:
			_ = c.Close()
			return
		}
	}
}

// listener returns a listener of the socket's connections; closing it
// leaves the socket open for the next one.
func (s *Server) listener() net.Listener {
	return &handoffListener{s: s, closed: make(chan struct{})}
}

type handoffListener struct {
	s      *Server
	closed chan struct{}
	once   sync.Once
}

// Accept implements net.Listener.
func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener.
func (l *handoffListener) Addr() net.Addr { return l.s.ln.Addr() }
