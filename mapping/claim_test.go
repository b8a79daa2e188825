package mapping_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + name)
	require.NoError(t, err)
	return b
}

// withCreated returns the fixture ClaimResponse with an id (the fixture, an
// input-shaped document, has none) and the given created date.
func claimResponse(t testing.TB, edit func(map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(readFixture(t, "openimis/test_claimResponse.json"), &doc))
	doc["id"] = "ae580700-0277-4c98-adab-d98c0f7e681b"
	if edit != nil {
		edit(doc)
	}
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

func TestParseClaimResponse_Fixture(t *testing.T) {
	t.Parallel()
	c, err := mapping.ParseClaimResponse(claimResponse(t, nil))
	require.NoError(t, err)
	require.Equal(t, mapping.Claim{
		UUID:        "ae580700-0277-4c98-adab-d98c0f7e681b",
		Code:        "codeTest",
		InsureeUUID: "76aca309-f8cf-4890-8f2e-b416d78de00b",
		Created:     "2021-09-27",
	}, c)
}

// openIMIS's own fixture has no id: the claim UUID is read from its
// identifier of type UUID.
func TestParseClaimResponse_FixtureWithoutID(t *testing.T) {
	t.Parallel()
	c, err := mapping.ParseClaimResponse(readFixture(t, "openimis/test_claimResponse.json"))
	require.NoError(t, err)
	require.Equal(t, "ae580700-0277-4c98-adab-d98c0f7e681b", c.UUID)
	require.Equal(t, "codeTest", c.Code)
}

func TestParseClaimResponse_Variants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(map[string]any)
		want func(*testing.T, mapping.Claim)
	}{
		{"ClaimCodeTypedMR", func(d map[string]any) {
			ids := d["identifier"].([]any)
			ids[1].(map[string]any)["type"] = map[string]any{"coding": []any{map[string]any{"code": "MR"}}}
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "codeTest", c.Code) }},
		{"CodeIdentifierFirst", func(d map[string]any) {
			ids := d["identifier"].([]any)
			d["identifier"] = []any{ids[1], ids[0]}
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "codeTest", c.Code) }},
		{"PatientByIdentifierOnly", func(d map[string]any) {
			delete(d["patient"].(map[string]any), "reference")
		}, func(t *testing.T, c mapping.Claim) {
			require.Equal(t, "76aca309-f8cf-4890-8f2e-b416d78de00b", c.InsureeUUID)
		}},
		{"UpperCaseUUIDKeptAsReceived", func(d map[string]any) {
			d["id"] = "AE580700-0277-4C98-ADAB-D98C0F7E681B"
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "AE580700-0277-4C98-ADAB-D98C0F7E681B", c.UUID) }},
		{"DateTimeReducedInNepal", func(d map[string]any) {
			d["created"] = "2025-06-29T18:15:00Z" // 00:00 on the 30th in Nepal
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "2025-06-30", c.Created) }},
		{"DateTimeWithoutZoneIsNepalTime", func(d map[string]any) {
			d["created"] = "2025-06-30T23:59:59.5"
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "2025-06-30", c.Created) }},
		{"IDWinsOverUUIDIdentifier", func(d map[string]any) {
			d["identifier"].([]any)[0].(map[string]any)["value"] = "00000000-0000-4000-8000-000000000000"
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "ae580700-0277-4c98-adab-d98c0f7e681b", c.UUID) }},
		{"DateTimeBeforeNepalMidnight", func(d map[string]any) {
			d["created"] = "2025-06-29T18:14:59Z"
		}, func(t *testing.T, c mapping.Claim) { require.Equal(t, "2025-06-29", c.Created) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := mapping.ParseClaimResponse(claimResponse(t, tt.edit))
			require.NoError(t, err)
			tt.want(t, c)
		})
	}
}

func TestParseClaimResponse_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   []byte
		fields []string
	}{
		{"Empty", []byte(``), []string{"body"}},
		{"NotJSON", []byte(`<xml/>`), []string{"body"}},
		{"Array", []byte(`[]`), []string{"body"}},
		{"TrailingData", []byte(`{"resourceType":"ClaimResponse"} {}`), []string{"body"}},
		{"WrongResourceType", claimResponse(t, func(d map[string]any) { d["resourceType"] = "Claim" }), []string{"resourceType"}},
		{"MissingID", claimResponse(t, func(d map[string]any) {
			delete(d, "id")
			d["identifier"] = d["identifier"].([]any)[1:] // the code only
		}), []string{"id"}},
		{"UUIDIdentifierNotUUID", claimResponse(t, func(d map[string]any) {
			delete(d, "id")
			d["identifier"].([]any)[0].(map[string]any)["value"] = "123"
		}), []string{"id"}},
		{"IDNotUUID", claimResponse(t, func(d map[string]any) { d["id"] = "123" }), []string{"id"}},
		{"MissingPatient", claimResponse(t, func(d map[string]any) { delete(d, "patient") }), []string{"patient"}},
		{"PatientNotUUID", claimResponse(t, func(d map[string]any) {
			d["patient"] = map[string]any{"reference": "Patient/42"}
		}), []string{"patient"}},
		{"NoClaimCode", claimResponse(t, func(d map[string]any) { d["identifier"] = d["identifier"].([]any)[:1] }), []string{"identifier"}},
		{"MissingCreated", claimResponse(t, func(d map[string]any) { delete(d, "created") }), []string{"created"}},
		{"BadCreated", claimResponse(t, func(d map[string]any) { d["created"] = "27/09/2021" }), []string{"created"}},
		{"BadCreatedTime", claimResponse(t, func(d map[string]any) { d["created"] = "2021-09-27T25:00:00" }), []string{"created"}},
		{"WrongType", claimResponse(t, func(d map[string]any) { d["id"] = 42 }), []string{"body"}},
		{"Everything", []byte(`{"resourceType":"ClaimResponse"}`), []string{"id", "identifier", "patient", "created"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := mapping.ParseClaimResponse(tt.body)
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

func FuzzParseClaimResponse(f *testing.F) {
	f.Add(claimResponse(f, nil))
	f.Add([]byte(`{"resourceType":"ClaimResponse","id":"ae580700-0277-4c98-adab-d98c0f7e681b"}`))
	f.Add([]byte(`{"patient":{"identifier":{"type":null}}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":"ae580700-0277-4c98-adab-d98c0f7e681b","ID":"x","resourceType":"ClaimResponse"}`))
	f.Add([]byte(`{"resourceType":"Claim\u0052esponse","created":"2024-01-01T00:00:00+05:45"}`))
	// Text encoding/json reads but the mediator refuses on purpose: a byte
	// that is not UTF-8, a lone surrogate escape.
	f.Add(append(claimResponse(f, nil)[:1], append([]byte("\"note\":\"\xff\","), claimResponse(f, nil)[1:]...)...))
	f.Add([]byte(`{"resourceType":"ClaimResponse","id":"\udc00"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := mapping.ParseClaimResponse(body)
		var fe mapping.FieldErrors
		if errorsAs(err, &fe) && len(fe) == 1 && fe[0].Field == "body" && isTextRefusal(fe[0].Message) {
			// Both decoders would read such text as U+FFFD, collapsing
			// distinct ids into one, so it is refused before decoding.
			// The refusal must be for a reason the body really has.
			if utf8.Valid(body) && !surrogateEscape.Match(body) {
				t.Fatalf("refused good text: %v", err)
			}
			return
		}
		// Otherwise the fast decoder must read every body encoding/json
		// reads, and read it the same.
		var cr openimis.ClaimResponse
		if json.Unmarshal(body, &cr) == nil {
			want, wantErr := mapping.ClaimFromResponse(cr)
			if (err == nil) != (wantErr == nil) || c != want {
				t.Fatalf("decoders disagree: %+v, %v; encoding/json: %+v, %v", c, err, want, wantErr)
			}
		}
		if err != nil {
			if !errorsAs(err, &fe) || len(fe) == 0 {
				t.Fatalf("error is not FieldErrors: %v", err)
			}
			return
		}
		if !mapping.IsUUID(c.UUID) || !mapping.IsUUID(c.InsureeUUID) || c.Code == "" || len(c.Created) != 10 {
			t.Fatalf("accepted an unusable claim: %+v", c)
		}
		if _, err := mapping.OPReport(c, "person", "OP"); err != nil && !strings.Contains(err.Error(), "outside") {
			t.Fatalf("accepted claim cannot be reported: %v", err)
		}
	})
}

// surrogateEscape matches a JSON escape of a UTF-16 surrogate, paired or not.
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F][0-9a-fA-F]{2}`)

func isTextRefusal(msg string) bool {
	return msg == "must be UTF-8 text" || strings.HasPrefix(msg, "holds a lone surrogate")
}

func TestClaimDate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2025-06-30":                "2025-06-30",
		"2025-06-29T20:00:00Z":      "2025-06-30", // Nepal time
		"2025-06-30T23:00:00":       "2025-06-30", // no zone: Nepal's own
		"2025-06-30T10:15:30+05:45": "2025-06-30",
	} {
		got, err := mapping.ClaimDate(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := mapping.ClaimDate("")
	require.ErrorContains(t, err, "created")
	_, err = mapping.ClaimDate("30/06/2025")
	require.Error(t, err)
}
