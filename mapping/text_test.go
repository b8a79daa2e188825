package mapping_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// feedbackWithDocID is an otherwise valid push whose doc._id is raw JSON
// string content.
func feedbackWithDocID(raw string) []byte {
	return []byte(`{"doc":{"_id":"` + raw + `"},"care_rendered":"no","payment_asked":"yes",
		"drug_prescribed":"yes","drug_received":"no","assessment_rating":"3",
		"claimUUID":"` + feedbackClaim + `","insureeUUID":"` + feedbackInsuree + `"}`)
}

func requireFields(t *testing.T, err error, fields ...string) {
	t.Helper()
	var fe mapping.FieldErrors
	require.True(t, errors.As(err, &fe), "%v", err)
	var got []string
	for _, f := range fe {
		got = append(got, f.Field)
	}
	require.Equal(t, fields, got)
}

func TestParseFeedback_DocIDShape(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, raw string
		ok        bool
	}{
		{"UUID", "7f3c2e1a-0d4b-4b7e-9a51-3f0c8d2e6b1a", true},
		{"UUIDWithoutDashes", "7f3c2e1a0d4b4b7e9a513f0c8d2e6b1a", true},
		{"Word", "r_1-B", true},
		{"Longest", strings.Repeat("x", 128), true},
		{"TooLong", strings.Repeat("x", 129), false},
		{"NUL", `r\u0000`, false},
		{"ESC", `\u001b]0;title\u0007`, false},
		{"CRLF", `a\r\nb`, false},
		{"C1NEL", `r\u0085`, false},
		{"C1CSI", `\u009b2J`, false},
		{"DEL", `r\u007f`, false},
		{"Space", "a b", false},
		{"Slash", "a/b", false},
		{"NonASCII", "é", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := mapping.ParseFeedback(feedbackWithDocID(tt.raw))
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, tt.raw, f.DocID)
				return
			}
			requireFields(t, err, "doc._id")
		})
	}
}

func TestParse_RefusesLoneSurrogatesAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, raw string
		ok        bool
	}{
		{"High", `sur-\ud800`, false},
		{"Low", `sur-\udfff`, false},
		{"HighThenLetter", `sur-\ud800\u0041`, false},
		{"LowThenHigh", `sur-\udc00\ud800`, false},
		{"HighAtEnd", `\udbff`, false},
		{"InvalidUTF8", "sur-\xff", false},
		{"Pair", `\ud83d\ude00`, true},
		{"EscapedBackslash", `\\ud800`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(strings.Replace(string(feedbackWithDocID("r1")), `"care_rendered":"no"`,
				`"care_rendered":"no","note":"`+tt.raw+`"`, 1))
			_, err := mapping.ParseFeedback(body)
			if tt.ok {
				require.NoError(t, err)
			} else {
				requireFields(t, err, "body")
			}
			claim := strings.Replace(string(claimResponse(t, nil)), `"resourceType"`, `"note":"`+tt.raw+`","resourceType"`, 1)
			_, err = mapping.ParseClaimResponse([]byte(claim))
			if tt.ok {
				require.NoError(t, err)
			} else {
				requireFields(t, err, "body")
			}
		})
	}
}

func TestParseClaimResponse_CodeWithoutControlCharacters(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`\u0000`, `CL\u0000M`, `\u001b[2J`, `a\u0085b`, `a\u009bb`} {
		claim := string(claimResponse(t, nil))
		body := strings.Replace(claim, `"value":"codeTest"`, `"value":"`+raw+`"`, 1)
		require.NotEqual(t, claim, body)
		_, err := mapping.ParseClaimResponse([]byte(body))
		requireFields(t, err, "identifier")
	}
}
