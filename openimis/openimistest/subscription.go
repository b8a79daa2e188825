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

// Subscription is a stored (non-deleted) openIMIS subscription, as returned
// by [Server.Subscriptions].
type Subscription struct {
	// Body is the request body of the POST that created the subscription, or
	// of the last PUT that changed it.
	Body json.RawMessage
	// Created is the server clock's time of creation.
	Created time.Time
	// Criteria is the criteria as openIMIS renders it: the resource, then the
	// query re-encoded (resourceType moved last).
	Criteria string
	// CriteriaResource is the criteria's resource with the case as sent;
	// notifications match it case-sensitively ("Claim").
	CriteriaResource string
	// End is the expiry (upstream "expiring"), in UTC.
	End time.Time
	// Endpoint is channel.endpoint as sent.
	Endpoint string
	// Header is channel.header[0] as stored, "" when none was sent.
	Header string
	// ID is the subscription id (lower-case canonical UUID).
	ID string
	// JSON is the FHIR representation GET Subscription/<id>/ returns.
	JSON json.RawMessage
	// Owner is the user who created the subscription; only they may delete it.
	Owner string
	// Status is "active" or "off".
	Status string
	// Updated is the server clock's time of the last change (date_updated,
	// filtered by _lastUpdated).
	Updated time.Time
}

// subscription is the stored form of a subscription.
type subscription struct {
	active   bool
	body     json.RawMessage
	created  time.Time
	criteria criteria
	deleted  bool
	end      time.Time
	endpoint string
	header   *string
	id       string
	owner    string
	updated  time.Time
}

// criteria is a parsed Subscription.criteria as upstream stores it.
type criteria struct {
	// params are the query parameters except resourceType, in the order of
	// their first occurrence, last value winning (Python dict(parse_qsl)).
	params       [][2]string
	resource     string
	resourceType string
}

var subscriptionsView = view{
	auth: true, lastUpdated: true, name: "Subscription/",
	handlers: map[string]func(*call){
		http.MethodGet:  (*call).listSubscriptions,
		http.MethodPost: (*call).createSubscription,
	},
	rights: subscriptionRights,
}

var subscriptionView = view{
	auth: true, lastUpdated: true, name: "Subscription/<id>/",
	handlers: map[string]func(*call){
		http.MethodGet:    (*call).getSubscription,
		http.MethodPut:    (*call).updateSubscription,
		http.MethodDelete: (*call).deleteSubscription,
	},
	rights: subscriptionRights,
}

var subscriptionRights = map[string]int{
	http.MethodGet:    RightSubscriptionSearch,
	http.MethodPost:   RightSubscriptionCreate,
	http.MethodPut:    RightSubscriptionUpdate,
	http.MethodPatch:  RightSubscriptionUpdate,
	http.MethodDelete: RightSubscriptionDelete,
}

// Subscriptions returns the non-deleted subscriptions of every user, in
// creation order.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, sub := range s.sortedSubscriptions() {
		out = append(out, sub.export())
	}
	return out
}

// DeleteSubscriptionAsAdmin soft-deletes a subscription regardless of its
// owner, as an administrator could in openIMIS, and reports whether a
// non-deleted subscription with that id existed.
func (s *Server) DeleteSubscriptionAsAdmin(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.findSubscription(id, lastUpdatedFilter{})
	if sub == nil {
		return false
	}
	sub.deleted = true
	sub.updated = s.now()
	return true
}

// export returns the public copy of sub.
func (sub *subscription) export() Subscription {
	out := Subscription{
		Body:             append(json.RawMessage(nil), sub.body...),
		Created:          sub.created,
		Criteria:         sub.criteria.String(),
		CriteriaResource: sub.criteria.resource,
		End:              sub.end,
		Endpoint:         sub.endpoint,
		ID:               sub.id,
		JSON:             sub.fhir(),
		Owner:            sub.owner,
		Status:           "off",
		Updated:          sub.updated,
	}
	if sub.active {
		out.Status = "active"
	}
	if sub.header != nil {
		out.Header = *sub.header
	}
	return out
}

// fhirSubscription is the Subscription wire form.
type fhirSubscription struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id"`
	Status       string      `json:"status"`
	End          string      `json:"end"`
	Reason       string      `json:"reason"`
	Criteria     string      `json:"criteria"`
	Channel      fhirChannel `json:"channel"`
}

type fhirChannel struct {
	Type     string   `json:"type"`
	Endpoint string   `json:"endpoint"`
	Header   []string `json:"header,omitempty"`
}

// fhir renders sub like SubscriptionConverter.to_fhir_obj: reason re-derived
// from the criteria resource, end in UTC with "Z", header[0] decrypted.
func (sub *subscription) fhir() json.RawMessage {
	f := fhirSubscription{
		ResourceType: "Subscription",
		ID:           sub.id,
		Status:       "off",
		End:          pyDatetime(sub.end),
		Reason:       sub.criteria.resource,
		Criteria:     sub.criteria.String(),
		Channel:      fhirChannel{Type: "rest-hook", Endpoint: sub.endpoint},
	}
	if sub.active {
		f.Status = "active"
	}
	if sub.header != nil {
		f.Channel.Header = []string{*sub.header}
	}
	return mustMarshal(f)
}

// pyDatetime renders t like Python's isoformat() through DRF's encoder:
// microseconds only when non-zero, "+00:00" as "Z".
func pyDatetime(t time.Time) string {
	t = t.UTC()
	out := t.Format("2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		out += fmt.Sprintf(".%06d", us)
	}
	return out + "Z"
}

// sortedSubscriptions returns the non-deleted subscriptions ordered by
// creation date. The caller holds s.mu.
func (s *Server) sortedSubscriptions() []*subscription {
	var out []*subscription
	for _, sub := range s.subscriptions {
		if !sub.deleted {
			out = append(out, sub)
		}
	}
	slices.SortStableFunc(out, func(a, b *subscription) int { return a.created.Compare(b.created) })
	return out
}

// findSubscription looks a non-deleted subscription up by any UUID spelling
// Django's UUIDField accepts. The caller holds s.mu.
func (s *Server) findSubscription(id string, f lastUpdatedFilter) *subscription {
	canonical, ok := pyUUID(id)
	if !ok {
		return nil
	}
	for _, sub := range s.subscriptions {
		if !sub.deleted && sub.id == canonical && f.match(sub.updated) {
			return sub
		}
	}
	return nil
}

// listSubscriptions answers GET Subscription/: every non-deleted subscription
// of every user, expired ones included, ordered by creation date.
func (c *call) listSubscriptions() {
	c.s.mu.Lock()
	var items []pageItem
	for _, sub := range c.s.sortedSubscriptions() {
		if c.filter.match(sub.updated) {
			items = append(items, pageItem{id: sub.id, resource: sub.fhir()})
		}
	}
	total := c.s.count("Subscription|"+c.filter.key(), len(items))
	c.s.mu.Unlock()
	c.page(items, total)
}

// getSubscription answers GET Subscription/<id>/.
func (c *call) getSubscription() {
	c.s.mu.Lock()
	sub := c.s.findSubscription(c.id, c.filter)
	var body json.RawMessage
	if sub != nil {
		body = sub.fhir()
	}
	c.s.mu.Unlock()
	if sub == nil {
		c.fail(errNotFound("No Subscription matches the given query."))
		return
	}
	c.json(http.StatusOK, body)
}

// createSubscription answers POST Subscription/ (contract §2.1).
func (c *call) createSubscription() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	in, err := c.s.convertSubscription(m)
	if err != nil {
		c.fail(err)
		return
	}
	if err := c.s.checkResourceRights(c.user, in.criteria); err != nil {
		c.fail(err)
		return
	}
	if len(in.endpoint) > 255 {
		c.fail(errServer("value too long for type character varying(255)"))
		return
	}

	c.s.mu.Lock()
	id := uuid.NewString()
	if in.id != "" {
		canonical, ok := pyUUID(in.id)
		if !ok {
			c.s.mu.Unlock()
			c.fail(errServer(pyListRepr(fmt.Sprintf("“%s” is not a valid UUID.", in.id))))
			return
		}
		for _, sub := range c.s.subscriptions {
			if sub.id == canonical {
				c.s.mu.Unlock()
				c.fail(errFatal(http.StatusInternalServerError, "duplicate key value violates unique constraint"))
				return
			}
		}
		id = canonical
	}
	now := c.s.now()
	sub := &subscription{
		active:   in.active,
		body:     append(json.RawMessage(nil), c.body...),
		created:  now,
		criteria: in.criteria,
		end:      in.end,
		endpoint: in.endpoint,
		header:   in.header,
		id:       id,
		owner:    c.user.name,
		updated:  now,
	}
	c.s.subscriptions = append(c.s.subscriptions, sub)
	body := sub.fhir()
	c.s.mu.Unlock()
	c.json(http.StatusCreated, body)
}

// updateSubscription answers PUT Subscription/<id>/ with upstream's fragile
// rules (contract §2.3): the body must carry "id" equal to the canonical id
// (else 500 "id is missing" or "Invalid ID in the payload"), only the owner
// may update (else 500), and a body without changes is a 500.
func (c *call) updateSubscription() {
	c.s.mu.Lock()
	found := c.s.findSubscription(c.id, c.filter) != nil
	c.s.mu.Unlock()
	if !found {
		c.fail(errNotFound("No Subscription matches the given query."))
		return
	}
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	in, err := c.s.convertSubscription(m)
	if err != nil {
		c.fail(err)
		return
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	sub := c.s.findSubscription(c.id, c.filter)
	switch {
	case sub == nil:
		c.fail(errNotFound("No Subscription matches the given query."))
		return
	case in.id == "":
		c.fail(errServer("id is missing"))
		return
	case in.id != sub.id:
		c.fail(errFatal(http.StatusInternalServerError, "Error while saving a subscription: Invalid ID in the payload"))
		return
	case sub.owner != c.user.name:
		c.fail(errFatal(http.StatusInternalServerError, "Error while saving a subscription: You are not the owner of this subscription"))
		return
	}
	if err := c.s.checkResourceRights(c.user, in.criteria); err != nil {
		c.fail(err)
		return
	}
	header := sub.header
	if in.header != nil {
		header = in.header
	}
	unchanged := sub.active == in.active && sub.end.Equal(in.end) && sub.endpoint == in.endpoint &&
		sub.criteria.equal(in.criteria) && equalPtr(sub.header, header)
	if unchanged {
		c.fail(errFatal(http.StatusInternalServerError,
			"Error while saving a subscription: Record has not be updated - there are no changes in fields"))
		return
	}
	sub.active, sub.end, sub.endpoint, sub.criteria, sub.header = in.active, in.end, in.endpoint, in.criteria, header
	sub.body = append(json.RawMessage(nil), c.body...)
	sub.updated = c.s.now()
	c.json(http.StatusOK, sub.fhir())
}

// equalPtr compares two optional strings.
func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// deleteSubscription answers DELETE Subscription/<id>/: owner only, soft
// delete, 204.
func (c *call) deleteSubscription() {
	c.s.mu.Lock()
	sub := c.s.findSubscription(c.id, c.filter)
	switch {
	case sub == nil:
		c.s.mu.Unlock()
		c.fail(errNotFound("No Subscription matches the given query."))
		return
	case sub.owner != c.user.name:
		c.s.mu.Unlock()
		c.fail(errPermissionDenied("Error while deleting a subscription: You are not the owner of this subscription"))
		return
	}
	sub.deleted = true
	sub.updated = c.s.now()
	c.s.mu.Unlock()
	writeEmpty(c.w, http.StatusNoContent)
}

// subscriptionInput is a Subscription body after SubscriptionConverter.
type subscriptionInput struct {
	active   bool
	criteria criteria
	end      time.Time
	endpoint string
	header   *string
	id       string
}

// Element names fhir.resources R4B accepts on Subscription and its channel.
var (
	subscriptionFields = append(slices.Clone(domainResourceFields),
		"status", "contact", "end", "reason", "criteria", "error", "channel")
	subscriptionChannelFields = []string{"id", "extension", "modifierExtension", "type", "endpoint", "payload", "header"}
)

// instantRE is the FHIR instant regex of fhir.resources: seconds and a
// timezone are mandatory.
var instantRE = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-` +
	`(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?` +
	`(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)

// fhirIDRE is the FHIR id regex.
var fhirIDRE = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// convertSubscription validates a Subscription body like fhir.resources then
// SubscriptionConverter.to_imis_obj, in upstream's order.
func (s *Server) convertSubscription(m map[string]any) (*subscriptionInput, *apiError) {
	p := &pydanticErrors{model: "Subscription"}
	p.resourceType(m, "Subscription")
	p.extra("", m, subscriptionFields)
	id, hasID := p.primitive("", m, "id", false)
	if hasID && !fhirIDRE.MatchString(id) {
		p.add("id", fmt.Sprintf("string does not match regex %q", fhirIDRE.String()), "value_error.str.regex")
	}
	status, _ := p.primitive("", m, "status", true)
	reason, _ := p.primitive("", m, "reason", true)
	rawCriteria, _ := p.primitive("", m, "criteria", true)
	end, hasEnd := p.primitive("", m, "end", false)
	if hasEnd && !instantRE.MatchString(end) {
		p.add("end", "Value is not a valid instant: seconds and a timezone are required", "value_error")
	}
	errText, hasError := p.primitive("", m, "error", false)
	channel, _ := p.object("", m, "channel", true)
	var channelType, endpoint string
	var headers []any
	if channel != nil {
		p.extra("channel", channel, subscriptionChannelFields)
		channelType, _ = p.primitive("channel", channel, "type", true)
		endpoint, _ = p.primitive("channel", channel, "endpoint", false)
		p.primitive("channel", channel, "payload", false)
		headers, _ = p.list("channel", channel, "header")
		for i, h := range headers {
			if hs, ok := h.(string); !ok || hs == "" {
				p.add(fmt.Sprintf("channel -> header -> %d", i), "str type expected", "type_error.str")
			}
		}
	}
	if len(p.lines) > 0 {
		return nil, s.errValidation(p.String())
	}

	in := &subscriptionInput{id: id}
	switch status {
	case "active":
		in.active = true
	case "off":
	default:
		return nil, s.errValidation("Missing or invalid `status` attribute")
	}
	if !hasEnd {
		return nil, s.errValidation("Missing or invalid `end` attribute")
	}
	t, err := time.Parse(time.RFC3339Nano, end)
	if err != nil {
		return nil, s.errValidation("Missing or invalid `end` attribute")
	}
	in.end = t.UTC().Truncate(time.Microsecond)
	in.criteria = parseCriteria(rawCriteria)
	if strings.ToLower(reason) != strings.ToLower(in.criteria.resource) {
		return nil, s.errValidation("Missing or invalid `reason` attribute")
	}
	if hasError && errText != "" {
		return nil, s.errValidation("`error` attribute forbidden")
	}
	if channelType != "rest-hook" {
		return nil, s.errValidation("Missing or invalid `channel.type` attribute")
	}
	if endpoint == "" {
		return nil, s.errValidation("Missing or invalid `channel.endpoint` attribute")
	}
	in.endpoint = endpoint
	if len(headers) > 0 {
		h := headers[0].(string)
		in.header = &h
	}
	return in, nil
}

// checkResourceRights applies SubscriptionSerializer.check_resource_rights:
// the lower-cased criteria resource must be whitelisted (400, DRF
// ValidationError, text as a JSON array) and the user must hold its right
// (403).
func (s *Server) checkResourceRights(u *user, cr criteria) *apiError {
	resource := strings.ToLower(cr.resource)
	rights := map[string]int{"patient": RightInsureeRead, "invoice": 0, "organisation": 0}
	if s.opts.ClaimSubscriptions {
		rights["claim"] = RightClaimRead
	}
	right, ok := rights[resource]
	if !ok {
		return errFatal(http.StatusBadRequest,
			[]string{fmt.Sprintf("Error while saving a subscription: Invalid resource (%s)", resource)})
	}
	if right != 0 && !u.has(right) {
		return errPermissionDenied(fmt.Sprintf(
			"Error while saving a subscription: You have no permissions to subscribe to %s", resource))
	}
	return nil
}

// parseCriteria splits criteria like Python's urlparse + dict(parse_qsl):
// the path (slashes stripped) is the resource, resourceType is kept apart,
// blank values are dropped.
func parseCriteria(raw string) criteria {
	rest := raw
	if i := strings.IndexByte(rest, ':'); i > 0 && isSchemeName(rest[:i]) {
		rest = rest[i+1:]
	}
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		if j := strings.IndexAny(after, "/?#"); j >= 0 {
			rest = after[j:]
		} else {
			rest = ""
		}
	}
	rest, _, _ = strings.Cut(rest, "#")
	path, query, _ := strings.Cut(rest, "?")

	cr := criteria{resource: strings.Trim(path, "/")}
	index := map[string]int{}
	for _, pair := range strings.Split(query, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || v == "" {
			continue
		}
		k, v = pyUnquotePlus(k), pyUnquotePlus(v)
		if k == "resourceType" {
			cr.resourceType = v
			continue
		}
		if i, ok := index[k]; ok {
			cr.params[i][1] = v
			continue
		}
		index[k] = len(cr.params)
		cr.params = append(cr.params, [2]string{k, v})
	}
	return cr
}

// isSchemeName reports whether s is a URL scheme per Python's urlsplit.
func isSchemeName(s string) bool {
	for i, r := range s {
		isLetter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i == 0 && !isLetter {
			return false
		}
		if !isLetter && !(r >= '0' && r <= '9') && r != '+' && r != '-' && r != '.' {
			return false
		}
	}
	return s != ""
}

// pyUnquotePlus decodes like Python's unquote_plus, leaving invalid escapes.
func pyUnquotePlus(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return strings.ReplaceAll(s, "+", " ")
}

// String renders the criteria like SubscriptionConverter._build_fhir_criteria.
func (cr criteria) String() string {
	pairs := slices.Clone(cr.params)
	if cr.resourceType != "" {
		pairs = append(pairs, [2]string{"resourceType", cr.resourceType})
	}
	if len(pairs) == 0 {
		return cr.resource
	}
	enc := make([]string, len(pairs))
	for i, p := range pairs {
		enc[i] = url.QueryEscape(p[0]) + "=" + url.QueryEscape(p[1])
	}
	return cr.resource + "?" + strings.Join(enc, "&")
}

// equal compares two criteria as the stored JSON dicts compare.
func (cr criteria) equal(o criteria) bool {
	toMap := func(c criteria) map[string]string {
		m := map[string]string{"resource": c.resource, "resourceType": c.resourceType}
		for _, p := range c.params {
			m["param:"+p[0]] = p[1]
		}
		return m
	}
	return maps.Equal(toMap(cr), toMap(o))
}
