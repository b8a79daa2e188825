package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
)

// sourceToken is the Bearer token of the Kodjin fake (a sandbox on
// 127.0.0.1, printed on purpose).
const sourceToken = "kodjin-sandbox"

// The FHIR source's claim outcome and patient.
const (
	sourceClaimID   = "fhir-claim-0001"
	sourceClaimCode = "FHIR-0001"
	sourcePatientID = "fhir-patient-0001"
)

// sourceFake is how --source runs one vendor's fake and configures the
// mediator for it (README "Claims from other FHIR servers").
type sourceFake struct {
	// title names the server in the story.
	title   string
	options fhirtest.Options
	// env are the FHIR_<N>_* variables besides FHIR_<N>_URL, by suffix.
	env map[string]string
	// how says how the claim reaches the mediator.
	how string
}

// sourceFakes are the servers --source plays against, by source name.
var sourceFakes = map[string]sourceFake{
	"kodjin": {
		title:   "Kodjin (R4 criteria subscription; the server PUTs each ClaimResponse to the callback)",
		options: fhirtest.Options{Vendor: fhirtest.Kodjin, Token: sourceToken},
		env:     map[string]string{"VENDOR": "kodjin", "AUTH": "bearer", "TOKEN": sourceToken},
		how:     "notification",
	},
	"hapi": {
		title:   "HAPI FHIR (R4 criteria subscription; the server PUTs each ClaimResponse to the callback)",
		options: fhirtest.Options{Vendor: fhirtest.HAPI},
		env:     map[string]string{"VENDOR": "hapi"},
		how:     "notification",
	},
	"heydonto": {
		// HeyDonto's notification format is undocumented: its subscription
		// stays requested, and the catch-up search brings the claims.
		title:   "HeyDonto (e-mail login, kebab-case paths; its subscription stays requested, so the catch-up search brings the claim)",
		options: fhirtest.Options{Vendor: fhirtest.HeyDonto},
		env: map[string]string{"VENDOR": "heydonto", "AUTH": "login", "USERNAME": fhirtest.DefaultEmail,
			"PASSWORD": fhirtest.DefaultPassword, "POLL_INTERVAL": "1s"},
		how: "search",
	},
	"aidbox": {
		title:   "Aidbox (R4B topic-based subscription; a handshake activates it, then each event comes in a history Bundle, counters as strings)",
		options: fhirtest.Options{Vendor: fhirtest.Aidbox},
		env:     map[string]string{"VENDOR": "aidbox"},
		how:     "notification",
	},
	"aidbox-zen": {
		// Zen calls itself Aidbox too: the vendor is set, so that $status
		// and $events go by GET from the start.
		title:   "Aidbox zen (R4B topic-based subscription; a handshake activates it, then each event comes in a history Bundle, counters as numbers)",
		options: fhirtest.Options{Vendor: fhirtest.AidboxZen},
		env:     map[string]string{"VENDOR": "aidbox-zen"},
		how:     "notification",
	},
}

// sourceNames lists the --source values.
func sourceNames() []string { return slices.Sorted(maps.Keys(sourceFakes)) }

// sourceEnv is the configuration of the source name served by fake.
func sourceEnv(name string, fake *fhirtest.Server) map[string]string {
	src := config.Source{Name: name}
	env := map[string]string{"FHIR_SOURCES": name, src.Var("URL"): fake.BaseURL}
	for k, v := range sourceFakes[name].env {
		env[src.Var(k)] = v
	}
	return env
}

// playSource walks a claim outcome from the FHIR source to the CHT.
func (s *sandbox) playSource(ctx context.Context, step int) error {
	name, fake := s.sourceName, s.source
	sf := sourceFakes[name]
	s.say(fmt.Sprintf("%d. A FHIR server besides openIMIS: %s", step, sf.title))
	var status struct {
		Dialect      string `json:"dialect"`
		Subscription string `json:"subscription"`
		Problem      string `json:"problem"`
	}
	if err := s.wait(ctx, "the source's subscription upkeep", func() bool {
		var ready struct {
			Sources map[string]json.RawMessage `json:"sources"`
		}
		if s.getJSON(ctx, "/ready", &ready) != nil || json.Unmarshal(ready.Sources[name], &status) != nil {
			return false
		}
		subs := fake.Subscriptions()
		switch {
		case status.Subscription == "starting":
			return false
		case sf.how == "notification", status.Subscription == "active":
			// A server that notifies does once its subscription is active
			// (Aidbox's after the handshake).
			return status.Subscription == "active" && len(subs) == 1 && subs[0].Status == "active"
		}
		return true
	}); err != nil {
		return err
	}
	s.detail("FHIR_SOURCES=%s, %s=%s: dialect %s, subscription state %s", name, config.Source{Name: name}.Var("URL"), fake.BaseURL, status.Dialect, status.Subscription)
	if status.Problem != "" {
		s.detail("/ready says: %s", status.Problem)
	}
	for _, sub := range fake.Subscriptions() {
		s.detail("subscription %s on the server: %s, criteria %s, endpoint %s, payload %q", sub.ID, sub.Status, sub.Criteria, sub.Endpoint, sub.Payload)
	}

	created := time.Now().In(time.FixedZone("NPT", 5*3600+45*60)).Format(time.DateOnly)
	fake.AddPatient(fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"gender":"female","birthDate":"1990-04-12",
		"name":[{"family":"Tamang","given":["Sita"]}]}`, sourcePatientID))
	fake.CreateClaimResponse(fmt.Appendf(nil, `{"resourceType":"ClaimResponse","id":%q,"status":"active","outcome":"complete",
		"identifier":[{"system":"http://clinic.example/claims","value":%q}],
		"patient":{"reference":"Patient/%s"},"created":%q}`, sourceClaimID, sourceClaimCode, sourcePatientID, created))
	s.detail("Patient/%s and ClaimResponse/%s (claim %s, created %s) created on the server", sourcePatientID, sourceClaimID, sourceClaimCode, created)

	report, err := s.waitReport(ctx, sourceClaimID)
	if err != nil {
		return err
	}
	switch delivered := successfulDeliveries(fake); {
	case sf.how == "notification" && len(delivered) == 0:
		return fmt.Errorf("%s never notified the mediator (log: %s)", name, s.logPath)
	case len(delivered) > 0:
		for _, d := range delivered {
			s.detail("the server notified: %s %s -> %d", d.Method, d.URL, d.Status)
		}
	default:
		s.detail("the catch-up search found it: GET %s/ClaimResponse?_lastUpdated=ge…", fake.BaseURL)
	}
	person, _ := s.cht.Person(fmt.Sprint(report.Fields["patient_id"]))
	s.detail("person %s: %q, source_patient_id %s", person.ID, person.Doc["name"], person.Doc["source_patient_id"])
	s.detail("report %s: form %s, claim %s (%s), BS date %s-%s-%s", report.ID, report.Form,
		report.Fields["op_claim_id"], report.Fields["op_claim_uuid"], report.Fields["op_year"], report.Fields["op_month"], report.Fields["op_day"])
	s.sourceReport = report.ID
	return nil
}

// successfulDeliveries are the notifications the mediator accepted.
func successfulDeliveries(fake *fhirtest.Server) []fhirtest.Delivery {
	var out []fhirtest.Delivery
	for _, d := range fake.Deliveries() {
		if d.Success {
			out = append(out, d)
		}
	}
	return out
}

// getJSON reads a JSON answer of the mediator.
func (s *sandbox) getJSON(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.mediator+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(body, out)
}
