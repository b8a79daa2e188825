package mapping

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// SourceClaim is a claim outcome from a FHIR source other than openIMIS
// (spec §8): its report is made as an openIMIS claim's is, and its person is
// keyed by the source and the patient.
type SourceClaim struct {
	Claim
	// Source is the source's name (FHIR_SOURCES).
	Source string `json:"source"`
	// Type is the resource type the claim came as (FHIR_<N>_RESOURCE).
	Type string `json:"type"`
	// PatientID is the id of the claim's Patient on the source; empty when
	// the claim names its patient by an identifier only (PatientKey then
	// holds it).
	PatientID string `json:"patient_id,omitempty"`
	// PatientKey identifies the patient within the source: the Patient id,
	// or "<system>|<value>" of the patient identifier.
	PatientKey string `json:"patient_key"`
}

// SourceClaimKey is the receipt key of the claim outcome resourceType/id of
// a source: source, resource type and id, lower-cased (HeyDonto's ids are
// case-insensitive, docs/upstreams/fhir-subscriptions.md §6.3). The same id
// from two sources is two claims.
func SourceClaimKey(source, resourceType, id string) string {
	return strings.ToLower(source + "/" + resourceType + "/" + id)
}

// PersonKey is the key of the claim's CHT person in the person mapping and
// the person's source_patient_id: "<source>/<patient key>".
func (c SourceClaim) PersonKey() string {
	return c.Source + "/" + c.PatientKey
}

// ClaimFromFHIR validates a claim outcome of the source and extracts the
// claim (spec §8): op_claim_uuid is the resource's id (not necessarily a
// UUID), op_claim_id its claim code (the identifier of system codeSystem
// when one is given, else the first identifier that is not a UUID, else the
// id), the patient its patient reference (relative, absolute, or versioned)
// or identifier, and the date its created, read as openIMIS dates are
// (Gregorian, reduced to the date in Nepal).
func ClaimFromFHIR(source, resourceType string, cr fhir.ClaimResponse, codeSystem string) (SourceClaim, error) {
	var errs FieldErrors
	if cr.ResourceType != resourceType {
		errs.add("resourceType", fmt.Sprintf("must be %s, got %q", resourceType, truncate(cr.ResourceType)))
	}
	c := SourceClaim{Source: source, Type: resourceType}
	c.UUID = strings.TrimSpace(cr.ID)
	switch {
	case c.UUID == "":
		errs.add("id", "is required")
	case !fhirID(c.UUID):
		errs.add("id", "must be a FHIR id (1 to 64 letters, digits, - and .)")
	}
	c.Code = claimCode(cr.Identifier, codeSystem, c.UUID)
	switch {
	case hasControl(c.Code):
		errs.add("identifier", "the claim code must not hold control characters")
	case len(c.Code) > 128:
		errs.add("identifier", "the claim code must be at most 128 bytes")
	}
	c.PatientID, c.PatientKey = patientOf(cr.Patient)
	if c.PatientKey == "" {
		errs.add("patient", "must reference the patient (Patient/<id>, or an identifier with system and value)")
	}
	created, err := claimDate(cr.Created)
	if err != nil {
		errs.add("created", err.Error())
	}
	c.Created = created
	if err := errs.err(); err != nil {
		return SourceClaim{}, err
	}
	return c, nil
}

// claimCode picks the human claim code among the identifiers.
func claimCode(ids []fhir.Identifier, system, id string) string {
	if system != "" {
		for _, i := range ids {
			if i.System == system && strings.TrimSpace(i.Value) != "" {
				return strings.TrimSpace(i.Value)
			}
		}
	}
	for _, i := range ids {
		if v := strings.TrimSpace(i.Value); v != "" && !IsUUID(v) {
			return v
		}
	}
	return id
}

// patientOf reads the patient of a claim: the id of a Patient reference
// (Patient/<id>, an absolute URL ending so, or one with _history/<version>),
// else the patient's identifier as "<system>|<value>".
func patientOf(ref *fhir.RefJSON) (id, key string) {
	if ref == nil {
		return "", ""
	}
	if r := strings.TrimSpace(ref.Reference); r != "" {
		if u, err := url.Parse(r); err == nil {
			parts := strings.Split(strings.Trim(u.Path, "/"), "/")
			if n := len(parts); n >= 4 && parts[n-2] == "_history" {
				parts = parts[:n-2]
			}
			if n := len(parts); n >= 2 && parts[n-2] == "Patient" && fhirID(parts[n-1]) {
				return parts[n-1], "Patient/" + parts[n-1]
			}
		}
	}
	if i := ref.Identifier; i != nil && i.System != "" && strings.TrimSpace(i.Value) != "" && !hasControl(i.System+i.Value) {
		return "", i.System + "|" + strings.TrimSpace(i.Value)
	}
	return "", ""
}

// fhirID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func fhirID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// SourcePatient is the part of a FHIR R4 Patient the CHT person takes.
type SourcePatient struct {
	BirthDate string `json:"birthDate"`
	Gender    string `json:"gender"`
	Name      []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
		Text   string   `json:"text"`
		Use    string   `json:"use"`
	} `json:"name"`
	Telecom []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"telecom"`
}

// ParseSourcePatient reads a Patient a source returned.
func ParseSourcePatient(raw []byte) (*SourcePatient, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		SourcePatient
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("patient: %s", jsonProblem(err))
	}
	if p.ResourceType != "Patient" {
		return nil, fmt.Errorf("patient: the resource is a %q, not a Patient", truncate(p.ResourceType))
	}
	return &p.SourcePatient, nil
}

// SourcePerson builds the CHT person of a source claim's patient under the
// place placeID. p may be nil when the source does not let the mediator read
// the patient; the person then gets a neutral name the health worker can
// correct. Its _id derives from the person key, as an insuree's from its
// UUID, so a second create conflicts instead of duplicating.
func SourcePerson(c SourceClaim, p *SourcePatient, placeID string) cht.Person {
	key := c.PersonKey()
	person := cht.Person{
		ID:              PersonID(key),
		SourcePatientID: key,
		Place:           placeID,
		Type:            "person",
	}
	if p != nil {
		for i := range p.Name {
			n := p.Name[i]
			name := strings.TrimSpace(n.Text)
			if name == "" {
				name = strings.Join(strings.Fields(strings.Join(append(append([]string{}, n.Given...), n.Family), " ")), " ")
			}
			if name != "" && (person.Name == "" || n.Use == "usual") {
				person.Name = name
			}
		}
		switch p.Gender {
		case "male", "female":
			person.Sex = p.Gender
		}
		// FHIR allows YYYY and YYYY-MM, which the CHT's date of birth cannot hold.
		if _, err := time.Parse(time.DateOnly, p.BirthDate); err == nil {
			person.DateOfBirth = p.BirthDate
		}
		for _, t := range p.Telecom {
			if t.System == "phone" && t.Value != "" {
				person.Phone = t.Value
				break
			}
		}
	}
	if person.Name == "" || hasControl(person.Name) {
		person.Name = c.Source + " patient " + c.PatientKey
	}
	return person
}
