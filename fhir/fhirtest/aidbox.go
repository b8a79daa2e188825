package fhirtest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The backport IG's canonical URLs (C§1.2, C§5).
const (
	backportIG          = "http://hl7.org/fhir/uv/subscriptions-backport/"
	backportProfile     = backportIG + "StructureDefinition/backport-subscription"
	extFilterCriteria   = backportIG + "StructureDefinition/backport-filter-criteria"
	extPayloadContent   = backportIG + "StructureDefinition/backport-payload-content"
	extHeartbeatPeriod  = backportIG + "StructureDefinition/backport-heartbeat-period"
	extTimeout          = backportIG + "StructureDefinition/backport-timeout"
	extMaxCount         = backportIG + "StructureDefinition/backport-max-count"
	extTopicCanonical   = backportIG + "StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
	backportServerR4B   = backportIG + "CapabilityStatement/backport-subscription-server"
	handshakeTries      = 3
	handshakeRetryDelay = 10 * time.Second
)

// DefaultTopic is the topic an Aidbox fake serves when Options.Topics is
// nil: ClaimResponse changes, filterable by outcome, status and patient,
// with full-resource content allowed.
var DefaultTopic = Topic{
	URL:         "http://aidbox.app/SubscriptionTopic/claim-response",
	Resource:    "ClaimResponse",
	CanFilterBy: []string{"outcome", "status", "patient"},
	MaxContent:  "full-resource",
}

// Topic is a SubscriptionTopic configured on an Aidbox fake (in zen, as the
// operator does; the fake never creates topics, C§1.2).
type Topic struct {
	// URL is the topic's canonical, which a Subscription names in criteria.
	URL string
	// Resource is the type whose creates and updates trigger the topic.
	Resource string
	// CanFilterBy are the search parameters filters may use (IG
	// conformance: a server SHALL reject others, C§1.2). Each must be one
	// the fake evaluates for Resource.
	CanFilterBy []string
	// MaxContent caps the content a Subscription may ask for: "empty" (the
	// zen default when unset), "id-only" or "full-resource" (C§2.2).
	MaxContent string
}

var contentLevels = []string{"empty", "id-only", "full-resource"}

// topicSub is the delivery state of one topic-based subscription.
type topicSub struct {
	topic     Topic
	filters   []string // "param=value" queries, all must match
	content   string
	heartbeat time.Duration
	timeout   time.Duration
	maxCount  int

	tries     int       // handshake attempts made
	due       time.Time // next handshake attempt, zero when none is due
	count     int       // eventsSinceSubscriptionStart
	events    []topicEvent
	queued    []topicEvent
	lastSent  time.Time
	dropNext  int
	stopped   bool
	noHeartbt bool
}

// topicEvent is one numbered event.
type topicEvent struct {
	number   int
	time     time.Time
	resource Resource
	created  bool
}

// validateBackport applies Aidbox zen's rules to a backport Subscription
// (C§1.2, C-trap 3, C-trap 5) and returns its delivery settings, or an
// answer refusing it.
func (s *Server) validateBackport(x *exchange, res map[string]any) (*topicSub, response, bool) {
	refuse := func(diagnostics string) (*topicSub, response, bool) {
		return nil, x.outcome(http.StatusUnprocessableEntity, "processing", diagnostics), false
	}
	meta, _ := res["meta"].(map[string]any)
	profiles, _ := meta["profile"].([]any)
	if !slices.Contains(profiles, any(backportProfile)) {
		return refuse("meta.profile must contain " + backportProfile)
	}
	criteria, _ := res["criteria"].(string)
	i := slices.IndexFunc(s.opts.Topics, func(t Topic) bool { return t.URL == criteria })
	if i < 0 {
		return refuse("Subscription.criteria must be the canonical of a known SubscriptionTopic")
	}
	ts := s.backportDefaults(s.opts.Topics[i])
	// Filters are extensions on the primitive criteria: "_criteria" in JSON
	// (C§1.2 table), on parameters the topic allows (C§1.2).
	underscore, _ := res["_criteria"].(map[string]any)
	for _, v := range extensions(underscore, extFilterCriteria) {
		f, _ := v["valueString"].(string)
		q, err := parseQueryString(f[strings.Index(f, "?")+1:])
		if f == "" || err != nil || len(q) == 0 {
			return refuse("filter criteria must be a search string")
		}
		for name := range q {
			if !slices.Contains(ts.topic.CanFilterBy, name) {
				return refuse("filter criteria parameter " + name + " is not in the topic's canFilterBy")
			}
		}
		ts.filters = append(ts.filters, f[strings.Index(f, "?")+1:])
	}
	ch, _ := res["channel"].(map[string]any)
	if t, _ := ch["type"].(string); t != "rest-hook" {
		return refuse("Subscription.channel.type must be rest-hook")
	}
	// channel.payload is 1..1 in the profile, even for empty content (C§1.2).
	if p, _ := ch["payload"].(string); p != "application/fhir+json" {
		return refuse("Subscription.channel.payload must be application/fhir+json")
	}
	// Content is an extension on the primitive payload: "_payload"
	// (C§1.2), and it may not exceed the topic's maxContent (C§2.2).
	payloadExt, _ := ch["_payload"].(map[string]any)
	for _, v := range extensions(payloadExt, extPayloadContent) {
		ts.content, _ = v["valueCode"].(string)
	}
	level := slices.Index(contentLevels, ts.content)
	if level < 0 {
		return refuse("payload content must be empty, id-only or full-resource")
	}
	if level > slices.Index(contentLevels, cmp.Or(ts.topic.MaxContent, "empty")) {
		return refuse("payload content " + ts.content + " exceeds the topic's maxContent")
	}
	for _, e := range extensions(ch, extHeartbeatPeriod) {
		if n, ok := positive(e["valueUnsignedInt"]); ok {
			ts.heartbeat = time.Duration(n) * time.Second
		} else {
			return refuse("heartbeat period must be a valueUnsignedInt")
		}
	}
	for _, e := range extensions(ch, extTimeout) {
		if n, ok := positive(e["valueUnsignedInt"]); ok {
			ts.timeout = time.Duration(n) * time.Second
		} else {
			return refuse("timeout must be a valueUnsignedInt")
		}
	}
	for _, e := range extensions(ch, extMaxCount) {
		if n, ok := positive(e["valuePositiveInt"]); ok {
			ts.maxCount = n
		} else {
			return refuse("max count must be a valuePositiveInt")
		}
	}
	return ts, response{}, true
}

// backportDefaults is what the settings a backport Subscription leaves out
// mean: zen's heartbeat 120 s, timeout 30 s, maxCount 10 and empty content
// (seed 001 table, C§1.2), or HAPI's (hapi.go).
func (s *Server) backportDefaults(topic Topic) *topicSub {
	if s.opts.Vendor == HAPI {
		return hapiTopicDefaults(topic)
	}
	return &topicSub{topic: topic, content: "empty", heartbeat: 120 * time.Second, timeout: 30 * time.Second, maxCount: 10}
}

// extensions returns the extensions of el with url.
func extensions(el map[string]any, url string) []map[string]any {
	list, _ := el["extension"].([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["url"] == url {
			out = append(out, m)
		}
	}
	return out
}

func positive(v any) (int, bool) {
	f, ok := v.(float64)
	if !ok || f < 1 || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// triggerTopics numbers an event for every topic subscription whose topic
// and filters match r, and queues it for delivery; a batch reaching
// maxCount is sent at once, smaller ones at the next heartbeat period
// (C§3: zen's heartbeatPeriod is also the flush period, C-trap 15). Events
// are counted whatever the status (C§3: the server keeps counting). The
// caller holds s.mu.
func (s *Server) triggerTopics(r Resource, now time.Time) []func() {
	res := decodeStored(r)
	var jobs []func()
	for _, stored := range s.all("Subscription") {
		sub := parseSubscription(stored)
		ts := s.topicSubs[s.key("Subscription", sub.ID)]
		if ts == nil || ts.topic.Resource != r.Type {
			continue
		}
		matched := true
		for _, f := range ts.filters {
			q, _ := parseQueryString(f)
			matched = matched && matches(r.Type, res, q, false)
		}
		if !matched {
			continue
		}
		ts.count++
		ev := topicEvent{number: ts.count, time: now, resource: r, created: r.VersionID == "1"}
		ts.events = append(ts.events, ev)
		switch {
		case sub.Status != "active" || ts.stopped:
		case ts.dropNext > 0:
			ts.dropNext--
		default:
			ts.queued = append(ts.queued, ev)
		}
		if len(ts.queued) >= ts.maxCount {
			jobs = append(jobs, s.sendEventsJob(sub.ID, ts))
		}
	}
	return jobs
}

// tickTopics returns the jobs due at now: handshake retries, batches whose
// heartbeat period passed, and heartbeats after a period of silence
// (C§3). The caller holds s.mu.
func (s *Server) tickTopics(now time.Time) []func() {
	if s.opts.Vendor != AidboxZen {
		return nil
	}
	var jobs []func()
	for _, stored := range s.all("Subscription") {
		sub := parseSubscription(stored)
		ts := s.topicSubs[s.key("Subscription", sub.ID)]
		switch {
		case ts == nil:
		case sub.Status == "requested" && !ts.due.IsZero() && !ts.due.After(now):
			ts.due = time.Time{}
			id := sub.ID
			jobs = append(jobs, func() { s.handshake(id) })
		case sub.Status != "active" || ts.stopped || now.Before(ts.lastSent.Add(ts.heartbeat)):
		case len(ts.queued) > 0:
			jobs = append(jobs, s.sendEventsJob(sub.ID, ts))
		case !ts.noHeartbt:
			jobs = append(jobs, s.sendJob(sub.ID, "heartbeat", nil))
		}
	}
	return jobs
}

// sendEventsJob takes the queued events (up to maxCount) and returns the
// job sending them. The caller holds s.mu.
func (s *Server) sendEventsJob(id string, ts *topicSub) func() {
	n := min(len(ts.queued), ts.maxCount)
	batch := slices.Clone(ts.queued[:n])
	ts.queued = ts.queued[n:]
	return s.sendJob(id, "event-notification", batch)
}

// sendJob builds a notification Bundle now, under s.mu, and returns the
// job that sends it.
func (s *Server) sendJob(id, typ string, events []topicEvent) func() {
	stored, ok := s.get("Subscription", id)
	ts := s.topicSubs[s.key("Subscription", id)]
	if !ok || ts == nil {
		return func() {}
	}
	sub := parseSubscription(stored)
	if s.opts.Vendor == HAPI {
		return s.hapiTopicJob(sub, ts, events) // HAPI's R4 form and delivery (hapi.go)
	}
	body := mustJSON(s.notificationBundle(sub, ts, typ, events))
	return func() { s.sendTopic(sub, ts, typ, body, events) }
}

// zenTimestamp is how Aidbox zen writes event timestamps: not a FHIR
// instant (C§2.3, C-trap 14).
func zenTimestamp(t time.Time) string {
	return t.In(time.FixedZone("", 3*3600)).Format("2006-01-02 15:04:05.000000-07")
}

// notificationBundle is zen's notification: a history Bundle whose first
// entry is a SubscriptionStatus with counters as JSON numbers and absolute
// references on the internal origin, then one entry per event as the
// content allows (C§2.1, C§2.2, C§2.3, C-trap 10, C-trap 12, C-trap 13).
// The caller holds s.mu.
func (s *Server) notificationBundle(sub Subscription, ts *topicSub, typ string, events []topicEvent) map[string]any {
	status := map[string]any{
		"resourceType":                 "SubscriptionStatus",
		"status":                       sub.Status,
		"type":                         typ,
		"eventsSinceSubscriptionStart": ts.count,
		"subscription":                 map[string]any{"reference": s.opts.InternalOrigin + "/fhir/Subscription/" + sub.ID},
		"topic":                        ts.topic.URL,
	}
	if typ == "handshake" {
		status["status"] = "requested"
		status["eventsSinceSubscriptionStart"] = 0
	}
	entries := []any{map[string]any{"resource": status}}
	var notes []any
	for _, ev := range events {
		note := map[string]any{"eventNumber": ev.number, "timestamp": zenTimestamp(ev.time)}
		ref := s.opts.InternalOrigin + "/fhir/" + ev.resource.Type + "/" + ev.resource.ID
		if ts.content != "empty" || typ == "query-event" {
			note["focus"] = map[string]any{"reference": ref}
			method, code := "PUT", "200"
			if ev.created {
				method, code = "POST", "201"
			}
			entry := map[string]any{
				"fullUrl":  ref,
				"request":  map[string]any{"method": method, "url": ev.resource.Type + "/" + ev.resource.ID},
				"response": map[string]any{"status": code},
			}
			if ts.content == "full-resource" && typ != "query-event" {
				entry["resource"] = ev.resource.JSON
			}
			entries = append(entries, entry)
		}
		notes = append(notes, note)
	}
	if notes != nil {
		status["notificationEvent"] = notes
	}
	return map[string]any{
		"resourceType": "Bundle", "type": "history",
		"timestamp": s.Clock.Now().Format(time.RFC3339Nano), "entry": entries,
	}
}

// sendTopic POSTs a notification Bundle with the channel headers, bounded
// by the subscription's timeout, records it and applies zen's rule: success
// is exactly HTTP 200 (C§2.4, C-trap 8). A failed handshake is retried, 3
// tries 10 s apart, then the subscription is error for good (C§3, C-trap 9);
// a failed notification turns it error (C§3).
func (s *Server) sendTopic(sub Subscription, ts *topicSub, typ string, body []byte, events []topicEvent) {
	d := Delivery{SubscriptionID: sub.ID, Type: typ, Time: s.Clock.Now(), Method: http.MethodPost, URL: sub.Endpoint, Body: body}
	if len(events) == 1 {
		d.Resource = events[0].resource.Type + "/" + events[0].resource.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(ts.timeout, s.opts.DeliveryTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/fhir+json")
		for _, h := range sub.Header {
			name, value, _ := strings.Cut(h, ":")
			req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		d.Header = req.Header.Clone()
		var resp *http.Response
		if resp, err = s.client.Do(req); err == nil {
			d.Status = resp.StatusCode
			d.AnswerContentType = resp.Header.Get("Content-Type")
			d.Answer, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		d.Err = err.Error()
	}
	d.Success = err == nil && d.Status == http.StatusOK
	s.mu.Lock()
	defer s.mu.Unlock()
	d.Attempt = 1
	if typ == "handshake" {
		d.Attempt = ts.tries
	}
	s.deliveries = append(s.deliveries, d)
	if s.topicSubs[s.key("Subscription", sub.ID)] != ts {
		return // deleted meanwhile
	}
	now := s.Clock.Now()
	switch {
	case d.Success:
		ts.lastSent = now
		if typ == "handshake" {
			s.setStatus(sub.ID, "active", "")
		}
	case typ == "handshake" && ts.tries < handshakeTries:
		ts.due = now.Add(handshakeRetryDelay)
	default:
		reason := d.Err
		if reason == "" {
			reason = fmt.Sprintf("HTTP %d", d.Status)
		}
		s.setStatus(sub.ID, "error", typ+" failed: "+reason)
	}
}

// handshake makes one handshake attempt (C§3).
func (s *Server) handshake(id string) {
	s.mu.Lock()
	ts := s.topicSubs[s.key("Subscription", id)]
	if ts == nil {
		s.mu.Unlock()
		return
	}
	ts.tries++
	job := s.sendJob(id, "handshake", nil)
	s.mu.Unlock()
	job()
}

// topicOperation is GET Subscription/<id>/$status or $events: zen answers
// GET only (C§4, C-trap 19, C-trap 20), with a history Bundle whose
// SubscriptionStatus is query-status, or query-event listing the events
// eventsSinceNumber..eventsUntilNumber (default: the last 100) with
// id-only entries (seed 001 $events example).
func (s *Server) topicOperation(x *exchange, id, op string) response {
	if x.r.Method != http.MethodGet {
		return x.notAllowed()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.get("Subscription", id)
	ts := s.topicSubs[s.key("Subscription", id)]
	if !ok || ts == nil {
		return x.outcome(http.StatusNotFound, "not-found", "Resource Subscription/"+id+" is not known")
	}
	sub := parseSubscription(stored)
	if op == "$status" {
		return x.json(http.StatusOK, s.notificationBundle(sub, ts, "query-status", nil))
	}
	q := x.r.URL.Query()
	since, until := max(1, ts.count-99), ts.count
	for name, bound := range map[string]*int{"eventsSinceNumber": &since, "eventsUntilNumber": &until} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return x.outcome(http.StatusBadRequest, "invalid", name+" must be a positive integer")
			}
			*bound = n
		}
	}
	var events []topicEvent
	for _, ev := range ts.events {
		if ev.number >= since && ev.number <= until {
			events = append(events, ev)
		}
	}
	return x.json(http.StatusOK, s.notificationBundle(sub, ts, "query-event", events))
}

// DropEvents makes the next n events of subscription id be counted but
// never sent: lost notifications a client sees as a gap (C§0.3, C-trap 11).
func (s *Server) DropEvents(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustTopicSub(id).dropNext += n
}

// StopDelivering makes subscription id silent: events are still counted
// and listed by $events, nothing is sent, heartbeats neither (C-trap 17).
func (s *Server) StopDelivering(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustTopicSub(id).stopped = true
}

// StopHeartbeats stops the heartbeats of subscription id; events are still
// sent.
func (s *Server) StopHeartbeats(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustTopicSub(id).noHeartbt = true
}

// mustTopicSub panics for an id that is not a topic subscription. The
// caller holds s.mu.
func (s *Server) mustTopicSub(id string) *topicSub {
	ts := s.topicSubs[s.key("Subscription", id)]
	if ts == nil {
		panic("fhirtest: Subscription/" + id + " is not a topic-based subscription of this fake")
	}
	return ts
}
