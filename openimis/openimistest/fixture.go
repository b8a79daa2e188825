package openimistest

import (
	_ "embed"
	"encoding/json"
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
	s.AddClaim(ClaimResponseFixture(SeedClaimID, SeedClaimCode, SeedPatientID),
		time.Date(2021, 9, 27, 0, 0, 0, 0, time.UTC))
}

// PatientFixture returns the upstream Patient fixture as openIMIS serves it
// for the insuree id with insurance number chfID: "id" set, a UUID identifier
// first, then the "Code" identifier.
func PatientFixture(id, chfID string) json.RawMessage {
	m, err := decodeObject(patientFixture)
	if err != nil {
		panic("openimistest: patient fixture: " + err.Error())
	}
	m["id"] = id
	for _, it := range asList(m["identifier"]) {
		ident := asObject(it)
		coding := asList(asObject(ident["type"])["coding"])
		if len(coding) > 0 && asString(asObject(coding[0])["code"]) == "Code" {
			ident["value"] = chfID
		}
	}
	m["identifier"] = append([]any{uuidIdentifier(id)}, asList(m["identifier"])...)
	return mustMarshal(m)
}

// ClaimResponseFixture returns the upstream ClaimResponse fixture as openIMIS
// serves and notifies it for claim claimID with the given code and insuree:
// "id" and the UUID identifier set to claimID, the "Code" identifier to code,
// patient to patientID, and request = "ClaimV2/<claimID>" as the real
// converter writes it.
func ClaimResponseFixture(claimID, code, patientID string) json.RawMessage {
	m, err := decodeObject(claimResponseFixture)
	if err != nil {
		panic("openimistest: ClaimResponse fixture: " + err.Error())
	}
	m["id"] = claimID
	for _, it := range asList(m["identifier"]) {
		ident := asObject(it)
		coding := asList(asObject(ident["type"])["coding"])
		if len(coding) == 0 {
			continue
		}
		if asString(asObject(coding[0])["code"]) == "UUID" {
			ident["value"] = claimID
		} else {
			ident["value"] = code
		}
	}
	m["patient"] = reference("Patient", patientID, "")
	m["request"] = reference("ClaimV2", claimID, "")
	return mustMarshal(m)
}
