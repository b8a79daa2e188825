package mapping_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

const (
	feedbackClaim   = "7ac646cb-d3cd-4660-baeb-ee34ecf0354e"
	feedbackInsuree = "76aca309-f8cf-4890-8f2e-b416d78de00b"
)

func TestParseFeedback_Accepted(t *testing.T) {
	t.Parallel()
	want := mapping.Feedback{
		DocID: "7f3c2e1a-report", ClaimUUID: feedbackClaim, InsureeUUID: feedbackInsuree,
		CareRendered: false, PaymentAsked: true, DrugPrescribed: true, DrugReceived: false, Rating: 3,
	}
	tests := []struct {
		name string
		body string
		want mapping.Feedback
	}{
		{"ReferenceConfigCamelCase", `{"doc":{"_id":"7f3c2e1a-report"},"care_rendered":"no","payment_asked":"yes",
			"drug_prescribed":"yes","drug_received":"no","assessment_rating":"3",
			"claimUUID":"` + feedbackClaim + `","insureeUUID":"` + feedbackInsuree + `"}`, want},
		{"DocsConfigLowerCase", `{"doc":{"_id":"7f3c2e1a-report"},"care_rendered":"no","payment_asked":"yes",
			"drug_prescribed":"yes","drug_received":"no","assessment_rating":"3",
			"claimuuid":"` + feedbackClaim + `","insureeuuid":"` + feedbackInsuree + `"}`, want},
		{"FlatDocIDAndOtherSpellings", `{"doc._id":"7f3c2e1a-report","care_rendered":"FALSE","payment_asked":true,
			"drug_prescribed":1,"drug_received":"0","assessment_rating":3,
			"CLAIMUUID":"` + feedbackClaim + `","InsureeUuid":"` + feedbackInsuree + `"}`, want},
		{"EmptyInsuree", `{"doc":{"_id":"7f3c2e1a-report"},"care_rendered":"no","payment_asked":"yes",
			"drug_prescribed":"yes","drug_received":"no","assessment_rating":"3.0",
			"claimUUID":"` + feedbackClaim + `","insureeUUID":""}`, func() mapping.Feedback { f := want; f.InsureeUUID = ""; return f }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := mapping.ParseFeedback([]byte(tt.body))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseFeedback_Refused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"Empty", ``, []string{"body"}},
		{"NotAnObject", `["x"]`, []string{"body"}},
		{"Null", `null`, []string{"body"}},
		{"EmptyObject", `{}`, []string{"doc._id", "claimUUID", "care_rendered", "payment_asked", "drug_prescribed", "drug_received", "assessment_rating"}},
		{"MissingClaim", `{"doc":{"_id":"r"},"care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":"4"}`, []string{"claimUUID"}},
		{"RatingNine", `{"doc":{"_id":"r"},"claimuuid":"` + feedbackClaim + `","care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":"9"}`, []string{"assessment_rating"}},
		{"RatingFraction", `{"doc":{"_id":"r"},"claimuuid":"` + feedbackClaim + `","care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":2.5}`, []string{"assessment_rating"}},
		{"AnswerMaybe", `{"doc":{"_id":"r"},"claimuuid":"` + feedbackClaim + `","care_rendered":"maybe","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":"4"}`, []string{"care_rendered"}},
		{"UnansweredQuestion", `{"doc":{"_id":"r"},"claimuuid":"` + feedbackClaim + `","care_rendered":"","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":""}`, []string{"care_rendered", "assessment_rating"}},
		{"ClaimNotUUID", `{"doc":{"_id":"r"},"claimuuid":"CLM-1","care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":"4"}`, []string{"claimuuid"}},
		{"NamedAsSent", `{"doc":{"_id":"r"},"ClaimUUID":"CLM-1","InsureeUuid":"x","Care_Rendered":"maybe","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","Assessment_Rating":"9"}`, []string{"ClaimUUID", "InsureeUuid", "Care_Rendered", "Assessment_Rating"}},
		{"DocIDNotString", `{"doc":{"_id":42},"claimuuid":"` + feedbackClaim + `","care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":"4"}`, []string{"doc._id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := mapping.ParseFeedback([]byte(tt.body))
			var fe mapping.FieldErrors
			require.ErrorAs(t, err, &fe)
			var got []string
			for _, f := range fe {
				got = append(got, f.Field)
			}
			require.Equal(t, tt.fields, got, err.Error())
		})
	}
}

func TestQuestionnaireResponse_LinkIDsMatchShippedQuestionnaire(t *testing.T) {
	t.Parallel()
	var q struct {
		URL  string
		Item []struct {
			LinkID string
			Type   string
			Code   []struct{ Code string }
		}
	}
	require.NoError(t, json.Unmarshal(readFixture(t, "questionnaire-claim-feedback.json"), &q))
	require.Equal(t, mapping.QuestionnaireURL, q.URL)

	qr := mapping.QuestionnaireResponse(mapping.Feedback{DocID: "r", ClaimUUID: feedbackClaim, InsureeUUID: feedbackInsuree, Rating: 4})
	require.Equal(t, mapping.QuestionnaireURL, qr.Questionnaire)
	require.Len(t, qr.Item, len(q.Item))
	for i, it := range q.Item {
		require.Equal(t, it.LinkID, qr.Item[i].LinkID)
		a := qr.Item[i].Answer[0]
		switch it.Type {
		case "boolean":
			require.NotNil(t, a.ValueBoolean, it.LinkID)
		case "integer":
			require.NotNil(t, a.ValueInteger, it.LinkID)
		case "reference":
			require.NotNil(t, a.ValueReference, it.LinkID)
		}
	}
}

func TestCommunication_MatchesOpenIMISFixture(t *testing.T) {
	t.Parallel()
	f := mapping.Feedback{
		DocID: "r", ClaimUUID: feedbackClaim, InsureeUUID: feedbackInsuree,
		CareRendered: false, PaymentAsked: true, DrugPrescribed: true, DrugReceived: false, Rating: 3,
	}
	qr := mapping.QuestionnaireResponse(f)
	require.Equal(t, "completed", qr.Status)
	require.Equal(t, "Patient/"+feedbackInsuree, qr.Subject.Reference)
	require.Equal(t, "r", qr.Identifier.Value)

	comm, err := mapping.Communication(qr)
	require.NoError(t, err)
	got, err := json.Marshal(comm)
	require.NoError(t, err)

	// openIMIS's own test payload, plus the profile.
	var want map[string]any
	require.NoError(t, json.Unmarshal(readFixture(t, "openimis/test_communication.json"), &want))
	want["meta"] = map[string]any{"profile": []any{mapping.CommunicationProfile}}
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	require.JSONEq(t, string(wantJSON), string(got))
}

func TestCommunication_Refused(t *testing.T) {
	t.Parallel()
	qr := mapping.QuestionnaireResponse(mapping.Feedback{DocID: "r", ClaimUUID: feedbackClaim})
	_, err := mapping.Communication(qr)
	require.ErrorContains(t, err, "subject")

	qr = mapping.QuestionnaireResponse(mapping.Feedback{DocID: "r", ClaimUUID: feedbackClaim, InsureeUUID: feedbackInsuree})
	qr.Item = qr.Item[:3]
	_, err = mapping.Communication(qr)
	var fe mapping.FieldErrors
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe, 3)

	qr = openimis.QuestionnaireResponse{Subject: &openimis.Reference{Reference: "Patient/x"}}
	_, err = mapping.Communication(qr)
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe, 6)
}

func FuzzParseFeedback(f *testing.F) {
	f.Add([]byte(`{"doc":{"_id":"r"},"claimuuid":"` + feedbackClaim + `","care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"yes","assessment_rating":"4"}`))
	f.Add([]byte(`{"doc._id":"r","claimUUID":"` + feedbackClaim + `","care_rendered":1,"payment_asked":false,"drug_prescribed":"TRUE","drug_received":"0","assessment_rating":5}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fb, err := mapping.ParseFeedback(body)
		if err != nil {
			var fe mapping.FieldErrors
			if !errorsAs(err, &fe) || len(fe) == 0 {
				t.Fatalf("error is not FieldErrors: %v", err)
			}
			return
		}
		if fb.DocID == "" || !mapping.IsUUID(fb.ClaimUUID) || fb.Rating < 0 || fb.Rating > 5 {
			t.Fatalf("accepted an unusable feedback: %+v", fb)
		}
		if fb.InsureeUUID == "" {
			return
		}
		if _, err := mapping.Communication(mapping.QuestionnaireResponse(fb)); err != nil {
			t.Fatalf("accepted feedback cannot become a Communication: %v", err)
		}
	})
}
