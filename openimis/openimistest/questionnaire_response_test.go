package openimistest_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// questionnaireResponse is a minimal completed QuestionnaireResponse about a
// claim.
func questionnaireResponse(claimID string) string {
	return `{"resourceType":"QuestionnaireResponse","status":"completed",` +
		`"questionnaire":"https://example.org/Questionnaire/claims-feedback",` +
		`"subject":{"reference":"Patient/` + openimistest.SeedPatientID + `"},` +
		`"item":[{"linkId":"claim","answer":[{"valueReference":{"reference":"Claim/` + claimID + `"}}]},` +
		`{"linkId":"care_rendered","answer":[{"valueBoolean":true}]}]}`
}

func TestQuestionnaireResponse_Disabled(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})
	resp := b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: questionnaireResponse(openimistest.SeedClaimID)})
	require.Equal(t, http.StatusNotFound, resp.status)
	require.Equal(t, "text/html; charset=utf-8", resp.header.Get("Content-Type"))
	require.Contains(t, string(resp.body), "Page not found")
	// Without the slash it is a 404 too: there is no route to append a slash to.
	resp = b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse", body: questionnaireResponse(openimistest.SeedClaimID)})
	require.Equal(t, http.StatusNotFound, resp.status)
}

func TestQuestionnaireResponse_Enabled(t *testing.T) {
	t.Parallel()

	t.Run("Created", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{QuestionnaireResponse: true})
		body := questionnaireResponse(openimistest.SeedClaimID)
		resp := b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: body})
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		m := resp.object(t)
		got := b.srv.QuestionnaireResponses()
		require.Len(t, got, 1)
		require.Equal(t, got[0].ID, m["id"])
		require.Equal(t, openimistest.SeedClaimID, got[0].ClaimID)
		require.Equal(t, "admin", got[0].Owner)
		require.JSONEq(t, body, string(got[0].Body))

		// The claim's single feedback slot is taken, for both resources.
		resp = b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: body})
		resp.requireOutcome(t, http.StatusInternalServerError, "error", "Feedback exists for this claim")
		resp = b.do(t, req{method: http.MethodPost, path: "Communication/", body: feedbackFor(t, openimistest.SeedClaimID)})
		resp.requireOutcome(t, http.StatusInternalServerError, "error", "Feedback exists for this claim")
	})

	t.Run("Rules", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{QuestionnaireResponse: true, ValidationStatus: http.StatusBadRequest})
		tests := []struct {
			body string
			text string
		}{
			{body: mutate(t, questionnaireResponse(openimistest.SeedClaimID), func(m map[string]any) { m["status"] = "in-progress" }),
				text: "status value must be = completed"},
			{body: mutate(t, questionnaireResponse(openimistest.SeedClaimID), func(m map[string]any) { m["resourceType"] = "Communication" }),
				text: "resourceType must be QuestionnaireResponse"},
			{body: mutate(t, questionnaireResponse(openimistest.SeedClaimID), func(m map[string]any) { delete(m, "item") }),
				text: `a reference "Claim/<uuid>" is required`},
			{body: questionnaireResponse("00000000-0000-4000-8000-000000000000"), text: "Claim does not exist"},
		}
		for _, tt := range tests {
			b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: tt.body}).
				requireOutcome(t, http.StatusBadRequest, "error", tt.text)
		}
		require.Empty(t, b.srv.QuestionnaireResponses())
	})

	t.Run("NeedsDeliverRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{QuestionnaireResponse: true, Rights: []int{openimistest.RightClaimRead}})
		resp := b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: questionnaireResponse(openimistest.SeedClaimID)})
		require.Equal(t, http.StatusForbidden, resp.status)
	})

	t.Run("FHIRJSONIs415", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openimistest.Options{QuestionnaireResponse: true})
		resp := b.do(t, req{method: http.MethodPost, path: "QuestionnaireResponse/", body: questionnaireResponse(openimistest.SeedClaimID),
			contentType: "application/fhir+json"})
		require.Equal(t, http.StatusUnsupportedMediaType, resp.status)
	})
}
