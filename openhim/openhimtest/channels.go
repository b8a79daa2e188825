package openhimtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Transaction is one client request the router took in (Server.Send), as
// core's transaction log keeps it.
type Transaction struct {
	// ID is the transaction id sent to the mediator.
	ID string
	// Channel is the matched channel's name.
	Channel string
	// RequestHeader is the client's request headers as core stores them:
	// verbatim, Authorization included (docs/upstreams/openhim.md trap 21).
	// Anyone who may view transactions reads them.
	RequestHeader http.Header
	// Status is the client's answer.
	Status int
}

// Channels returns the installed channels, as GET /channels answers them.
func (s *Server) Channels() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.channels)
}

// Transactions returns the transactions of Server.Send, oldest first.
func (s *Server) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transactions)
}

// getChannels is GET /channels (src/api/channels.js getChannels): every
// channel for an admin, with the routes' username and password in clear.
func (s *Server) getChannels(*request, string) answer {
	out := s.channels
	if out == nil {
		out = []map[string]any{}
	}
	return jsonAnswer(out)
}

// installChannels is POST /mediators/:urn/channels (src/api/mediators.js
// addChannelsToMediator, docs/upstreams/openhim.md §1.3), what the
// console's green "+" sends: the body is an optional JSON array of default
// channel names (none: all). Each named defaultChannelConfig entry is
// inserted as a channel as is (trap 24: routes keep exactly the username,
// password and forwardAuthHeader of the registration). 404 for an unknown
// urn, 400 for an unknown name, 500 when a channel of that name exists
// (unique index); 201 otherwise.
func (s *Server) installChannels(x *request, urn string) answer {
	var names []string
	if len(x.raw) > 0 {
		_ = json.Unmarshal(x.raw, &names)
	}
	status, msg := s.install(urn, names)
	return text(status, msg)
}

// InstallChannels does what the console's "+" does for the mediator urn:
// see installChannels. It returns core's message for a refusal.
func (s *Server) InstallChannels(urn string, names ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status, msg := s.install(urn, names); status != http.StatusCreated {
		return fmt.Errorf("openhimtest: %d: %s", status, msg)
	}
	return nil
}

// install is installChannels. The caller holds s.mu.
func (s *Server) install(urn string, names []string) (int, string) {
	m := s.find(urn)
	if m == nil {
		return http.StatusNotFound, "No mediator found for this urn."
	}
	defs := list(m.doc["defaultChannelConfig"])
	var picked []map[string]any
	if len(names) == 0 {
		picked = defs
	}
	for _, n := range names {
		i := slices.IndexFunc(defs, func(d map[string]any) bool { return d["name"] == n })
		if i < 0 {
			return http.StatusBadRequest, "Could not add channel(s) to mediator: no default channel named " + n
		}
		picked = append(picked, defs[i])
	}
	for _, d := range picked {
		if slices.ContainsFunc(s.channels, func(c map[string]any) bool { return c["name"] == d["name"] }) {
			return http.StatusInternalServerError, fmt.Sprintf("E11000 duplicate key error collection: openhim.channels index: name_1 dup key: { name: %q }", d["name"])
		}
		ch := clone(d)
		ch["_id"] = fmt.Sprintf("%024x", len(s.channels)+1)
		s.channels = append(s.channels, ch)
	}
	return http.StatusCreated, ""
}

// EditRoute does what a console edit of an installed channel's route does:
// set changes the route named route of the channel named channel (fields
// as in the channel document: "username", "password", "forwardAuthHeader"…).
func (s *Server) EditRoute(channel, route string, set map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.channels {
		if c["name"] != channel {
			continue
		}
		for _, r := range list(c["routes"]) {
			if r["name"] == route {
				for k, v := range clone(set) {
					r[k] = v
				}
				return nil
			}
		}
	}
	return fmt.Errorf("openhimtest: no route %q in channel %q", route, channel)
}

// Send plays the router (port 5001) for one client request: the enabled
// installed channel whose urlPattern matches req.Path forwards it to its
// primary route as Forward does, with the route's scheme, host, port, path,
// username, password and forwardAuthHeader and the channel's timeout; req.URL
// and the route fields of req are ignored. The transaction is recorded with
// the client's headers verbatim, Authorization included (trap 21). No
// matching channel: 404, no transaction. Client authentication and the
// channel's allow list are not modelled.
func (s *Server) Send(ctx context.Context, req ForwardRequest) (ForwardResult, error) {
	s.mu.Lock()
	var channel, route map[string]any
	for _, c := range s.channels {
		re, err := regexp.Compile(fmt.Sprint(c["urlPattern"]))
		if err != nil || c["status"] == "disabled" || c["status"] == "deleted" || !re.MatchString(req.Path) {
			continue
		}
		for _, r := range list(c["routes"]) {
			if r["primary"] == true && r["status"] != "disabled" {
				channel, route = clone(c), clone(r)
				break
			}
		}
		if route != nil {
			break
		}
	}
	s.mu.Unlock()
	if route == nil {
		return ForwardResult{Status: http.StatusNotFound, Header: http.Header{}, Body: []byte("Not Found")}, nil
	}
	scheme := "http"
	if route["secured"] == true {
		scheme = "https"
	}
	port, _ := route["port"].(float64)
	req.URL = scheme + "://" + fmt.Sprint(route["host"]) + ":" + strconv.Itoa(int(port))
	if p, _ := route["path"].(string); p != "" {
		req.Path = p
	}
	req.RouteUsername, _ = route["username"].(string)
	req.RoutePassword, _ = route["password"].(string)
	req.ForwardAuthHeader, _ = route["forwardAuthHeader"].(bool)
	if ms, ok := channel["timeout"].(float64); ok && ms > 0 {
		req.Timeout = time.Duration(ms) * time.Millisecond
	}
	res, err := s.Forward(ctx, req)
	if err != nil {
		return res, err
	}
	h := req.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	s.mu.Lock()
	s.transactions = append(s.transactions, Transaction{
		ID: res.TransactionID, Channel: fmt.Sprint(channel["name"]), RequestHeader: h, Status: res.Status,
	})
	s.mu.Unlock()
	return res, nil
}
