package mapping_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

func sourceClaimResponse(t *testing.T, body string) fhir.ClaimResponse {
	t.Helper()
	cr, err := fhir.ParseClaimResponse([]byte(body))
	require.NoError(t, err)
	return cr
}

func TestClaimFromFHIR(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, system string
		want               mapping.SourceClaim
	}{
		{
			name: "RelativeReference",
			body: `{"resourceType":"ClaimResponse","id":"cr-1","identifier":[{"system":"urn:uuid","value":"0d9a1f55-3a3e-4d0e-9c1a-1d2c3b4a5f60"},{"system":"http://clinic.example/claims","value":"CLM-42"}],
				"patient":{"reference":"Patient/pat-7"},"created":"2025-06-30T23:30:00Z"}`,
			want: mapping.SourceClaim{Claim: mapping.Claim{UUID: "cr-1", Code: "CLM-42", Created: "2025-07-01"},
				Source: "kodjin", Type: "ClaimResponse", PatientID: "pat-7", PatientKey: "Patient/pat-7"},
		},
		{
			name: "AbsoluteVersionedReferenceAndCodeSystem",
			body: `{"resourceType":"ClaimResponse","id":"77","identifier":[{"system":"a","value":"first"},{"system":"http://clinic.example/claims","value":" CLM-9 "}],
				"patient":{"reference":"https://box.internal:8443/fhir/Patient/p.1/_history/3"},"created":"2025-06-30"}`,
			system: "http://clinic.example/claims",
			want: mapping.SourceClaim{Claim: mapping.Claim{UUID: "77", Code: "CLM-9", Created: "2025-06-30"},
				Source: "kodjin", Type: "ClaimResponse", PatientID: "p.1", PatientKey: "Patient/p.1"},
		},
		{
			name: "NoCodeTakesTheID",
			body: `{"resourceType":"ClaimResponse","id":"cr-2","patient":{"identifier":{"system":"http://moh.example/nid","value":"N-1"}},"created":"2025-06-30"}`,
			want: mapping.SourceClaim{Claim: mapping.Claim{UUID: "cr-2", Code: "cr-2", Created: "2025-06-30"},
				Source: "kodjin", Type: "ClaimResponse", PatientKey: "http://moh.example/nid|N-1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := mapping.ClaimFromFHIR("kodjin", "ClaimResponse", sourceClaimResponse(t, tc.body), tc.system)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestClaimFromFHIR_Problems(t *testing.T) {
	t.Parallel()
	cr := sourceClaimResponse(t, `{"resourceType":"ClaimResponse","id":"bad id/1","identifier":[{"value":"A\u0007"}],
		"patient":{"reference":"Practitioner/1"},"created":"30.06.2025"}`)
	_, err := mapping.ClaimFromFHIR("kodjin", "ClaimResponse", cr, "")
	var fe mapping.FieldErrors
	require.True(t, errors.As(err, &fe), "%v", err)
	fields := map[string]bool{}
	for _, e := range fe {
		fields[e.Field] = true
	}
	require.Equal(t, map[string]bool{"id": true, "identifier": true, "patient": true, "created": true}, fields)
}

func TestSourceClaim_KeysSeparateSources(t *testing.T) {
	t.Parallel()
	body := `{"resourceType":"ClaimResponse","id":"CR-1","patient":{"reference":"Patient/p1"},"created":"2025-06-30"}`
	a, err := mapping.ClaimFromFHIR("aidbox", "ClaimResponse", sourceClaimResponse(t, body), "")
	require.NoError(t, err)
	b, err := mapping.ClaimFromFHIR("hapi", "ClaimResponse", sourceClaimResponse(t, body), "")
	require.NoError(t, err)
	keyOf := func(c mapping.SourceClaim) string { return mapping.SourceClaimKey(c.Source, c.Type, c.UUID) }
	require.Equal(t, "aidbox/claimresponse/cr-1", keyOf(a))
	require.NotEqual(t, keyOf(a), keyOf(b))
	require.Equal(t, "aidbox/Patient/p1", a.PersonKey())
	require.NotEqual(t, mapping.SourcePerson(a, nil, "place").ID, mapping.SourcePerson(b, nil, "place").ID,
		"the same patient id on two servers is two people")
	require.NotEqual(t, mapping.PersonID("p1"), mapping.SourcePerson(a, nil, "place").ID)
}

func TestSourcePerson(t *testing.T) {
	t.Parallel()
	claim := mapping.SourceClaim{Source: "hapi", PatientID: "p1", PatientKey: "Patient/p1"}
	p, err := mapping.ParseSourcePatient([]byte(`{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1990-04-02",
		"name":[{"use":"official","family":"Rai","given":["Asha"]},{"use":"usual","text":" Asha K. Rai "}],
		"telecom":[{"system":"email","value":"a@example.org"},{"system":"phone","value":"+9779800000000"}]}`))
	require.NoError(t, err)
	got := mapping.SourcePerson(claim, p, "place-1")
	require.Equal(t, "Asha K. Rai", got.Name)
	require.Equal(t, "female", got.Sex)
	require.Equal(t, "1990-04-02", got.DateOfBirth)
	require.Equal(t, "+9779800000000", got.Phone)
	require.Equal(t, "hapi/Patient/p1", got.SourcePatientID)
	require.Empty(t, got.OpenIMISID)
	require.Equal(t, "place-1", got.Place)

	p, err = mapping.ParseSourcePatient([]byte(`{"resourceType":"Patient","birthDate":"1990","gender":"unknown"}`))
	require.NoError(t, err)
	got = mapping.SourcePerson(claim, p, "place-1")
	require.Equal(t, "hapi patient Patient/p1", got.Name, "a neutral name the health worker can correct")
	require.Empty(t, got.DateOfBirth, "a year alone is no CHT date of birth")
	require.Empty(t, got.Sex)

	_, err = mapping.ParseSourcePatient([]byte(`{"resourceType":"Practitioner"}`))
	require.Error(t, err)
}
