package openimistest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Seed data, from the upstream module's test fixtures
// (api_fhir_r4/tests/test/test_patient.json, test_claimResponse.json).
const (
	// SeedPatientID is the insuree UUID of the seeded Patient (the insuree
	// the upstream Communication and ClaimResponse fixtures reference).
	SeedPatientID = "76aca309-f8cf-4890-8f2e-b416d78de00b"
	// SeedPatientCHFID is the seeded Patient's insurance number (identifier
	// type "Code").
	SeedPatientCHFID = "827192671"
	// SeedClaimID is the claim UUID of the seeded ClaimResponse, created
	// 2021-09-27T00:00:00Z.
	SeedClaimID = "ae580700-0277-4c98-adab-d98c0f7e681b"
	// SeedClaimCode is the seeded claim's code (identifier type "Code").
	SeedClaimCode = "codeTest"
)

//go:embed testdata/test_patient.json
var patientFixture []byte

//go:embed testdata/test_claimResponse.json
var claimResponseFixture []byte

// seed stores the fixture Patient and ClaimResponse.
func (s *Server) seed() {
	s.AddPatient(SeedPatientID, PatientFixture(SeedPatientID, SeedPatientCHFID))
	s.AddClaim(ClaimResponseFixture(SeedClaimID, SeedClaimCode, SeedPatientID), time.Date(2021, 9, 27, 0, 0, 0, 0, time.UTC))
}

// PatientFixture returns the upstream Patient fixture as openIMIS serves it
// (converters/patientConverter.py, §7) for the insuree id with insurance
// number chfID: "id" set, a UUID identifier first, then the "Code"
// identifier.
func PatientFixture(id, chfID string) json.RawMessage {
	m := fixture(patientFixture, func(code string) string { return map[string]string{"Code": chfID}[code] })
	m["id"] = id
	m["identifier"] = append([]any{uuidIdentifier(id)}, asList(m["identifier"])...)
	return mustMarshal(m)
}

// ClaimResponseFixture returns the upstream ClaimResponse fixture as openIMIS
// serves and notifies it (converters/claimResponseConverter.py, §4, trap 7)
// for claim claimID with the given code and insuree: "id" and the UUID
// identifier set to claimID (the upstream fixture has no "id"), the other
// identifier to code, patient to patientID, and request "ClaimV2/<claimID>"
// as the real converter writes it.
func ClaimResponseFixture(claimID, code, patientID string) json.RawMessage {
	m := fixture(claimResponseFixture, func(c string) string {
		if c == "UUID" {
			return claimID
		}
		return code
	})
	m["id"] = claimID
	m["patient"] = reference("Patient", patientID, "")
	m["request"] = reference("ClaimV2", claimID, "")
	return mustMarshal(m)
}

// fixture decodes an embedded fixture and sets the value of each identifier
// to value(type code) when that is not "".
func fixture(raw []byte, value func(code string) string) map[string]any {
	m, err := decodeObject(raw)
	if err != nil {
		panic("openimistest: fixture: " + err.Error())
	}
	for _, it := range asList(m["identifier"]) {
		coding := asList(asObject(asObject(it)["type"])["coding"])
		code, _ := asObject(slices.Concat(coding, []any{nil})[0])["code"].(string)
		if v := value(code); v != "" {
			asObject(it)["value"] = v
		}
	}
	return m
}

// identifierSystem is the openIMIS identifier CodeSystem.
const identifierSystem = "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/openimis-identifiers"

func asObject(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any            { l, _ := v.([]any); return l }

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// uuidIdentifier is an openIMIS UUID identifier.
func uuidIdentifier(id string) map[string]any {
	return map[string]any{
		"type":  map[string]any{"coding": []any{map[string]any{"system": identifierSystem, "code": "UUID"}}},
		"value": id,
	}
}

// reference is an openIMIS reference with a UUID identifier
// (referenceConverterMixin.py).
func reference(resourceType, id, display string) map[string]any {
	ref := map[string]any{"reference": resourceType + "/" + id, "type": resourceType, "identifier": uuidIdentifier(id)}
	if display != "" {
		ref["display"] = display
	}
	return ref
}

// identifierValue returns the value of the first identifier whose type code
// satisfies match.
func identifierValue(resource map[string]any, match func(code string) bool) string {
	for _, it := range asList(resource["identifier"]) {
		coding := asList(asObject(asObject(it)["type"])["coding"])
		if code, ok := asObject(slices.Concat(coding, []any{nil})[0])["code"].(string); ok && match(code) {
			v, _ := asObject(it)["value"].(string)
			return v
		}
	}
	return ""
}
