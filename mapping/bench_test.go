package mapping_test

import (
	"testing"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

func BenchmarkParseClaimResponse(b *testing.B) {
	body := claimResponse(b, nil)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mapping.ParseClaimResponse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOPReport(b *testing.B) {
	c := mapping.Claim{UUID: "ae580700-0277-4c98-adab-d98c0f7e681b", Code: "codeTest",
		InsureeUUID: "76aca309-f8cf-4890-8f2e-b416d78de00b", Created: "2025-06-30"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mapping.OPReport(c, "person", "OP"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToBikramSambat(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mapping.ToBikramSambat(2025, time.June, 30); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFeedback(b *testing.B) {
	body := []byte(`{"doc":{"_id":"7f3c2e1a-report"},"care_rendered":"no","payment_asked":"yes","drug_prescribed":"yes",` +
		`"drug_received":"no","assessment_rating":"3","claimUUID":"` + feedbackClaim + `","insureeUUID":"` + feedbackInsuree + `"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mapping.ParseFeedback(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFeedbackToCommunication(b *testing.B) {
	f := mapping.Feedback{DocID: "r", ClaimUUID: feedbackClaim, InsureeUUID: feedbackInsuree, CareRendered: true, Rating: 4}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mapping.Communication(mapping.QuestionnaireResponse(f)); err != nil {
			b.Fatal(err)
		}
	}
}
