package openimistest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// fixtureClaimID is the claim the upstream Communication fixtures reference.
const fixtureClaimID = "7ac646cb-d3cd-4660-baeb-ee34ecf0354e"

// feedbackFor returns the upstream Communication fixture about claimID.
func feedbackFor(t *testing.T, claimID string) string {
	t.Helper()
	return strings.ReplaceAll(fixture(t, "test_communication.json"), fixtureClaimID, claimID)
}

// setPayload sets the contentString of the payload with the given code.
func setPayload(code string, value any) func(m map[string]any) {
	return func(m map[string]any) {
		for _, p := range m["payload"].([]any) {
			pm := p.(map[string]any)
			ext := pm["extension"].([]any)[0].(map[string]any)
			coding := ext["valueCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)
			if coding["code"] == code {
				if value == nil {
					delete(pm, "contentString")
					pm["contentAttachment"] = map[string]any{"data": "eA=="}
				} else {
					pm["contentString"] = value
				}
			}
		}
	}
}

// setCode renames a payload code.
func setCode(from, to string) func(m map[string]any) {
	return func(m map[string]any) {
		for _, p := range m["payload"].([]any) {
			ext := p.(map[string]any)["extension"].([]any)[0].(map[string]any)
			coding := ext["valueCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)
			if coding["code"] == from {
				coding["code"] = to
			}
		}
	}
}

func TestCommunication_Create(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	b.srv.AddClaim(openimistest.ClaimResponseFixture(fixtureClaimID, "CLM-7", openimistest.SeedPatientID), b.clock.Now())
	body := fixture(t, "test_communication.json")

	resp := b.do(t, req{method: http.MethodPost, path: "Communication/", body: body})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	m := resp.object(t)
	require.NotContains(t, m, "id")
	require.Equal(t, "completed", m["status"])
	ident := m["identifier"].([]any)[0].(map[string]any)
	code := ident["type"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
	require.Equal(t, "UUID", code)
	feedbackID := ident["value"].(string)
	require.NoError(t, uuid.Validate(feedbackID))
	subject := m["subject"].(map[string]any)
	require.Equal(t, "Patient/"+openimistest.SeedPatientID, subject["reference"])
	require.Equal(t, openimistest.SeedPatientCHFID, subject["display"])
	about := m["about"].([]any)[0].(map[string]any)
	require.Equal(t, "Claim/"+fixtureClaimID, about["reference"])
	require.Equal(t, "CLM-7", about["display"])
	require.Len(t, m["payload"], 5)

	got := b.srv.Communications()
	require.Len(t, got, 1)
	require.Equal(t, openimistest.Communication{
		Asessment: 3, CareRendered: false, ClaimID: fixtureClaimID, Created: b.clock.Now(), DrugPrescribed: true,
		DrugReceived: false, FeedbackID: feedbackID, Owner: "admin", PatientID: openimistest.SeedPatientID,
		PaymentAsked: true, Request: got[0].Request, Response: got[0].Response,
	}, got[0])
	require.JSONEq(t, body, string(got[0].Request))
	require.JSONEq(t, string(resp.body), string(got[0].Response))

	// One feedback per claim.
	resp = b.do(t, req{method: http.MethodPost, path: "Communication/", body: body})
	resp.requireOutcome(t, http.StatusInternalServerError, "error", "Feedback exists for this claim")
	require.Len(t, b.srv.Communications(), 1)
}

func TestCommunication_SubjectByCode(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	patientID := uuid.NewString()
	b.srv.AddPatient(patientID, openimistest.PatientFixture(patientID, "999000001"))
	b.srv.AddClaim(openimistest.ClaimResponseFixture(fixtureClaimID, "CLM-7", patientID), b.clock.Now())
	resp := b.do(t, req{method: http.MethodPost, path: "Communication/", body: fixture(t, "test_communication_with_code_reference.json")})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	require.Equal(t, patientID, b.srv.Communications()[0].PatientID)
}

func TestCommunication_Validation(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		mutate func(m map[string]any)
		text   string // exact, or prefix when it ends with "..."
	}{
		{name: "StatusInProgress", mutate: func(m map[string]any) { m["status"] = "in-progress" },
			text: "status value must be = completed"},
		{name: "StatusMissing", mutate: func(m map[string]any) { delete(m, "status") },
			text: "status value must be = completed"},
		{name: "AboutMissing", mutate: func(m map[string]any) { delete(m, "about") }, text: "about is required"},
		{name: "PayloadMissing", mutate: func(m map[string]any) { delete(m, "payload") }, text: "payload is required"},
		{name: "FourPayloads", mutate: func(m map[string]any) { m["payload"] = m["payload"].([]any)[:4] },
			text: "payload must have 5 elements"},
		{name: "AssessmentDoubleS", mutate: setCode("Asessment", "Assessment"),
			text: "payload must support all five elemets: 'CareRendered', 'PaymentAsked', 'DrugPrescribed', 'DrugReceived', 'Asessment'"},
		{name: "LowerCaseCode", mutate: setCode("CareRendered", "careRendered"), text: "payload must support all five elemets..."},
		{name: "ClaimUnknown", mutate: func(m map[string]any) {
			m["about"] = []any{map[string]any{"reference": "Claim/" + uuid.NewString()}}
		}, text: "Claim does not exist"},
		{name: "ClaimUUIDCaseDiffers", mutate: func(m map[string]any) {
			m["about"] = []any{map[string]any{"reference": "Claim/" + strings.ToUpper(fixtureClaimID)}}
		}, text: "Claim does not exist"},
		{name: "SubjectMissing", mutate: func(m map[string]any) { delete(m, "subject") }, text: "subject is required"},
		{name: "SubjectUnknown", mutate: func(m map[string]any) {
			m["subject"] = map[string]any{"reference": "Patient/" + uuid.NewString()}
		}, text: "Failed to find the resource based on reference(with contain: False, converter: PatientConverter)..."},
		{name: "SubjectMalformed", mutate: func(m map[string]any) {
			m["subject"] = map[string]any{"display": "x"}
		}, text: "Failed to find the resource based on reference..."},
		{name: "TrueInsteadOfYes", mutate: setPayload("CareRendered", "true"),
			text: `["Value for 'CareRendered' must be either 'yes' or 'no' but is 'true'"]`},
		{name: "CapitalYes", mutate: setPayload("DrugReceived", "Yes"),
			text: `["Value for 'DrugReceived' must be either 'yes' or 'no' but is 'Yes'"]`},
		{name: "AttachmentInsteadOfString", mutate: setPayload("PaymentAsked", nil),
			text: `["Value for 'PaymentAsked' must be either 'yes' or 'no' but is 'None'"]`},
		{name: "BooleanJSON", mutate: setPayload("CareRendered", true),
			text: `["Value for 'CareRendered' must be either 'yes' or 'no' but is 'None'"]`},
		{name: "AsessmentNotInteger", mutate: setPayload("Asessment", "good"),
			text: "Field 'asessment' expected a number but got 'good'."},
		{name: "AsessmentDecimal", mutate: setPayload("Asessment", "3.5"),
			text: "Field 'asessment' expected a number but got '3.5'."},
		{name: "UnknownElement", mutate: func(m map[string]any) { m["claim"] = "x" },
			text: "1 validation error for Communication\nclaim\n  extra fields not permitted"},
		{name: "WrongResourceType", mutate: func(m map[string]any) { m["resourceType"] = "QuestionnaireResponse" },
			text: "1 validation error for Communication\nresourceType..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest} {
				b := setup(t, openimistest.Options{ValidationStatus: status})
				b.srv.AddClaim(openimistest.ClaimResponseFixture(fixtureClaimID, "CLM-7", openimistest.SeedPatientID), b.clock.Now())
				resp := b.do(t, req{method: http.MethodPost, path: "Communication/",
					body: mutate(t, fixture(t, "test_communication.json"), tt.mutate)})
				require.Equal(t, status, resp.status, string(resp.body))
				sev, code, text := resp.outcome(t)
				require.Equal(t, "error", sev)
				require.Equal(t, "exception", code)
				if prefix, ok := strings.CutSuffix(tt.text, "..."); ok {
					require.True(t, strings.HasPrefix(text.(string), prefix), text)
				} else {
					require.Equal(t, tt.text, text)
				}
				require.Empty(t, b.srv.Communications())
			}
		})
	}

	t.Run("AboutPrefixIsNotChecked", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{})
		b.srv.AddClaim(openimistest.ClaimResponseFixture(fixtureClaimID, "CLM-7", openimistest.SeedPatientID), b.clock.Now())
		body := mutate(t, fixture(t, "test_communication.json"), func(m map[string]any) {
			m["about"] = []any{map[string]any{"reference": "ClaimV2/" + fixtureClaimID}}
		})
		require.Equal(t, http.StatusCreated, b.do(t, req{method: http.MethodPost, path: "Communication/", body: body}).status)
	})
}

// questionnaireResponse is a minimal completed QuestionnaireResponse about a
// claim.
func questionnaireResponse(claimID string) string {
	return `{"resourceType":"QuestionnaireResponse","status":"completed",` +
		`"subject":{"reference":"Patient/` + openimistest.SeedPatientID + `"},` +
		`"item":[{"linkId":"claim","answer":[{"valueReference":{"reference":"Claim/` + claimID + `"}}]}]}`
}

func TestQuestionnaireResponse_OnlyWhenEnabled(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{QuestionnaireResponse: true, ValidationStatus: http.StatusBadRequest})
	body := questionnaireResponse(openimistest.SeedClaimID)
	b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: questionnaireResponse(uuid.NewString())}).
		requireOutcome(t, http.StatusBadRequest, "error", "Claim does not exist")
	resp := b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: body})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	got := b.srv.QuestionnaireResponses()
	require.Len(t, got, 1)
	require.Equal(t, got[0].ID, resp.object(t)["id"])
	require.Equal(t, openimistest.SeedClaimID, got[0].ClaimID)
	require.Equal(t, "admin", got[0].Owner)
	require.JSONEq(t, body, string(got[0].Body))

	// The claim's single feedback slot is taken, for both resources.
	b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: body}).
		requireOutcome(t, http.StatusBadRequest, "error", "Feedback exists for this claim")
	b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)}).
		requireOutcome(t, http.StatusBadRequest, "error", "Feedback exists for this claim")
}
