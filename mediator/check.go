package mediator

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// probeUUID is a UUID no insuree has: reading it tells a missing right (403)
// from a present one (openIMIS answers an unknown insuree with 500).
const probeUUID = "00000000-0000-4000-8000-000000000000"

// CheckResult is one line of the preflight check.
type CheckResult struct {
	Name string
	// Status is "ok", "warn" (a problem that does not stop the mediator),
	// "fail", or "skip" (a check it depends on failed).
	Status string
	// Detail is what was found, or the error.
	Detail string
	// Fix says what to do, when the check did not pass.
	Fix string
}

// checkResult is what one check found.
type checkResult struct {
	detail string // what was found
	fix    string // what to do, when it failed
	warn   bool   // a problem that does not stop the mediator
	omit   bool   // nothing to say here (e.g. a topic check of a criteria dialect): no line
}

// check is one preflight check. A check that depends on an earlier one
// (needs) is skipped when that one failed.
type check struct {
	name  string
	needs string
	run   func(ctx context.Context) (checkResult, error)
}

// Check verifies the configured systems, creating and renewing nothing in
// them, and returns one result per check: openIMIS, the CHT, OpenHIM, then
// each FHIR source (sorted by name). The mediator's own store is opened
// (created and migrated when new) to read the operator's settings.
func (m *Mediator) Check(ctx context.Context) []CheckResult {
	list := m.checks()
	for _, name := range m.sources.names() {
		list = append(list, m.sourceChecks(m.sources.get(name))...)
	}
	return m.runChecks(ctx, list)
}

// runChecks runs the checks in order, each bounded by two upstream
// timeouts, skipping those whose needs did not pass.
func (m *Mediator) runChecks(ctx context.Context, list []check) []CheckResult {
	passed := map[string]bool{}
	var results []CheckResult
	for _, c := range list {
		if c.needs != "" && !passed[c.needs] {
			results = append(results, CheckResult{Name: c.name, Status: "skip", Detail: "needs: " + c.needs})
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*m.opts.UpstreamTimeout)
		res, err := c.run(cctx)
		cancel()
		switch {
		case err == nil && res.omit:
			passed[c.name] = true
		case err != nil:
			results = append(results, CheckResult{Name: c.name, Status: "fail", Detail: err.Error(), Fix: res.fix})
		case res.warn:
			passed[c.name] = true
			results = append(results, CheckResult{Name: c.name, Status: "warn", Detail: res.detail, Fix: res.fix})
		default:
			passed[c.name] = true
			results = append(results, CheckResult{Name: c.name, Status: "ok", Detail: res.detail})
		}
	}
	return results
}

func (m *Mediator) checks() []check {
	oi, ch := m.opts.OpenIMIS, m.opts.CHT
	var forms map[string]json.RawMessage // read by the CHT user check (checks run in order)
	right := func(code int, what string, probe func(ctx context.Context) error) func(context.Context) (checkResult, error) {
		return func(ctx context.Context) (checkResult, error) {
			err := probe(ctx)
			var ae *openimis.APIError
			switch {
			case errors.Is(err, openimis.ErrRateLimited):
				return checkResult{fix: "openIMIS limits requests per minute from one address; run the check again in a minute"}, err
			case isForbidden(err):
				return checkResult{fix: fmt.Sprintf("give the openIMIS user the right %d (%s)", code, what)},
					fmt.Errorf("the openIMIS user may not %s", what)
			case err != nil && !errors.As(err, &ae):
				return checkResult{fix: "see the error; openIMIS must be reachable from the mediator"}, err
			}
			return checkResult{detail: fmt.Sprintf("right %d present", code)}, nil
		}
	}
	list := []check{
		{name: "openIMIS login", run: func(ctx context.Context) (checkResult, error) {
			if err := oi.Login(ctx); err != nil {
				var le *openimis.LoginError
				if errors.As(err, &le) {
					return checkResult{fix: "check OPENIMIS_USERNAME and OPENIMIS_PASSWORD (openIMIS locks an account after 5 failed logins)"}, err
				}
				return checkResult{fix: "check OPENIMIS_API_URL and OPENIMIS_FHIR_PATH, and that openIMIS is reachable"}, err
			}
			return checkResult{detail: "logged in"}, nil
		}},
		{name: "openIMIS callback endpoint", run: func(context.Context) (checkResult, error) {
			if err := deliverableEndpoint(m.opts.CallbackEndpoint); err != nil {
				return checkResult{fix: callbackFix},
					fmt.Errorf("openIMIS would accept the subscription but never call %s: %w", m.opts.CallbackEndpoint, err)
			}
			return checkResult{detail: m.opts.CallbackEndpoint + " passes openIMIS's URL validator"}, nil
		}},
		{name: "openIMIS right: list subscriptions", needs: "openIMIS login", run: right(158001, "search subscriptions",
			func(ctx context.Context) error { _, err := oi.ListSubscriptions(ctx); return err })},
		{name: "openIMIS right: read claims", needs: "openIMIS login", run: right(111001, "read claims",
			func(ctx context.Context) error {
				_, err := oi.SearchClaimResponses(ctx, m.opts.Now().Add(time.Hour), 1, 1)
				return err
			})},
		{name: "openIMIS right: read insurees", needs: "openIMIS login", run: right(101101, "read insurees",
			func(ctx context.Context) error {
				_, err := oi.GetPatient(ctx, probeUUID)
				var ae *openimis.APIError
				if errors.As(err, &ae) && ae.Status != http.StatusForbidden {
					return nil // an unknown insuree: the right is there
				}
				return err
			})},
		{name: "openIMIS right: deliver feedback", needs: "openIMIS login", run: right(111009, "deliver claim feedback",
			func(ctx context.Context) error {
				// An invalid Communication: refused before anything is stored.
				_, err := oi.CreateCommunication(ctx, openimis.Communication{Status: "preparation"})
				var ae *openimis.APIError
				if errors.As(err, &ae) && ae.Status != http.StatusForbidden {
					return nil
				}
				if err == nil {
					return errors.New("openIMIS stored an invalid feedback")
				}
				return err
			})},
		{name: "openIMIS Claim subscription", needs: "openIMIS right: list subscriptions", run: m.checkSubscription},
		{name: "CHT reachable", run: func(ctx context.Context) (checkResult, error) {
			v, err := ch.Version(ctx)
			if err != nil {
				return checkResult{fix: "check CHT_URL (use https://, or the internal http://api:5988)"}, err
			}
			return checkResult{detail: "CHT " + v}, nil
		}},
		{name: "CHT user", needs: "CHT reachable", run: func(ctx context.Context) (checkResult, error) {
			// The forms are read once: the form check, which needs this
			// one, looks at them.
			var err error
			if forms, err = ch.Forms(ctx); err != nil {
				return checkResult{fix: "check CHT_USERNAME and CHT_PASSWORD; the user needs an online role"}, err
			}
			return checkResult{detail: "credentials accepted"}, nil
		}},
		{name: "CHT form " + m.opts.ClaimForm, needs: "CHT user", run: func(ctx context.Context) (checkResult, error) {
			if _, ok := forms[m.opts.ClaimForm]; !ok {
				codes := make([]string, 0, len(forms))
				for c := range forms {
					codes = append(codes, c)
				}
				slices.Sort(codes)
				return checkResult{fix: fmt.Sprintf("add the %s JSON form to app_settings.forms (see the README), or set CHT_CLAIM_FORM to one of %v", m.opts.ClaimForm, codes)},
					fmt.Errorf("app_settings.forms has no %s form", m.opts.ClaimForm)
			}
			// The records API drops the keys a form does not define, without
			// an error (docs/upstreams/cht.md trap 3).
			missing, err := missingFormFields(forms[m.opts.ClaimForm], m.opts.ClaimForm)
			if err != nil {
				return checkResult{fix: fmt.Sprintf("give the %s form a fields object (see the README)", m.opts.ClaimForm)}, err
			}
			if len(missing) > 0 {
				return checkResult{fix: fmt.Sprintf("define %v in the %s form (see the README): the CHT drops them silently, and a retry finds its report by op_claim_uuid", missing, m.opts.ClaimForm)},
					fmt.Errorf("the form lacks the fields %v", missing)
			}
			// The records API stores a report whose values have the wrong
			// JSON type for the form, with the problem in doc.errors behind
			// a 200 (docs/upstreams/cht.md §1, §2).
			if wrong := mistypedFormFields(forms[m.opts.ClaimForm], m.opts.ClaimForm); len(wrong) > 0 {
				return checkResult{fix: fmt.Sprintf("give these fields of the %s form the types the README lists: %s", m.opts.ClaimForm, strings.Join(wrong, "; "))},
					fmt.Errorf("the form types fields differently from what the mediator sends: %s", strings.Join(wrong, "; "))
			}
			return checkResult{detail: "defined, with every field the mediator sends"}, nil
		}},
		{name: "CHT place " + m.opts.PlaceID, needs: "CHT user", run: func(ctx context.Context) (checkResult, error) {
			doc, err := ch.GetPlace(ctx, m.opts.PlaceID)
			if cht.IsNotFound(err) {
				return checkResult{fix: "set CHT_PLACE_ID to the _id of a place in the health workers' area"}, errors.New("no such place")
			}
			if err != nil {
				return checkResult{}, err
			}
			name, _ := doc["name"].(string)
			return checkResult{detail: fmt.Sprintf("exists (%q)", name)}, nil
		}},
	}
	if m.opts.OpenHIM != nil {
		list = append(list, check{name: "OpenHIM API", run: func(ctx context.Context) (checkResult, error) {
			urns, err := m.opts.OpenHIM.Mediators(ctx)
			if err != nil {
				return checkResult{fix: "check OPENHIM_API_URL, OPENHIM_USERNAME (an email) and OPENHIM_PASSWORD; the user must be in the admin group; OPENHIM_TRUST_SELF_SIGNED=true for the default certificate"}, err
			}
			state := "not registered yet"
			if slices.Contains(urns, m.opts.Registration.URN) {
				state = "registered"
			}
			return checkResult{detail: "credentials accepted; this mediator is " + state}, nil
		}},
			check{name: "OpenHIM channels", needs: "OpenHIM API", run: m.checkOpenHIMChannels},
			check{name: "OpenHIM credentials", run: m.checkCredentialsApart})
	}
	return list
}

// checkOpenHIMChannels finds the installed channels whose routes point at
// this mediator (an endpoint of its registration) and checks that each
// route presents credentials the mediator accepts: OpenHIM drops the
// caller's Authorization (docs/upstreams/openhim.md §4.1, trap 24), so a
// route without them has every request answered 401.
func (m *Mediator) checkOpenHIMChannels(ctx context.Context) (checkResult, error) {
	channels, err := m.opts.OpenHIM.Channels(ctx)
	if err != nil {
		return checkResult{fix: "the OpenHIM user must be in the admin group to list channels"}, err
	}
	var reg openhim.Registered
	_ = json.Unmarshal(m.opts.Registration.Doc, &reg)
	here := func(r openhim.Route) bool {
		for _, e := range reg.Endpoints {
			if strings.EqualFold(e.Host, r.Host) && int(e.Port) == int(r.Port) {
				return true
			}
		}
		return false
	}
	user, pass := m.opts.acceptedCredentials()
	vars := "MEDIATOR_USERNAME and MEDIATOR_PASSWORD"
	if m.opts.RouteUsername != "" {
		vars = "OPENHIM_ROUTE_USERNAME and OPENHIM_ROUTE_PASSWORD"
	}
	var good, bad []string
	for _, ch := range channels {
		if ch.Status == "deleted" {
			continue
		}
		for _, r := range ch.Routes {
			if !here(r) || r.Status == "disabled" {
				continue
			}
			name := fmt.Sprintf("channel %q route %q", ch.Name, r.Name)
			switch {
			case subtle.ConstantTimeCompare([]byte(r.Username), []byte(user))&subtle.ConstantTimeCompare([]byte(r.Password), []byte(pass)) == 1:
				good = append(good, name)
			case r.Username == "" && r.ForwardAuthHeader:
				bad = append(bad, name+" (forwards the caller's Authorization instead: the caller would have to present the mediator's own credentials, which OpenHIM keeps in its transaction log)")
			case r.Username == "":
				bad = append(bad, name+" (no credentials)")
			default:
				bad = append(bad, name+" (credentials the mediator refuses)")
			}
		}
	}
	switch {
	case len(bad) > 0:
		return checkResult{fix: fmt.Sprintf("in the OpenHIM console, edit each of these routes and set its Basic auth username and password to %s; "+
				"or delete the channels and install them again with the green + on the mediator's page (this mediator's registration carries them)", vars)},
			fmt.Errorf("%d route(s) to this mediator present no credentials it accepts, so every request through them is answered 401: %s", len(bad), strings.Join(bad, "; "))
	case len(good) == 0:
		return checkResult{warn: true, detail: "no installed channel routes to this mediator",
			fix: "when openIMIS or the CHT call through OpenHIM, install the default channels with the green + on the mediator's page in the OpenHIM console"}, nil
	}
	return checkResult{detail: fmt.Sprintf("%d route(s) present the credentials the mediator accepts: %s", len(good), strings.Join(good, "; "))}, nil
}

// checkCredentialsApart warns when the credential openIMIS presents to
// OpenHIM is also the mediator's own: OpenHIM keeps each caller's
// Authorization in its transaction log (docs/upstreams/openhim.md trap 21).
func (m *Mediator) checkCredentialsApart(context.Context) (checkResult, error) {
	if m.opts.RouteUsername != "" {
		return checkResult{detail: "OpenHIM's routes present OPENHIM_ROUTE_USERNAME, the only credentials /mediator/* accepts; MEDIATOR_USERNAME is only what openIMIS presents to OpenHIM"}, nil
	}
	var reg openhim.Registered
	_ = json.Unmarshal(m.opts.Registration.Doc, &reg)
	if cb, err := url.Parse(m.opts.CallbackEndpoint); err == nil {
		for _, e := range reg.Endpoints {
			if strings.EqualFold(e.Host, cb.Hostname()) && strconv.Itoa(int(e.Port)) == portOf(cb) {
				return checkResult{detail: "openIMIS calls the mediator directly, with MEDIATOR_USERNAME"}, nil
			}
		}
	}
	return checkResult{warn: true,
			detail: "openIMIS presents MEDIATOR_USERNAME and MEDIATOR_PASSWORD to OpenHIM (the subscription's header), OpenHIM keeps them in every transaction, and they are also the mediator's own credentials",
			fix:    "set OPENHIM_ROUTE_USERNAME and OPENHIM_ROUTE_PASSWORD (another password): OpenHIM's routes then present those, and the mediator accepts only them"},
		nil
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

// checkSubscription reports the Claim subscription without creating one.
func (m *Mediator) checkSubscription(ctx context.Context) (checkResult, error) {
	if disabled, err := m.subscriptions.disabled(ctx); err == nil && disabled {
		return checkResult{warn: true, detail: "disabled by an operator",
			fix: "mediator subscription renew re-enables it"}, nil
	}
	subs, err := m.opts.OpenIMIS.ListSubscriptions(ctx)
	if err != nil {
		return checkResult{}, err
	}
	want := m.subscriptions.want(m.opts.Now())
	for _, s := range subs {
		if s.Criteria == want.Criteria && s.Channel.Endpoint == want.Channel.Endpoint && s.Status == "active" {
			return checkResult{detail: fmt.Sprintf("active (%s, ends %s)", s.ID, s.End)}, nil
		}
	}
	return checkResult{warn: true, detail: "none for this mediator yet",
		fix: "the server creates it at start; openIMIS up to 24.10 refuses Claim subscriptions, and claims then come through catch-up polling only"}, nil
}

// mistypedFormFields lists the OP report fields whose type in a JSON form
// definition does not take the JSON value the mediator sends: the types the
// records API validates (string, integer, boolean, complex), and the date
// types, which the webapp shows from epoch milliseconds.
func mistypedFormFields(def json.RawMessage, form string) []string {
	var f struct {
		Fields map[string]struct {
			Type string `json:"type"`
		} `json:"fields"`
	}
	if json.Unmarshal(def, &f) != nil {
		return nil
	}
	sample, err := mapping.OPReport(mapping.Claim{Created: "2025-06-30"}, "", form)
	if err != nil {
		return nil
	}
	var wrong []string
	for k, v := range sample.Fields {
		typ := f.Fields[k].Type
		var sends string
		ok := true
		switch v.(type) {
		case string:
			sends = "a string"
			ok = typ != "integer" && typ != "boolean" && typ != "complex" && typ != "date" && typ != "bsAggreDate" && typ != "bsDate"
		case int64, int, float64:
			sends = "a number (epoch milliseconds)"
			ok = typ != "string" && typ != "boolean" && typ != "complex"
		}
		if !ok {
			wrong = append(wrong, fmt.Sprintf("%s is %s in the form, the mediator sends %s", k, typ, sends))
		}
	}
	slices.Sort(wrong)
	return wrong
}

// missingFormFields lists the OP report fields that a JSON form definition
// (app_settings.forms.<code>) lacks.
func missingFormFields(def json.RawMessage, form string) ([]string, error) {
	var f struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(def, &f); err != nil || f.Fields == nil {
		return nil, errors.New("the form definition has no fields object")
	}
	sample, err := mapping.OPReport(mapping.Claim{Created: "2025-06-30"}, "", form)
	if err != nil {
		return nil, err
	}
	var missing []string
	for k := range sample.Fields {
		if _, ok := f.Fields[k]; !ok {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	return missing, nil
}
