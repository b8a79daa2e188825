package mediator

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

func mustParseFeedback(t *testing.T, body string) mapping.Feedback {
	t.Helper()
	fb, err := mapping.ParseFeedback([]byte(body))
	require.NoError(t, err)
	return fb
}

const claimA = "ae580700-0277-4c98-adab-d98c0f7e681b"

func TestFeedbackDigest_ComparesWhatWasParsed(t *testing.T) {
	t.Parallel()
	first := feedbackDigest(mustParseFeedback(t, `{"doc":{"_id":"r1"},"claimUUID":"`+claimA+`","insureeUUID":"",
		"care_rendered":"yes","payment_asked":"no","drug_prescribed":"yes","drug_received":"no","assessment_rating":"4"}`))

	t.Run("SameReportOtherwiseWritten", func(t *testing.T) {
		t.Parallel()
		// Other key order and casing, other spellings of the same answers.
		again := feedbackDigest(mustParseFeedback(t, `{"assessment_rating":4,"drug_received":"False","drug_prescribed":"1",
			"payment_asked":"NO","care_rendered":true,"insureeuuid":"","claimuuid":"`+strings.ToUpper(claimA)+`","doc._id":"r1"}`))
		changed, known := changedFields(first, again)
		require.True(t, known)
		require.Empty(t, changed)
	})
	t.Run("Edited", func(t *testing.T) {
		t.Parallel()
		edited := feedbackDigest(mustParseFeedback(t, `{"doc":{"_id":"r1"},"claimUUID":"`+claimA+`","insureeUUID":"76aca309-f8cf-4890-8f2e-b416d78de00b",
			"care_rendered":"yes","payment_asked":"yes","drug_prescribed":"yes","drug_received":"no","assessment_rating":"5"}`))
		changed, known := changedFields(first, edited)
		require.True(t, known)
		require.Equal(t, []string{"insureeUUID", "payment_asked", "assessment_rating"}, changed)
	})
	t.Run("UnknownPrevious", func(t *testing.T) {
		t.Parallel()
		for _, previous := range []string{"", "v0 care_rendered=00", "v1 care_rendered"} {
			changed, known := changedFields(previous, first)
			require.False(t, known, "%q", previous)
			require.Empty(t, changed)
		}
	})
	t.Run("FingerprintsOnly", func(t *testing.T) {
		t.Parallel()
		fields := strings.Fields(first)
		require.Equal(t, "v1", fields[0])
		require.Len(t, fields, 8, "seven fields")
		for _, f := range fields[1:] {
			_, fp, _ := strings.Cut(f, "=")
			require.Regexp(t, `^[0-9a-f]{16}$`, fp, "a fingerprint, not a value: %s", f)
		}
	})
}
