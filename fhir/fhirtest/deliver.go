package fhirtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Delivery is one attempt to notify a subscriber, as the fake sent it and
// as the subscriber answered.
type Delivery struct {
	// SubscriptionID is the subscription notified.
	SubscriptionID string
	// Resource is the "Type/id" whose change was notified (Aidbox: of a
	// notification carrying one event).
	Resource string
	// Type is the notification type of a topic subscription: handshake,
	// heartbeat or event-notification (HAPI sends only the last); empty for
	// criteria subscriptions.
	Type string
	// Attempt is 1 for the first try, 2 for the first retry, ...
	Attempt int
	// Time is when the attempt was made, on the fake's clock.
	Time time.Time
	// Method, URL, Header and Body are the request sent.
	Method, URL string
	Header      http.Header
	Body        []byte
	// Status, AnswerContentType and Answer are the subscriber's answer;
	// Status is 0 when there was none (Err says why).
	Status            int
	AnswerContentType string
	Answer            []byte
	Err               string
	// Success is the vendor's verdict on the answer (see deliver).
	Success bool
}

// notification is one change to notify to one subscription: the resource
// of a criteria subscription, or a HAPI topic subscription's Bundle (typ
// and bundle set).
type notification struct {
	seq      int
	subID    string
	resource Resource
	first    time.Time
	due      time.Time
	attempts int
	typ      string
	bundle   []byte
}

// trigger queues a notification of r's change for every subscription whose
// criteria match it and which the vendor notifies. The caller holds s.mu
// and delivers the batch after unlocking.
func (s *Server) trigger(r Resource) []func() {
	now := s.Clock.Now()
	s.expire(now)
	if s.opts.Vendor.topicBased() {
		return s.triggerTopics(r, now)
	}
	if s.opts.Vendor == HAPI && s.opts.NeverFire {
		return nil // accepted, active, silent, topic mode too (C§3, C-trap 25)
	}
	if s.opts.Vendor == HeyDonto && s.opts.Notify == NotifyNone {
		return nil
	}
	res := decodeStored(r)
	var batch []func()
	for _, stored := range s.all("Subscription") {
		sub := parseSubscription(stored)
		if !s.notifies(sub) {
			continue
		}
		m := criteriaForm.FindStringSubmatch(sub.Criteria)
		if m == nil || m[1] != r.Type {
			continue
		}
		q, err := parseQueryString(m[3])
		if err != nil || !matches(r.Type, res, q, s.opts.Vendor == HeyDonto) {
			continue
		}
		s.nextSeq++
		n := &notification{seq: s.nextSeq, subID: sub.ID, resource: r, first: now, due: now}
		batch = append(batch, func() { s.attempt(n) })
	}
	if s.opts.Vendor == HAPI && s.opts.TopicMode {
		batch = append(batch, s.triggerTopics(r, now)...)
	}
	return batch
}

// notifies says whether the vendor sends notifications for sub in its
// status: HAPI for active ones; Kodjin for active ones and, while it
// retries, error ones (C§3); HeyDonto, whose subscriptions stay requested
// (C§6.3), for any but off.
func (s *Server) notifies(sub Subscription) bool {
	switch s.opts.Vendor {
	case Kodjin:
		return sub.Status == "active" || sub.Status == "error"
	case HeyDonto:
		return sub.Status == "requested" || sub.Status == "active"
	}
	return sub.Status == "active"
}

// expire turns off the subscriptions whose end has passed: Kodjin's
// (C§1.1, C§6.2, C-trap 27), and the newer Aidbox's, which stop receiving
// events at their end (C§6.1); which status Aidbox gives them is not
// documented, the fake uses off. Zen's end is not documented: not expired.
// The caller holds s.mu.
func (s *Server) expire(now time.Time) {
	if s.opts.Vendor != Kodjin && s.opts.Vendor != Aidbox {
		return
	}
	for _, stored := range s.all("Subscription") {
		if sub := parseSubscription(stored); sub.Status != "off" && !sub.End.IsZero() && !sub.End.After(now) {
			s.setStatus(sub.ID, "off", "")
		}
	}
}

// deliverAll runs delivery jobs in order, without s.mu.
func (s *Server) deliverAll(jobs []func()) {
	for _, job := range jobs {
		job()
	}
}

// attempt sends n to its subscription's endpoint as the vendor does, records
// the attempt and applies the vendor's rule to the answer.
func (s *Server) attempt(n *notification) {
	s.mu.Lock()
	stored, ok := s.get("Subscription", n.subID)
	var sub Subscription
	if ok {
		sub = parseSubscription(stored)
	}
	s.mu.Unlock()
	if !ok || !s.notifies(sub) {
		return
	}
	n.attempts++
	d := s.send(sub, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliveries = append(s.deliveries, d)
	s.judge(n, d)
}

// request is the notification of a resource in the vendor's form (C§1.1,
// C§2.1, C-trap 7):
//   - HAPI's topic notification: POST <endpoint> of the Bundle, which HAPI
//     sends as a transaction (C§6.4).
//   - HAPI: with a payload, PUT <endpoint>/<Type>/<id> with the resource as
//     FHIR JSON; without, POST <endpoint> with no body and the Content-Type of
//     Options.EmptyPostContentType (none by default).
//   - Kodjin: with a payload, PUT the resource to <endpoint>/<Type>/<id>, or
//     to <endpoint> (Options.PutToEndpoint; undocumented); without, an empty
//     POST.
//   - HeyDonto: Options.Notify (undocumented, C§6.3).
func (s *Server) request(sub Subscription, n *notification) (method, target, contentType string, body []byte) {
	r, endpoint := n.resource, sub.Endpoint
	resourceURL := strings.TrimSuffix(endpoint, "/") + "/" + r.Type + "/" + r.ID
	const fhirJSON = "application/fhir+json; charset=UTF-8"
	if n.bundle != nil {
		return http.MethodPost, endpoint, fhirJSON, n.bundle
	}
	switch s.opts.Vendor {
	case HeyDonto:
		switch s.opts.Notify {
		case NotifyPutResource:
			return http.MethodPut, resourceURL, fhirJSON, r.JSON
		case NotifyPostResource:
			return http.MethodPost, endpoint, fhirJSON, r.JSON
		}
		return http.MethodPost, endpoint, "", nil
	case Kodjin:
		if sub.Payload == "" {
			return http.MethodPost, endpoint, "", nil
		}
		if s.opts.PutToEndpoint {
			return http.MethodPut, endpoint, fhirJSON, r.JSON
		}
		return http.MethodPut, resourceURL, fhirJSON, r.JSON
	}
	if sub.Payload == "" {
		return http.MethodPost, endpoint, s.opts.EmptyPostContentType, nil
	}
	return http.MethodPut, resourceURL, fhirJSON, r.JSON
}

// send makes the HTTP request of one attempt, with the subscription's
// channel headers split at the first colon (C§1.1), bounded by
// Options.DeliveryTimeout.
func (s *Server) send(sub Subscription, n *notification) Delivery {
	method, target, contentType, body := s.request(sub, n)
	d := Delivery{
		SubscriptionID: sub.ID, Resource: n.resource.Type + "/" + n.resource.ID, Type: n.typ,
		Attempt: n.attempts, Time: s.Clock.Now(), Method: method, URL: target, Body: body,
	}
	if err := s.exchange(&d, s.opts.DeliveryTimeout, contentType, sub.Header); err != nil {
		d.Err = err.Error()
		return d
	}
	d.Success = s.succeeded(d)
	return d
}

// exchange sends d's request (Method, URL, Body) with contentType (none
// when empty) and the subscription's "Name: value" headers (C-trap 6), and
// records the headers sent and the answer in d.
func (s *Server) exchange(d *Delivery, timeout time.Duration, contentType string, headers []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, d.Method, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	d.Header = req.Header.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	d.Status = resp.StatusCode
	d.AnswerContentType = resp.Header.Get("Content-Type")
	if d.Answer, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes)); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	return nil
}

// succeeded is the vendor's success rule. Every vendor wants a 2xx. HAPI
// also parses a non-empty answer as FHIR, so "{}" or text is a failure
// (C§1.1, C§2.4, C-trap 8); an empty answer gives it nothing to parse. A
// HAPI topic notification wants a Bundle (hapiTopicAnswered).
func (s *Server) succeeded(d Delivery) bool {
	switch {
	case d.Status < 200 || d.Status > 299:
		return false
	case s.opts.Vendor != HAPI:
		return true
	case d.Type != "":
		return hapiTopicAnswered(d.Answer)
	}
	return len(bytes.TrimSpace(d.Answer)) == 0 || resourceTypeOf(d.Answer) != ""
}

// resourceTypeOf is the resourceType of a JSON resource, "" when the body
// is not one.
func resourceTypeOf(body []byte) string {
	var res struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(body, &res) != nil {
		return ""
	}
	return res.ResourceType
}

// judge applies the vendor's retry rule to an attempt. Retries are due
// RetryInterval after the previous one was due, on the fake's clock, so a
// test that advances the clock by the interval makes exactly the next one
// due. The caller holds s.mu.
//   - Kodjin: a failure turns the subscription error with the reason in
//     Subscription.error and retries it Options.Retries times; a success
//     turns it active and clears error; the last failed retry turns it off
//     (C§3, C-trap 18).
//   - HAPI: a failure is retried every Options.RetryInterval for
//     Options.RetryWindow, then dropped; the status does not change (C§3,
//     C-trap 26).
//   - HeyDonto: no retries are documented; none are made.
func (s *Server) judge(n *notification, d Delivery) {
	switch s.opts.Vendor {
	case Kodjin:
		stored, ok := s.get("Subscription", n.subID)
		if !ok {
			return
		}
		sub := parseSubscription(stored)
		if d.Success {
			if sub.Status == "error" {
				s.setStatus(sub.ID, "active", "")
			}
			return
		}
		if n.attempts > s.opts.Retries {
			s.setStatus(sub.ID, "off", "")
			return
		}
		reason := d.Err
		if reason == "" {
			reason = fmt.Sprintf("HTTP %d", d.Status)
		}
		if sub.Status != "error" || sub.Error != "delivery failed: "+reason {
			s.setStatus(sub.ID, "error", "delivery failed: "+reason)
		}
		n.due = n.due.Add(s.opts.RetryInterval)
		s.pending = append(s.pending, n)
	case HAPI:
		if d.Success {
			return
		}
		if due := n.due.Add(s.opts.RetryInterval); due.After(n.first.Add(s.opts.RetryWindow)) {
			s.dropped++
		} else {
			n.due = due
			s.pending = append(s.pending, n)
		}
	}
}

// dropPending forgets the pending retries of a subscription. The caller
// holds s.mu.
func (s *Server) dropPending(id string) {
	s.pending = slices.DeleteFunc(s.pending, func(n *notification) bool {
		return s.key("Subscription", n.subID) == s.key("Subscription", id)
	})
}

// Tick runs what is due at the clock's time: Kodjin turns off the
// subscriptions whose end has passed, and the retries due are sent —
// Kodjin's newest first, since its re-sent messages may arrive out of order
// (C§3: "older messages may be delivered after newer ones", C-trap 11).
// Tick returns when they have all been attempted.
func (s *Server) Tick() {
	now := s.Clock.Now()
	s.mu.Lock()
	s.expire(now)
	topicJobs := s.tickTopics(now)
	var due []*notification
	s.pending = slices.DeleteFunc(s.pending, func(n *notification) bool {
		if n.due.After(now) {
			return false
		}
		due = append(due, n)
		return true
	})
	s.mu.Unlock()
	slices.SortFunc(due, func(a, b *notification) int { return a.seq - b.seq })
	if s.opts.Vendor == Kodjin {
		slices.Reverse(due)
	}
	for _, n := range due {
		s.attempt(n)
	}
	s.deliverAll(topicJobs)
}

// Deliveries returns every delivery attempt so far, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	for i, d := range s.deliveries {
		d.Header = d.Header.Clone()
		d.Body = bytes.Clone(d.Body)
		d.Answer = bytes.Clone(d.Answer)
		out[i] = d
	}
	return out
}

// PendingRetries is how many failed notifications wait for a retry.
func (s *Server) PendingRetries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Dropped is how many notifications HAPI gave up on after its retry window.
func (s *Server) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
