package openimis

// Coding is a FHIR Coding.
type Coding struct {
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
	System  string `json:"system,omitempty"`
}

// CodeableConcept is a FHIR CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Code returns the first coding's code.
func (c *CodeableConcept) Code() string {
	if c == nil || len(c.Coding) == 0 {
		return ""
	}
	return c.Coding[0].Code
}

// Identifier is a FHIR Identifier. openIMIS types identifiers with a code of
// its openimis-identifiers CodeSystem: UUID, Code, MR, PPN… (docs/upstreams/openimis.md §4, §7).
type Identifier struct {
	System string           `json:"system,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	Use    string           `json:"use,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// Reference is a FHIR Reference.
type Reference struct {
	Display    string      `json:"display,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
}
