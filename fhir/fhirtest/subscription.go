package fhirtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Subscription is the latest version of a stored Subscription, read for
// tests.
type Subscription struct {
	// ID, Status, Criteria, Error and End are the resource's fields (End
	// zero when absent); Topic is an R5 Subscription's topic.
	ID, Status, Criteria, Error, Topic string
	End                                time.Time
	// Endpoint, Payload and Header are channel.endpoint, channel.payload and
	// channel.header; of an R5 Subscription endpoint, contentType and its
	// parameters as "Name: value" (C§1.3).
	Endpoint, Payload string
	Header            []string
	// VersionID is meta.versionId.
	VersionID string
	// JSON is the resource as served.
	JSON json.RawMessage
}

// wireSubscription is what the fake reads of a Subscription body; the rest
// is stored as sent.
type wireSubscription struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Status       string `json:"status"`
	Criteria     string `json:"criteria"`
	Error        string `json:"error"`
	End          string `json:"end"`
	Meta         struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Channel *wireChannel `json:"channel"`
	// R5 (C§1.3).
	Topic       string `json:"topic"`
	ChannelType *struct {
		System string `json:"system"`
		Code   string `json:"code"`
	} `json:"channelType"`
	Endpoint    string `json:"endpoint"`
	ContentType string `json:"contentType"`
	Parameter   []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"parameter"`
}

// wireChannel is R4's Subscription.channel.
type wireChannel struct {
	Type     string   `json:"type"`
	Endpoint string   `json:"endpoint"`
	Payload  string   `json:"payload"`
	Header   []string `json:"header"`
}

// r5Channel fills the R4 channel of an R5 Subscription from its endpoint,
// contentType and parameters, so that one set of rules reads both shapes:
// a parameter is a header named name with value (C§1.3, C-trap 6).
func (w *wireSubscription) r5Channel() {
	if w.Channel != nil || w.ChannelType == nil {
		return
	}
	w.Channel = &wireChannel{Type: w.ChannelType.Code, Endpoint: w.Endpoint, Payload: w.ContentType}
	for _, p := range w.Parameter {
		w.Channel.Header = append(w.Channel.Header, p.Name+": "+p.Value)
	}
}

func parseSubscription(r Resource) Subscription {
	var w wireSubscription
	if err := json.Unmarshal(r.JSON, &w); err != nil {
		panic("fhirtest: stored Subscription: " + err.Error())
	}
	w.r5Channel()
	sub := Subscription{
		ID: r.ID, Status: w.Status, Criteria: w.Criteria, Error: w.Error, Topic: w.Topic,
		VersionID: r.VersionID, JSON: r.JSON,
	}
	sub.End, _ = parseInstant(w.End)
	if w.Channel != nil {
		sub.Endpoint, sub.Payload, sub.Header = w.Channel.Endpoint, w.Channel.Payload, w.Channel.Header
	}
	return sub
}

// Subscriptions returns every Subscription that exists, in creation order.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, r := range s.all("Subscription") {
		out = append(out, parseSubscription(r))
	}
	return out
}

// Subscription returns the Subscription id, if it exists.
func (s *Server) Subscription(id string) (Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.get("Subscription", id)
	if !ok {
		return Subscription{}, false
	}
	return parseSubscription(r), true
}

// SetStatus sets a Subscription's status (and error text) as the server
// itself would, storing a new version. Pending retries of a subscription
// turned off are dropped. It panics if id does not exist.
func (s *Server) SetStatus(id, status, errorText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.get("Subscription", id); !ok {
		panic("fhirtest: Subscription/" + id + " does not exist")
	}
	s.setStatus(id, status, errorText)
}

// setStatus stores a new version of Subscription id with status and error
// (removed when empty). The caller holds s.mu.
func (s *Server) setStatus(id, status, errorText string) {
	r, ok := s.get("Subscription", id)
	if !ok {
		return
	}
	var res map[string]any
	if err := json.Unmarshal(r.JSON, &res); err != nil {
		panic("fhirtest: stored Subscription: " + err.Error())
	}
	res["status"] = status
	delete(res, "error")
	if errorText != "" {
		res["error"] = errorText
	}
	s.put("Subscription", res)
	if status == "off" {
		s.dropPending(id)
	}
}

// criteriaForm is "Type" or "Type?params" (C§1.1).
var criteriaForm = regexp.MustCompile(`^([A-Z][A-Za-z]+)(\?(.*))?$`)

// validateSubscription applies the vendor's rules to a Subscription body
// and returns the status to store, or an answer refusing it. create says
// whether this is a POST.
func (s *Server) validateSubscription(x *exchange, w wireSubscription, create bool) (string, response, bool) {
	refuse := func(diagnostics string) (string, response, bool) {
		return "", x.outcome(http.StatusUnprocessableEntity, "processing", diagnostics), false
	}
	if w.ResourceType != "Subscription" {
		return "", x.outcome(http.StatusBadRequest, "structure", "resourceType must be Subscription"), false
	}
	// The newer Aidbox in R5 reads R5's elements only, in R4 and R4B R4's only:
	// the other version's are unknown elements (C§1.2, C§1.3).
	if s.opts.Vendor == Aidbox {
		r5 := w.Topic != "" || w.ChannelType != nil || w.Endpoint != "" || w.Parameter != nil
		if r5 != s.r5() || (s.r5() && (w.Criteria != "" || w.Channel != nil)) {
			return "", x.outcome(http.StatusBadRequest, "structure", "Subscription is not an "+s.opts.FHIRVersion+" Subscription"), false
		}
		w.r5Channel()
	}
	// Only the rest-hook channel is modelled (Kodjin's websocket, email and
	// sms channels are not, C§6.2).
	if w.Channel == nil || w.Channel.Type != "rest-hook" {
		return refuse("Subscription.channel.type must be rest-hook")
	}
	if u, err := url.Parse(w.Channel.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return refuse("Subscription.channel.endpoint must be an absolute http(s) URL")
	}
	if w.End != "" {
		if _, ok := parseInstant(w.End); !ok {
			return refuse("Subscription.end must be an instant with a time zone")
		}
	}
	// Headers are "Name: value" strings that become HTTP headers, split at
	// the first colon (C§1.1, C-trap 6); one that is not (openIMIS's JSON
	// object string, a bare value) is refused rather than sent mangled.
	// The diagnostics name the header by index: its value may be a secret.
	for i, h := range w.Channel.Header {
		if name, _, ok := strings.Cut(h, ":"); !ok || !isToken(strings.TrimSpace(name)) {
			return refuse(fmt.Sprintf("Subscription.channel.header[%d] is not in the form Name: value", i))
		}
	}
	// Aidbox zen stores requested whatever was posted (its table says
	// requested, its example posts active and gets requested back, C§1.2);
	// the rest of its rules are validateBackport's.
	// The newer Aidbox wants it created requested (C§1.2: "Client creates
	// a Subscription resource with status: requested", C-trap 4).
	switch {
	case s.opts.Vendor == AidboxZen && (w.Status == "requested" || w.Status == "active"),
		s.opts.Vendor == Aidbox && w.Status == "requested":
		return "requested", response{}, true
	case s.opts.Vendor.topicBased():
		return refuse("Subscription.status must be requested")
	}
	// HAPI's topic mode: a backport Subscription is activated at once, as
	// its criteria subscriptions are, with no handshake (C§1.1, C§3); the
	// rest of its rules are validateBackport's.
	if s.hapiTopic(w) {
		return x.hapiStatus(w.Status, create)
	}
	// Criteria: HAPI wants "Type?params" and answers a bare type with this
	// message (C§1.1, C-trap 5); Kodjin and HeyDonto take any search string
	// (C§1.1: "any valid search string"). Every server parses the
	// parameters as a search, so one the type does not know is refused.
	m := criteriaForm.FindStringSubmatch(w.Criteria)
	if m == nil || (s.opts.Vendor == HAPI && m[2] == "") {
		return refuse(`Subscription.criteria must be in the form "{Resource Type}?[params]"`)
	}
	if _, known := searchParams[m[1]]; !known {
		return refuse("Subscription.criteria names resource type " + m[1] + ", which this server does not support")
	}
	q, err := url.ParseQuery(m[3])
	if err != nil {
		return refuse("Subscription.criteria is not a valid search string")
	}
	for name := range q {
		if _, ok := searchParams[m[1]][name]; !ok {
			return refuse("Subscription.criteria: unknown search parameter " + name + " for " + m[1])
		}
	}
	switch s.opts.Vendor {
	case Kodjin:
		// Only application/fhir+json is supported as a payload (C§1.1).
		if w.Channel.Payload != "" && w.Channel.Payload != "application/fhir+json" {
			return refuse("Subscription.channel.payload: only application/fhir+json is supported")
		}
		// Posted always requested; Kodjin validates and activates it (C§1.1,
		// C-trap 4). An update may also turn it off (C§6.2 "deactivating").
		switch {
		case w.Status == "requested":
			return "active", response{}, true
		case w.Status == "off" && !create:
			return "off", response{}, true
		}
		return refuse("Subscription.status must be requested")
	case HAPI:
		// The fake sends JSON only: an XML payload is not modelled.
		if p := w.Channel.Payload; p != "" && p != "application/fhir+json" && p != "application/json" {
			return refuse("Subscription.channel.payload: only application/fhir+json and application/json are modelled")
		}
		return x.hapiStatus(w.Status, create)
	default: // HeyDonto
		// The documented examples send and get back requested; it never turns
		// active unless Options.Activate (C§1.1, C§6.3).
		switch w.Status {
		case "requested", "active":
			if s.opts.Activate {
				return "active", response{}, true
			}
			return "requested", response{}, true
		case "off":
			return "off", response{}, true
		}
		return refuse("Subscription.status must be requested, active or off")
	}
}

// hapiStatus is the status HAPI stores: it accepts requested or active and
// activates requested itself (C§1.1); an update may turn it off.
func (x *exchange) hapiStatus(status string, create bool) (string, response, bool) {
	switch {
	case status == "requested" || status == "active":
		return "active", response{}, true
	case status == "off" && !create:
		return "off", response{}, true
	}
	return "", x.outcome(http.StatusUnprocessableEntity, "processing", "Subscription.status must be requested or active"), false
}

// decodeSubscription reads the request body as a Subscription.
func (x *exchange) decodeSubscription() (wireSubscription, map[string]any, response, bool) {
	if resp, ok := x.checkBody(); !ok {
		return wireSubscription{}, nil, resp, false
	}
	var w wireSubscription
	var res map[string]any
	if err := json.Unmarshal(x.body, &w); err != nil {
		return w, nil, x.outcome(http.StatusBadRequest, "structure", "invalid Subscription JSON: "+err.Error()), false
	}
	if err := json.Unmarshal(x.body, &res); err != nil {
		return w, nil, x.outcome(http.StatusBadRequest, "structure", "invalid JSON"), false
	}
	return w, res, response{}, true
}

// createSubscription is POST Subscription: the vendor's validation, then
// 201 with the stored resource and a Location; the server assigns the id.
func (s *Server) createSubscription(x *exchange) response {
	w, res, resp, ok := x.decodeSubscription()
	if !ok {
		return resp
	}
	status, resp, ok := s.validateSubscription(x, w, true)
	if !ok {
		return resp
	}
	res["status"] = status
	delete(res, "error")
	if s.opts.Vendor.topicBased() {
		return s.createTopicSubscription(x, res)
	}
	if s.hapiTopic(w) {
		return s.createHAPITopic(x, res)
	}
	s.mu.Lock()
	res["id"] = s.assignID()
	r := s.put("Subscription", res)
	s.mu.Unlock()
	return s.written(x, http.StatusCreated, r)
}

// createTopicSubscription stores an Aidbox topic Subscription (the
// client's id kept, as in seed 001 and the newer Aidbox's tutorials) and
// sends the handshake once the 201 is written (C§3, C-trap 9).
func (s *Server) createTopicSubscription(x *exchange, res map[string]any) response {
	validate := s.validateBackport
	if s.r5() {
		validate = s.validateR5
	}
	ts, resp, ok := validate(x, res)
	if !ok {
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := res["id"].(string)
	if id == "" {
		id = s.assignID()
		res["id"] = id
	} else if _, exists := s.get("Subscription", id); exists {
		return x.outcome(http.StatusConflict, "duplicate", "Subscription/"+id+" exists")
	}
	r := s.put("Subscription", res)
	ts.lastSent = r.LastUpdated
	s.topicSubs[s.key("Subscription", id)] = ts
	s.runAfter(x, func() { s.handshake(id) })
	return s.written(x, http.StatusCreated, r)
}

// updateSubscription is PUT Subscription/<id>: the body's id must be the
// path's; an unknown id is 404 (update-as-create is not modelled). Turning
// a subscription requested again re-activates it (C§3: the client resets
// error/off to requested).
func (s *Server) updateSubscription(x *exchange, id string) response {
	// Aidbox subscriptions cannot be modified: delete and recreate (C§3,
	// C-trap 17).
	if s.opts.Vendor.topicBased() {
		return x.outcome(http.StatusUnprocessableEntity, "processing", "Subscription cannot be modified: delete and recreate it")
	}
	w, res, resp, ok := x.decodeSubscription()
	if !ok {
		return resp
	}
	if !strings.EqualFold(w.ID, id) || (s.opts.Vendor != HeyDonto && w.ID != id) {
		return x.outcome(http.StatusBadRequest, "invalid", "the resource id must be the id in the URL")
	}
	status, resp, ok := s.validateSubscription(x, w, false)
	if !ok {
		return resp
	}
	res["status"] = status
	delete(res, "error")
	s.mu.Lock()
	if _, exists := s.get("Subscription", id); !exists {
		s.mu.Unlock()
		return x.outcome(http.StatusNotFound, "not-found", "Resource Subscription/"+id+" is not known")
	}
	if s.opts.Vendor == HAPI {
		if resp, ok := s.updateHAPITopic(x, id, w, res); !ok {
			s.mu.Unlock()
			return resp
		}
	}
	s.dropPending(id) // a new version starts afresh
	r := s.put("Subscription", res)
	s.mu.Unlock()
	return s.written(x, http.StatusOK, r)
}

// deleteSubscription is DELETE Subscription/<id>: HeyDonto answers 200
// {"statusText":"OK","status":200} (C§1.1, C-trap 23), HAPI 200 with an
// OperationOutcome, Kodjin 204, Aidbox 200 with the resource. Pending
// retries are dropped.
func (s *Server) deleteSubscription(x *exchange, id string) response {
	s.mu.Lock()
	e := s.resources[s.key("Subscription", id)]
	found := e != nil && !e.deleted
	var last Resource
	if found {
		e.deleted = true
		last = e.latest()
		s.dropPending(e.versions[0].ID)
		// Its events go with it (C§4, C-trap 28).
		delete(s.topicSubs, s.key("Subscription", id))
	}
	s.mu.Unlock()
	if !found {
		return x.outcome(http.StatusNotFound, "not-found", "Resource Subscription/"+id+" is not known")
	}
	switch s.opts.Vendor {
	case HeyDonto:
		return x.json(http.StatusOK, map[string]any{"statusText": "OK", "status": 200})
	case Kodjin:
		return response{status: http.StatusNoContent}
	case AidboxZen, Aidbox:
		// Aidbox answers with the deleted resource (seed 001, C-trap 23).
		return response{status: http.StatusOK, header: http.Header{"Content-Type": {s.contentType()}}, body: last.JSON}
	}
	return x.outcome(http.StatusOK, "informational", "Successfully deleted 1 resource(s)")
}

// written answers a created or updated resource with its Location.
func (s *Server) written(x *exchange, status int, r Resource) response {
	return response{status: status, header: http.Header{
		"Content-Type": {s.contentType()},
		"Location":     {s.fullURL(x.r, r.Type, r.ID) + "/" + s.historySegment() + "/" + r.VersionID},
		"Etag":         {`W/"` + r.VersionID + `"`},
	}, body: r.JSON}
}

// parseInstant reads a FHIR instant (RFC 3339 with a zone).
func parseInstant(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// isToken reports whether name is an HTTP field name (RFC 9110 token).
func isToken(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c > 0x7e || c <= 0x20 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}
