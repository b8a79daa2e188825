package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// Canonical URLs of the project's FHIR artefacts.
const (
	// QuestionnaireURL is the canonical URL of the claim-feedback
	// Questionnaire shipped in testdata/questionnaire-claim-feedback.json.
	QuestionnaireURL = "https://github.com/cht-openimis/mediator/fhir/Questionnaire/claim-feedback"
	// CHTReportSystem is the identifier system of CHT report ids.
	CHTReportSystem = "https://github.com/cht-openimis/mediator/fhir/cht-report-id"
	// CommunicationProfile is openIMIS's feedback profile.
	CommunicationProfile = "https://openimis.github.io/openimis_fhir_r4_ig/StructureDefinition/openimis-communication"
	// PayloadTypeURL and PayloadSystem type a Communication payload.
	PayloadTypeURL = "https://openimis.github.io/openimis_fhir_r4_ig/StructureDefinition/communication-payload-type"
	PayloadSystem  = "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/feedback-payload"
)

// The Questionnaire's linkIds; a test checks them against the shipped
// Questionnaire.
const (
	LinkClaim            = "claim"
	LinkCareRendered     = "care_rendered"
	LinkPaymentAsked     = "payment_asked"
	LinkDrugPrescribed   = "drug_prescribed"
	LinkDrugReceived     = "drug_received"
	LinkAssessmentRating = "assessment_rating"
)

// payloadCodes maps the yes/no linkIds and the rating to openIMIS's five
// payload codes; "Asessment" has one s in openIMIS (docs/upstreams/openimis.md §5).
var payloadCodes = []struct{ link, code string }{
	{LinkCareRendered, "CareRendered"},
	{LinkPaymentAsked, "PaymentAsked"},
	{LinkDrugPrescribed, "DrugPrescribed"},
	{LinkDrugReceived, "DrugReceived"},
	{LinkAssessmentRating, "Asessment"},
}

// QuestionnaireResponse is the canonical FHIR form of a feedback: completed,
// answering the claim-feedback Questionnaire, about the insuree (subject)
// and the claim (the "claim" item), identified by the CHT report id.
func QuestionnaireResponse(f Feedback) openimis.QuestionnaireResponse {
	yes := func(b bool) []openimis.QRAnswer { return []openimis.QRAnswer{{ValueBoolean: &b}} }
	rating := f.Rating
	qr := openimis.QuestionnaireResponse{
		ResourceType:  "QuestionnaireResponse",
		Identifier:    &openimis.Identifier{System: CHTReportSystem, Value: f.DocID},
		Questionnaire: QuestionnaireURL,
		Status:        "completed",
		Item: []openimis.QRItem{
			{LinkID: LinkClaim, Answer: []openimis.QRAnswer{{ValueReference: &openimis.Reference{Reference: "Claim/" + f.ClaimUUID}}}},
			{LinkID: LinkCareRendered, Answer: yes(f.CareRendered)},
			{LinkID: LinkPaymentAsked, Answer: yes(f.PaymentAsked)},
			{LinkID: LinkDrugPrescribed, Answer: yes(f.DrugPrescribed)},
			{LinkID: LinkDrugReceived, Answer: yes(f.DrugReceived)},
			{LinkID: LinkAssessmentRating, Answer: []openimis.QRAnswer{{ValueInteger: &rating}}},
		},
	}
	if f.InsureeUUID != "" {
		qr.Subject = &openimis.Reference{Reference: "Patient/" + f.InsureeUUID}
	}
	return qr
}

// ErrNoInsuree is a feedback whose insuree is unknown: openIMIS needs the
// Communication's subject.
var ErrNoInsuree = errors.New("feedback without insuree")

// Communication turns a claim-feedback QuestionnaireResponse into the
// Communication openIMIS accepts (docs/upstreams/openimis.md §5, trap 12): about
// Claim/<uuid as received>, subject Patient/<uuid>, and exactly five payloads,
// "yes"/"no" for the four questions and an integer string for the rating.
func Communication(qr openimis.QuestionnaireResponse) (openimis.Communication, error) {
	answers := make(map[string]openimis.QRAnswer, len(qr.Item))
	for _, it := range qr.Item {
		if len(it.Answer) == 1 {
			answers[it.LinkID] = it.Answer[0]
		}
	}
	var errs FieldErrors
	claim := answers[LinkClaim].ValueReference
	if claim == nil || !strings.HasPrefix(claim.Reference, "Claim/") {
		errs.add(LinkClaim, "needs a Claim reference")
	}
	if qr.Subject == nil || qr.Subject.Reference == "" {
		errs.add("subject", ErrNoInsuree.Error())
	}
	comm := openimis.Communication{
		ResourceType: "Communication",
		Meta:         &openimis.Meta{Profile: []string{CommunicationProfile}},
		Status:       "completed",
		Subject:      qr.Subject,
	}
	if claim != nil {
		comm.About = []openimis.Reference{{Reference: claim.Reference}}
	}
	for _, pc := range payloadCodes {
		a, ok := answers[pc.link]
		var content string
		switch {
		case !ok:
			errs.add(pc.link, "has no answer")
			continue
		case pc.link == LinkAssessmentRating && a.ValueInteger != nil:
			content = strconv.Itoa(*a.ValueInteger)
		case pc.link != LinkAssessmentRating && a.ValueBoolean != nil:
			content = map[bool]string{true: "yes", false: "no"}[*a.ValueBoolean]
		default:
			errs.add(pc.link, fmt.Sprintf("has an answer of the wrong type for %s", pc.code))
			continue
		}
		comm.Payload = append(comm.Payload, openimis.Payload{
			ContentString: content,
			Extension: []openimis.Extension{{
				URL: PayloadTypeURL,
				ValueCodeableConcept: &openimis.CodeableConcept{
					Coding: []openimis.Coding{{System: PayloadSystem, Code: pc.code}},
				},
			}},
		})
	}
	if err := errs.err(); err != nil {
		return openimis.Communication{}, err
	}
	return comm, nil
}
