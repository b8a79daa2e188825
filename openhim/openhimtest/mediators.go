package openhimtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// mask is what core shows instead of a password config value.
const mask = "**********"

// mediator is a stored mediator document (src/model/mediators.js).
type mediator struct {
	doc                           map[string]any // the schema's fields, as sent
	configModified, lastHeartbeat time.Time      // _configModifiedTS, _lastHeartbeat
	uptime                        float64        // _uptime
}

// Mediator is a registered mediator as core stores it.
type Mediator struct {
	// URN and Version are the stored urn and version.
	URN, Version string
	// Doc is the stored document (numbers are float64), passwords in clear,
	// without the fields core maintains itself.
	Doc map[string]any
	// Config is the stored config, nil when none.
	Config map[string]any
	// ConfigModified is _configModifiedTS and LastHeartbeat _lastHeartbeat,
	// zero when unset; Uptime is _uptime.
	ConfigModified, LastHeartbeat time.Time
	Uptime                        float64
}

// RegistrationOutcome says what a POST /mediators did.
type RegistrationOutcome string

// The outcomes of a registration: core answers 201 to the first three
// (trap 1).
const (
	RegistrationCreated   RegistrationOutcome = "created"
	RegistrationUpdated   RegistrationOutcome = "updated"
	RegistrationUnchanged RegistrationOutcome = "unchanged"
	RegistrationRejected  RegistrationOutcome = "rejected"
)

// Registration is one authorised POST /mediators.
type Registration struct {
	Body     []byte
	Outcome  RegistrationOutcome
	Response string // the answer's body: "Created" or core's error text
	Status   int
}

// Heartbeat is one authorised POST /mediators/{urn}/heartbeat.
type Heartbeat struct {
	URN string
	// Config reports "config": true in the body; ConfigSent that the answer
	// carried the stored config (or "OK" when none is stored).
	Config, ConfigSent bool
	// Uptime is the body's uptime as JSON, nil when absent.
	Uptime   json.RawMessage
	Status   int
	Response []byte
}

// Mediator returns the mediator registered under urn.
func (s *Server) Mediator(urn string) (Mediator, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.find(urn)
	if m == nil {
		return Mediator{}, false
	}
	out := Mediator{Doc: clone(m.doc), ConfigModified: m.configModified, LastHeartbeat: m.lastHeartbeat, Uptime: m.uptime}
	out.URN, _ = m.doc["urn"].(string)
	out.Version, _ = m.doc["version"].(string)
	out.Config, _ = out.Doc["config"].(map[string]any)
	return out, true
}

// Registrations returns every authorised POST /mediators, oldest first.
func (s *Server) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.registrations)
}

// Heartbeats returns every authorised heartbeat, oldest first.
func (s *Server) Heartbeats() []Heartbeat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.heartbeats)
}

// find returns the mediator with this urn. The caller holds s.mu.
func (s *Server) find(urn string) *mediator {
	for _, m := range s.mediators {
		if m.doc["urn"] == urn {
			return m
		}
	}
	return nil
}

// stored is a mediator as the API returns it (without core's own fields),
// when masked with password values replaced by "**********"
// (src/api/mediators.js maskPasswords; arrays of passwords are not masked
// by the fake).
func (m *mediator) stored(masked bool) map[string]any {
	doc := clone(m.doc)
	if cfg, _ := doc["config"].(map[string]any); masked {
		for _, p := range passwordDefs(doc) {
			if v, _ := cfg[p].(string); v != "" {
				cfg[p] = mask
			}
		}
	}
	return doc
}

// passwordDefs are the params of a document's password configDefs.
func passwordDefs(doc map[string]any) []string {
	var out []string
	for _, d := range list(doc["configDefs"]) {
		if p, ok := d["param"].(string); ok && d["type"] == "password" {
			out = append(out, p)
		}
	}
	return out
}

// getMediators is GET /mediators (src/api/mediators.js getAllMediators).
// Core calls maskPasswords on the array, which masks nothing: passwords
// come back in clear.
func (s *Server) getMediators(*request, string) answer {
	out := []any{}
	for _, m := range s.mediators {
		out = append(out, m.stored(false))
	}
	return jsonAnswer(out)
}

// getMediator is GET /mediators/:urn (getMediator): the document with
// passwords masked (docs/upstreams/openhim.md §3), or 404.
func (s *Server) getMediator(_ *request, urn string) answer {
	m := s.find(urn)
	if m == nil {
		return text(http.StatusNotFound, "")
	}
	return jsonAnswer(m.stored(true))
}

// schemaFields are the Mediator schema's top-level paths; mongoose drops
// any other field (src/model/mediators.js).
var schemaFields = []string{"urn", "version", "name", "description", "endpoints", "defaultChannelConfig", "configDefs", "config"}

// semverRE is semver.valid without its lenient forms ("v1.0.0", " 1.0.0").
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// addMediator is POST /mediators (src/api/mediators.js addMediator,
// docs/upstreams/openhim.md §1): 400 "Could not add Mediator via the API:
// ValidationError: …" for a bad document, else 201 "Created" whether the urn
// was new (stored), known with a higher version (updated as §1.1 says) or
// known with the same or a lower version (nothing changed, trap 1). There is
// no 409.
func (s *Server) addMediator(x *request, _ string) answer {
	outcome, msg := s.register(x.body)
	a := text(http.StatusCreated, "")
	if msg != "" {
		outcome, a = RegistrationRejected, text(http.StatusBadRequest, "Could not add Mediator via the API: ValidationError: "+msg)
	}
	s.registrations = append(s.registrations, Registration{
		Body: slices.Clone(x.raw), Outcome: outcome, Response: string(a.body), Status: a.status,
	})
	return a
}

// register stores or updates a mediator, or returns core's validation
// message. The caller holds s.mu.
func (s *Server) register(body map[string]any) (RegistrationOutcome, string) {
	urn, _ := body["urn"].(string)
	version, _ := body["version"].(string)
	switch {
	case urn == "":
		return "", "URN is required"
	case !semverRE.MatchString(version):
		return "", "Version is required. Must be in SemVer form x.y.z"
	}
	// configDefs, then config against them, only when configDefs is set.
	if defs, ok := body["configDefs"].([]any); ok {
		if msg := validateConfigDefs(defs); msg != "" {
			return "", msg
		}
		if cfg, ok := body["config"].(map[string]any); ok {
			if msg := validateConfig(defs, cfg); msg != "" {
				return "", msg
			}
		}
	}
	doc := map[string]any{}
	for _, f := range schemaFields {
		if v, ok := body[f]; ok {
			doc[f] = clone(v)
		}
	}
	if m := s.find(urn); m != nil {
		if !newer(version, m.doc["version"].(string)) {
			return RegistrationUnchanged, ""
		}
		// A higher version $sets the fields sent, unvalidated. Of the new
		// config's keys, those with a stored value keep it; others are
		// dropped; no config keeps the stored one. _configModifiedTS is not
		// bumped (§1.1, traps 6 and 22).
		if cfg, ok := doc["config"].(map[string]any); ok {
			stored, _ := m.doc["config"].(map[string]any)
			for k := range cfg {
				if v := stored[k]; v != nil {
					cfg[k] = v
				}
			}
		}
		for k, v := range doc {
			m.doc[k] = v
		}
		return RegistrationUpdated, ""
	}
	if len(list(doc["endpoints"])) == 0 {
		return "", "At least 1 endpoint is required"
	}
	if errs := schemaErrors(doc); len(errs) > 0 {
		return "", "Mediator validation failed: " + strings.Join(errs, ", ")
	}
	s.mediators = append(s.mediators, &mediator{doc: doc})
	return RegistrationCreated, ""
}

// newer is semver.gt on valid versions: by major, minor, patch, and a
// release is newer than its pre-releases (pre-releases are otherwise not
// ordered).
func newer(a, b string) bool {
	pa, pb := semverRE.FindStringSubmatch(a), semverRE.FindStringSubmatch(b)
	if pb == nil {
		return true
	}
	for i := 1; i <= 3; i++ {
		na, _ := strconv.Atoi(pa[i])
		nb, _ := strconv.Atoi(pb[i])
		if na != nb {
			return na > nb
		}
	}
	return pa[4] == "" && pb[4] != ""
}

// configTypes are the configDef types (src/model/mediators.js).
var configTypes = []any{"string", "bool", "number", "option", "bigstring", "map", "struct", "password"}

// schemaErrors are mongoose's required and enum errors for a new
// mediator: name, each endpoint's name (RouteDef), each default channel's
// name and urlPattern (ChannelDef), each configDef's type.
func schemaErrors(doc map[string]any) []string {
	var errs []string
	required := func(m map[string]any, path, field string) {
		if v, ok := m[field]; !ok || v == nil || v == "" {
			errs = append(errs, fmt.Sprintf("%s%s: Path `%s` is required.", path, field, field))
		}
	}
	required(doc, "", "name")
	for i, e := range list(doc["endpoints"]) {
		required(e, fmt.Sprintf("endpoints.%d.", i), "name")
	}
	for i, c := range list(doc["defaultChannelConfig"]) {
		required(c, fmt.Sprintf("defaultChannelConfig.%d.", i), "name")
		required(c, fmt.Sprintf("defaultChannelConfig.%d.", i), "urlPattern")
	}
	for i, d := range list(doc["configDefs"]) {
		if t, ok := d["type"]; ok && !slices.Contains(configTypes, t) {
			errs = append(errs, fmt.Sprintf("configDefs.%d.type: `%v` is not a valid enum value for path `type`.", i, t))
		}
	}
	return errs
}

// validateConfigDefs is core's validateConfigDefs (src/api/mediators.js):
// an option needs a non-empty values array. Struct templates are not
// checked by the fake.
func validateConfigDefs(defs []any) string {
	for _, d := range list(defs) {
		if d["type"] != "option" {
			continue
		}
		switch vals, ok := d["values"].([]any); {
		case !ok:
			return fmt.Sprintf("Expected field 'values' to be an array (option param '%v')", d["param"])
		case len(vals) == 0:
			return fmt.Sprintf("Must specify a values array for option param '%v'", d["param"])
		}
	}
	return ""
}

// validateConfig is core's validateConfig (docs/upstreams/openhim.md §1,
// trap 4): every key needs a configDef with that param, and its value must
// be of the def's JSON type (an array of them when the def has array: true).
// Ranges are not checked (trap 23).
func validateConfig(defs []any, cfg map[string]any) string {
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		found := false
		for _, d := range list(defs) {
			if d["param"] != k {
				continue
			}
			found = true
			if d["array"] != true {
				if msg := validateField(k, d, cfg[k]); msg != "" {
					return msg
				}
				continue
			}
			arr, ok := cfg[k].([]any)
			if !ok {
				return fmt.Sprintf("Expected config param %s to be an array of type %v", k, d["type"])
			}
			for i, v := range arr {
				if msg := validateField(fmt.Sprintf("%s[%d]", k, i), d, v); msg != "" {
					return msg
				}
			}
		}
		if !found {
			return "No config definition found for parameter " + k
		}
	}
	return ""
}

// validateField is core's validateConfigField: a JSON number for number,
// a JSON boolean for bool, a string for the string types, one of values
// for option, an object (of strings, for map) for map and struct.
func validateField(param string, def map[string]any, v any) string {
	var ok bool
	want := map[string]string{
		"string": "a string", "bigstring": "a large string", "password": "a string representing a password",
		"number": "a number", "bool": "a boolean", "map": "an object", "struct": "an object",
	}[fmt.Sprint(def["type"])]
	switch def["type"] {
	case "string", "bigstring", "password":
		_, ok = v.(string)
	case "number":
		_, ok = v.(float64)
	case "bool":
		_, ok = v.(bool)
	case "option":
		vals, _ := def["values"].([]any)
		if !slices.Contains(vals, v) {
			names := make([]string, len(vals)) // String(values)
			for i, v := range vals {
				names[i] = fmt.Sprint(v)
			}
			return fmt.Sprintf("Expected config param %s to be one of %s", param, strings.Join(names, ","))
		}
		return ""
	case "map", "struct":
		var m map[string]any
		if m, ok = v.(map[string]any); ok && def["type"] == "map" {
			for _, e := range m {
				if _, str := e.(string); !str {
					return fmt.Sprintf("Expected config param %s to only contain string values.", param)
				}
			}
		}
	default:
		return ""
	}
	if !ok {
		return fmt.Sprintf("Expected config param %s to be %s.", param, want)
	}
	return ""
}

// heartbeat is POST /mediators/:urn/heartbeat (src/api/mediators.js
// heartbeat, docs/upstreams/openhim.md §3): 404 for an unknown urn, 400
// without uptime, 500 when uptime is not a number. It answers the stored
// config as JSON, passwords in clear, when the body has "config": true or
// the config was changed after the previous heartbeat (a change is thus
// delivered once, trap 6); "OK" when such an answer finds no config stored;
// an empty body otherwise (trap 5). Then _lastHeartbeat and _uptime are
// stored.
func (s *Server) heartbeat(x *request, urn string) answer {
	hb := Heartbeat{URN: urn, Config: x.body["config"] == true}
	if u, ok := x.body["uptime"]; ok {
		hb.Uptime, _ = json.Marshal(u)
	}
	a := s.beat(s.find(urn), x.body["uptime"], &hb)
	hb.Status, hb.Response = a.status, a.body
	s.heartbeats = append(s.heartbeats, hb)
	return a
}

func (s *Server) beat(m *mediator, uptime any, hb *Heartbeat) answer {
	switch {
	case m == nil:
		return text(http.StatusNotFound, "")
	case uptime == nil:
		return text(http.StatusBadRequest, "")
	}
	// Before a first heartbeat _lastHeartbeat is unset, and the comparison
	// is false.
	send := hb.Config || (!m.lastHeartbeat.IsZero() && m.configModified.After(m.lastHeartbeat))
	up, ok := uptime.(float64) // mongoose would also cast a numeric string
	if !ok {
		return text(http.StatusInternalServerError, fmt.Sprintf("Could not process mediator heartbeat (urn: %s): CastError: Cast to Number failed for value %v at path \"_uptime\"", hb.URN, uptime))
	}
	m.lastHeartbeat, m.uptime = s.now(), up
	if hb.ConfigSent = send; !send {
		return answer{http.StatusOK, "text/plain; charset=utf-8", nil}
	} else if m.doc["config"] == nil {
		return text(http.StatusOK, "")
	}
	return jsonAnswer(m.doc["config"])
}

// putConfig is PUT /mediators/:urn/config (src/api/mediators.js
// setConfig), what the console's editor sends: see SetConfig. A body that
// is not JSON reads as {} and wipes the config.
func (s *Server) putConfig(x *request, urn string) answer {
	return text(s.setConfig(urn, x.body))
}

// SetConfig does what a console edit does (PUT /mediators/{urn}/config,
// docs/upstreams/openhim.md §3, trap 23): values still "**********" get the
// stored passwords back, the config is checked against the configDefs as at
// registration, stored whole (keys left out disappear), and
// _configModifiedTS set to now, so the next heartbeat returns it once. It
// returns core's message for an unknown urn or an invalid config.
func (s *Server) SetConfig(urn string, config map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status, msg := s.setConfig(urn, clone(config)); status != http.StatusOK {
		return fmt.Errorf("openhimtest: %d: %s", status, msg)
	}
	return nil
}

// setConfig returns 200, or an error status and core's message. The caller
// holds s.mu.
func (s *Server) setConfig(urn string, cfg map[string]any) (int, string) {
	m := s.find(urn)
	if m == nil {
		return http.StatusNotFound, "No mediator found for this urn."
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	stored, _ := m.doc["config"].(map[string]any)
	for _, param := range passwordDefs(m.doc) {
		if cfg[param] == mask && stored[param] != nil {
			cfg[param] = stored[param]
		}
	}
	defs, _ := m.doc["configDefs"].([]any)
	if msg := validateConfig(defs, cfg); msg != "" {
		return http.StatusBadRequest, msg
	}
	m.doc["config"], m.configModified = cfg, s.now()
	return http.StatusOK, ""
}

// list is the objects of a JSON array.
func list(v any) []map[string]any {
	items, _ := v.([]any)
	var out []map[string]any
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// clone deep-copies a JSON value, turning Go numbers into float64.
func clone[T any](v T) T {
	var out T
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &out)
	return out
}
