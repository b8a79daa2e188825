package openimistest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// feedbackCodes are the payload codes of a feedback, in upstream's output
// order and spelling: "Asessment" with a single s (defaultConfig.py, trap 12).
var feedbackCodes = []string{"CareRendered", "PaymentAsked", "DrugPrescribed", "DrugReceived", "Asessment"}

// igBase is the system base URL of the openIMIS FHIR IG.
const igBase = "https://openimis.github.io/openimis_fhir_r4_ig/"

// Communication is a feedback stored by POST Communication/, as returned by
// [Server.Communications].
type Communication struct {
	// Asessment is the rating (upstream's spelling).
	Asessment int
	// CareRendered, DrugPrescribed, DrugReceived and PaymentAsked are the
	// yes/no answers.
	CareRendered, DrugPrescribed, DrugReceived, PaymentAsked bool
	// ClaimID is the claim the feedback is about.
	ClaimID string
	// Created is the server clock's time of creation (feedback_date).
	Created time.Time
	// FeedbackID is the new feedback UUID, identifier[0].value of the answer.
	FeedbackID string
	// Owner is the user who posted the feedback.
	Owner string
	// PatientID is the insuree the subject resolved to.
	PatientID string
	// Request is the posted body.
	Request json.RawMessage
	// Response is the 201 body (without "id", as upstream).
	Response json.RawMessage
}

// Communications returns every feedback stored through POST Communication/,
// oldest first.
func (s *Server) Communications() []Communication {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.communications)
}

// CommunicationCount returns how many feedbacks were stored.
func (s *Server) CommunicationCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.communications)
}

// communicationElements are the elements fhir.resources R4B accepts on a
// Communication.
var communicationElements = []string{"resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
	"extension", "modifierExtension", "identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf",
	"inResponseTo", "status", "statusReason", "category", "priority", "medium", "subject", "topic", "about",
	"encounter", "sent", "received", "recipient", "sender", "reasonCode", "reasonReference", "payload", "note"}

// createCommunication answers POST Communication/, the only way feedback
// goes in (converters/communicationConverter.py, serializers/
// communicationSerializer.py; §5, traps 12, 13). In upstream's order, each
// failure a validation error (500 in 24.10): the fhir.resources parse (no
// unknown element); status "completed"; about and payload present; exactly
// 5 payloads whose extension[0].valueCodeableConcept.coding[0].code are
// exactly the five codes; the claim of about[0].reference (after the last
// "/", matched as the exact stored string) exists ("Claim does not exist");
// subject resolves to an insuree ("Patient/<uuid>", or type Patient with an
// identifier of type Code holding the CHFID); the four booleans are exactly
// "yes" or "no" in contentString; then the serializer refuses a second
// feedback ("Feedback exists for this claim") and the database needs an
// integer Asessment. 201 with the Communication: identifier[0] the feedback
// UUID, no "id".
func (c *call) createCommunication() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	p := pydantic{model: "Communication"}
	p.elements(m, "Communication", communicationElements)
	if err := p.err(c.s); err != nil {
		c.fail(err)
		return
	}
	about, _ := m["about"].([]any)
	payloads, _ := m["payload"].([]any)
	answers := map[string]string{}
	for _, it := range payloads {
		code := payloadCode(asObject(it))
		content, ok := asObject(it)["contentString"].(string)
		if !ok {
			content = "None"
		}
		answers[code] = content
	}
	codes := slices.Sorted(maps.Keys(answers))
	aboutRef, _ := asObject(slices.Concat(about, []any{nil})[0])["reference"].(string)
	claimID := aboutRef[strings.LastIndex(aboutRef, "/")+1:]

	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.claims[claimID]
	subject, hasSubject := m["subject"].(map[string]any)
	pat := s.patientByReference(subject)
	rules := []rule{
		{m["status"] != "completed", "status value must be = completed"},
		{len(about) == 0, "about is required"},
		{len(payloads) == 0, "payload is required"},
		{len(payloads) != 5, "payload must have 5 elements"},
		{!slices.Equal(codes, slices.Sorted(slices.Values(feedbackCodes))),
			"payload must support all five elemets: 'CareRendered', 'PaymentAsked', 'DrugPrescribed', 'DrugReceived', 'Asessment'"},
		{cl == nil, "Claim does not exist"},
		{!hasSubject, "subject is required"},
		{pat == nil, "Failed to find the resource based on reference(with contain: False, converter: PatientConverter)"},
	}
	for _, code := range feedbackCodes[:4] {
		rules = append(rules, rule{answers[code] != "yes" && answers[code] != "no",
			fmt.Sprintf(`["Value for '%s' must be either 'yes' or 'no' but is '%s'"]`, code, answers[code])})
	}
	asessment, notInt := strconv.Atoi(strings.TrimSpace(answers["Asessment"]))
	rules = append(rules,
		rule{cl != nil && cl.feedback != "", "Feedback exists for this claim"},
		rule{notInt != nil, fmt.Sprintf("Field 'asessment' expected a number but got '%s'.", answers["Asessment"])},
		rule{asessment < -32768 || asessment > 32767, "smallint out of range"})
	if text := firstBroken(rules); text != "" {
		c.fail(s.errValidation(text))
		return
	}

	cl.feedback = uuid.NewString()
	// The answer is rendered from the stored feedback: its subject is the
	// claim's insuree, its display the CHFID.
	patientID, display := cl.patientID, ""
	if p := s.patients[patientID]; p != nil {
		display = p.chfID
	}
	payload := make([]any, len(feedbackCodes))
	for i, code := range feedbackCodes {
		payload[i] = map[string]any{
			"contentString": answers[code],
			"extension": []any{map[string]any{
				"url": igBase + "StructureDefinition/communication-payload-type",
				"valueCodeableConcept": map[string]any{
					"coding": []any{map[string]any{"system": igBase + "CodeSystem/feedback-payload", "code": code}},
				},
			}},
		}
	}
	resp := mustMarshal(map[string]any{
		"resourceType": "Communication",
		"identifier":   []any{uuidIdentifier(cl.feedback)},
		"status":       "completed",
		"subject":      reference("Patient", patientID, display),
		"about":        []any{reference("Claim", cl.id, cl.code)},
		"payload":      payload,
	})
	s.communications = append(s.communications, Communication{
		Asessment: asessment, CareRendered: answers["CareRendered"] == "yes", PaymentAsked: answers["PaymentAsked"] == "yes",
		DrugPrescribed: answers["DrugPrescribed"] == "yes", DrugReceived: answers["DrugReceived"] == "yes",
		ClaimID: cl.id, Created: s.now(), FeedbackID: cl.feedback, Owner: c.user.name, PatientID: pat.id,
		Request: slices.Clone(c.body), Response: resp,
	})
	c.json(http.StatusCreated, resp)
}

// payloadCode reads payload.extension[0].valueCodeableConcept.coding[0].code.
func payloadCode(pl map[string]any) string {
	ext, _ := pl["extension"].([]any)
	if len(ext) == 0 {
		return ""
	}
	coding, _ := asObject(asObject(ext[0])["valueCodeableConcept"])["coding"].([]any)
	if len(coding) == 0 {
		return ""
	}
	code, _ := asObject(coding[0])["code"].(string)
	return code
}

// QuestionnaireResponse is a QuestionnaireResponse stored by POST
// QuestionnaireResponse/ (only with [Options.QuestionnaireResponse]).
type QuestionnaireResponse struct {
	// Body is the posted body.
	Body json.RawMessage
	// ClaimID is the claim it referenced.
	ClaimID string
	// Created is the server clock's time of creation.
	Created time.Time
	// ID is the id the fake assigned, also in the 201 body.
	ID string
	// Owner is the user who posted it.
	Owner string
}

// QuestionnaireResponses returns every QuestionnaireResponse stored, oldest
// first.
func (s *Server) QuestionnaireResponses() []QuestionnaireResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.questionnaires)
}

// createQuestionnaireResponse answers POST QuestionnaireResponse/, which no
// openIMIS release has (api_fhir_r4/urls.py; trap 12): it exists only with
// [Options.QuestionnaireResponse], for a mediator that prefers it where it
// exists. The fake's rules: resourceType QuestionnaireResponse, status
// "completed", and a "reference": "Claim/<id>" anywhere naming an existing
// claim, whose single feedback slot it shares with Communication. 201 with
// the body plus a new "id".
func (c *call) createQuestionnaireResponse() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var cl *claim
	for _, id := range claimReferences(m, nil) {
		if cl == nil {
			cl = s.claims[id]
		}
	}
	if text := firstBroken([]rule{
		{m["resourceType"] != "QuestionnaireResponse", "resourceType must be QuestionnaireResponse"},
		{m["status"] != "completed", "status value must be = completed"},
		{cl == nil, "Claim does not exist"},
		{cl != nil && cl.feedback != "", "Feedback exists for this claim"},
	}); text != "" {
		c.fail(s.errValidation(text))
		return
	}
	cl.feedback = uuid.NewString()
	s.questionnaires = append(s.questionnaires, QuestionnaireResponse{
		Body: slices.Clone(c.body), ClaimID: cl.id, Created: s.now(), ID: cl.feedback, Owner: c.user.name,
	})
	m["id"] = cl.feedback
	c.json(http.StatusCreated, m)
}

// claimReferences collects the ids of every "reference": "Claim/<id>" in v.
func claimReferences(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if ref, ok := e.(string); ok && k == "reference" && strings.HasPrefix(ref, "Claim/") {
				out = append(out, strings.TrimPrefix(ref, "Claim/"))
			}
			out = claimReferences(e, out)
		}
	case []any:
		for _, e := range x {
			out = claimReferences(e, out)
		}
	}
	return out
}
