package openhimtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// mediatorRec is a stored mediator document.
type mediatorRec struct {
	doc        *jsValue
	registered time.Time
}

func (m *mediatorRec) urn() string { return m.doc.prop("urn").toJSString() }

// Mediator is a registered mediator as stored by core, as returned by
// Server.Mediators and Server.Mediator.
type Mediator struct {
	// Config is the stored config decoded into Go values (numbers are
	// float64), with passwords in clear. It is nil when no config is stored
	// or the config is not a JSON object.
	Config map[string]any
	// ConfigJSON is the stored config as JSON, exactly what a heartbeat
	// would return; nil when none is stored.
	ConfigJSON json.RawMessage
	// ConfigModified is _configModifiedTS, zero when never set.
	ConfigModified time.Time
	// Doc is the whole stored document decoded into Go values, unmasked.
	Doc map[string]any
	// DocJSON is the whole stored document as JSON (_id, urn, version,
	// name, endpoints and defaultChannelConfig with mongoose's defaults,
	// configDefs, config, _configModifiedTS, _lastHeartbeat, _uptime, __v),
	// unmasked.
	DocJSON json.RawMessage
	// LastHeartbeat is _lastHeartbeat, zero before the first heartbeat.
	LastHeartbeat time.Time
	// Name is the mediator's name.
	Name string
	// Registered is when the urn was first registered (server clock).
	Registered time.Time
	// URN is the mediator's urn.
	URN string
	// Uptime is _uptime from the last heartbeat, 0 when none.
	Uptime float64
	// Version is the stored version, which only a registration with a
	// higher version changes.
	Version string
}

func (m *mediatorRec) export() Mediator {
	doc := m.doc.clone()
	out := Mediator{
		DocJSON:    doc.stringify(),
		Name:       doc.prop("name").toJSString(),
		Registered: m.registered,
		URN:        m.urn(),
		Version:    doc.prop("version").toJSString(),
	}
	out.Doc, _ = doc.toGo().(map[string]any)
	if cfg := doc.prop("config"); !cfg.isUndefined() {
		out.ConfigJSON = cfg.stringify()
		out.Config, _ = cfg.toGo().(map[string]any)
	}
	if t := doc.prop("_configModifiedTS"); t.kind == jsDate {
		out.ConfigModified = t.t
	}
	if t := doc.prop("_lastHeartbeat"); t.kind == jsDate {
		out.LastHeartbeat = t.t
	}
	if u := doc.prop("_uptime"); u.kind == jsNumber {
		out.Uptime = u.n
	}
	return out
}

// Mediators returns the registered mediators, oldest first.
func (s *Server) Mediators() []Mediator {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Mediator, len(s.mediators))
	for i, m := range s.mediators {
		out[i] = m.export()
	}
	return out
}

// Mediator returns the mediator registered under urn.
func (s *Server) Mediator(urn string) (Mediator, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mediatorByURN(urn)
	if m == nil {
		return Mediator{}, false
	}
	return m.export(), true
}

// mediatorByURN finds a mediator by exact urn. The caller holds s.mu.
func (s *Server) mediatorByURN(urn string) *mediatorRec {
	for _, m := range s.mediators {
		if m.urn() == urn {
			return m
		}
	}
	return nil
}

// RegistrationOutcome says what a POST /mediators did.
type RegistrationOutcome string

const (
	// RegistrationCreated means a new urn was stored (201).
	RegistrationCreated RegistrationOutcome = "created"
	// RegistrationUpdated means a known urn with a higher version replaced
	// the stored document (201).
	RegistrationUpdated RegistrationOutcome = "updated"
	// RegistrationUnchanged means a known urn with the same or a lower
	// version: 201 and nothing changed.
	RegistrationUnchanged RegistrationOutcome = "unchanged"
	// RegistrationRejected means a 400, 403 or 500 answer.
	RegistrationRejected RegistrationOutcome = "rejected"
)

// Registration is one POST /mediators that passed authentication.
type Registration struct {
	// Body is the request body as sent.
	Body []byte
	// Outcome says what the registration did.
	Outcome RegistrationOutcome
	// Response is the answer's body, e.g. "Created" or
	// "Could not add Mediator via the API: ValidationError: …".
	Response string
	// Status is the answer's HTTP status.
	Status int
	// Time is the server clock's time of the request.
	Time time.Time
	// URN is the body's urn as a string ("" when missing).
	URN string
	// Version is the body's version as a string ("" when missing).
	Version string
}

// Registrations returns every authenticated POST /mediators, oldest first.
func (s *Server) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Registration, len(s.registrations))
	for i, r := range s.registrations {
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// Heartbeat is one POST /mediators/{urn}/heartbeat that passed
// authentication.
type Heartbeat struct {
	// Body is the request body as sent.
	Body []byte
	// Config reports whether the body had "config": true.
	Config bool
	// ConfigSent reports whether the answer carried the stored config (or
	// "OK" when there was none): the body had config:true, or the config was
	// changed after the previous heartbeat.
	ConfigSent bool
	// Response is the answer's body: "" (no change), "OK", the config JSON,
	// or an error text.
	Response []byte
	// Status is the answer's HTTP status (200, 400, 403, 404 or 500).
	Status int
	// Time is the server clock's time of the heartbeat.
	Time time.Time
	// URN is the decoded urn of the path.
	URN string
	// Uptime is the body's uptime as raw JSON, nil when absent.
	Uptime json.RawMessage
}

// Heartbeats returns every authenticated heartbeat, oldest first.
func (s *Server) Heartbeats() []Heartbeat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Heartbeat, len(s.heartbeats))
	for i, h := range s.heartbeats {
		h.Body = append([]byte(nil), h.Body...)
		h.Response = append([]byte(nil), h.Response...)
		h.Uptime = append(json.RawMessage(nil), h.Uptime...)
		out[i] = h
	}
	return out
}

// notAdmin is core's (≤ 8.5.0) answer to a user outside the admin group.
// The heartbeat, config and channels routes name removeMediator, as core
// does.
func notAdmin(u *user, action string) *koaResponse {
	return textResponse(http.StatusForbidden, fmt.Sprintf("User %s is not an admin, API access to %s denied.", u.Email, action))
}

// mediatorRoute dispatches the /mediators routes in koa-route order. It
// returns nil for any other path. The caller holds s.mu.
func (s *Server) mediatorRoute(x *exchange, method, path string) *koaResponse {
	get := method == http.MethodGet || method == http.MethodHead
	type route struct {
		ok      bool
		pattern []string
		handle  func(urn string) *koaResponse
	}
	routes := []route{
		{get, []string{"mediators"}, func(string) *koaResponse { return s.getAllMediators(x) }},
		{get, []string{"mediators", ":uuid"}, func(urn string) *koaResponse { return s.getMediator(x, urn) }},
		{method == http.MethodPost, []string{"mediators"}, func(string) *koaResponse { return s.addMediator(x) }},
		{method == http.MethodDelete, []string{"mediators", ":urn"}, func(urn string) *koaResponse { return s.removeMediator(x, urn) }},
		{method == http.MethodPost, []string{"mediators", ":urn", "heartbeat"}, func(urn string) *koaResponse { return s.heartbeat(x, urn) }},
		{method == http.MethodPut, []string{"mediators", ":urn", "config"}, func(urn string) *koaResponse { return s.putConfig(x, urn) }},
		{method == http.MethodPost, []string{"mediators", ":urn", "channels"}, func(urn string) *koaResponse { return s.loadDefaultChannels(x, urn) }},
	}
	for _, rt := range routes {
		if !rt.ok {
			continue
		}
		params, ok := matchRoute(path, rt.pattern...)
		if !ok {
			continue
		}
		urn := ""
		if len(params) > 0 {
			var err error
			if urn, err = routeParam(params[0]); err != nil {
				return internalError()
			}
		}
		return rt.handle(urn)
	}
	return nil
}

// getAllMediators is GET /mediators. Core's maskPasswords call there is
// made on the array, so it masks nothing: passwords come back in clear.
func (s *Server) getAllMediators(x *exchange) *koaResponse {
	if !x.user.admin() {
		return notAdmin(x.user, "getAllMediators")
	}
	list := jsArr()
	for _, m := range s.mediators {
		list.arr = append(list.arr, m.doc.clone())
	}
	r := newKoaResponse()
	r.setBody(list)
	return r
}

// getMediator is GET /mediators/:urn: the document with passwords masked,
// or 404.
func (s *Server) getMediator(x *exchange, urn string) *koaResponse {
	if !x.user.admin() {
		return notAdmin(x.user, "getMediator")
	}
	m := s.mediatorByURN(urn)
	if m == nil {
		return statusResponse(http.StatusNotFound)
	}
	doc := m.doc.clone()
	if err := maskPasswords(doc.prop("configDefs"), doc.prop("config")); err != nil {
		return textResponse(http.StatusInternalServerError, fmt.Sprintf("Could not fetch mediator using UUID %s via the API: %s", urn, err))
	}
	r := newKoaResponse()
	r.setBody(doc)
	return r
}

// removeMediator is DELETE /mediators/:urn, which answers 200 whether or not
// the urn exists.
func (s *Server) removeMediator(x *exchange, urn string) *koaResponse {
	if !x.user.admin() {
		return notAdmin(x.user, "removeMediator")
	}
	for i, m := range s.mediators {
		if m.urn() == urn {
			s.mediators = append(s.mediators[:i:i], s.mediators[i+1:]...)
			break
		}
	}
	return textResponse(http.StatusOK, fmt.Sprintf("Mediator with urn %s has been successfully removed by %s", urn, x.user.Email))
}

// addMediator is POST /mediators (src/api/mediators.js addMediator).
func (s *Server) addMediator(x *exchange) *koaResponse {
	reg := Registration{Body: append([]byte(nil), x.raw...), Time: s.now(), Outcome: RegistrationRejected}
	if u := x.body.prop("urn"); u.isString() || u.kind == jsNumber {
		reg.URN = u.toJSString()
	}
	if v := x.body.prop("version"); v.isString() {
		reg.Version = v.s
	}
	var resp *koaResponse
	if !x.user.admin() {
		resp = notAdmin(x.user, "addMediator")
	} else {
		var err *jsError
		reg.Outcome, err = s.register(x.body.clone())
		switch {
		case err == nil:
			resp = statusResponse(http.StatusCreated)
		case err.name == "ValidationError":
			resp = textResponse(http.StatusBadRequest, "Could not add Mediator via the API: "+err.Error())
		default:
			resp = textResponse(http.StatusInternalServerError, "Could not add Mediator via the API: "+err.Error())
		}
	}
	status, _, body := resp.finish(http.MethodPost)
	reg.Status, reg.Response = status, string(body)
	s.registrations = append(s.registrations, reg)
	return resp
}

// register stores or updates a mediator as addMediator does. The caller
// holds s.mu.
func (s *Server) register(m *jsValue) (RegistrationOutcome, *jsError) {
	urn := m.prop("urn")
	if !urn.truthy() {
		return RegistrationRejected, validationError("URN is required")
	}
	version := m.prop("version")
	if !version.truthy() || !version.isString() || parseSemver(version.s) == nil {
		return RegistrationRejected, validationError("Version is required. Must be in SemVer form x.y.z")
	}
	if defs := m.prop("configDefs"); defs.truthy() {
		if err := validateConfigDefs(defs); err != nil {
			return RegistrationRejected, err
		}
		if cfg := m.prop("config"); !cfg.isNullish() {
			if err := validateConfig(defs, cfg); err != nil {
				return RegistrationRejected, err
			}
		}
	}
	urnStr, ok := castPrimitive(kString, urn)
	if !ok {
		return RegistrationRejected, &jsError{name: "CastError", msg: castMessage("string", urn, "urn") + ` for model "Mediator"`}
	}

	if existing := s.mediatorByURN(urnStr.s); existing != nil {
		stored := parseSemver(existing.doc.prop("version").toJSString())
		if stored != nil && parseSemver(version.s).compare(stored) <= 0 {
			return RegistrationUnchanged, nil
		}
		cfg, storedCfg := m.prop("config"), existing.doc.prop("config")
		if !cfg.isNullish() && !storedCfg.isNullish() {
			for _, k := range cfg.ownKeys() {
				if v := storedCfg.prop(k); !v.isNullish() {
					cfg.setProp(k, v.clone())
				}
			}
		}
		// findByIdAndUpdate: $set of the schema paths given, cast but not
		// validated.
		var errs docErrors
		update := newObject()
		for i := range mediatorSchema.fields {
			f := &mediatorSchema.fields[i]
			v := m.prop(f.name)
			if v.isUndefined() {
				continue
			}
			update.obj.set(f.name, castField(f, v, "", false, &errs))
		}
		if msg := errs.firstCastError(); msg != "" {
			return RegistrationRejected, &jsError{name: "CastError", msg: msg}
		}
		for _, k := range update.obj.keys {
			if v := update.obj.get(k); !v.isUndefined() {
				existing.doc.obj.set(k, v)
			}
		}
		return RegistrationUpdated, nil
	}

	eps := m.prop("endpoints")
	if !eps.truthy() || eps.prop("length").toNumber() < 1 {
		return RegistrationRejected, validationError("At least 1 endpoint is required")
	}
	var errs docErrors
	doc := castDoc(mediatorSchema, m, "", true, &errs)
	if !errs.empty() {
		return RegistrationRejected, validationError("%s", errs.validationMessage("Mediator"))
	}
	doc.obj.set("__v", jsNum(0))
	s.mediators = append(s.mediators, &mediatorRec{doc: doc, registered: s.now()})
	return RegistrationCreated, nil
}

// heartbeat is POST /mediators/:urn/heartbeat.
func (s *Server) heartbeat(x *exchange, urn string) *koaResponse {
	hb := Heartbeat{Body: append([]byte(nil), x.raw...), Time: s.now(), URN: urn}
	hb.Uptime = x.body.prop("uptime").stringify()
	cfgFlag := x.body.prop("config")
	hb.Config = cfgFlag.kind == jsBool && cfgFlag.b
	resp := s.beat(x, urn, &hb)
	status, _, body := resp.finish(http.MethodPost)
	hb.Status, hb.Response = status, body
	s.heartbeats = append(s.heartbeats, hb)
	return resp
}

func (s *Server) beat(x *exchange, urn string, hb *Heartbeat) *koaResponse {
	if !x.user.admin() {
		return notAdmin(x.user, "removeMediator")
	}
	m := s.mediatorByURN(urn)
	if m == nil {
		return statusResponse(http.StatusNotFound)
	}
	uptime := x.body.prop("uptime")
	if uptime.isNullish() {
		return statusResponse(http.StatusBadRequest)
	}
	modified, last := m.doc.prop("_configModifiedTS"), m.doc.prop("_lastHeartbeat")
	r := newKoaResponse()
	if modified.toNumber() > last.toNumber() || hb.Config {
		hb.ConfigSent = true
		r.setBody(m.doc.prop("config").clone())
	} else {
		r.setBody(jsStr(""))
	}
	up, ok := castPrimitive(kNumber, uptime)
	if !ok {
		return textResponse(http.StatusInternalServerError, fmt.Sprintf("Could not process mediator heartbeat (urn: %s): CastError: %s", urn, castMessage("Number", uptime, "_uptime")))
	}
	m.doc.obj.set("_lastHeartbeat", jsTime(s.now()))
	m.doc.obj.set("_uptime", up)
	r.setStatus(http.StatusOK)
	return r
}

// putConfig is PUT /mediators/:urn/config, what the console's config
// editor sends.
func (s *Server) putConfig(x *exchange, urn string) *koaResponse {
	if !x.user.admin() {
		return notAdmin(x.user, "removeMediator")
	}
	if err := s.setConfig(urn, x.body.clone()); err != nil {
		if errors.Is(err, errNoMediator) {
			return textResponse(http.StatusNotFound, err.Error())
		}
		return textResponse(http.StatusBadRequest, err.Error())
	}
	return statusResponse(http.StatusOK)
}

// errNoMediator is core's message for a config PUT or channel install on
// an unknown urn.
var errNoMediator = errors.New("No mediator found for this urn.") //nolint:staticcheck // core's exact text

// configError is a rejected config PUT; its message is the JavaScript
// error's message, which is all core sends.
type configError struct{ err *jsError }

func (e *configError) Error() string { return e.err.msg }

// setConfig is setConfig in core: restore masked passwords, validate
// against the configDefs, store and bump _configModifiedTS. The caller
// holds s.mu.
func (s *Server) setConfig(urn string, config *jsValue) error {
	m := s.mediatorByURN(urn)
	if m == nil {
		return errNoMediator
	}
	defs := m.doc.prop("configDefs")
	if err := restoreMaskedPasswords(defs, config, m.doc.prop("config")); err != nil {
		return &configError{err}
	}
	if err := validateConfig(defs, config); err != nil {
		return &configError{err}
	}
	m.doc.obj.set("config", config)
	m.doc.obj.set("_configModifiedTS", jsTime(s.now()))
	return nil
}

// SetConfig does what the console's config editor does through PUT
// /mediators/{urn}/config: values still "**********" are replaced by the
// stored passwords, the config is validated against the mediator's
// configDefs, stored as a whole (it replaces the old config), and
// _configModifiedTS is set to now, so that the next heartbeat (if the
// mediator has sent one before) returns it once. It returns core's error
// message for an unknown urn or an invalid config.
func (s *Server) SetConfig(urn string, config map[string]any) error {
	v, err := fromGo(config)
	if err != nil {
		return fmt.Errorf("openhimtest: encode config: %w", err)
	}
	if v.kind == jsNull {
		v = newObject()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setConfig(urn, v)
}
