package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
)

// Kind is what a notification means to the subscriber.
type Kind string

// The kinds of notification (docs/upstreams/fhir-subscriptions.md §2.1, §3, trap 7).
const (
	// KindHandshake is a topic subscription's first notification: answering
	// it 200 activates the subscription (trap 9).
	KindHandshake Kind = "handshake"
	// KindHeartbeat says the subscription is alive and nothing happened.
	KindHeartbeat Kind = "heartbeat"
	// KindEvent carries events (event-notification, or a $events answer's
	// query-event).
	KindEvent Kind = "event"
	// KindStatus is a $status answer (query-status).
	KindStatus Kind = "status"
	// KindPing is an empty body: an R4 criteria subscription without payload
	// says "something matched", the subscriber searches (trap 12).
	KindPing Kind = "ping"
	// KindResource is a bare resource, POSTed (openIMIS) or PUT (R4
	// criteria with payload).
	KindResource Kind = "resource"
)

// Reference names a resource by type and id, whatever form the server wrote
// it in.
type Reference struct {
	Type, ID string
}

// IsZero reports whether r names nothing.
func (r Reference) IsZero() bool { return r.Type == "" && r.ID == "" }

// String is the relative reference Type/id.
func (r Reference) String() string {
	if r.IsZero() {
		return ""
	}
	return r.Type + "/" + r.ID
}

// ParseReference extracts Type/id from a reference: relative
// (ClaimResponse/1), absolute on any origin, with or without /fhir
// (http://localhost:8765/fhir/ClaimResponse/1), versioned (…/_history/2),
// or doubled by old HAPI (ClaimResponse/ClaimResponse/1). It never follows
// the URL: the caller re-reads from its configured base
// (docs/upstreams/fhir-subscriptions.md §2.3, trap 13). urn: references and
// anything without a type and an id give false.
func ParseReference(s string) (Reference, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 2048 || strings.HasPrefix(strings.ToLower(s), "urn:") {
		return Reference{}, false
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return Reference{}, false
		}
		s = u.EscapedPath()
	}
	var segs []string
	for _, p := range strings.Split(s, "/") {
		if p == "" {
			continue
		}
		if p == "_history" {
			break
		}
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
		segs = append(segs, p)
	}
	if len(segs) < 2 {
		return Reference{}, false
	}
	r := Reference{Type: segs[len(segs)-2], ID: segs[len(segs)-1]}
	if !validType(r.Type) || !validID(r.ID) {
		return Reference{}, false
	}
	return r, true
}

// Event is one triggering event of a notification.
type Event struct {
	// Number is the event's number in its subscription; 0 when unknown
	// (criteria notifications, unreadable counters).
	Number int64
	// Timestamp is when the event happened; zero when absent or unreadable
	// (trap 14).
	Timestamp time.Time
	// Focus is the resource the event is about; zero for empty content.
	Focus Reference
	// Resource is the focus's content when the notification carried it
	// (full-resource, a bare resource); nil otherwise: read it by Focus
	// (trap 12).
	Resource json.RawMessage
}

// Notification is what a callback request said.
type Notification struct {
	Kind Kind
	// Type is the status's notification type as written (handshake,
	// heartbeat, event-notification, query-status, query-event); empty for
	// criteria notifications.
	Type string
	// SubscriptionRef is the subscription the status names, as Type/id
	// (its absolute URL may lack /fhir, trap 13).
	SubscriptionRef Reference
	// Topic is the topic canonical of a topic notification.
	Topic string
	// Status is the subscription's status as the notification reports it.
	Status string
	// EventsSinceStart is the subscription's event counter, when
	// HasEventsSinceStart (trap 10).
	EventsSinceStart    int64
	HasEventsSinceStart bool
	// Events are the notification's events: from the status's
	// notificationEvent list, plus the bundle entries no event names, or
	// the one bare resource.
	Events []Event
	// Error is the status's error text, if any.
	Error string
}

// NotificationError is a callback request that cannot be read: the
// subscriber should answer it with a 4xx naming Reason.
type NotificationError struct {
	Reason string
}

// Error implements error.
func (e *NotificationError) Error() string { return "fhir notification: " + e.Reason }

func notificationErr(format string, args ...any) error {
	return &NotificationError{Reason: fmt.Sprintf(format, args...)}
}

// ParseNotification reads a callback request of any dialect
// (docs/upstreams/fhir-subscriptions.md §2.1, trap 7): method POST or PUT;
// path is what follows the callback route, "" or "/<Type>/<id>" (HAPI PUTs
// the resource there, §1.1); contentType the request's Content-Type;
// body the request's body. It is pure and never panics; what it cannot read
// is a *NotificationError.
//
// Shapes: an empty body (with any or no Content-Type) is a ping; a Bundle
// whose status entry (SubscriptionStatus in R4B and R5, Parameters in R4
// backport, found by type, not position: trap 20) says handshake,
// heartbeat or event-notification; a bare SubscriptionStatus or Parameters
// ($status answers); any other resource is a KindResource with one event.
func ParseNotification(method, path, contentType string, body []byte) (Notification, error) {
	if method != http.MethodPost && method != http.MethodPut {
		return Notification{}, notificationErr("method %s: a notification is POST or PUT", errtext.Cut(method, 20))
	}
	pathRef, err := callbackPath(path)
	if err != nil {
		return Notification{}, err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		n := Notification{Kind: KindPing}
		if !pathRef.IsZero() {
			n.Events = []Event{{Focus: pathRef}}
		}
		return n, nil
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && strings.Contains(mt, "xml") {
		return Notification{}, notificationErr("%s is not supported: subscribe with application/fhir+json", errtext.Cut(mt, 80))
	}
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return Notification{}, notificationErr("body is not a JSON resource: %s", errtext.Cut(err.Error(), 200))
	}
	switch head.ResourceType {
	case "":
		return Notification{}, notificationErr("body has no resourceType")
	case "Bundle":
		if !pathRef.IsZero() {
			return Notification{}, notificationErr("a Bundle sent to %s", pathRef)
		}
		return parseBundle(body)
	case "SubscriptionStatus", "Parameters":
		if !pathRef.IsZero() {
			return Notification{}, notificationErr("a %s sent to %s", head.ResourceType, pathRef)
		}
		st, err := parseStatus(head.ResourceType, body)
		if err != nil {
			return Notification{}, err
		}
		return st.notification(nil)
	}
	if !validType(head.ResourceType) {
		return Notification{}, notificationErr("resourceType %q is not a resource type", errtext.Cut(head.ResourceType, 64))
	}
	ref := Reference{Type: head.ResourceType, ID: head.ID}
	switch {
	case pathRef.IsZero() && !validID(head.ID):
		return Notification{}, notificationErr("%s without a usable id", head.ResourceType)
	case pathRef.IsZero():
	case pathRef.Type != head.ResourceType || (head.ID != "" && head.ID != pathRef.ID):
		return Notification{}, notificationErr("%s/%s sent to %s", head.ResourceType, errtext.Cut(head.ID, 64), pathRef)
	default:
		ref = pathRef // a PUT body may leave the id to the URL
	}
	return Notification{Kind: KindResource, Events: []Event{{Focus: ref, Resource: json.RawMessage(body)}}}, nil
}

// callbackPath reads the part of a callback URL after the route: "" or
// "/<Type>/<id>".
func callbackPath(path string) (Reference, error) {
	p := strings.Trim(path, "/")
	if p == "" {
		return Reference{}, nil
	}
	parts := strings.Split(p, "/")
	if len(parts) == 2 && validType(parts[0]) && validID(parts[1]) {
		return Reference{Type: parts[0], ID: parts[1]}, nil
	}
	return Reference{}, notificationErr("path %q: want /<Type>/<id>", errtext.Cut(path, 100))
}

type bundleJSON struct {
	Type  string      `json:"type"`
	Entry []entryJSON `json:"entry"`
}

type entryJSON struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		URL string `json:"url"`
	} `json:"request"`
}

// parseBundle reads a notification Bundle (history in R4/R4B backport,
// subscription-notification in R5, searchset or history for $status and
// $events; §2.1, §4).
func parseBundle(body []byte) (Notification, error) {
	var b bundleJSON
	if err := json.Unmarshal(body, &b); err != nil {
		return Notification{}, notificationErr("Bundle: %s", errtext.Cut(err.Error(), 200))
	}
	statusAt := -1
	var st status
	for i, e := range b.Entry {
		rt := ResourceType(e.Resource)
		if rt != "SubscriptionStatus" && rt != "Parameters" {
			continue
		}
		s, err := parseStatus(rt, e.Resource)
		if err != nil {
			return Notification{}, err
		}
		st, statusAt = s, i
		break
	}
	if statusAt < 0 {
		return Notification{}, notificationErr("Bundle (type %q) has no SubscriptionStatus or Parameters entry", errtext.Cut(b.Type, 40))
	}
	var others []entry
	for i, e := range b.Entry {
		if i == statusAt {
			continue
		}
		ref, ok := entryRef(e)
		if !ok {
			continue // an entry naming nothing usable (urn:uuid, no id)
		}
		others = append(others, entry{ref: ref, resource: e.Resource})
	}
	return st.notification(others)
}

// entry is a Bundle entry other than the status: the resource it names and
// its content when present.
type entry struct {
	ref      Reference
	resource json.RawMessage
}

// entryRef names the entry's resource: from the resource itself, else its
// fullUrl, else its request URL (id-only entries, §2.2).
func entryRef(e entryJSON) (Reference, bool) {
	if len(e.Resource) > 0 && !bytes.Equal(e.Resource, []byte("null")) {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if json.Unmarshal(e.Resource, &head) == nil && validType(head.ResourceType) && validID(head.ID) {
			return Reference{Type: head.ResourceType, ID: head.ID}, true
		}
	}
	if r, ok := ParseReference(e.FullURL); ok {
		return r, true
	}
	if e.Request != nil {
		return ParseReference(e.Request.URL)
	}
	return Reference{}, false
}

// ResourceType reads a resource's resourceType; "" when unreadable.
func ResourceType(raw json.RawMessage) string {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return ""
	}
	return head.ResourceType
}

// status is a subscription status read from a SubscriptionStatus (R4B,
// R5) or the backport Parameters (R4).
type status struct {
	typ, status, topic, errText string
	subscription                Reference
	eventsSinceStart            int64
	hasEventsSinceStart         bool
	events                      []Event
}

// notification builds the Notification of the status and the Bundle's
// other entries: each event takes the resource its focus names; entries no
// event names become events of their own (servers that leave
// notificationEvent out, §2.1).
func (st status) notification(others []entry) (Notification, error) {
	n := Notification{
		Type: st.typ, SubscriptionRef: st.subscription, Topic: st.topic, Status: st.status,
		EventsSinceStart: st.eventsSinceStart, HasEventsSinceStart: st.hasEventsSinceStart, Error: st.errText,
	}
	switch st.typ {
	case "handshake":
		n.Kind = KindHandshake
	case "heartbeat":
		n.Kind = KindHeartbeat
	case "event-notification", "query-event":
		n.Kind = KindEvent
	case "query-status":
		n.Kind = KindStatus
	case "":
		// No type: events make it an event notification, else it only says
		// the subscription is alive.
		n.Kind = KindHeartbeat
		if len(st.events) > 0 || len(others) > 0 {
			n.Kind = KindEvent
		}
	default:
		return Notification{}, notificationErr("unknown notification type %q", errtext.Cut(st.typ, 40))
	}
	byRef := make(map[Reference]json.RawMessage, len(others))
	for _, o := range others {
		if len(o.resource) > 0 {
			byRef[o.ref] = o.resource
		}
	}
	named := map[Reference]bool{}
	for _, ev := range st.events {
		if !ev.Focus.IsZero() {
			ev.Resource = byRef[ev.Focus]
			named[ev.Focus] = true
		}
		n.Events = append(n.Events, ev)
	}
	if n.Kind == KindEvent {
		for _, o := range others {
			if !named[o.ref] {
				named[o.ref] = true
				n.Events = append(n.Events, Event{Focus: o.ref, Resource: byRef[o.ref]})
			}
		}
	}
	return n, nil
}

type statusJSON struct {
	Status                       string          `json:"status"`
	Type                         string          `json:"type"`
	EventsSinceSubscriptionStart json.RawMessage `json:"eventsSinceSubscriptionStart"`
	NotificationEvent            []struct {
		EventNumber json.RawMessage `json:"eventNumber"`
		Timestamp   string          `json:"timestamp"`
		Focus       *RefJSON        `json:"focus"`
	} `json:"notificationEvent"`
	Subscription *RefJSON          `json:"subscription"`
	Topic        string            `json:"topic"`
	Error        []CodeableConcept `json:"error"`
}

type parametersJSON struct {
	Parameter []parameterJSON `json:"parameter"`
}

type parameterJSON struct {
	Name                 string           `json:"name"`
	Part                 []parameterJSON  `json:"part"`
	ValueReference       *RefJSON         `json:"valueReference"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept"`
	// value is the parameter's primitive value, whatever its type.
	value json.RawMessage
}

// UnmarshalJSON keeps the primitive value[x] of a parameter.
func (p *parameterJSON) UnmarshalJSON(data []byte) error {
	type plain parameterJSON
	if err := json.Unmarshal(data, (*plain)(p)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for k, v := range all {
		if strings.HasPrefix(k, "value") && k != "valueReference" && k != "valueCodeableConcept" {
			p.value = v
			break
		}
	}
	return nil
}

func (p parameterJSON) str() string {
	var s string
	if json.Unmarshal(p.value, &s) == nil {
		return s
	}
	return ""
}

// parseStatus reads a status resource: SubscriptionStatus (R4B, R5), or
// Parameters with the backport names (R4, §2.1). Counters are JSON numbers
// or strings (trap 10); an unreadable counter is unknown, never an error.
func parseStatus(resourceType string, raw json.RawMessage) (status, error) {
	if resourceType == "SubscriptionStatus" {
		var s statusJSON
		if err := json.Unmarshal(raw, &s); err != nil {
			return status{}, notificationErr("SubscriptionStatus: %s", errtext.Cut(err.Error(), 200))
		}
		st := status{typ: s.Type, status: s.Status, topic: s.Topic}
		st.eventsSinceStart, st.hasEventsSinceStart = counter(s.EventsSinceSubscriptionStart)
		if s.Subscription != nil {
			st.subscription, _ = ParseReference(s.Subscription.Reference)
		}
		for _, e := range s.Error {
			st.errText = joinText(st.errText, conceptText(e))
		}
		for _, ne := range s.NotificationEvent {
			ev := Event{Timestamp: ParseTime(ne.Timestamp)}
			ev.Number, _ = counter(ne.EventNumber)
			if ne.Focus != nil {
				ev.Focus, _ = ParseReference(ne.Focus.Reference)
			}
			st.events = append(st.events, ev)
		}
		return st, nil
	}
	var p parametersJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return status{}, notificationErr("Parameters: %s", errtext.Cut(err.Error(), 200))
	}
	var st status
	for _, par := range p.Parameter {
		switch par.Name {
		case "subscription":
			if par.ValueReference != nil {
				st.subscription, _ = ParseReference(par.ValueReference.Reference)
			}
		case "topic":
			st.topic = par.str()
		case "status":
			st.status = par.str()
		case "type":
			st.typ = par.str()
		case "events-since-subscription-start":
			st.eventsSinceStart, st.hasEventsSinceStart = counter(par.value)
		case "error":
			if par.ValueCodeableConcept != nil {
				st.errText = joinText(st.errText, conceptText(*par.ValueCodeableConcept))
			}
		case "notification-event":
			var ev Event
			for _, part := range par.Part {
				switch part.Name {
				case "event-number":
					ev.Number, _ = counter(part.value)
				case "timestamp":
					ev.Timestamp = ParseTime(part.str())
				case "focus":
					if part.ValueReference != nil {
						ev.Focus, _ = ParseReference(part.ValueReference.Reference)
					}
				}
			}
			st.events = append(st.events, ev)
		}
	}
	return st, nil
}

// counter reads an event counter written as a number or a string; a
// negative or unreadable one is unknown.
func counter(raw json.RawMessage) (int64, bool) {
	n, ok := jsonInt(raw)
	if !ok || n < 0 {
		return 0, false
	}
	return n, true
}

func conceptText(c CodeableConcept) string {
	if c.Text != "" {
		return c.Text
	}
	var parts []string
	for _, cd := range c.Coding {
		parts = append(parts, joinText(cd.Code, cd.Display))
	}
	return strings.Join(parts, "; ")
}

func joinText(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
