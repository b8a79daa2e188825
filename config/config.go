// Package config reads and validates the mediator's configuration from the
// environment (and an optional .env file) with viper.
//
// It knows variable names, defaults and formats, and nothing about what the
// values do: cmd/mediator copies them into the options of the packages that
// use them.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Config is the validated configuration. Every field is documented in
// Variables, which the README's configuration table follows.
type Config struct {
	Port          int
	ListenAddress string

	OpenIMISURL      *url.URL
	OpenIMISFHIRPath string
	OpenIMISUsername string
	OpenIMISPassword Secret
	OpenIMISCalendar string
	CallbackEndpoint *url.URL

	CHTURL       *url.URL
	CHTUsername  string
	CHTPassword  Secret
	CHTPlaceID   string
	CHTClaimForm string

	MediatorUsername string
	MediatorPassword Secret
	MediatorURL      *url.URL

	OpenHIMAPIURL          *url.URL
	OpenHIMUsername        string
	OpenHIMPassword        Secret
	OpenHIMTrustSelfSigned bool
	// OpenHIMRouteUsername and OpenHIMRoutePassword, optional, are the
	// Basic credentials OpenHIM's channel routes present to the mediator.
	OpenHIMRouteUsername string
	OpenHIMRoutePassword Secret

	DatabaseURL       string
	FeedbackResource  string
	ClaimPollInterval time.Duration
	ClaimBackfill     time.Duration
	SubscriptionEnd   SubscriptionEnd
	UpstreamTimeout   time.Duration
	Workers           int

	LogLevel  string
	LogFormat string

	// Sources are the FHIR servers besides openIMIS (FHIR_SOURCES, spec §8).
	Sources []Source
}

// Variable describes one environment variable.
type Variable struct {
	Name     string
	Default  string
	Required bool
	Secret   bool
	Help     string
}

// Variables lists every environment variable the mediator reads, in the order
// the README documents them.
var Variables = []Variable{
	{Name: "PORT", Default: "6000", Help: "HTTP listen port"},
	{Name: "LISTEN_ADDRESS", Help: "IP address or host name to listen on; empty means every interface"},
	{Name: "OPENIMIS_API_URL", Required: true, Help: "openIMIS base URL, e.g. https://imis.example.org"},
	{Name: "OPENIMIS_FHIR_PATH", Default: "/api/api_fhir_r4/", Help: "path of the FHIR R4 API below OPENIMIS_API_URL"},
	{Name: "OPENIMIS_USERNAME", Required: true, Help: "openIMIS API user"},
	{Name: "OPENIMIS_PASSWORD", Required: true, Secret: true, Help: "password of the openIMIS API user"},
	{Name: "OPENIMIS_CALENDAR", Default: "gregorian", Help: "calendar of openIMIS dates: gregorian, bikram-sambat (an openIMIS run with the Nepali ne_datetime module and iso_raw_date) or auto"},
	{Name: "CHT_OPENIMIS_CALLBACK_ENDPOINT", Required: true, Help: "absolute URL openIMIS posts ClaimResponses to (this mediator's /mediator/claim-response, directly or through an OpenHIM channel)"},
	{Name: "CHT_URL", Required: true, Help: "CHT base URL, e.g. https://cht.example.org"},
	{Name: "CHT_USERNAME", Required: true, Help: "CHT integration user (online role)"},
	{Name: "CHT_PASSWORD", Required: true, Secret: true, Help: "password of the CHT integration user"},
	{Name: "CHT_PLACE_ID", Required: true, Help: "UUID of the CHT place under which new persons are created"},
	{Name: "CHT_CLAIM_FORM", Default: "OP", Help: "JSON form code of the claim report"},
	{Name: "MEDIATOR_USERNAME", Required: true, Help: "HTTP Basic user every caller of /mediator/* must present"},
	{Name: "MEDIATOR_PASSWORD", Required: true, Secret: true, Help: "HTTP Basic password every caller of /mediator/* must present"},
	{Name: "OPENHIM_API_URL", Help: "OpenHIM core API URL; empty means no OpenHIM"},
	{Name: "OPENHIM_USERNAME", Help: "OpenHIM API user (required with OPENHIM_API_URL)"},
	{Name: "OPENHIM_PASSWORD", Secret: true, Help: "OpenHIM API password (required with OPENHIM_API_URL)"},
	{Name: "OPENHIM_TRUST_SELF_SIGNED", Default: "false", Help: "accept OpenHIM's self-signed certificate"},
	{Name: "MEDIATOR_URL", Help: "URL at which OpenHIM reaches this mediator (required with OPENHIM_API_URL)"},
	{Name: "OPENHIM_ROUTE_USERNAME", Help: "HTTP Basic user OpenHIM's channel routes present to the mediator (optional, with OPENHIM_API_URL); when set, the only credentials /mediator/* accepts, and MEDIATOR_USERNAME/MEDIATOR_PASSWORD are only what openIMIS presents to OpenHIM"},
	{Name: "OPENHIM_ROUTE_PASSWORD", Secret: true, Help: "HTTP Basic password OpenHIM's channel routes present to the mediator (with OPENHIM_ROUTE_USERNAME; not MEDIATOR_PASSWORD)"},
	{Name: "DATABASE_URL", Default: "sqlite://data/mediator.db", Help: "durable store: sqlite://<file> (embedded) or postgres://… (several replicas)"},
	{Name: "FEEDBACK_RESOURCE", Default: "auto", Help: "auto, QuestionnaireResponse or Communication"},
	{Name: "CLAIM_POLL_INTERVAL", Default: "5m", Help: "catch-up poll period; 0 disables"},
	{Name: "CLAIM_BACKFILL", Default: "24h", Help: "how far back the first catch-up poll of a new store looks (a duration; days as 30d); later polls continue from the stored watermark"},
	{Name: "SUBSCRIPTION_END", Default: "8760h", Help: "end of the openIMIS subscription: a duration ahead (8760h, 365d) or an RFC 3339 instant; renewed when under 30 days remain"},
	{Name: "UPSTREAM_TIMEOUT", Default: "30s", Help: "per-request timeout to openIMIS and CHT (must stay under OpenHIM's 60s)"},
	{Name: "WORKERS", Default: "64", Help: "the most concurrent upstream jobs; below it the concurrency adapts per upstream"},
	{Name: "LOG_LEVEL", Default: "info", Help: "a zerolog level: trace, debug, info, warn, error, fatal, panic or disabled"},
	{Name: "LOG_FORMAT", Default: "json", Help: "json or console"},
	{Name: "FHIR_SOURCES", Help: "comma-separated names of FHIR servers besides openIMIS to take claims from (a-z, 0-9, -; up to 20 characters each); each reads the FHIR_<N>_* variables"},
}

// Secret is a configuration value that never prints: fmt, logs and JSON see
// REDACTED. Value returns the real string.
type Secret string

// Redacted is what a Secret prints as.
const Redacted = "REDACTED"

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return Redacted }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Value returns the secret itself, for the one place that must send it.
func (s Secret) Value() string { return string(s) }

// SubscriptionEnd is either a fixed instant or a duration ahead of now.
type SubscriptionEnd struct {
	At    time.Time
	Ahead time.Duration
}

// Time returns the end instant for a subscription created at now.
func (e SubscriptionEnd) Time(now time.Time) time.Time {
	if !e.At.IsZero() {
		return e.At
	}
	return now.Add(e.Ahead)
}

// CheckServe reports what makes the configuration unfit to serve at now,
// though fine for the admin commands: a SUBSCRIPTION_END instant that has
// passed (openIMIS accepts such a subscription but never notifies through
// it).
func (c Config) CheckServe(now time.Time) error {
	if at := c.SubscriptionEnd.At; !at.IsZero() && !at.After(now) {
		return fmt.Errorf("config: SUBSCRIPTION_END %s is in the past; give a later instant or a duration ahead (8760h)", at.Format(time.RFC3339))
	}
	return nil
}

// Load reads every variable from v, applies defaults and validates. The error
// is one line naming each variable that is missing or malformed; it never
// contains a secret's value.
func Load(v *viper.Viper) (Config, error) {
	p := parser{v: v}
	c := Config{
		Port:             p.port("PORT"),
		ListenAddress:    p.host("LISTEN_ADDRESS"),
		OpenIMISURL:      p.url("OPENIMIS_API_URL"),
		OpenIMISFHIRPath: p.path("OPENIMIS_FHIR_PATH"),
		OpenIMISUsername: p.str("OPENIMIS_USERNAME"),
		OpenIMISPassword: Secret(p.str("OPENIMIS_PASSWORD")),
		OpenIMISCalendar: p.oneOf("OPENIMIS_CALENDAR", "gregorian", "bikram-sambat", "auto"),
		CallbackEndpoint: p.url("CHT_OPENIMIS_CALLBACK_ENDPOINT"),
		CHTURL:           p.url("CHT_URL"),
		CHTUsername:      p.str("CHT_USERNAME"),
		CHTPassword:      Secret(p.str("CHT_PASSWORD")),
		CHTPlaceID:       p.str("CHT_PLACE_ID"),
		CHTClaimForm:     strings.ToUpper(p.str("CHT_CLAIM_FORM")),
		MediatorUsername: p.str("MEDIATOR_USERNAME"),
		MediatorPassword: Secret(p.str("MEDIATOR_PASSWORD")),
		MediatorURL:      p.url("MEDIATOR_URL"),

		OpenHIMAPIURL:          p.url("OPENHIM_API_URL"),
		OpenHIMUsername:        p.str("OPENHIM_USERNAME"),
		OpenHIMPassword:        Secret(p.str("OPENHIM_PASSWORD")),
		OpenHIMTrustSelfSigned: p.boolean("OPENHIM_TRUST_SELF_SIGNED"),
		OpenHIMRouteUsername:   p.str("OPENHIM_ROUTE_USERNAME"),
		OpenHIMRoutePassword:   Secret(p.str("OPENHIM_ROUTE_PASSWORD")),

		DatabaseURL:       p.databaseURL("DATABASE_URL"),
		FeedbackResource:  p.oneOf("FEEDBACK_RESOURCE", "auto", "QuestionnaireResponse", "Communication"),
		ClaimPollInterval: p.duration("CLAIM_POLL_INTERVAL", 0),
		ClaimBackfill:     p.backfill("CLAIM_BACKFILL"),
		SubscriptionEnd:   p.subscriptionEnd("SUBSCRIPTION_END"),
		UpstreamTimeout:   p.duration("UPSTREAM_TIMEOUT", time.Second),
		Workers:           p.positiveInt("WORKERS", 1, 1000),
		LogLevel:          p.oneOf("LOG_LEVEL", LogLevels...),
		LogFormat:         p.oneOf("LOG_FORMAT", "json", "console"),
	}
	if c.UpstreamTimeout >= 60*time.Second {
		p.fail("UPSTREAM_TIMEOUT", "must stay under OpenHIM's 60s timeout")
	}
	if c.ClaimPollInterval > 0 && c.ClaimPollInterval < time.Second {
		p.fail("CLAIM_POLL_INTERVAL", "must be 0 (disabled) or at least 1s")
	}
	if c.CHTPlaceID != "" && !validPlaceID(c.CHTPlaceID) {
		p.fail("CHT_PLACE_ID", "must be the UUID of a CHT place (the place's _id)")
	}
	if c.OpenHIMAPIURL != nil {
		for _, name := range []string{"OPENHIM_USERNAME", "OPENHIM_PASSWORD", "MEDIATOR_URL"} {
			if p.raw(name) == "" {
				p.fail(name, "is required when OPENHIM_API_URL is set")
			}
		}
	}
	p.routeCredentials(c)
	c.Sources = p.sources(c.CallbackEndpoint, c.ClaimPollInterval)
	if len(p.errs) > 0 {
		return Config{}, errors.New("config: " + strings.Join(p.errs, "; "))
	}
	return c, nil
}

// routeCredentials checks OPENHIM_ROUTE_USERNAME and OPENHIM_ROUTE_PASSWORD:
// both or neither, only with OpenHIM, another password than
// MEDIATOR_PASSWORD (which OpenHIM's transaction log shows when openIMIS
// presents it there), and a callback that goes through OpenHIM: with them
// set the mediator refuses MEDIATOR_USERNAME/MEDIATOR_PASSWORD, so openIMIS
// must not post to MEDIATOR_URL's host and port directly.
func (p *parser) routeCredentials(c Config) {
	user, pass := c.OpenHIMRouteUsername, c.OpenHIMRoutePassword.Value()
	switch {
	case user == "" && pass == "":
		return
	case user == "":
		p.fail("OPENHIM_ROUTE_USERNAME", "is required when OPENHIM_ROUTE_PASSWORD is set")
		return
	case pass == "":
		p.fail("OPENHIM_ROUTE_PASSWORD", "is required when OPENHIM_ROUTE_USERNAME is set")
		return
	case c.OpenHIMAPIURL == nil:
		p.fail("OPENHIM_ROUTE_USERNAME", "needs OPENHIM_API_URL: it is the credential of OpenHIM's channel routes")
		return
	case pass == c.MediatorPassword.Value():
		p.fail("OPENHIM_ROUTE_PASSWORD", "must differ from MEDIATOR_PASSWORD: OpenHIM's transaction log shows the credential openIMIS presents to it")
	}
	if cb, m := c.CallbackEndpoint, c.MediatorURL; cb != nil && m != nil &&
		strings.EqualFold(cb.Hostname(), m.Hostname()) && portOf(cb) == portOf(m) {
		p.fail("CHT_OPENIMIS_CALLBACK_ENDPOINT", "must be an OpenHIM channel URL when OPENHIM_ROUTE_USERNAME is set: it points at MEDIATOR_URL's host and port, and the mediator then accepts only the route credentials, not the MEDIATOR_USERNAME/MEDIATOR_PASSWORD openIMIS presents")
	}
}

// portOf is a URL's port, or its scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// validPlaceID accepts the ids the CHT gives places: a UUID, with dashes or,
// as CouchDB generates ids, as 32 hexadecimal digits.
func validPlaceID(id string) bool {
	if len(id) == 36 {
		for _, i := range []int{8, 13, 18, 23} {
			if id[i] != '-' {
				return false
			}
		}
		id = strings.ReplaceAll(id, "-", "")
	}
	if len(id) != 32 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// LogLevels are the zerolog levels LOG_LEVEL takes.
var LogLevels = []string{"trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled"}

// parser reads variables and collects one message per bad variable.
type parser struct {
	errs []string
	v    *viper.Viper
}

func (p *parser) fail(name, msg string) {
	p.errs = append(p.errs, name+" "+msg)
}

// raw returns the variable's trimmed value, or its default when unset or empty.
func (p *parser) raw(name string) string {
	if s := strings.TrimSpace(p.v.GetString(name)); s != "" {
		return s
	}
	for _, vr := range Variables {
		if vr.Name == name {
			return vr.Default
		}
	}
	panic("config: undeclared variable " + name)
}

func (p *parser) required(name string) bool {
	for _, vr := range Variables {
		if vr.Name == name {
			return vr.Required
		}
	}
	return false
}

func (p *parser) str(name string) string {
	s := p.raw(name)
	if s == "" && p.required(name) {
		p.fail(name, "is required")
	}
	return s
}

func (p *parser) url(name string) *url.URL {
	s := p.str(name)
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, "must be an absolute http:// or https:// URL")
		return nil
	}
	if u.User != nil {
		p.fail(name, "must not carry credentials; use the *_USERNAME and *_PASSWORD variables")
		return nil
	}
	return u
}

func (p *parser) path(name string) string {
	s := p.str(name)
	if !strings.HasPrefix(s, "/") {
		p.fail(name, fmt.Sprintf("must start with /, got %q", s))
		return s
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

func (p *parser) port(name string) int {
	n, err := strconv.Atoi(p.raw(name))
	if err != nil || n < 1 || n > 65535 {
		p.fail(name, fmt.Sprintf("must be a port number from 1 to 65535, got %q", p.raw(name)))
	}
	return n
}

func (p *parser) positiveInt(name string, lo, hi int) int {
	n, err := strconv.Atoi(p.raw(name))
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("must be a whole number from %d to %d, got %q", lo, hi, p.raw(name)))
	}
	return n
}

func (p *parser) boolean(name string) bool {
	b, err := strconv.ParseBool(p.raw(name))
	if err != nil {
		p.fail(name, fmt.Sprintf("must be true or false, got %q", p.raw(name)))
	}
	return b
}

func (p *parser) oneOf(name string, allowed ...string) string {
	s := p.raw(name)
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a
		}
	}
	p.fail(name, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), s))
	return s
}

// duration parses a Go duration; a bare 0 is allowed. Values below min (other
// than 0 where allowed by the caller) are rejected.
func (p *parser) duration(name string, min time.Duration) time.Duration {
	s := p.raw(name)
	if s == "0" {
		if min > 0 {
			p.fail(name, fmt.Sprintf("must be at least %s", min))
		}
		return 0
	}
	d, err := parseDuration(s)
	if err != nil || d < min || d < 0 {
		p.fail(name, fmt.Sprintf("must be a duration such as 30s, 5m or 1h, got %q", s))
	}
	return d
}

// host parses an optional listen host: an IP address or a host name (labels
// of letters, digits and hyphens), without a port.
func (p *parser) host(name string) string {
	s := p.raw(name)
	if s == "" || net.ParseIP(s) != nil {
		return s
	}
	ok := len(s) <= 253
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		ok = ok && len(label) >= 1 && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for _, r := range label {
			ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
		}
	}
	if !ok {
		p.fail(name, fmt.Sprintf("must be an IP address or a host name without a port (127.0.0.1, ::1, localhost), got %q", s))
	}
	return s
}

// backfill parses a look-back: a duration of at least a minute, days as 30d.
func (p *parser) backfill(name string) time.Duration {
	s := p.raw(name)
	d, err := parseDuration(s)
	if err != nil || d < time.Minute {
		p.fail(name, fmt.Sprintf("must be a duration of at least 1m, such as 24h or 30d, got %q", s))
	}
	return d
}

func (p *parser) subscriptionEnd(name string) SubscriptionEnd {
	s := p.raw(name)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return SubscriptionEnd{At: t.UTC()}
	}
	d, err := parseDuration(s)
	if err != nil || d < time.Hour {
		p.fail(name, fmt.Sprintf("must be a duration of at least 1h (8760h, 365d) or an RFC 3339 instant, got %q", s))
	}
	return SubscriptionEnd{Ahead: d}
}

func (p *parser) databaseURL(name string) string {
	s := p.raw(name)
	switch {
	case strings.HasPrefix(s, "sqlite://") && len(s) > len("sqlite://"):
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
	default:
		p.fail(name, "must be sqlite://<file> or postgres://…")
	}
	return s
}

// parseDuration is time.ParseDuration plus a whole-day suffix ("365d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad day count %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// NewViper returns a viper that reads the environment and, when envFile names
// an existing file, that dotenv file too (the environment wins).
func NewViper(envFile string) (*viper.Viper, error) {
	v := viper.New()
	v.AutomaticEnv()
	if envFile == "" {
		return v, nil
	}
	if _, err := os.Stat(envFile); errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	v.SetConfigFile(envFile)
	v.SetConfigType("env")
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config: read %s: %w", envFile, err)
	}
	return v, nil
}

// Summary returns every variable's effective value for the startup log, with
// secrets redacted.
func (c Config) Summary() map[string]string {
	u := func(u *url.URL) string {
		if u == nil {
			return ""
		}
		return u.Redacted()
	}
	secret := func(s Secret) string {
		if s == "" {
			return ""
		}
		return Redacted
	}
	m := map[string]string{
		"PORT":                           strconv.Itoa(c.Port),
		"CLAIM_BACKFILL":                 c.ClaimBackfill.String(),
		"LISTEN_ADDRESS":                 c.ListenAddress,
		"OPENIMIS_API_URL":               u(c.OpenIMISURL),
		"OPENIMIS_FHIR_PATH":             c.OpenIMISFHIRPath,
		"OPENIMIS_USERNAME":              c.OpenIMISUsername,
		"OPENIMIS_PASSWORD":              secret(c.OpenIMISPassword),
		"OPENIMIS_CALENDAR":              c.OpenIMISCalendar,
		"CHT_OPENIMIS_CALLBACK_ENDPOINT": u(c.CallbackEndpoint),
		"CHT_URL":                        u(c.CHTURL),
		"CHT_USERNAME":                   c.CHTUsername,
		"CHT_PASSWORD":                   secret(c.CHTPassword),
		"CHT_PLACE_ID":                   c.CHTPlaceID,
		"CHT_CLAIM_FORM":                 c.CHTClaimForm,
		"MEDIATOR_USERNAME":              c.MediatorUsername,
		"MEDIATOR_PASSWORD":              secret(c.MediatorPassword),
		"MEDIATOR_URL":                   u(c.MediatorURL),
		"OPENHIM_API_URL":                u(c.OpenHIMAPIURL),
		"OPENHIM_USERNAME":               c.OpenHIMUsername,
		"OPENHIM_PASSWORD":               secret(c.OpenHIMPassword),
		"OPENHIM_TRUST_SELF_SIGNED":      strconv.FormatBool(c.OpenHIMTrustSelfSigned),
		"OPENHIM_ROUTE_USERNAME":         c.OpenHIMRouteUsername,
		"OPENHIM_ROUTE_PASSWORD":         secret(c.OpenHIMRoutePassword),
		"DATABASE_URL":                   redactDatabaseURL(c.DatabaseURL),
		"FEEDBACK_RESOURCE":              c.FeedbackResource,
		"CLAIM_POLL_INTERVAL":            c.ClaimPollInterval.String(),
		"SUBSCRIPTION_END":               c.subscriptionEndString(),
		"UPSTREAM_TIMEOUT":               c.UpstreamTimeout.String(),
		"WORKERS":                        strconv.Itoa(c.Workers),
		"LOG_LEVEL":                      c.LogLevel,
		"LOG_FORMAT":                     c.LogFormat,
	}
	names := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		names[i] = s.Name
		s.summary(m)
	}
	m["FHIR_SOURCES"] = strings.Join(names, ",")
	return m
}

func (c Config) subscriptionEndString() string {
	if !c.SubscriptionEnd.At.IsZero() {
		return c.SubscriptionEnd.At.Format(time.RFC3339)
	}
	return c.SubscriptionEnd.Ahead.String()
}

// redactDatabaseURL hides a password in a postgres:// URL, in its user
// part or its query; an unparsable one is hidden whole.
func redactDatabaseURL(s string) string {
	if strings.HasPrefix(s, "sqlite://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "postgres://" + Redacted
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, Redacted)
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// LoadDatabaseURL reads only DATABASE_URL, for commands that need nothing
// else (the job commands).
func LoadDatabaseURL(v *viper.Viper) (string, error) {
	p := parser{v: v}
	u := p.databaseURL("DATABASE_URL")
	if len(p.errs) > 0 {
		return "", errors.New("config: " + strings.Join(p.errs, "; "))
	}
	return u, nil
}
