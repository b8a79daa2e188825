package mapping_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestOPReport_SpecExample(t *testing.T) {
	t.Parallel()
	c := mapping.Claim{UUID: "ae580700-0277-4c98-adab-d98c0f7e681b", Code: "codeTest",
		InsureeUUID: "76aca309-f8cf-4890-8f2e-b416d78de00b", Created: "2025-06-30"}
	r, err := mapping.OPReport(c, "person-1", "OP")
	require.NoError(t, err)
	require.Equal(t, "OP", r.Form)

	// Compare the JSON the CHT receives: strings stay strings and op_date is
	// a number.
	b, err := json.Marshal(r.Fields)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"patient_id": "person-1",
		"op_claim_id": "codeTest",
		"op_claim_uuid": "ae580700-0277-4c98-adab-d98c0f7e681b",
		"op_year": "2082", "op_month": "03", "op_day": "16",
		"op_date": 1751220900000
	}`, string(b))
}

func TestOPReport_OutOfRange(t *testing.T) {
	t.Parallel()
	_, err := mapping.OPReport(mapping.Claim{UUID: "u", Created: "2099-01-01"}, "p", "OP")
	require.ErrorIs(t, err, mapping.ErrDateOutOfRange)
	_, err = mapping.OPReport(mapping.Claim{UUID: "u", Created: "junk"}, "p", "OP")
	require.Error(t, err)
}

func TestPerson_FromFixturePatient(t *testing.T) {
	t.Parallel()
	var p openimis.Patient
	require.NoError(t, json.Unmarshal(readFixture(t, "openimis/test_patient.json"), &p))
	insuree := "76ACA309-F8CF-4890-8F2E-B416D78DE00B"
	got := mapping.Person(insuree, &p, "place-1")
	require.Equal(t, "TEST_OTHER_NAME TEST_LAST_NAME", got.Name)
	require.Equal(t, "male", got.Sex)
	require.Equal(t, "1990-03-24", got.DateOfBirth)
	require.Equal(t, "813-996-476", got.Phone)
	require.Equal(t, "place-1", got.Place)
	require.Equal(t, "person", got.Type)
	require.Equal(t, insuree, got.OpenIMISID, "the insuree UUID exactly as openIMIS sent it")
	require.Equal(t, mapping.PersonID("76aca309-f8cf-4890-8f2e-b416d78de00b"), got.ID)
}

func TestPerson_WithoutPatient(t *testing.T) {
	t.Parallel()
	got := mapping.Person("76aca309-f8cf-4890-8f2e-b416d78de00b", nil, "place-1")
	require.Equal(t, "openIMIS insuree 76aca309-f8cf-4890-8f2e-b416d78de00b", got.Name)
	require.Empty(t, got.Sex)
	require.Empty(t, got.Phone)
}

func TestPersonID(t *testing.T) {
	t.Parallel()
	a := mapping.PersonID("76aca309-f8cf-4890-8f2e-b416d78de00b")
	require.True(t, mapping.IsUUID(a))
	require.Equal(t, byte('5'), a[14], "a version 5 UUID")
	require.Equal(t, a, mapping.PersonID("76ACA309-F8CF-4890-8F2E-B416D78DE00B"), "case-insensitive")
	require.NotEqual(t, a, mapping.PersonID("76aca309-f8cf-4890-8f2e-b416d78de00c"))
}
