package fhirtest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	subscriptionChannel = "http://terminology.hl7.org/CodeSystem/subscription-channel-type"
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
	filters   []url.Values // queries, all must match
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
	held      []func() // batches the deliverers took and have not sent (Options.Deliverers)
}

// topicEvent is one numbered event.
type topicEvent struct {
	number   int
	time     time.Time
	resource Resource
	created  bool
}

// r5 reports whether the fake is the newer Aidbox serving R5 (C§1.3).
func (s *Server) r5() bool { return s.opts.Vendor == Aidbox && s.opts.FHIRVersion == R5 }

// r4 reports whether the fake is the newer Aidbox serving the R4 backport
// (C§1.2, C§6.1).
func (s *Server) r4() bool { return s.opts.Vendor == Aidbox && s.opts.FHIRVersion == R4 }

// newTopicSub starts the delivery state of a subscription to the topic
// named canonical, with what the settings a Subscription leaves out mean:
// zen's heartbeat 120 s, timeout 30 s, maxCount 10 and empty content (seed
// 001 table, C§1.2; the newer Aidbox documents none, so the fake uses the
// same), or HAPI's (hapi.go); false for a topic the fake does not know
// (C§1.2).
func (s *Server) newTopicSub(canonical any) (*topicSub, bool) {
	i := slices.IndexFunc(s.opts.Topics, func(t Topic) bool { return t.URL == canonical })
	if i < 0 {
		return nil, false
	}
	if s.opts.Vendor == HAPI {
		return hapiTopicDefaults(s.opts.Topics[i]), true
	}
	return &topicSub{topic: s.opts.Topics[i], content: "empty", heartbeat: 120 * time.Second, timeout: 30 * time.Second, maxCount: 10}, true
}

// checkContent refuses a content level that is unknown or above the
// topic's maxContent, whose default is empty (C§2.2: zen's topic, the
// newer Aidbox's destination).
func (ts *topicSub) checkContent() string {
	level := slices.Index(contentLevels, ts.content)
	if level < 0 {
		return "payload content must be empty, id-only or full-resource"
	}
	if level > slices.Index(contentLevels, cmp.Or(ts.topic.MaxContent, "empty")) {
		return "payload content " + ts.content + " exceeds the topic's maxContent"
	}
	return ""
}

// validateBackport applies Aidbox's rules to an R4 or R4B backport Subscription
// (C§1.2, C-trap 3, C-trap 5), the same for both generations, and returns
// its delivery settings, or an answer refusing it.
func (s *Server) validateBackport(x *exchange, res map[string]any) (*topicSub, response, bool) {
	refuse := func(diagnostics string) (*topicSub, response, bool) {
		return nil, x.outcome(http.StatusUnprocessableEntity, "processing", diagnostics), false
	}
	meta, _ := res["meta"].(map[string]any)
	profiles, _ := meta["profile"].([]any)
	if !slices.Contains(profiles, any(backportProfile)) {
		return refuse("meta.profile must contain " + backportProfile)
	}
	ts, ok := s.newTopicSub(res["criteria"])
	if !ok {
		return refuse("Subscription.criteria must be the canonical of a known SubscriptionTopic")
	}
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
		ts.filters = append(ts.filters, q)
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
	if problem := ts.checkContent(); problem != "" {
		return refuse(problem)
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

// validateR5 applies the newer Aidbox's rules to an R5 Subscription (C§1.3,
// C-trap 5, C-trap 6): topic a known topic; filterBy on the topic's
// canFilterBy with filterParameter and value, comparator eq or none (the
// only comparison the fake evaluates); channelType the rest-hook Coding;
// contentType, when present, application/fhir+json (the fake sends JSON
// only); content not above the topic's maxContent (empty when absent, as
// zen's default); heartbeatPeriod, timeout and maxCount as integers.
func (s *Server) validateR5(x *exchange, res map[string]any) (*topicSub, response, bool) {
	refuse := func(diagnostics string) (*topicSub, response, bool) {
		return nil, x.outcome(http.StatusUnprocessableEntity, "processing", diagnostics), false
	}
	ts, ok := s.newTopicSub(res["topic"])
	if !ok {
		return refuse("Subscription.topic must be the canonical of a known SubscriptionTopic")
	}
	filters, ok := res["filterBy"].([]any)
	if !ok && res["filterBy"] != nil {
		return refuse("Subscription.filterBy must be a list")
	}
	for _, f := range filters {
		m, _ := f.(map[string]any)
		name, _ := m["filterParameter"].(string)
		value, _ := m["value"].(string)
		if name == "" || value == "" || m["modifier"] != nil || (m["comparator"] != nil && m["comparator"] != "eq") {
			return refuse("Subscription.filterBy needs filterParameter and value, and no comparator but eq")
		}
		if !slices.Contains(ts.topic.CanFilterBy, name) {
			return refuse("filterBy parameter " + name + " is not in the topic's canFilterBy")
		}
		ts.filters = append(ts.filters, url.Values{name: {value}})
	}
	ct, _ := res["channelType"].(map[string]any)
	if ct["system"] != subscriptionChannel || ct["code"] != "rest-hook" {
		return refuse("Subscription.channelType must be rest-hook of " + subscriptionChannel)
	}
	if v, ok := res["contentType"]; ok && v != "application/fhir+json" {
		return refuse("Subscription.contentType must be application/fhir+json")
	}
	if v, ok := res["content"]; ok {
		ts.content, _ = v.(string)
	}
	if problem := ts.checkContent(); problem != "" {
		return refuse(problem)
	}
	for name, d := range map[string]*time.Duration{"heartbeatPeriod": &ts.heartbeat, "timeout": &ts.timeout} {
		if v, ok := res[name]; ok {
			n, ok := positive(v)
			if !ok {
				return refuse("Subscription." + name + " must be a positive integer")
			}
			*d = time.Duration(n) * time.Second
		}
	}
	if v, ok := res["maxCount"]; ok {
		if ts.maxCount, ok = positive(v); !ok {
			return refuse("Subscription.maxCount must be a positive integer")
		}
	}
	return ts, response{}, true
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
		for _, q := range ts.filters {
			matched = matched && matches(r.Type, res, q, false)
		}
		if !matched {
			continue
		}
		ts.count++
		ev := topicEvent{number: ts.count, time: now, resource: r, created: r.VersionID == "1"}
		if s.opts.Vendor.topicBased() {
			// Aidbox keeps its events for $events (C§4); HAPI has no
			// $events, and keeps none.
			ts.events = append(s.retained(ts, now), ev)
		}
		switch {
		case sub.Status != "active" || ts.stopped:
		case ts.dropNext > 0:
			ts.dropNext--
		default:
			ts.queued = append(ts.queued, ev)
		}
		if len(ts.queued) >= ts.maxCount {
			jobs = append(jobs, s.deliver(ts, s.sendEventsJob(sub.ID, ts))...)
		}
	}
	return jobs
}

// deliver hands a batch to Aidbox's deliverers and returns the jobs to run
// now. One deliverer sends each batch at once, in order. Several send
// batches concurrently, so they arrive out of event order (C§3, C§6.1
// number-of-deliverer, C-trap 11); the fake makes that order
// deterministic, and the worst it can be: with Options.Deliverers n > 1,
// batches wait until n are taken, and that round is sent newest first, one
// after the other; a round not full goes at the next Tick. The caller
// holds s.mu.
func (s *Server) deliver(ts *topicSub, job func()) []func() {
	if s.opts.Deliverers <= 1 {
		return []func(){job}
	}
	ts.held = append(ts.held, job)
	if len(ts.held) < s.opts.Deliverers {
		return nil
	}
	return ts.release()
}

// release returns the batches the deliverers hold, newest first. The
// caller holds s.mu.
func (ts *topicSub) release() []func() {
	round := ts.held
	ts.held = nil
	slices.Reverse(round)
	return round
}

// retained drops the events older than Options.Retention: the newer
// Aidbox deletes events older than keep-events-for-period (C§4, C-trap 19).
// The caller holds s.mu.
func (s *Server) retained(ts *topicSub, now time.Time) []topicEvent {
	if s.opts.Retention <= 0 {
		return ts.events
	}
	return slices.DeleteFunc(ts.events, func(ev topicEvent) bool { return ev.time.Before(now.Add(-s.opts.Retention)) })
}

// tickTopics returns the jobs due at now: handshake retries, batches whose
// heartbeat period passed, heartbeats after a period of silence (C§3), and
// the rounds the deliverers hold (deliver). The caller holds s.mu.
func (s *Server) tickTopics(now time.Time) []func() {
	if !s.opts.Vendor.topicBased() {
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
			jobs = append(jobs, s.deliver(ts, s.sendEventsJob(sub.ID, ts))...)
		case !ts.noHeartbt:
			jobs = append(jobs, s.sendJob(sub.ID, "heartbeat", nil))
		}
		if ts != nil {
			jobs = append(jobs, ts.release()...)
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
	body := mustJSON(s.notificationBundle(sub, ts, typ, events, ts.content))
	return func() { s.sendTopic(sub, ts, typ, body, events) }
}

// zenTimestamp is how Aidbox zen writes event timestamps: not a FHIR
// instant (C§2.3, C-trap 14).
func zenTimestamp(t time.Time) string {
	return t.In(time.FixedZone("", 3*3600)).Format("2006-01-02 15:04:05.000000-07")
}

// instant is how the newer Aidbox writes timestamps: FHIR instants in UTC
// with microseconds (C§2.3, AB-NEW tutorials).
func instant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

// notificationBundle is a notification, or the answer to $status or
// $events: a Bundle whose first entry is a SubscriptionStatus, then one
// entry per event as content allows (C§2.1, C§2.2, C§2.3, C-trap 10,
// C-trap 12, C-trap 13), in the vendor's form:
//   - zen: a history Bundle, counters as JSON numbers, timestamps such as
//     "2023-09-04 10:38:43.020984+03", references on the internal origin
//     with /fhir, the status entry a bare resource;
//   - the newer Aidbox: a history Bundle in R4B with counters as strings, a
//     subscription-notification Bundle in R5 with counters as numbers;
//     instants; the subscription reference without /fhir, focus and
//     fullUrl with it; the status entry with a urn:uuid fullUrl and the
//     $status request it mirrors; event entries whose request is the
//     create (POST <Type>) or update (PUT <Type>/<id>) on the internal
//     origin. In R4 the status is Parameters (r4Notification).
//
// The caller holds s.mu.
func (s *Server) notificationBundle(sub Subscription, ts *topicSub, typ string, events []topicEvent, content string) map[string]any {
	if s.r4() {
		return s.r4Notification(sub, ts, typ, events, content)
	}
	zen := s.opts.Vendor == AidboxZen
	origin := s.opts.InternalOrigin
	counter := func(n int) any {
		if s.opts.Vendor == Aidbox && !s.r5() {
			return strconv.Itoa(n)
		}
		return n
	}
	subRef := origin + "/Subscription/" + sub.ID
	if zen {
		subRef = origin + "/fhir/Subscription/" + sub.ID
	}
	status := map[string]any{
		"resourceType":                 "SubscriptionStatus",
		"status":                       sub.Status,
		"type":                         typ,
		"eventsSinceSubscriptionStart": counter(ts.count),
		"subscription":                 map[string]any{"reference": subRef},
		"topic":                        ts.topic.URL,
	}
	if typ == "handshake" {
		status["status"] = "requested"
		status["eventsSinceSubscriptionStart"] = counter(0)
	}
	statusEntry := map[string]any{"resource": status}
	if !zen {
		id := newID()
		status["id"] = id
		statusEntry = map[string]any{
			"fullUrl":  "urn:uuid:" + id,
			"request":  map[string]any{"method": "GET", "url": subRef + "/$status"},
			"response": map[string]any{"status": "200"},
			"resource": status,
		}
	}
	entries := []any{statusEntry}
	var notes []any
	for _, ev := range events {
		note := map[string]any{"eventNumber": counter(ev.number)}
		if zen {
			note["timestamp"] = zenTimestamp(ev.time)
		} else {
			note["timestamp"] = instant(ev.time)
		}
		if entry := s.eventEntry(ev, content); entry != nil {
			note["focus"] = map[string]any{"reference": entry["fullUrl"]}
			entries = append(entries, entry)
		}
		notes = append(notes, note)
	}
	if notes != nil {
		status["notificationEvent"] = notes
	}
	bundleType := "history"
	if s.r5() {
		bundleType = "subscription-notification"
	}
	return map[string]any{
		"resourceType": "Bundle", "type": bundleType,
		"timestamp": s.Clock.Now().Format(time.RFC3339Nano), "entry": entries,
	}
}

// eventEntry is the Bundle entry of an event as content allows (C§2.2):
// none for empty content; fullUrl, the event's focus, on the internal
// origin with /fhir (C§2.3, C-trap 13), request and response, with the
// resource for full-resource. Zen's request URL is relative (seed 001
// $events example), the newer Aidbox's on the internal origin.
func (s *Server) eventEntry(ev topicEvent, content string) map[string]any {
	if content == "empty" {
		return nil
	}
	origin := s.opts.InternalOrigin
	method, code, target := "PUT", "200", ev.resource.Type+"/"+ev.resource.ID
	if ev.created {
		method, code = "POST", "201"
	}
	if s.opts.Vendor != AidboxZen {
		target = origin + "/fhir/" + ev.resource.Type
		if !ev.created {
			target += "/" + ev.resource.ID
		}
	}
	entry := map[string]any{
		"fullUrl":  origin + "/fhir/" + ev.resource.Type + "/" + ev.resource.ID,
		"request":  map[string]any{"method": method, "url": target},
		"response": map[string]any{"status": code},
	}
	if content == "full-resource" {
		entry["resource"] = ev.resource.JSON
	}
	return entry
}

// r4Notification is the newer Aidbox's R4 backport form
// (subscription-specification-version R4-backported, C§2.1, C§4; AB-NEW
// r4 tutorial): a history Bundle whose first entry is the status
// Parameters, bare, counters as valueString, the subscription as the
// relative Subscription/<id> its $status and $events answers show (C§2.3;
// its notifications are not shown, the fake writes them alike), event
// timestamps as instants and entries as in R4B. The $status and $events
// answers name no topic, as shown; the $events answer has no
// notification-event parts and its full-resource entries carry the
// resource alone, as its tutorial shows it (C§4, C-trap 19), unless
// Options.R4EventParts. The caller holds s.mu.
func (s *Server) r4Notification(sub Subscription, ts *topicSub, typ string, events []topicEvent, content string) map[string]any {
	status, count, topic := sub.Status, ts.count, ts.topic.URL
	switch typ {
	case "handshake":
		status, count = "requested", 0
	case "query-status", "query-event":
		topic = ""
	}
	bare := typ == "query-event" && !s.opts.R4EventParts
	var notes [][]any
	var entries []any
	for _, ev := range events {
		parts := []any{
			map[string]any{"name": "event-number", "valueString": strconv.Itoa(ev.number)},
			map[string]any{"name": "timestamp", "valueInstant": instant(ev.time)},
		}
		if entry := s.eventEntry(ev, content); entry != nil {
			parts = append(parts, map[string]any{"name": "focus", "valueReference": map[string]any{"reference": entry["fullUrl"]}})
			if bare && entry["resource"] != nil {
				entry = map[string]any{"resource": entry["resource"]}
			}
			entries = append(entries, entry)
		}
		notes = append(notes, parts)
	}
	if bare {
		notes = nil
	}
	params := r4StatusParameters("Subscription/"+sub.ID, topic, status, typ, count, notes)
	return map[string]any{
		"resourceType": "Bundle", "type": "history", "timestamp": s.Clock.Now().Format(time.RFC3339Nano),
		"entry": append([]any{map[string]any{"resource": params}}, entries...),
	}
}

// r4StatusParameters is the R4 backport status, a Parameters resource with
// the IG's names (C§2.1): subscription, topic (left out when empty),
// status, type, events-since-subscription-start as valueString (C-trap 10),
// and a notification-event parameter per parts list.
func r4StatusParameters(subRef, topic, status, typ string, count int, events [][]any) map[string]any {
	params := []any{map[string]any{"name": "subscription", "valueReference": map[string]any{"reference": subRef}}}
	if topic != "" {
		params = append(params, map[string]any{"name": "topic", "valueCanonical": topic})
	}
	params = append(params,
		map[string]any{"name": "status", "valueCode": status},
		map[string]any{"name": "type", "valueCode": typ},
		map[string]any{"name": "events-since-subscription-start", "valueString": strconv.Itoa(count)},
	)
	for _, parts := range events {
		params = append(params, map[string]any{"name": "notification-event", "part": parts})
	}
	return map[string]any{"resourceType": "Parameters", "parameter": params}
}

// sendTopic POSTs a notification Bundle with the channel headers, bounded
// by the subscription's timeout, records it and applies the vendor's rule:
// success is exactly HTTP 200 on zen, any 2xx on the newer Aidbox (C§2.4,
// C-trap 8). Zen retries a failed handshake, 3 tries 10 s apart, then the
// subscription is error for good; the newer Aidbox turns it error at once
// (C§3, C-trap 9). A failed notification turns it error (C§3).
func (s *Server) sendTopic(sub Subscription, ts *topicSub, typ string, body []byte, events []topicEvent) {
	d := Delivery{SubscriptionID: sub.ID, Type: typ, Time: s.Clock.Now(), Method: http.MethodPost, URL: sub.Endpoint, Body: body}
	if len(events) == 1 {
		d.Resource = events[0].resource.Type + "/" + events[0].resource.ID
	}
	err := s.exchange(&d, min(ts.timeout, s.opts.DeliveryTimeout), "application/fhir+json", sub.Header)
	if err != nil {
		d.Err = err.Error()
	}
	d.Success = err == nil && d.Status == http.StatusOK
	if s.opts.Vendor == Aidbox {
		d.Success = err == nil && d.Status >= 200 && d.Status <= 299
	}
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
	case typ == "handshake" && s.opts.Vendor == AidboxZen && ts.tries < handshakeTries:
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

// topicOperation is Subscription/<id>/$status or $events (C§4, C-trap 19,
// C-trap 20). Zen answers GET only; the newer Aidbox $status by GET or POST
// and $events by POST only, with Parameters. $status answers the
// notification Bundle of a query-status; $events a query-event listing the
// events eventsSinceNumber..eventsUntilNumber (default: the last 100) that
// are still kept, with id-only entries on zen (seed 001 $events example) and
// as the content parameter or the subscription's content say on the newer
// Aidbox (AB-NEW module:216-230), whose R4 answers are r4Notification's.
func (s *Server) topicOperation(x *exchange, id, op string) response {
	method := x.r.Method
	switch {
	case s.opts.Vendor == AidboxZen && method != http.MethodGet,
		s.opts.Vendor == Aidbox && op == "$status" && method != http.MethodGet && method != http.MethodPost,
		s.opts.Vendor == Aidbox && op == "$events" && method != http.MethodPost:
		return x.notAllowed()
	}
	params := x.r.URL.Query()
	if method == http.MethodPost {
		var resp response
		var ok bool
		if params, resp, ok = x.operationParameters(); !ok {
			return resp
		}
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
		return x.json(http.StatusOK, s.notificationBundle(sub, ts, "query-status", nil, "empty"))
	}
	since, until := max(1, ts.count-99), ts.count
	for name, bound := range map[string]*int{"eventsSinceNumber": &since, "eventsUntilNumber": &until} {
		if v := params.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return x.outcome(http.StatusBadRequest, "invalid", name+" must be a positive integer")
			}
			*bound = n
		}
	}
	content := "id-only"
	if s.opts.Vendor == Aidbox {
		content = cmp.Or(params.Get("content"), ts.content)
		if !slices.Contains(contentLevels, content) {
			return x.outcome(http.StatusBadRequest, "invalid", "content must be empty, id-only or full-resource")
		}
	}
	ts.events = s.retained(ts, s.Clock.Now())
	var events []topicEvent
	for _, ev := range ts.events {
		if ev.number >= since && ev.number <= until {
			events = append(events, ev)
		}
	}
	return x.json(http.StatusOK, s.notificationBundle(sub, ts, "query-event", events, content))
}

// operationParameters reads the Parameters body of an operation POSTed to
// the newer Aidbox: none, or eventsSinceNumber and eventsUntilNumber as
// valueString (the IG's type, C§4) and content as valueCode. Anything else
// is 400.
func (x *exchange) operationParameters() (url.Values, response, bool) {
	values := url.Values{}
	if len(bytes.TrimSpace(x.body)) == 0 {
		return values, response{}, true
	}
	if resp, ok := x.checkBody(); !ok {
		return nil, resp, false
	}
	var p struct {
		ResourceType string           `json:"resourceType"`
		Parameter    []map[string]any `json:"parameter"`
	}
	if err := json.Unmarshal(x.body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, x.outcome(http.StatusBadRequest, "structure", "the body must be a Parameters resource"), false
	}
	types := map[string]string{"eventsSinceNumber": "valueString", "eventsUntilNumber": "valueString", "content": "valueCode"}
	for _, par := range p.Parameter {
		name, _ := par["name"].(string)
		v, ok := par[types[name]].(string)
		if types[name] == "" || !ok || len(par) != 2 {
			return nil, x.outcome(http.StatusBadRequest, "invalid",
				fmt.Sprintf("parameter %q: want eventsSinceNumber or eventsUntilNumber as valueString, or content as valueCode", name)), false
		}
		values.Set(name, v)
	}
	return values, response{}, true
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
