package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// ConnPump accepts the connections of one listening socket and hands them
// to one listener after the other: the starting server's, then the
// mediator's, so that the port answers from the moment it is bound and no
// connection is lost in between.
type ConnPump struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewConnPump starts accepting the connections of ln.
func NewConnPump(ln net.Listener) *ConnPump {
	p := &ConnPump{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *ConnPump) run() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
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
		case p.conns <- c:
		case <-p.done:
			_ = c.Close()
			return
		}
	}
}

// Close stops accepting and closes the socket.
func (p *ConnPump) Close() error {
	p.once.Do(func() { close(p.done) })
	return p.ln.Close()
}

// Listener returns a listener of the pump's connections; closing it leaves
// the socket open for the next one.
func (p *ConnPump) Listener() net.Listener {
	return &pumpListener{p: p, closed: make(chan struct{})}
}

type pumpListener struct {
	p      *ConnPump
	closed chan struct{}
	once   sync.Once
}

// Accept implements net.Listener.
func (l *pumpListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.p.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.p.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *pumpListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener.
func (l *pumpListener) Addr() net.Addr { return l.p.ln.Addr() }

// StartingServer answers on the mediator's port while the process waits for
// its store at start: GET
// /health 200 (the process runs), GET /ready and everything else 503 with
// the reason. It starts only once the store was found unreachable: on a
// normal start, requests wait the few milliseconds until the mediator
// itself answers, so that a 200 from /health always means the same.
type StartingServer struct {
	ln      net.Listener
	urn     string // the mediator's, for answers in the OpenHIM envelope
	openhim string // the OpenHIM state /ready reports: disabled or registering
	srv     *http.Server
	once    sync.Once
	mu      sync.Mutex
	reason  string
}

// NewStartingServer returns a server for ln that answers nothing until
// StoreUnreachable. urn is the mediator's OpenHIM URN: a request OpenHIM
// forwarded is answered in its envelope, as the mediator answers it.
func NewStartingServer(ln net.Listener, urn string, openhimConfigured bool) *StartingServer {
	s := &StartingServer{ln: ln, urn: urn, openhim: openHIMDisabled}
	if openhimConfigured {
		s.openhim = openHIMRegistering
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	return s
}

// StoreUnreachable records that the store does not answer yet, and starts
// answering. The error itself goes to the log only: it names the
// database's host and user.
func (s *StartingServer) StoreUnreachable(error) {
	s.mu.Lock()
	s.reason = "store unreachable: waiting for the database"
	s.mu.Unlock()
	s.once.Do(func() { go func() { _ = s.srv.Serve(s.ln) }() })
}

// Stop stops answering, if it started; requests in flight finish.
func (s *StartingServer) Stop() {
	s.once.Do(func() {}) // never starts after this
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close() // e.g. a probe's idle connection without a request
	}
	_ = s.ln.Close()
}

// ServeHTTP implements http.Handler.
func (s *StartingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	status := http.StatusServiceUnavailable
	var body any = map[string]string{"error": "the mediator is starting: " + reason}
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
	b, _ := json.Marshal(body) // maps and a struct of strings
	contentType := "application/json"
	if r.Header.Get(headerTransactionID) != "" {
		contentType = "application/json+openhim"
		b, _ = json.Marshal(newEnvelope(s.urn, status, b, w.Header()))
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
