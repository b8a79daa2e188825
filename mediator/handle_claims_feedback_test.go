package mediator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// feedbackBody is what CHT outbound push sends for a claims_feedback report;
// claimKey and insureeKey are the deployment's mapping keys.
func feedbackBody(t testing.TB, docID, claimKey, insureeKey, insuree string) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"doc":               map[string]any{"_id": docID},
		"care_rendered":     "yes",
		"payment_asked":     "no",
		"drug_prescribed":   "yes",
		"drug_received":     "no",
		"assessment_rating": "4",
		claimKey:            openimistest.SeedClaimID,
		insureeKey:          insuree,
	})
	require.NoError(t, err)
	return body
}

func (b *testBundle) postFeedback(t testing.TB, body []byte) response {
	t.Helper()
	return b.post(t, "/mediator/claims-feedback", "application/json", body, true)
}

// waitFeedbackDelivered waits until the feedback's job has recorded its
// delivery and returns the result.
func (b *testBundle) waitFeedbackDelivered(t *testing.T, docID string) string {
	t.Helper()
	var result string
	require.Eventually(t, func() bool {
		r, ok, err := b.store.Delivered(context.Background(), "feedback", docID)
		require.NoError(t, err)
		result = r
		return ok
	}, 15*time.Second, 10*time.Millisecond, "feedback %s not delivered", docID)
	return result
}

func (b *testBundle) requestsTo(path string) int {
	n := 0
	for _, r := range b.oi.Requests() {
		if r.Method == http.MethodPost && r.Path == openimistest.FHIRPath+path {
			n++
		}
	}
	return n
}

func TestClaimsFeedback_CommunicationWhenNoQuestionnaireResponse(t *testing.T) {
	t.Parallel()
	for _, keys := range [][2]string{{"claimUUID", "insureeUUID"}, {"claimuuid", "insureeuuid"}} {
		t.Run(keys[0], func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			docID := "7f3c2e1a-" + keys[0]
			resp := b.postFeedback(t, feedbackBody(t, docID, keys[0], keys[1], openimistest.SeedPatientID))
			require.Equal(t, http.StatusAccepted, resp.status, string(resp.body))
			require.JSONEq(t, `{"status":"accepted","id":"`+docID+`"}`, string(resp.body))

			result := b.waitFeedbackDelivered(t, docID)
			comms := b.oi.Communications()
			require.Len(t, comms, 1)
			c := comms[0]
			require.Equal(t, "Communication/"+c.FeedbackID, result)
			require.Equal(t, openimistest.SeedClaimID, c.ClaimID)
			require.Equal(t, openimistest.SeedPatientID, c.PatientID)
			require.True(t, c.CareRendered)
			require.False(t, c.PaymentAsked)
			require.True(t, c.DrugPrescribed)
			require.False(t, c.DrugReceived)
			require.Equal(t, 4, c.Asessment)
			require.Empty(t, b.oi.QuestionnaireResponses())
			require.Equal(t, 1, b.requestsTo("QuestionnaireResponse/"), "auto mode tried it once")
		})
	}
}

func TestClaimsFeedback_QuestionnaireResponseWhenAvailable(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{questionnaireResponse: true})
	docID := "qr-report-1"
	require.Equal(t, http.StatusAccepted, b.postFeedback(t, feedbackBody(t, docID, "claimUUID", "insureeUUID", openimistest.SeedPatientID)).status)
	result := b.waitFeedbackDelivered(t, docID)
	qrs := b.oi.QuestionnaireResponses()
	require.Len(t, qrs, 1)
	require.Equal(t, "QuestionnaireResponse/"+qrs[0].ID, result)
	require.Equal(t, openimistest.SeedClaimID, qrs[0].ClaimID)
	var qr map[string]any
	require.NoError(t, json.Unmarshal(qrs[0].Body, &qr))
	require.Equal(t, "completed", qr["status"])
	require.Equal(t, "Patient/"+openimistest.SeedPatientID, qr["subject"].(map[string]any)["reference"])
	require.Empty(t, b.oi.Communications())
}

func TestClaimsFeedback_CommunicationForced(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{questionnaireResponse: true, edit: func(o *mediator.Options) {
		o.FeedbackResource = mediator.FeedbackCommunication
	}})
	require.Equal(t, http.StatusAccepted, b.postFeedback(t, feedbackBody(t, "r1", "claimUUID", "insureeUUID", openimistest.SeedPatientID)).status)
	b.waitFeedbackDelivered(t, "r1")
	require.Len(t, b.oi.Communications(), 1)
	require.Zero(t, b.requestsTo("QuestionnaireResponse/"))
}

func TestClaimsFeedback_RepeatedPushIsOneFeedback(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	body := feedbackBody(t, "repeat-1", "claimUUID", "insureeUUID", openimistest.SeedPatientID)
	require.JSONEq(t, `{"status":"accepted","id":"repeat-1"}`, string(b.postFeedback(t, body).body))
	b.waitFeedbackDelivered(t, "repeat-1")
	for range 2 {
		resp := b.postFeedback(t, body)
		require.Equal(t, http.StatusAccepted, resp.status)
		require.JSONEq(t, `{"status":"accepted","id":"repeat-1"}`, string(resp.body))
	}
	require.Contains(t, b.logs.String(), `"status":"duplicate"`, "the log tells a repeat from a new report")
	require.Len(t, b.oi.Communications(), 1)
	require.Equal(t, 1, b.requestsTo("Communication/"))
}

func TestClaimsFeedback_LostAnswerThenFeedbackExists(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{edit: func(o *mediator.Options) { o.FeedbackResource = mediator.FeedbackCommunication }})
	b.oi.DropNextPath(openimistest.FHIRPath+"Communication/", 1)
	require.Equal(t, http.StatusAccepted, b.postFeedback(t, feedbackBody(t, "lost-1", "claimUUID", "insureeUUID", openimistest.SeedPatientID)).status)

	require.Equal(t, "exists", b.waitFeedbackDelivered(t, "lost-1"))
	require.Len(t, b.oi.Communications(), 1, "openIMIS stored it once")
	require.Equal(t, 2, b.requestsTo("Communication/"), "one lost answer, one retry, no more")
	require.Contains(t, b.logs.String(), "counted as delivered")
}

func TestClaimsFeedback_EmptyInsureeResolvedFromClaim(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	require.Equal(t, http.StatusAccepted, b.postFeedback(t, feedbackBody(t, "no-insuree", "claimuuid", "insureeuuid", "")).status)
	b.waitFeedbackDelivered(t, "no-insuree")
	comms := b.oi.Communications()
	require.Len(t, comms, 1)
	require.Equal(t, openimistest.SeedPatientID, comms[0].PatientID)
}

func TestClaimsFeedback_UnknownClaimIsParked(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	body := strings.Replace(string(feedbackBody(t, "unknown-claim", "claimUUID", "insureeUUID", openimistest.SeedPatientID)),
		openimistest.SeedClaimID, "00000000-0000-4000-8000-000000000000", 1)
	require.Equal(t, http.StatusAccepted, b.postFeedback(t, []byte(body)).status)
	b.waitLog(t, "job failed permanently", "Claim does not exist")
	require.Empty(t, b.oi.Communications())
	require.Equal(t, 1, b.requestsTo("Communication/"), "a permanent error is not retried")
}

func TestClaimsFeedback_Refused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	good := func(edit func(map[string]any)) []byte {
		var doc map[string]any
		require.NoError(t, json.Unmarshal(feedbackBody(t, "bad-1", "claimUUID", "insureeUUID", openimistest.SeedPatientID), &doc))
		edit(doc)
		out, err := json.Marshal(doc)
		require.NoError(t, err)
		return out
	}
	tests := []struct {
		name        string
		body        []byte
		contentType string
		auth        bool
		status      int
		field       string
	}{
		{"MissingClaim", good(func(d map[string]any) { delete(d, "claimUUID") }), "application/json", true, http.StatusBadRequest, "claimUUID"},
		{"RatingNine", good(func(d map[string]any) { d["assessment_rating"] = "9" }), "application/json", true, http.StatusBadRequest, "assessment_rating"},
		{"AnswerMaybe", good(func(d map[string]any) { d["care_rendered"] = "maybe" }), "application/json", true, http.StatusBadRequest, "care_rendered"},
		{"EmptyBody", nil, "application/json", true, http.StatusBadRequest, "body"},
		{"WrongAuth", good(func(map[string]any) {}), "application/json", false, http.StatusUnauthorized, ""},
		{"NotJSON", []byte("care_rendered=yes"), "application/x-www-form-urlencoded", true, http.StatusUnsupportedMediaType, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := b.post(t, "/mediator/claims-feedback", tt.contentType, tt.body, tt.auth)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			require.Equal(t, "application/json", resp.header.Get("Content-Type"))
			var e struct {
				Error  string
				Fields []struct{ Field, Message string }
			}
			require.NoError(t, json.Unmarshal(resp.body, &e))
			require.NotEmpty(t, e.Error)
			if tt.field != "" {
				require.Len(t, e.Fields, 1)
				require.Equal(t, tt.field, e.Fields[0].Field)
				require.NotEmpty(t, e.Fields[0].Message)
			}
		})
	}
	t.Run("NothingSentOrStored", func(t *testing.T) {
		_, ok, err := b.store.Delivered(context.Background(), "feedback", "bad-1")
		require.NoError(t, err)
		require.False(t, ok)
		require.Zero(t, b.requestsTo("Communication/"))
		require.Zero(t, b.requestsTo("QuestionnaireResponse/"))
	})
}
