package openimistest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Feedback payload codes, exactly as upstream spells them ("Asessment" with a
// single s).
const (
	codeCareRendered   = "CareRendered"
	codePaymentAsked   = "PaymentAsked"
	codeDrugPrescribed = "DrugPrescribed"
	codeDrugReceived   = "DrugReceived"
	codeAsessment      = "Asessment"
)

// feedbackCodes is the payload order of upstream's Communication output.
var feedbackCodes = []string{codeCareRendered, codePaymentAsked, codeDrugPrescribed, codeDrugReceived, codeAsessment}

// igBase is the system base URL of the openIMIS FHIR IG.
const igBase = "https://openimis.github.io/openimis_fhir_r4_ig/"

// Communication is a claim feedback stored by POST Communication/, as
// returned by [Server.Communications].
type Communication struct {
	// Asessment is the rating (upstream's spelling).
	Asessment int
	// CareRendered is the CareRendered answer.
	CareRendered bool
	// ClaimID is the claim id the feedback is about (about[0] after the last
	// "/").
	ClaimID string
	// Created is the server clock's time of creation (feedback_date).
	Created time.Time
	// DrugPrescribed is the DrugPrescribed answer.
	DrugPrescribed bool
	// DrugReceived is the DrugReceived answer.
	DrugReceived bool
	// FeedbackID is the new feedback UUID, identifier[0].value of the answer.
	FeedbackID string
	// Owner is the user who posted the feedback.
	Owner string
	// PatientID is the insuree id the subject resolved to.
	PatientID string
	// PaymentAsked is the PaymentAsked answer.
	PaymentAsked bool
	// Request is the posted body.
	Request json.RawMessage
	// Response is the 201 body (without "id", as upstream).
	Response json.RawMessage
}

var communicationsView = view{
	auth: true, lastUpdated: true, name: "Communication/",
	handlers:    map[string]func(*call){http.MethodPost: (*call).createCommunication},
	notModelled: []string{http.MethodGet},
	rights:      map[string]int{http.MethodGet: rightFeedbackSelect, http.MethodPost: RightFeedbackDeliver},
}

var communicationView = view{
	auth: true, lastUpdated: true, name: "Communication/<id>/",
	notModelled: []string{http.MethodGet, http.MethodPut, http.MethodDelete},
	rights: map[string]int{
		http.MethodGet: rightFeedbackSelect, http.MethodPut: RightFeedbackDeliver, http.MethodDelete: rightFeedbackSelect,
	},
}

// Communications returns every feedback stored through POST Communication/,
// oldest first.
func (s *Server) Communications() []Communication {
	return s.communicationsCopy()
}

// CommunicationCount returns how many feedbacks were stored, without copying
// them (for load tests that poll it).
func (s *Server) CommunicationCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.communications)
}

func (s *Server) communicationsCopy() []Communication {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Communication, len(s.communications))
	for i, cm := range s.communications {
		cm.Request = append(json.RawMessage(nil), cm.Request...)
		cm.Response = append(json.RawMessage(nil), cm.Response...)
		out[i] = cm
	}
	return out
}

// Element names fhir.resources R4B accepts on Communication and its payload.
var (
	communicationFields = append(slices.Clone(domainResourceFields),
		"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf", "inResponseTo", "status",
		"statusReason", "category", "priority", "medium", "subject", "topic", "about", "encounter", "sent",
		"received", "recipient", "sender", "reasonCode", "reasonReference", "payload", "note")
	payloadFields = []string{
		"id", "extension", "modifierExtension", "contentString", "contentAttachment", "contentReference",
	}
)

// createCommunication answers POST Communication/ like CommunicationConverter
// and CommunicationSerializer (contract §5), in upstream's order.
func (c *call) createCommunication() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	fb, err := c.s.convertCommunication(m)
	if err != nil {
		c.fail(err)
		return
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	cl := c.s.claims[fb.claimID]
	if cl == nil {
		c.fail(c.s.errValidation("Claim does not exist"))
		return
	}
	if cl.feedback != "" {
		c.fail(c.s.errValidation("Feedback exists for this claim"))
		return
	}
	asessment, ok := pyInt(fb.asessment)
	if !ok {
		got := "None"
		if fb.hasAsessment {
			got = pyRepr(fb.asessment)
		}
		c.fail(c.s.errValidation(fmt.Sprintf("Field 'asessment' expected a number but got %s.", got)))
		return
	}
	if asessment < -32768 || asessment > 32767 {
		c.fail(c.s.errValidation("smallint out of range"))
		return
	}

	feedbackID := uuid.NewString()
	cl.feedback = feedbackID
	// The answer is rendered from the stored feedback: its subject is the
	// claim's insuree, not necessarily the posted subject.
	patientID := cl.patientID
	if patientID == "" {
		patientID = fb.patient.id
	}
	display := ""
	if p := c.s.patients[patientID]; p != nil {
		display = p.chfID
	}
	answers := map[string]string{
		codeCareRendered: yesNo(fb.answers[codeCareRendered]), codePaymentAsked: yesNo(fb.answers[codePaymentAsked]),
		codeDrugPrescribed: yesNo(fb.answers[codeDrugPrescribed]), codeDrugReceived: yesNo(fb.answers[codeDrugReceived]),
		codeAsessment: fb.asessment,
	}
	payload := make([]any, len(feedbackCodes))
	for i, code := range feedbackCodes {
		payload[i] = feedbackPayload(code, answers[code])
	}
	resp := mustMarshal(map[string]any{
		"resourceType": "Communication",
		"identifier":   []any{uuidIdentifier(feedbackID)},
		"status":       "completed",
		"subject":      reference("Patient", patientID, display),
		"about":        []any{reference("Claim", cl.id, cl.code)},
		"payload":      payload,
	})
	c.s.communications = append(c.s.communications, Communication{
		Asessment:      int(asessment),
		CareRendered:   fb.answers[codeCareRendered],
		ClaimID:        cl.id,
		Created:        c.s.now(),
		DrugPrescribed: fb.answers[codeDrugPrescribed],
		DrugReceived:   fb.answers[codeDrugReceived],
		FeedbackID:     feedbackID,
		Owner:          c.user.name,
		PatientID:      fb.patient.id,
		PaymentAsked:   fb.answers[codePaymentAsked],
		Request:        append(json.RawMessage(nil), c.body...),
		Response:       resp,
	})
	c.json(http.StatusCreated, resp)
}

// yesNo renders a stored boolean answer.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// feedbackPayload builds one Communication.payload element.
func feedbackPayload(code, content string) map[string]any {
	return map[string]any{
		"contentString": content,
		"extension": []any{map[string]any{
			"url": igBase + "StructureDefinition/communication-payload-type",
			"valueCodeableConcept": map[string]any{
				"coding": []any{map[string]any{"system": igBase + "CodeSystem/feedback-payload", "code": code}},
			},
		}},
	}
}

// feedback is a Communication body after CommunicationConverter.to_imis_obj.
type feedback struct {
	answers      map[string]bool
	asessment    string
	claimID      string
	hasAsessment bool
	patient      *patient
}

// convertCommunication validates a Communication body like fhir.resources,
// then CommunicationConverter.to_imis_obj.
func (s *Server) convertCommunication(m map[string]any) (*feedback, *apiError) {
	p := &pydanticErrors{model: "Communication"}
	p.resourceType(m, "Communication")
	p.extra("", m, communicationFields)
	status, _ := p.primitive("", m, "status", true)
	subject, hasSubject := p.object("", m, "subject", false)
	about, _ := p.list("", m, "about")
	payloads, _ := p.list("", m, "payload")
	for i, a := range about {
		if _, ok := a.(map[string]any); !ok {
			p.add(fmt.Sprintf("about -> %d", i), "value is not a valid dict", "type_error.dict")
		}
	}
	for i, it := range payloads {
		loc := fmt.Sprintf("payload -> %d", i)
		pl, ok := it.(map[string]any)
		if !ok {
			p.add(loc, "value is not a valid dict", "type_error.dict")
			continue
		}
		p.extra(loc, pl, payloadFields)
		n := 0
		for _, k := range []string{"contentString", "contentAttachment", "contentReference"} {
			if pl[k] != nil {
				n++
			}
		}
		if n != 1 {
			p.add(loc+" -> __root__", "Expect any of field value from this list "+
				"['contentString', 'contentAttachment', 'contentReference'].", "value_error")
		}
		p.primitive(loc, pl, "contentString", false)
		p.list(loc, pl, "extension")
	}
	if len(p.lines) > 0 {
		return nil, s.errValidation(p.String())
	}

	if status != "completed" {
		return nil, s.errValidation("status value must be = completed")
	}
	if len(about) == 0 {
		return nil, s.errValidation("about is required")
	}
	if len(payloads) == 0 {
		return nil, s.errValidation("payload is required")
	}
	if len(payloads) != 5 {
		return nil, s.errValidation("payload must have 5 elements")
	}
	codes := make([]string, len(payloads))
	for i, it := range payloads {
		code, errText := payloadCode(asObject(it))
		if errText != "" {
			return nil, s.errValidation(errText)
		}
		codes[i] = code
	}
	if !slices.Equal(slices.Sorted(slices.Values(codes)), slices.Sorted(slices.Values(feedbackCodes))) {
		return nil, s.errValidation("payload must support all five elemets: 'CareRendered', 'PaymentAsked', " +
			"'DrugPrescribed', 'DrugReceived', 'Asessment'")
	}

	fb := &feedback{answers: map[string]bool{}}
	ref, ok := asObject(about[0])["reference"].(string)
	switch {
	case !ok:
		return nil, s.errValidation("'NoneType' object has no attribute 'rsplit'")
	case !strings.Contains(ref, "/"):
		return nil, s.errValidation("list index out of range")
	}
	fb.claimID = ref[strings.LastIndex(ref, "/")+1:]

	s.mu.Lock()
	_, claimExists := s.claims[fb.claimID]
	var pat *patient
	var malformed string
	if hasSubject {
		pat, malformed = s.patientByReference(subject)
	}
	s.mu.Unlock()
	if !claimExists {
		return nil, s.errValidation("Claim does not exist")
	}
	switch {
	case !hasSubject:
		return nil, s.errValidation("subject is required")
	case malformed != "":
		return nil, s.errValidation(malformed)
	case pat == nil:
		return nil, s.errValidation("Failed to find the resource based on reference(with contain: False, " +
			"converter: PatientConverter): " + pydanticRepr(subject))
	}
	fb.patient = pat

	for _, it := range payloads {
		pl := asObject(it)
		code, _ := payloadCode(pl)
		content, hasContent := pl["contentString"].(string)
		if code == codeAsessment {
			fb.asessment, fb.hasAsessment = content, hasContent
			continue
		}
		if content != "yes" && content != "no" {
			got := content
			if !hasContent {
				got = "None"
			}
			return nil, s.errValidation(pyListRepr(
				fmt.Sprintf("Value for '%s' must be either 'yes' or 'no' but is '%s'", code, got)))
		}
		fb.answers[code] = content == "yes"
	}
	return fb, nil
}

// payloadCode reads payload.extension[0].valueCodeableConcept.coding[0].code,
// returning the Python error text upstream would raise on the way.
func payloadCode(pl map[string]any) (string, string) {
	exts, ok := pl["extension"].([]any)
	switch {
	case !ok:
		return "", "'NoneType' object is not subscriptable"
	case len(exts) == 0:
		return "", "list index out of range"
	}
	vcc, ok := asObject(exts[0])["valueCodeableConcept"].(map[string]any)
	if !ok {
		return "", "'NoneType' object has no attribute 'coding'"
	}
	coding, ok := vcc["coding"].([]any)
	switch {
	case !ok:
		return "", "'NoneType' object is not subscriptable"
	case len(coding) == 0:
		return "", "list index out of range"
	}
	code, ok := asObject(coding[0])["code"].(string)
	if !ok {
		return "", "'<' not supported between instances of 'NoneType' and 'str'"
	}
	return code, ""
}

// pydanticRepr approximates str() of a fhir.resources Reference.
func pydanticRepr(ref map[string]any) string {
	var parts []string
	for _, k := range []string{"reference", "type", "identifier", "display"} {
		if v, ok := ref[k]; ok {
			if s, ok := v.(string); ok {
				parts = append(parts, k+"="+pyRepr(s))
			} else {
				parts = append(parts, k+"="+string(mustMarshal(v)))
			}
		}
	}
	return "resource_type='Reference' " + strings.Join(parts, " ")
}
