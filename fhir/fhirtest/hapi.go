package fhirtest

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// HAPI's R4 backport topic mode (Options.TopicMode): what differs from
// Aidbox zen's topic subscriptions, whose validation, event numbering,
// filters and faults (DropEvents, StopDelivering) it shares (C§1.2, C§6.4).
const (
	// backportServerR4 is the CapabilityStatement an R4 backport server
	// instantiates (C§5).
	backportServerR4 = backportIG + "CapabilityStatement/backport-subscription-server-r4"
	// statusProfileR4 is the profile of HAPI's R4 status Parameters
	// (C§2.1: backport-subscription-status-r4).
	statusProfileR4 = backportIG + "StructureDefinition/backport-subscription-status-r4"
)

// hapiTopic says whether w is a Subscription HAPI's topic mode takes as a
// topic subscription: the backport profile in meta.profile (C§1.2). Without
// Options.TopicMode HAPI reads it as a criteria subscription, whose topic
// canonical is not "Type?params" (C-trap 5).
func (s *Server) hapiTopic(w wireSubscription) bool {
	return s.opts.Vendor == HAPI && s.opts.TopicMode && slices.Contains(w.Meta.Profile, backportProfile)
}

// hapiTopicDefaults is what a HAPI topic Subscription leaves out: content
// full-resource (HAPI's payload builder defaults to it, C§2.2). Its
// batching and heartbeat are hapiTopicSettings', whatever the Subscription
// asks.
func hapiTopicDefaults(topic Topic) *topicSub {
	return &topicSub{topic: topic, content: "full-resource"}
}

// createHAPITopic stores a HAPI topic subscription with a server-assigned id
// and activates it at once: HAPI sends no handshake (C§3, C-trap 9). Its
// event counter starts at 0, in memory (C§6.4, C-trap 10).
func (s *Server) createHAPITopic(x *exchange, res map[string]any) response {
	ts, resp, ok := s.validateBackport(x, res)
	if !ok {
		return resp
	}
	hapiTopicSettings(ts)
	s.mu.Lock()
	defer s.mu.Unlock()
	res["id"] = s.assignID()
	r := s.put("Subscription", res)
	s.topicSubs[s.key("Subscription", r.ID)] = ts
	return s.written(x, http.StatusCreated, r)
}

// updateHAPITopic takes the new settings of a HAPI topic subscription
// updated by PUT; the in-memory counter goes on (whether HAPI keeps it over
// an update is not read, C§6.4). A topic Subscription updated into a
// criteria one stops being a topic subscription. The caller holds s.mu.
func (s *Server) updateHAPITopic(x *exchange, id string, w wireSubscription, res map[string]any) (response, bool) {
	key := s.key("Subscription", id)
	if !s.hapiTopic(w) {
		delete(s.topicSubs, key)
		return response{}, true
	}
	ts, resp, ok := s.validateBackport(x, res)
	if !ok {
		return resp, false
	}
	hapiTopicSettings(ts)
	if old := s.topicSubs[key]; old != nil {
		ts.count = old.count
	}
	s.topicSubs[key] = ts
	return response{}, true
}

// hapiTopicSettings overrides what HAPI does not honour: HAPI sends one
// notification per event, no heartbeat, no batches (C§3: no heartbeat or
// handshake builder in HAPI's topic code).
func hapiTopicSettings(ts *topicSub) {
	ts.maxCount, ts.heartbeat = 1, 0
}

// hapiTopicJob builds HAPI's notification of one event now, under s.mu,
// and returns the job that delivers it as a HAPI rest-hook: a POST of the
// Bundle to the endpoint as a transaction, the answer read as FHIR, retried
// for Options.RetryWindow, the status never changed (C§3, C§6.4, C-trap 8,
// C-trap 26).
func (s *Server) hapiTopicJob(sub Subscription, ts *topicSub, events []topicEvent) func() {
	if len(events) == 0 {
		return func() {}
	}
	now := s.Clock.Now()
	s.nextSeq++
	n := &notification{
		seq: s.nextSeq, subID: sub.ID, resource: events[0].resource, first: now, due: now,
		typ: "event-notification", bundle: mustJSON(s.hapiNotification(sub, ts, events[0])),
	}
	return func() { s.attempt(n) }
}

// hapiNotification is HAPI's R4 backport notification of one event
// (C§2.1, C§2.3; HAPI SubscriptionTopicPayloadBuilder and
// R4NotificationStatusBuilder): a history Bundle whose first entry is the
// status Parameters, added without request (C§2.1), then the resource as a
// transaction entry, POST <Type> for a create and PUT <Type>/<id> for an
// update, with the resource for full-resource, without for id-only, and no
// entry for empty content (C§2.2).
//
// The Parameters carry events-since-subscription-start and event-number as
// valueString from the in-memory counter (C-trap 10), a timestamp that is a
// date, not an instant (C-trap 14), and the focus as Type/id, or doubled
// as old HAPI wrote it with Options.DoubledFocus (C-trap 13). fullUrl is the
// resource's versioned id as HAPI holds it; whether it carries the server's
// base is not read (C§2.3).
func (s *Server) hapiNotification(sub Subscription, ts *topicSub, ev topicEvent) map[string]any {
	number := strconv.Itoa(ev.number)
	ref := ev.resource.Type + "/" + ev.resource.ID
	parts := []any{
		map[string]any{"name": "event-number", "valueString": number},
		map[string]any{"name": "timestamp", "valueDate": s.Clock.Now().Format(time.DateOnly)},
	}
	entries := []any{}
	if ts.content != "empty" {
		focus := ref
		if s.opts.DoubledFocus {
			focus = ev.resource.Type + "/" + ref
		}
		parts = append(parts, map[string]any{"name": "focus", "valueReference": map[string]any{"reference": focus}})
		request := map[string]any{"method": "PUT", "url": ref}
		if ev.created {
			request = map[string]any{"method": "POST", "url": ev.resource.Type}
		}
		entry := map[string]any{"fullUrl": ref + "/_history/" + ev.resource.VersionID, "request": request}
		if ts.content == "full-resource" {
			entry["resource"] = ev.resource.JSON
		}
		entries = append(entries, entry)
	}
	params := r4StatusParameters("Subscription/"+sub.ID, ts.topic.URL, "active", "event-notification", ev.number, [][]any{parts})
	params["id"] = newID()
	params["meta"] = map[string]any{"profile": []string{statusProfileR4}}
	entries = append([]any{map[string]any{"resource": params}}, entries...)
	return map[string]any{"resourceType": "Bundle", "id": newID(), "type": "history", "entry": entries}
}

// hapiTopicAnswered is HAPI's success rule for a topic notification: it is
// sent as a transaction, and HAPI's client parses the answer as the
// transaction's Bundle, so an empty answer, "{}" or another resource fails
// (C§1.1 "HAPI-1359 … missing required element: 'resourceType'", C§6.4,
// C-trap 8).
func hapiTopicAnswered(answer []byte) bool {
	return resourceTypeOf(answer) == "Bundle"
}

// Restart is a restart of the HAPI server: what it keeps in memory is
// lost, so the event counters of its topic subscriptions start again at 0
// (C§0.4, C§6.4, C-trap 10); the stored resources and subscriptions stay.
// It panics on another vendor.
func (s *Server) Restart() {
	if s.opts.Vendor != HAPI {
		panic("fhirtest: Restart models HAPI's in-memory counters; vendor " + string(s.opts.Vendor))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ts := range s.topicSubs {
		ts.count = 0
	}
}
