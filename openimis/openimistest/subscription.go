package openimistest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Subscription is a stored, non-deleted subscription, as returned by
// [Server.Subscriptions].
type Subscription struct {
	// Body is the body of the POST that created it.
	Body json.RawMessage
	// Created is the server clock's time of creation.
	Created time.Time
	// Criteria is the criteria as openIMIS renders it: the resource, then
	// the query.
	Criteria string
	// CriteriaResource is the criteria resource with the case as sent;
	// notifications match it case-sensitively (trap 2).
	CriteriaResource string
	// End is the expiry (upstream "expiring"), in UTC.
	End time.Time
	// Endpoint is channel.endpoint as sent.
	Endpoint string
	// Header is channel.header[0] as stored, "" when none was sent.
	Header string
	// ID is the subscription id (lower-case UUID).
	ID string
	// JSON is the FHIR representation GET Subscription/<id>/ returns.
	JSON json.RawMessage
	// Owner is the user who created it; only they may delete it.
	Owner string
	// Status is "active" or "off".
	Status string
	// Updated is the time of the last change (date_updated, filtered by
	// _lastUpdated).
	Updated time.Time
}

// subscription is the stored form (api_fhir_r4/models/subscription.py).
type subscription struct {
	Subscription
	deleted   bool
	hasHeader bool
	// query is the criteria query: Django ORM filters on the model.
	query url.Values
}

// Subscriptions returns the non-deleted subscriptions of every user, in
// creation order.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, sub := range s.liveSubscriptions() {
		c := sub.Subscription
		c.Body, c.JSON = slices.Clone(c.Body), sub.fhir(s.opts.Location)
		out = append(out, c)
	}
	return out
}

// DeleteSubscriptionAsAdmin soft-deletes a subscription whatever its owner,
// as an administrator can, and reports whether it existed.
func (s *Server) DeleteSubscriptionAsAdmin(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.findSubscription(id)
	if sub != nil {
		sub.deleted, sub.Updated = true, s.now()
	}
	return sub != nil
}

// liveSubscriptions returns the non-deleted subscriptions in creation order.
// The caller holds s.mu.
func (s *Server) liveSubscriptions() []*subscription {
	return slices.DeleteFunc(slices.Clone(s.subscriptions), func(sub *subscription) bool { return sub.deleted })
}

// findSubscription looks a non-deleted subscription up by UUID (any spelling
// Django's UUIDField accepts). The caller holds s.mu.
func (s *Server) findSubscription(id string) *subscription {
	canonical, ok := canonicalUUID(id)
	for _, sub := range s.subscriptions {
		if ok && !sub.deleted && sub.ID == canonical {
			return sub
		}
	}
	return nil
}

// fhir renders sub like subscriptionConverter.py to_fhir_obj: reason
// re-derived from the criteria resource, header[0] decrypted (readable by
// anyone with 158001, trap 5), end as expiring.astimezone().isoformat(): in
// the server's local offset loc ([Options.Location]), "+00:00" rather than
// "Z", with microseconds when it has any (trap 20).
func (sub *subscription) fhir(loc *time.Location) json.RawMessage {
	channel := map[string]any{"type": "rest-hook", "endpoint": sub.Endpoint}
	if sub.hasHeader {
		channel["header"] = []string{sub.Header}
	}
	return mustMarshal(map[string]any{
		"resourceType": "Subscription", "id": sub.ID, "status": sub.Status,
		"end": pythonISO(sub.End.In(loc)), "reason": sub.CriteriaResource,
		"criteria": sub.Criteria, "channel": channel,
	})
}

// pythonISO formats t as Python's datetime.isoformat() does for an aware
// datetime: microseconds only when not zero, the offset as +HH:MM.
func pythonISO(t time.Time) string {
	if t.Nanosecond()/1000 != 0 {
		return t.Format("2006-01-02T15:04:05.000000-07:00")
	}
	return t.Format("2006-01-02T15:04:05-07:00")
}

// listSubscriptions answers GET Subscription/ (views/fhir/subscription.py,
// §2.2, trap 8): every non-deleted subscription of every user, expired ones
// included, in creation order; no filter but _lastUpdated on date_updated.
func (c *call) listSubscriptions() {
	c.s.mu.Lock()
	var items []pageItem
	for _, sub := range c.s.liveSubscriptions() {
		if c.filter.match(sub.Updated) {
			items = append(items, pageItem{id: sub.ID, resource: sub.fhir(c.s.opts.Location)})
		}
	}
	total := c.s.count("Subscription|"+fmt.Sprint(c.filter), len(items))
	c.s.mu.Unlock()
	c.page(items, total)
}

// getSubscription answers GET Subscription/<id>/: 200, or 404 OperationOutcome
// with code not-found (mixins.py).
func (c *call) getSubscription() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if sub := c.s.findSubscription(c.id); sub != nil {
		c.json(http.StatusOK, sub.fhir(c.s.opts.Location))
		return
	}
	c.fail(errNotFound())
}

// errNotFound is Django's Http404: severity error, code not-found.
func errNotFound() *apiError {
	return &apiError{code: "not-found", severity: "error", status: http.StatusNotFound, text: "No Subscription matches the given query."}
}

// deleteSubscription answers DELETE Subscription/<id>/ (§2.4): owner only
// (else 403), soft delete, 204 with an empty body; afterwards GET is 404.
func (c *call) deleteSubscription() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	sub := c.s.findSubscription(c.id)
	switch {
	case sub == nil:
		c.fail(errNotFound())
	case sub.Owner != c.user.name:
		c.fail(errFatal(http.StatusForbidden, "Error while deleting a subscription: You are not the owner of this subscription"))
	default:
		sub.deleted, sub.Updated = true, c.s.now()
		c.w.WriteHeader(http.StatusNoContent)
	}
}

// subscriptionElements are the elements fhir.resources R4B accepts on a
// Subscription; anything else is "extra fields not permitted".
var subscriptionElements = []string{"resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
	"extension", "modifierExtension", "status", "contact", "end", "reason", "criteria", "error", "channel"}

// instantRE is FHIR's instant (fhir.resources fhirtypes.py): seconds and a
// timezone are mandatory (trap 3).
var instantRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)

// createSubscription answers POST Subscription/ (§2.1). In upstream's order:
// the body is parsed by fhir.resources (status, reason, criteria, channel and
// channel.type required, end an instant with seconds and timezone, no
// unknown element: "N validation error(s) for Subscription"); then
// subscriptionConverter.py checks status is active or off, end is present,
// reason equals the criteria resource case-insensitively (trap 2), error is
// absent, channel.type is rest-hook and channel.endpoint is present, each a
// validation error (500 in 24.10, trap 11); then subscriptionSerializer.py
// whitelists the lower-cased resource (patient, invoice, organisation; claim
// only with [Options.ClaimSubscriptions]) with a DRF ValidationError (400,
// text a JSON array: "Invalid resource (claim)", trap 1) and checks the
// resource's right (403). Only channel.header[0] is stored; it is not checked
// here, only at delivery (trap 5). 201 with the Subscription, no Location.
func (c *call) createSubscription() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	p := pydantic{model: "Subscription"}
	p.elements(m, "Subscription", subscriptionElements)
	status := p.str(m, "status", true)
	reason := p.str(m, "reason", true)
	rawCriteria := p.str(m, "criteria", true)
	end := p.str(m, "end", false)
	if end != "" && !instantRE.MatchString(end) {
		p.add("end", "Value is not a valid instant: seconds and a timezone are required")
	}
	channel, ok := m["channel"].(map[string]any)
	if !ok {
		p.add("channel", "field required")
	}
	channelType := p.str(channel, "type", ok)
	endpoint := p.str(channel, "endpoint", false)
	headers, _ := channel["header"].([]any)
	for i, h := range headers {
		if hs, _ := h.(string); hs == "" {
			p.add(fmt.Sprintf("channel -> header -> %d", i), "str type expected")
		}
	}
	if err := p.err(c.s); err != nil {
		c.fail(err)
		return
	}
	path, query, _ := strings.Cut(rawCriteria, "?")
	resource := strings.Trim(path, "/")
	q, _ := url.ParseQuery(query)
	endTime, _ := time.Parse(time.RFC3339Nano, end)
	if text := firstBroken([]rule{
		{status != "active" && status != "off", "Missing or invalid `status` attribute"},
		{end == "", "Missing or invalid `end` attribute"},
		{!strings.EqualFold(reason, resource), "Missing or invalid `reason` attribute"},
		{m["error"] != nil, "`error` attribute forbidden"},
		{channelType != "rest-hook", "Missing or invalid `channel.type` attribute"},
		{endpoint == "", "Missing or invalid `channel.endpoint` attribute"},
	}); text != "" {
		c.fail(c.s.errValidation(text))
		return
	}
	rights := map[string]int{"patient": RightInsureeRead, "invoice": 0, "organisation": 0}
	if c.s.opts.ClaimSubscriptions {
		rights["claim"] = RightClaimRead
	}
	right, ok := rights[strings.ToLower(resource)]
	switch {
	case !ok:
		c.fail(errFatal(http.StatusBadRequest, []string{"Error while saving a subscription: Invalid resource (" + strings.ToLower(resource) + ")"}))
		return
	case right != 0 && !c.user.has(right):
		c.fail(errFatal(http.StatusForbidden, "Error while saving a subscription: You have no permissions to subscribe to "+strings.ToLower(resource)))
		return
	case len(endpoint) > 255:
		c.fail(errServer("value too long for type character varying(255)"))
		return
	}

	criteria := resource
	if len(q) > 0 {
		criteria += "?" + q.Encode()
	}
	now := c.s.now()
	sub := &subscription{Subscription: Subscription{
		Body: slices.Clone(c.body), Created: now, Criteria: criteria, CriteriaResource: resource,
		End: endTime.UTC().Truncate(time.Microsecond), Endpoint: endpoint, ID: uuid.NewString(),
		Owner: c.user.name, Status: status, Updated: now,
	}, query: q}
	if len(headers) > 0 {
		sub.Header, sub.hasHeader = headers[0].(string), true
	}
	c.s.mu.Lock()
	c.s.subscriptions = append(c.s.subscriptions, sub)
	body := sub.fhir(c.s.opts.Location)
	c.s.mu.Unlock()
	c.json(http.StatusCreated, body)
}

// pydantic collects fhir.resources (pydantic v1) validation errors and
// renders them as str(ValidationError) does: "N validation error(s) for
// <Model>", then each location and message.
type pydantic struct {
	model string
	lines []string
}

func (p *pydantic) add(loc, msg string) { p.lines = append(p.lines, loc+"\n  "+msg) }

// elements checks resourceType and reports elements the model does not have.
func (p *pydantic) elements(m map[string]any, resourceType string, allowed []string) {
	if v, ok := m["resourceType"]; ok && v != resourceType {
		p.add("resourceType", "unexpected value; permitted: '"+resourceType+"'")
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(allowed, strings.TrimPrefix(k, "_")) {
			p.add(k, "extra fields not permitted")
		}
	}
}

// str returns m[key] if it is a non-empty string, and records an error when
// it is another type, or missing and required.
func (p *pydantic) str(m map[string]any, key string, required bool) string {
	v, ok := m[key]
	s, isStr := v.(string)
	switch {
	case (!ok || v == nil) && required:
		p.add(key, "field required")
	case ok && v != nil && (!isStr || s == ""):
		p.add(key, "str type expected")
	}
	return s
}

// err returns the collected errors as a validation error, or nil.
func (p *pydantic) err(s *Server) *apiError {
	if len(p.lines) == 0 {
		return nil
	}
	plural := "s"
	if len(p.lines) == 1 {
		plural = ""
	}
	return s.errValidation(fmt.Sprintf("%d validation error%s for %s\n%s", len(p.lines), plural, p.model, strings.Join(p.lines, "\n")))
}

// rule is one validation step of a converter: text is its error when bad.
type rule struct {
	bad  bool
	text string
}

// firstBroken returns the error of the first broken rule, or "".
func firstBroken(rules []rule) string {
	for _, r := range rules {
		if r.bad {
			return r.text
		}
	}
	return ""
}

// canonicalUUID parses s like Python's uuid.UUID and returns the lower-case
// canonical form.
func canonicalUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	return u.String(), err == nil
}
