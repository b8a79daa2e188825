package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
)

// Dialect is the subscription model a server speaks
// (docs/upstreams/fhir-subscriptions.md §0.1, trap 1).
type Dialect string

// The dialects.
const (
	DialectR4Criteria  Dialect = "r4-criteria"
	DialectR4Backport  Dialect = "r4-backport"
	DialectR4BBackport Dialect = "r4b-backport"
	DialectR5          Dialect = "r5"
)

// Topic reports whether the dialect is topic-based.
func (d Dialect) Topic() bool {
	return d == DialectR4Backport || d == DialectR4BBackport || d == DialectR5
}

// Valid reports whether d is a known dialect.
func (d Dialect) Valid() bool { return d == DialectR4Criteria || d.Topic() }

// The backport IG's canonical URLs (§1.2).
const (
	backportPrefix        = "http://hl7.org/fhir/uv/subscriptions-backport/"
	ProfileBackport       = backportPrefix + "StructureDefinition/backport-subscription"
	extFilterCriteria     = backportPrefix + "StructureDefinition/backport-filter-criteria"
	extPayloadContent     = backportPrefix + "StructureDefinition/backport-payload-content"
	extHeartbeatPeriod    = backportPrefix + "StructureDefinition/backport-heartbeat-period"
	extTimeout            = backportPrefix + "StructureDefinition/backport-timeout"
	extMaxCount           = backportPrefix + "StructureDefinition/backport-max-count"
	extTopicCanonical     = backportPrefix + "StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
	channelRestHook       = "rest-hook"
	subscriptionChannelCS = "http://terminology.hl7.org/CodeSystem/subscription-channel-type"
)

// Payload contents of topic subscriptions (§2.2).
const (
	ContentEmpty        = "empty"
	ContentIDOnly       = "id-only"
	ContentFullResource = "full-resource"
)

// Subscription is the wire form of a Subscription in every dialect: R4
// (criteria or backport, settings in extensions) and R5 (native fields).
// Fields of the other dialect stay empty.
type Subscription struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id,omitempty"`
	Meta         *Meta  `json:"meta,omitempty"`
	Status       string `json:"status,omitempty"`
	Reason       string `json:"reason,omitempty"`
	End          string `json:"end,omitempty"`
	// Error is R4's latest error note (Kodjin writes it, §3).
	Error string `json:"error,omitempty"`

	// R4: a search string, or the topic canonical in backport.
	Criteria        string   `json:"criteria,omitempty"`
	CriteriaElement *Element `json:"_criteria,omitempty"`
	Channel         *Channel `json:"channel,omitempty"`

	// R5 (§1.3).
	Topic           string       `json:"topic,omitempty"`
	FilterBy        []FilterBy   `json:"filterBy,omitempty"`
	ChannelType     *Coding      `json:"channelType,omitempty"`
	Endpoint        string       `json:"endpoint,omitempty"`
	Parameter       []NamedValue `json:"parameter,omitempty"`
	HeartbeatPeriod int          `json:"heartbeatPeriod,omitempty"`
	Timeout         int          `json:"timeout,omitempty"`
	ContentType     string       `json:"contentType,omitempty"`
	Content         string       `json:"content,omitempty"`
	MaxCount        int          `json:"maxCount,omitempty"`
}

// Channel is R4's Subscription.channel.
type Channel struct {
	Type           string      `json:"type"`
	Endpoint       string      `json:"endpoint,omitempty"`
	Payload        string      `json:"payload,omitempty"`
	PayloadElement *Element    `json:"_payload,omitempty"`
	Header         []string    `json:"header,omitempty"`
	Extension      []Extension `json:"extension,omitempty"`
}

// FilterBy is one R5 filter.
type FilterBy struct {
	ResourceType    string `json:"resourceType,omitempty"`
	FilterParameter string `json:"filterParameter"`
	Comparator      string `json:"comparator,omitempty"`
	Modifier        string `json:"modifier,omitempty"`
	Value           string `json:"value"`
}

// NamedValue is an R5 channel parameter (an HTTP header for rest-hook).
type NamedValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Header is an HTTP header the server sends with each notification.
type Header struct{ Name, Value string }

// SubscriptionSpec is what the mediator asks for, in dialect-neutral terms.
type SubscriptionSpec struct {
	Dialect Dialect
	// Endpoint is the absolute callback URL.
	Endpoint string
	// Headers go with every notification (the callback's credentials):
	// "Name: value" strings in R4, parameter entries in R5 (trap 6).
	Headers []Header
	// Reason is the human-readable purpose.
	Reason string
	// End is when the subscription expires; zero for none.
	End time.Time
	// Tag marks the subscription as the mediator's (meta.tag).
	Tag *Coding

	// Criteria is the R4 search string, e.g. ClaimResponse? (HAPI needs the
	// "?", trap 5).
	Criteria string
	// Payload is the R4 criteria MIME type (a PUT of the resource), or ""
	// for empty POST pings (§1.1).
	Payload string

	// Topic is the topic canonical of topic dialects.
	Topic string
	// Filters are filter criteria (§1.2): sent as written in the backport
	// dialects, whose syntax is the server's; split by R5 into filterBy
	// entries, one per param=value joined by &.
	Filters []string
	// Content is empty, id-only or full-resource (topic dialects).
	Content string
	// Heartbeat, Timeout and MaxCount are the topic channel's settings; zero
	// leaves them to the server.
	Heartbeat, Timeout time.Duration
	MaxCount           int
}

// Build writes the Subscription the dialect needs
// (docs/upstreams/fhir-subscriptions.md §1): status requested everywhere
// (trap 4); R4 criteria with a search string and "Name: value" headers; R4
// and R4B backport with the topic in criteria, filters in
// _criteria.extension, content in channel._payload.extension, the channel
// settings in channel.extension, a payload MIME type always and the
// backport profile in meta.profile (trap 3); R5 with native fields.
func (s SubscriptionSpec) Build() (Subscription, error) {
	filterBy, err := s.check()
	if err != nil {
		return Subscription{}, err
	}
	sub := Subscription{ResourceType: "Subscription", Status: "requested", Reason: s.Reason}
	if !s.End.IsZero() {
		sub.End = s.End.UTC().Format(time.RFC3339)
	}
	if s.Tag != nil {
		sub.Meta = &Meta{Tag: []Coding{*s.Tag}}
	}
	switch s.Dialect {
	case DialectR4Criteria:
		sub.Criteria = s.Criteria
		sub.Channel = &Channel{Type: channelRestHook, Endpoint: s.Endpoint, Payload: s.Payload, Header: headerStrings(s.Headers)}
	case DialectR4Backport, DialectR4BBackport:
		if sub.Meta == nil {
			sub.Meta = &Meta{}
		}
		sub.Meta.Profile = []string{ProfileBackport}
		sub.Criteria = s.Topic
		if len(s.Filters) > 0 {
			sub.CriteriaElement = &Element{}
			for _, f := range s.Filters {
				sub.CriteriaElement.Extension = append(sub.CriteriaElement.Extension, Extension{URL: extFilterCriteria, ValueString: f})
			}
		}
		ch := &Channel{Type: channelRestHook, Endpoint: s.Endpoint, Payload: ContentType, Header: headerStrings(s.Headers)}
		ch.PayloadElement = &Element{Extension: []Extension{{URL: extPayloadContent, ValueCode: s.Content}}}
		if s.Heartbeat > 0 {
			ch.Extension = append(ch.Extension, Extension{URL: extHeartbeatPeriod, ValueUnsignedInt: ptr(seconds(s.Heartbeat))})
		}
		if s.Timeout > 0 {
			ch.Extension = append(ch.Extension, Extension{URL: extTimeout, ValueUnsignedInt: ptr(seconds(s.Timeout))})
		}
		if s.MaxCount > 0 {
			ch.Extension = append(ch.Extension, Extension{URL: extMaxCount, ValuePositiveInt: ptr(s.MaxCount)})
		}
		sub.Channel = ch
	case DialectR5:
		sub.Topic = s.Topic
		sub.FilterBy = filterBy
		sub.ChannelType = &Coding{System: subscriptionChannelCS, Code: channelRestHook}
		sub.Endpoint = s.Endpoint
		for _, h := range s.Headers {
			sub.Parameter = append(sub.Parameter, NamedValue{Name: h.Name, Value: h.Value})
		}
		sub.HeartbeatPeriod = seconds(s.Heartbeat)
		sub.Timeout = seconds(s.Timeout)
		sub.MaxCount = s.MaxCount
		sub.ContentType = ContentType
		sub.Content = s.Content
	}
	return sub, nil
}

// check returns what is wrong with the spec, and for R5 its filters read
// into filterBy entries.
func (s SubscriptionSpec) check() ([]FilterBy, error) {
	var problems []string
	if !s.Dialect.Valid() {
		problems = append(problems, fmt.Sprintf("unknown dialect %q", s.Dialect))
	}
	if u, err := url.Parse(s.Endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		problems = append(problems, "endpoint must be an absolute http(s) URL")
	}
	for _, h := range s.Headers {
		if h.Name == "" || strings.ContainsAny(h.Name, ": \r\n") || strings.ContainsAny(h.Value, "\r\n") {
			problems = append(problems, fmt.Sprintf("header %q: want a name without ':' or spaces and a one-line value", h.Name))
		}
	}
	switch {
	case s.Dialect == DialectR4Criteria:
		if s.Criteria == "" {
			problems = append(problems, "an R4 criteria subscription needs criteria")
		}
	case s.Dialect.Topic():
		if s.Topic == "" {
			problems = append(problems, "a topic subscription needs a topic")
		}
		switch s.Content {
		case ContentEmpty, ContentIDOnly, ContentFullResource:
		default:
			problems = append(problems, fmt.Sprintf("content %q: want empty, id-only or full-resource", s.Content))
		}
	}
	var filterBy []FilterBy
	if s.Dialect == DialectR5 {
		for _, f := range s.Filters {
			fs, err := r5Filters(f)
			if err != nil {
				problems = append(problems, err.Error())
			}
			filterBy = append(filterBy, fs...)
		}
	}
	if s.Heartbeat < 0 || s.Timeout < 0 || s.MaxCount < 0 {
		problems = append(problems, "heartbeat, timeout and max count cannot be negative")
	}
	if len(problems) > 0 {
		return nil, errors.New("fhir: subscription: " + strings.Join(problems, "; "))
	}
	return filterBy, nil
}

func headerStrings(hs []Header) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name+": "+h.Value)
	}
	return out
}

// r5Filters reads filter criteria into R5 filterBy entries (§1.3), one per
// "param=value" or "param:modifier=value", several joined by "&", with
// their values unescaped; the "Type?" of the backport form (§1.2) is
// dropped, the topic names the type. filterParameter and value are
// required in R5: a part without them is an error.
func r5Filters(f string) ([]FilterBy, error) {
	if i := strings.Index(f, "?"); i >= 0 && validType(f[:i]) {
		f = f[i+1:]
	}
	var out []FilterBy
	for _, part := range strings.Split(f, "&") {
		name, raw, _ := strings.Cut(part, "=")
		value, err := url.QueryUnescape(raw)
		param, modifier, _ := strings.Cut(name, ":")
		if param == "" || value == "" || err != nil {
			return nil, fmt.Errorf("filter %q: R5 needs param=value criteria, joined by &", errtext.Cut(f, 200))
		}
		out = append(out, FilterBy{FilterParameter: param, Modifier: modifier, Value: value})
	}
	return out, nil
}

func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

func ptr[T any](v T) *T { return &v }

// Settings are what a stored Subscription says, in dialect-neutral terms:
// read back after a create, since the server may change what was asked
// (§1.2, trap 16).
type Settings struct {
	Endpoint  string
	Headers   []Header
	Criteria  string // R4 criteria
	Topic     string
	Filters   []string
	Content   string
	Payload   string
	Heartbeat time.Duration
	Timeout   time.Duration
	MaxCount  int
}

// Settings reads the stored settings of any dialect.
func (s Subscription) Settings() Settings {
	var st Settings
	if s.Topic != "" || s.ChannelType != nil { // R5
		st.Topic, st.Endpoint, st.Content, st.Payload = s.Topic, s.Endpoint, s.Content, s.ContentType
		for _, p := range s.Parameter {
			st.Headers = append(st.Headers, Header{Name: p.Name, Value: p.Value})
		}
		for _, f := range s.FilterBy {
			name := f.FilterParameter
			if f.Modifier != "" {
				name += ":" + f.Modifier
			}
			st.Filters = append(st.Filters, name+"="+f.Value)
		}
		st.Heartbeat = time.Duration(s.HeartbeatPeriod) * time.Second
		st.Timeout = time.Duration(s.Timeout) * time.Second
		st.MaxCount = s.MaxCount
		return st
	}
	backport := s.Meta != nil && hasBackportProfile(s.Meta.Profile)
	if backport {
		st.Topic = s.Criteria
	} else {
		st.Criteria = s.Criteria
	}
	if s.CriteriaElement != nil {
		for _, e := range s.CriteriaElement.Extension {
			if e.URL == extFilterCriteria {
				st.Filters = append(st.Filters, e.ValueString)
			}
		}
	}
	if ch := s.Channel; ch != nil {
		st.Endpoint, st.Payload = ch.Endpoint, ch.Payload
		for _, h := range ch.Header {
			name, value, ok := strings.Cut(h, ":")
			if ok {
				st.Headers = append(st.Headers, Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
			}
		}
		if ch.PayloadElement != nil {
			for _, e := range ch.PayloadElement.Extension {
				if e.URL == extPayloadContent {
					st.Content = e.ValueCode
				}
			}
		}
		for _, e := range ch.Extension {
			switch e.URL {
			case extHeartbeatPeriod:
				st.Heartbeat = time.Duration(intOf(e)) * time.Second
			case extTimeout:
				st.Timeout = time.Duration(intOf(e)) * time.Second
			case extMaxCount:
				st.MaxCount = intOf(e)
			}
		}
	}
	return st
}

func hasBackportProfile(profiles []string) bool {
	for _, p := range profiles {
		if strings.HasPrefix(p, ProfileBackport) {
			return true
		}
	}
	return false
}

// intOf is an integer extension's value, whatever integer type it has.
func intOf(e Extension) int {
	for _, v := range []*int{e.ValueUnsignedInt, e.ValuePositiveInt, e.ValueInteger} {
		if v != nil {
			return *v
		}
	}
	return 0
}

// CreateSubscription posts a Subscription and returns the server's
// stored version: read its status and settings from there, not from what
// was sent (traps 4, 16).
func (c *Client) CreateSubscription(ctx context.Context, sub Subscription) (Subscription, error) {
	sub.ResourceType = "Subscription"
	sub.ID = ""
	var out Subscription
	err := c.doJSON(ctx, request{method: http.MethodPost, url: c.urlOf(c.resourcePath("Subscription")), body: sub}, &out)
	if err != nil {
		return Subscription{}, err
	}
	if out.ResourceType != "Subscription" || out.ID == "" {
		return Subscription{}, fmt.Errorf("fhir POST %s: answer is not a stored Subscription", pathForErrors(c.urlOf(c.resourcePath("Subscription"))))
	}
	return out, nil
}

// GetSubscription reads one Subscription; IsGone reports a deleted one.
func (c *Client) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	raw, err := c.Read(ctx, "Subscription", id)
	if err != nil {
		return Subscription{}, err
	}
	var out Subscription
	if err := json.Unmarshal(raw, &out); err != nil {
		return Subscription{}, fmt.Errorf("fhir GET %s: decode answer: %w", pathForErrors(c.urlOf(c.resourcePath("Subscription", id))), err)
	}
	return out, nil
}

// UpdateSubscription PUTs sub (its ID set) back, e.g. with status
// requested to re-activate it (§3, trap 17). Servers whose Quirks say
// RecreateOnError refuse updates: delete and create instead.
func (c *Client) UpdateSubscription(ctx context.Context, sub Subscription) (Subscription, error) {
	if !validID(sub.ID) {
		return Subscription{}, fmt.Errorf("fhir: update subscription: id %q is not usable", errtext.Cut(sub.ID, 64))
	}
	sub.ResourceType = "Subscription"
	u := c.urlOf(c.resourcePath("Subscription", sub.ID))
	resp, err := c.do(ctx, request{method: http.MethodPut, url: u, body: sub})
	if err != nil {
		return Subscription{}, err
	}
	var out Subscription
	if len(strings.TrimSpace(string(resp.Body()))) == 0 { // a server may answer 200 or 204 without a body
		return sub, nil
	}
	if err := json.Unmarshal(resp.Body(), &out); err != nil || out.ResourceType != "Subscription" {
		return Subscription{}, fmt.Errorf("fhir PUT %s: answer is not a Subscription", pathForErrors(u))
	}
	return out, nil
}

// DeleteSubscription deletes a Subscription. Any 2xx, and a 404 or 410
// (already gone), is success (trap 23); HeyDonto's 200
// {"statusText","status"} succeeds when its status does (§6.3).
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("fhir: delete subscription: id %q is not usable", errtext.Cut(id, 64))
	}
	u := c.urlOf(c.resourcePath("Subscription", id))
	resp, err := c.do(ctx, request{method: http.MethodDelete, url: u})
	if IsGone(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.quirks.DeleteAnswer == DeleteAnswerStatusText {
		var ans struct {
			Status     *int   `json:"status"`
			StatusText string `json:"statusText"`
		}
		if json.Unmarshal(resp.Body(), &ans) == nil && ans.Status != nil &&
			(*ans.Status < 200 || *ans.Status > 299) && *ans.Status != http.StatusNotFound && *ans.Status != http.StatusGone {
			return &APIError{Method: http.MethodDelete, Path: pathForErrors(u), Status: *ans.Status, Message: errtext.Cut(ans.StatusText, 200)}
		}
	}
	return nil
}

// maxFindPages bounds FindSubscriptions: a server whose next links loop
// must not keep it busy for ever.
const maxFindPages = 200

// FindSubscriptions lists the Subscriptions whose endpoint is endpoint
// (the mediator's callback), following every page (trap 21; HeyDonto pages
// with _page_token, §6.3). The server's search parameters for Subscription
// differ, so it lists them all and compares endpoints itself.
func (c *Client) FindSubscriptions(ctx context.Context, endpoint string) ([]Subscription, error) {
	page, err := c.Search(ctx, "Subscription", url.Values{"_count": {"100"}})
	var found []Subscription
	for n := 1; ; n++ {
		if err != nil {
			return nil, fmt.Errorf("fhir: find subscriptions: %w", err)
		}
		for _, raw := range page.Resources {
			var s Subscription
			if json.Unmarshal(raw, &s) != nil || s.ResourceType != "Subscription" {
				continue
			}
			if sameEndpoint(s.Settings().Endpoint, endpoint) {
				found = append(found, s)
			}
		}
		if page.Next == "" {
			return found, nil
		}
		if n >= maxFindPages {
			return nil, fmt.Errorf("fhir: find subscriptions: more than %d pages", maxFindPages)
		}
		page, err = c.NextPage(ctx, page.Next)
	}
}

// sameEndpoint compares callback URLs, ignoring the case of scheme and host
// and a trailing slash.
func sameEndpoint(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		strings.TrimSuffix(ua.Path, "/") == strings.TrimSuffix(ub.Path, "/") && ua.RawQuery == ub.RawQuery
}
