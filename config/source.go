package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Source is one FHIR server besides openIMIS that the mediator takes claim
// outcomes from (spec §8): FHIR_SOURCES names them, and each reads the
// FHIR_<N>_* variables of SourceVariables, <N> being its name upper-cased
// with "-" as "_".
type Source struct {
	Name string

	URL      *url.URL
	Dialect  string // auto, r4-criteria, r4-backport, r4b-backport, r5
	Vendor   string // auto, generic, aidbox, aidbox-zen, kodjin, heydonto, hapi
	Resource string // the resource type that carries a claim outcome

	Auth         string // none, basic, bearer, login, client-credentials
	Username     string
	Password     Secret
	Token        Secret
	LoginURL     *url.URL
	ClientID     string
	ClientSecret Secret
	Scope        string
	TokenURL     *url.URL

	Criteria         string
	Topic            string
	Filter           string
	Content          string // auto, full-resource, id-only, empty
	Heartbeat        time.Duration
	NotifyTimeout    time.Duration
	MaxCount         int
	CallbackEndpoint *url.URL
	Subscription     string // manage or off
	PollInterval     time.Duration

	PathStyle       string // empty: the vendor's; fhir or kebab-lower
	ClaimCodeSystem string
	Search          url.Values
}

// Var is the name of this source's variable with the given suffix, e.g.
// FHIR_AIDBOX_DIALECT for "DIALECT": what an error or /ready names.
func (s Source) Var(suffix string) string {
	return sourceVar(s.Name, suffix)
}

func sourceVar(name, suffix string) string {
	return "FHIR_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_" + suffix
}

// SourceVariables are the per-source variables, by suffix: FHIR_<N>_URL is
// the Variable named "URL". A Default of "" means none; the ones documented
// as derived (CRITERIA, CALLBACK_ENDPOINT, POLL_INTERVAL, LOGIN_URL,
// TOKEN_URL, PATH_STYLE) are worked out from other values.
var SourceVariables = []Variable{
	{Name: "URL", Required: true, Help: "the FHIR base URL, e.g. https://box.example.org/fhir or https://api.heydonto.com/site/42/fhir"},
	{Name: "DIALECT", Default: "auto", Help: "subscription model: auto (read from the server's CapabilityStatement), r4-criteria, r4-backport, r4b-backport or r5"},
	{Name: "VENDOR", Default: "auto", Help: "server quirks: auto (from the CapabilityStatement), generic, aidbox, aidbox-zen, kodjin, heydonto or hapi"},
	{Name: "AUTH", Default: "none", Help: "how the mediator authenticates: none, basic, bearer, login (JSON login, e.g. HeyDonto) or client-credentials (OAuth 2)"},
	{Name: "USERNAME", Help: "user (basic) or login user or e-mail (login)"},
	{Name: "PASSWORD", Secret: true, Help: "password (basic, login)"},
	{Name: "TOKEN", Secret: true, Help: "static bearer token (bearer)"},
	{Name: "LOGIN_URL", Help: "JSON login URL (login); default for heydonto: <origin>/auth/login"},
	{Name: "CLIENT_ID", Help: "OAuth 2 client id (client-credentials)"},
	{Name: "CLIENT_SECRET", Secret: true, Help: "OAuth 2 client secret (client-credentials)"},
	{Name: "SCOPE", Help: "OAuth 2 scopes, space-separated (client-credentials; optional)"},
	{Name: "TOKEN_URL", Help: "OAuth 2 token URL (client-credentials); default: token_endpoint of <base>/.well-known/smart-configuration"},
	{Name: "RESOURCE", Default: "ClaimResponse", Help: "resource type that carries a claim outcome"},
	{Name: "CRITERIA", Help: "R4 criteria of the subscription; default <RESOURCE>? (HAPI refuses a bare type)"},
	{Name: "TOPIC", Help: "subscription topic canonical URL (topic dialects); default: the one topic the server advertises for RESOURCE"},
	{Name: "FILTER", Help: "topic filter criteria, ;-separated, sent as given in backport (topic dialects); in r5 each param=value, &-joined, becomes a filterBy"},
	{Name: "CONTENT", Default: "auto", Help: "notification content: auto (full-resource, stepping down when refused), full-resource, id-only or empty; on R4 criteria, full-resource is a payload of application/fhir+json and empty none"},
	{Name: "HEARTBEAT", Default: "5m", Help: "heartbeat period asked of topic subscriptions, whole seconds"},
	{Name: "NOTIFY_TIMEOUT", Default: "30s", Help: "notification timeout asked of backport subscriptions, whole seconds"},
	{Name: "MAX_COUNT", Default: "1", Help: "most events per notification asked of topic subscriptions (1: no batching delay)"},
	{Name: "CALLBACK_ENDPOINT", Help: "absolute URL the server calls; default: CHT_OPENIMIS_CALLBACK_ENDPOINT's origin (and path up to /mediator/) + /mediator/fhir/<n>"},
	{Name: "SUBSCRIPTION", Default: "manage", Help: "manage (create, renew and repair the subscription) or off (catch-up search only)"},
	{Name: "POLL_INTERVAL", Help: "catch-up search period; default CLAIM_POLL_INTERVAL; 0 disables"},
	{Name: "PATH_STYLE", Help: "resource paths: fhir (ClaimResponse) or kebab-lower (claim-response); default: the vendor's"},
	{Name: "CLAIM_CODE_SYSTEM", Help: "identifier system of the human claim code; default: the first identifier that is not a UUID"},
	{Name: "SEARCH", Help: "extra search parameters of the catch-up search, e.g. insurer=Organization/org-1"},
}

// sourceName is a valid FHIR_SOURCES entry (spec §8).
var sourceName = regexp.MustCompile(`^[a-z0-9-]{1,20}$`)

// resourceType is a FHIR resource type name.
var resourceType = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

// ownSearchParams are the catch-up search's own parameters, which
// FHIR_<N>_SEARCH may not set.
var ownSearchParams = []string{"_lastUpdated", "_count", "_page_token", "_sort", "_getpages"}

// sources reads FHIR_SOURCES and each named source's variables. callback is
// CHT_OPENIMIS_CALLBACK_ENDPOINT (nil when bad: its error is already said)
// and poll CLAIM_POLL_INTERVAL, the defaults they derive.
func (p *parser) sources(callback *url.URL, poll time.Duration) []Source {
	var out []Source
	seen := map[string]bool{}
	list := p.raw("FHIR_SOURCES")
	if list == "" {
		return nil
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case !sourceName.MatchString(name):
			p.fail("FHIR_SOURCES", fmt.Sprintf("names must be 1 to 20 lower-case letters, digits or -, got %q", name))
			continue
		case name == "openimis":
			p.fail("FHIR_SOURCES", "must not name openimis: the OPENIMIS_* variables configure that source")
			continue
		case seen[name]:
			p.fail("FHIR_SOURCES", fmt.Sprintf("names %q twice", name))
			continue
		}
		seen[name] = true
		out = append(out, p.source(name, callback, poll))
	}
	return out
}

// source reads and checks one source's variables.
func (p *parser) source(name string, callback *url.URL, poll time.Duration) Source {
	sp := sourceParser{p: p, name: name}
	s := Source{
		Name:            name,
		URL:             sp.url("URL"),
		Dialect:         sp.oneOf("DIALECT", "auto", "r4-criteria", "r4-backport", "r4b-backport", "r5"),
		Vendor:          sp.oneOf("VENDOR", "auto", "generic", "aidbox", "aidbox-zen", "kodjin", "heydonto", "hapi"),
		Resource:        sp.raw("RESOURCE"),
		Auth:            sp.oneOf("AUTH", "none", "basic", "bearer", "login", "client-credentials"),
		Username:        sp.raw("USERNAME"),
		Password:        Secret(sp.raw("PASSWORD")),
		Token:           Secret(sp.raw("TOKEN")),
		LoginURL:        sp.url("LOGIN_URL"),
		ClientID:        sp.raw("CLIENT_ID"),
		ClientSecret:    Secret(sp.raw("CLIENT_SECRET")),
		Scope:           sp.raw("SCOPE"),
		TokenURL:        sp.url("TOKEN_URL"),
		Criteria:        sp.raw("CRITERIA"),
		Topic:           sp.raw("TOPIC"),
		Filter:          sp.raw("FILTER"),
		Content:         sp.oneOf("CONTENT", "auto", "full-resource", "id-only", "empty"),
		Heartbeat:       sp.seconds("HEARTBEAT"),
		NotifyTimeout:   sp.seconds("NOTIFY_TIMEOUT"),
		MaxCount:        sp.wholeNumber("MAX_COUNT", 1, 1000),
		Subscription:    sp.oneOf("SUBSCRIPTION", "manage", "off"),
		PollInterval:    poll,
		ClaimCodeSystem: sp.raw("CLAIM_CODE_SYSTEM"),
	}
	if sp.raw("PATH_STYLE") != "" {
		s.PathStyle = sp.oneOf("PATH_STYLE", "fhir", "kebab-lower")
	}
	if !resourceType.MatchString(s.Resource) {
		sp.fail("RESOURCE", fmt.Sprintf("must be a FHIR resource type such as ClaimResponse, got %q", s.Resource))
	}
	if s.Criteria == "" {
		s.Criteria = s.Resource + "?"
	} else if !strings.HasPrefix(s.Criteria, s.Resource+"?") {
		sp.fail("CRITERIA", fmt.Sprintf("must be a search on %s in the form %s?param=value (HAPI refuses a bare type)", s.Resource, s.Resource))
	}
	if s.Topic != "" {
		if u, err := url.Parse(s.Topic); err != nil || !u.IsAbs() {
			sp.fail("TOPIC", "must be the absolute canonical URL of a SubscriptionTopic")
		}
	}
	if s.ClaimCodeSystem != "" {
		if u, err := url.Parse(s.ClaimCodeSystem); err != nil || !u.IsAbs() {
			sp.fail("CLAIM_CODE_SYSTEM", "must be an absolute URI (an identifier system)")
		}
	}
	s.Search = sp.search("SEARCH")
	if raw := sp.raw("POLL_INTERVAL"); raw != "" {
		s.PollInterval = sp.pollInterval("POLL_INTERVAL", raw)
	}
	if s.Subscription == "off" && s.PollInterval == 0 {
		sp.fail("POLL_INTERVAL", fmt.Sprintf("must not be 0 when %s is off: nothing would bring this source's claims", s.Var("SUBSCRIPTION")))
	}
	s.CallbackEndpoint = sp.url("CALLBACK_ENDPOINT")
	if s.CallbackEndpoint == nil && callback != nil {
		s.CallbackEndpoint = defaultSourceCallback(callback, name)
	}
	sp.auth(&s)
	return s
}

// defaultSourceCallback is the openIMIS callback's origin, and its path up to
// /mediator/ when it has one (an OpenHIM channel or a proxy may put the
// mediator under a prefix), followed by /mediator/fhir/<name>.
func defaultSourceCallback(callback *url.URL, name string) *url.URL {
	prefix := ""
	if i := strings.Index(callback.Path, "/mediator/"); i >= 0 {
		prefix = callback.Path[:i]
	}
	return &url.URL{Scheme: callback.Scheme, Host: callback.Host, Path: prefix + "/mediator/fhir/" + name}
}

// auth checks that the variables AUTH needs are set, and that no secret is
// set that AUTH does not use (a forgotten FHIR_<N>_AUTH).
func (sp sourceParser) auth(s *Source) {
	need := map[string][]string{
		"none":               nil,
		"basic":              {"USERNAME", "PASSWORD"},
		"bearer":             {"TOKEN"},
		"login":              {"USERNAME", "PASSWORD"},
		"client-credentials": {"CLIENT_ID", "CLIENT_SECRET"},
	}
	uses := map[string][]string{
		"basic":              {"USERNAME", "PASSWORD"},
		"bearer":             {"TOKEN"},
		"login":              {"USERNAME", "PASSWORD", "LOGIN_URL"},
		"client-credentials": {"CLIENT_ID", "CLIENT_SECRET", "SCOPE", "TOKEN_URL"},
	}
	required, ok := need[s.Auth]
	if !ok {
		return // already refused by oneOf
	}
	for _, suffix := range required {
		if sp.raw(suffix) == "" {
			sp.fail(suffix, fmt.Sprintf("is required when %s is %s", s.Var("AUTH"), s.Auth))
		}
	}
	if s.Auth == "login" && s.LoginURL == nil && s.Vendor != "heydonto" && sp.raw("LOGIN_URL") == "" {
		sp.fail("LOGIN_URL", fmt.Sprintf("is required when %s is login (only the heydonto vendor has a default)", s.Var("AUTH")))
	}
	used := map[string]bool{}
	for _, suffix := range uses[s.Auth] {
		used[suffix] = true
	}
	for _, suffix := range []string{"USERNAME", "PASSWORD", "TOKEN", "LOGIN_URL", "CLIENT_ID", "CLIENT_SECRET", "SCOPE", "TOKEN_URL"} {
		if !used[suffix] && sp.raw(suffix) != "" {
			sp.fail(suffix, fmt.Sprintf("is set but %s is %s, which does not use it", s.Var("AUTH"), s.Auth))
		}
	}
}

// sourceParser reads one source's variables through the parser, so that
// errors are collected with the others and name the full variable.
type sourceParser struct {
	p    *parser
	name string
}

func (sp sourceParser) fail(suffix, msg string) { sp.p.fail(sourceVar(sp.name, suffix), msg) }

// raw is the variable's trimmed value, or its default.
func (sp sourceParser) raw(suffix string) string {
	if s := strings.TrimSpace(sp.p.v.GetString(sourceVar(sp.name, suffix))); s != "" {
		return s
	}
	for _, v := range SourceVariables {
		if v.Name == suffix {
			if v.Required {
				sp.fail(suffix, "is required for every source in FHIR_SOURCES")
			}
			return v.Default
		}
	}
	panic("config: undeclared source variable " + suffix)
}

func (sp sourceParser) url(suffix string) *url.URL {
	s := sp.raw(suffix)
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		sp.fail(suffix, "must be an absolute http:// or https:// URL")
		return nil
	}
	if u.User != nil {
		sp.fail(suffix, "must not carry credentials; use the source's AUTH variables")
		return nil
	}
	return u
}

func (sp sourceParser) oneOf(suffix string, allowed ...string) string {
	s := sp.raw(suffix)
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a
		}
	}
	sp.fail(suffix, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), s))
	return s
}

// seconds parses a duration of whole seconds, at least one: FHIR's
// heartbeatPeriod and timeout are unsigned integers of seconds.
func (sp sourceParser) seconds(suffix string) time.Duration {
	s := sp.raw(suffix)
	d, err := parseDuration(s)
	if err != nil || d < time.Second || d%time.Second != 0 {
		sp.fail(suffix, fmt.Sprintf("must be a duration of whole seconds, at least 1s (30s, 5m), got %q", s))
	}
	return d
}

func (sp sourceParser) wholeNumber(suffix string, lo, hi int) int {
	s := sp.raw(suffix)
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		sp.fail(suffix, fmt.Sprintf("must be a whole number from %d to %d, got %q", lo, hi, s))
	}
	return n
}

func (sp sourceParser) pollInterval(suffix, s string) time.Duration {
	if s == "0" {
		return 0
	}
	d, err := parseDuration(s)
	if err != nil || d < time.Second {
		sp.fail(suffix, fmt.Sprintf("must be 0 (disabled) or a duration of at least 1s such as 5m, got %q", s))
	}
	return d
}

// search parses extra catch-up search parameters (a query string, with or
// without a leading ?), refusing the ones the catch-up sets itself.
func (sp sourceParser) search(suffix string) url.Values {
	s := strings.TrimPrefix(sp.raw(suffix), "?")
	if s == "" {
		return nil
	}
	q, err := url.ParseQuery(s)
	if err != nil {
		sp.fail(suffix, "must be search parameters such as insurer=Organization/org-1&status=active")
		return nil
	}
	for _, own := range ownSearchParams {
		if q.Has(own) {
			sp.fail(suffix, fmt.Sprintf("must not set %s: the catch-up search sets it", own))
		}
	}
	return q
}

// summary adds the source's effective values, secrets redacted, to m.
func (s Source) summary(m map[string]string) {
	u := func(u *url.URL) string {
		if u == nil {
			return ""
		}
		return u.Redacted()
	}
	secret := func(v Secret) string {
		if v == "" {
			return ""
		}
		return Redacted
	}
	for k, v := range map[string]string{
		"URL":               u(s.URL),
		"DIALECT":           s.Dialect,
		"VENDOR":            s.Vendor,
		"AUTH":              s.Auth,
		"USERNAME":          s.Username,
		"PASSWORD":          secret(s.Password),
		"TOKEN":             secret(s.Token),
		"LOGIN_URL":         u(s.LoginURL),
		"CLIENT_ID":         s.ClientID,
		"CLIENT_SECRET":     secret(s.ClientSecret),
		"SCOPE":             s.Scope,
		"TOKEN_URL":         u(s.TokenURL),
		"RESOURCE":          s.Resource,
		"CRITERIA":          s.Criteria,
		"TOPIC":             s.Topic,
		"FILTER":            s.Filter,
		"CONTENT":           s.Content,
		"HEARTBEAT":         s.Heartbeat.String(),
		"NOTIFY_TIMEOUT":    s.NotifyTimeout.String(),
		"MAX_COUNT":         strconv.Itoa(s.MaxCount),
		"CALLBACK_ENDPOINT": u(s.CallbackEndpoint),
		"SUBSCRIPTION":      s.Subscription,
		"POLL_INTERVAL":     s.PollInterval.String(),
		"PATH_STYLE":        s.PathStyle,
		"CLAIM_CODE_SYSTEM": s.ClaimCodeSystem,
		"SEARCH":            s.Search.Encode(),
	} {
		m[s.Var(k)] = v
	}
}
