package openimis_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestClient_CreateCommunication(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		id, err := b.client.CreateCommunication(t.Context(), feedback(t))
		require.NoError(t, err)
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, id)

		stored := b.server.Communications()
		require.Len(t, stored, 1)
		got := stored[0]
		require.Equal(t, id, got.FeedbackID)
		require.Equal(t, openimistest.SeedClaimID, got.ClaimID)
		require.Equal(t, openimistest.SeedPatientID, got.PatientID)
		require.Equal(t, "admin", got.Owner)
		require.False(t, got.CareRendered)
		require.True(t, got.PaymentAsked)
		require.True(t, got.DrugPrescribed)
		require.False(t, got.DrugReceived)
		require.Equal(t, 3, got.Asessment)
		require.Contains(t, string(got.Request), `"resourceType":"Communication"`, "the client sets resourceType")

		cr, err := b.client.GetClaimResponse(t.Context(), openimistest.SeedClaimID)
		require.NoError(t, err)
		require.Len(t, cr.Communication, 1, "the claim now points at its feedback")
	})

	t.Run("SecondIsFeedbackExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		_, err := b.client.CreateCommunication(t.Context(), feedback(t))
		require.NoError(t, err)
		id, err := b.client.CreateCommunication(t.Context(), feedback(t))
		require.Empty(t, id)
		require.True(t, openimis.FeedbackExists(err), "%v", err)
		requireAPIError(t, err, http.StatusInternalServerError, false)
		require.Len(t, b.server.Communications(), 1)
	})

	t.Run("LostAnswerThenRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.DropNext(1)

		_, err := b.client.CreateCommunication(t.Context(), feedback(t))
		require.Error(t, err)
		require.False(t, openimis.FeedbackExists(err))
		_, err = b.client.CreateCommunication(t.Context(), feedback(t))
		require.True(t, openimis.FeedbackExists(err), "the retry finds the feedback stored: %v", err)
		require.Len(t, b.server.Communications(), 1)
	})

	t.Run("TrueInsteadOfYes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		comm := feedback(t)
		comm.Payload[0].ContentString = "true"

		_, err := b.client.CreateCommunication(t.Context(), comm)
		ae := requireAPIError(t, err, http.StatusInternalServerError, true)
		require.Contains(t, ae.Message, "must be either 'yes' or 'no'")
		require.Equal(t, openimistest.FHIRPath+"Communication/", ae.Path)
		require.False(t, openimis.FeedbackExists(err))
		require.Empty(t, b.server.Communications())
	})

	t.Run("UnknownClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		comm := feedback(t)
		comm.About[0].Reference = "Claim/00000000-0000-4000-8000-000000000000"

		_, err := b.client.CreateCommunication(t.Context(), comm)
		ae := requireAPIError(t, err, http.StatusInternalServerError, true)
		require.Contains(t, ae.Message, "Claim does not exist")
	})

	t.Run("ValidationStatus400", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.ValidationStatus = http.StatusBadRequest })
		comm := feedback(t)
		comm.Payload[1].ContentString = "Yes"

		_, err := b.client.CreateCommunication(t.Context(), comm)
		ae := requireAPIError(t, err, http.StatusBadRequest, true)
		require.Contains(t, ae.Message, "must be either 'yes' or 'no'")
		require.Empty(t, b.server.Communications())
	})

	t.Run("FeedbackExistsWithValidationStatus400", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.ValidationStatus = http.StatusBadRequest })

		_, err := b.client.CreateCommunication(t.Context(), feedback(t))
		require.NoError(t, err)
		_, err = b.client.CreateCommunication(t.Context(), feedback(t))
		require.True(t, openimis.FeedbackExists(err), "%v", err)
		requireAPIError(t, err, http.StatusBadRequest, true)
	})

	t.Run("MissingRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.Rights = []int{openimistest.RightClaimRead} })

		_, err := b.client.CreateCommunication(t.Context(), feedback(t))
		requireAPIError(t, err, http.StatusForbidden, true)
		require.Empty(t, b.server.Communications())
	})
}

// TestClient_CreateCommunication_AnswerShapes: a 2xx stores the feedback
// whatever its answer names, so none of these may fail (a retry would only
// be refused with "Feedback exists for this claim").
func TestClient_CreateCommunication_AnswerShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, location, answer, want string }{
		{"IdentifierAsOpenIMIS", "", `{"resourceType":"Communication","identifier":[{"value":"7c5b1c2a-3f8e-4b6a-9d0e-1a2b3c4d5e6f"}]}`, "7c5b1c2a-3f8e-4b6a-9d0e-1a2b3c4d5e6f"},
		{"IDAsGenericFHIR", "", `{"resourceType":"Communication","id":"42"}`, "42"},
		{"IdentifierBeforeID", "", `{"resourceType":"Communication","id":"42","identifier":[{"value":"u"}]}`, "u"},
		{"Neither", "", `{"resourceType":"Communication"}`, ""},
		{"EmptyWithLocation", "/fhir/Communication/77/_history/1", ``, "77"},
		{"EmptyWithoutLocation", "", ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := createdAnswer(t, tc.location, tc.answer)
			id, err := c.CreateCommunication(t.Context(), feedback(t))
			require.NoError(t, err)
			require.Equal(t, tc.want, id)
		})
	}
}

// TestClient_CreateCommunication_AnswerNotJSON: a 2xx page that is not a
// FHIR server's answer (a proxy's) is no proof that the feedback is stored.
func TestClient_CreateCommunication_AnswerNotJSON(t *testing.T) {
	t.Parallel()
	c := createdAnswer(t, "", `<html>Sign in</html>`)
	_, err := c.CreateCommunication(t.Context(), feedback(t))
	require.ErrorContains(t, err, "not a FHIR resource")
}

// TestClient_CreateQuestionnaireResponse_AnswerShapes: as for a
// Communication, a 2xx is stored whatever its answer names.
func TestClient_CreateQuestionnaireResponse_AnswerShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, location, answer, want string }{
		{"ID", "", `{"resourceType":"QuestionnaireResponse","id":"q1"}`, "q1"},
		{"EmptyWithLocation", "http://h/fhir/QuestionnaireResponse/q2", ``, "q2"},
		{"Neither", "", `{}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := createdAnswer(t, tc.location, tc.answer)
			id, err := c.CreateQuestionnaireResponse(t.Context(), openimis.QuestionnaireResponse{Status: "completed"})
			require.NoError(t, err)
			require.Equal(t, tc.want, id)
		})
	}
}

// createdAnswer is a client of a server that logs in and answers every
// other request 201 with answer and, when set, a Location header.
func createdAnswer(t *testing.T, location, answer string) *openimis.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/login/" {
			_, _ = w.Write([]byte(`{"token":"t.t.t","exp":4102444800}`))
			return
		}
		if location != "" {
			w.Header().Set("Location", location)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	c, err := openimis.New(openimis.Options{FHIRURL: srv.URL + "/", Username: "admin", Password: "admin"})
	require.NoError(t, err)
	return c
}
