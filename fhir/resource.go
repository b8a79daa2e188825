package fhir

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
)

// Meta is a resource's metadata.
type Meta struct {
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
	Tag         []Coding `json:"tag,omitempty"`
	VersionID   string   `json:"versionId,omitempty"`
}

// Coding is a code in a system.
type Coding struct {
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
	System  string `json:"system,omitempty"`
}

// CodeableConcept is codings and a text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier is a business identifier.
type Identifier struct {
	System string           `json:"system,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// RefJSON is a FHIR Reference as written in JSON.
type RefJSON struct {
	Display    string      `json:"display,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
}

// Extension is a FHIR extension with the value types the backport
// profile uses (docs/upstreams/fhir-subscriptions.md §1.2).
type Extension struct {
	URL                  string           `json:"url"`
	ValueCanonical       string           `json:"valueCanonical,omitempty"`
	ValueCode            string           `json:"valueCode,omitempty"`
	ValuePositiveInt     *int             `json:"valuePositiveInt,omitempty"`
	ValueString          string           `json:"valueString,omitempty"`
	ValueUnsignedInt     *int             `json:"valueUnsignedInt,omitempty"`
	ValueURI             string           `json:"valueUri,omitempty"`
	ValueReference       *RefJSON         `json:"valueReference,omitempty"`
	ValueInteger         *int             `json:"valueInteger,omitempty"`
	ValueDecimal         *float64         `json:"valueDecimal,omitempty"`
	ValueBoolean         *bool            `json:"valueBoolean,omitempty"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
}

// Element carries the extensions of a primitive (`_criteria`, `_payload`).
type Element struct {
	Extension []Extension `json:"extension,omitempty"`
}

// ClaimResponse holds the fields of a ClaimResponse the claim mapping
// needs.
type ClaimResponse struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Meta         *Meta        `json:"meta,omitempty"`
	Identifier   []Identifier `json:"identifier,omitempty"`
	Status       string       `json:"status,omitempty"`
	Patient      *RefJSON     `json:"patient,omitempty"`
	Created      string       `json:"created,omitempty"`
	Outcome      string       `json:"outcome,omitempty"`
	Request      *RefJSON     `json:"request,omitempty"`
}

// ParseClaimResponse reads a ClaimResponse. It checks only the resource
// type; the mapping validates the fields it needs.
func ParseClaimResponse(raw []byte) (ClaimResponse, error) {
	var cr ClaimResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return ClaimResponse{}, &NotificationError{Reason: "ClaimResponse is not valid JSON: " + errtext.Cut(err.Error(), 200)}
	}
	if cr.ResourceType != "ClaimResponse" {
		return ClaimResponse{}, &NotificationError{Reason: "resource is a " + errtext.Cut(cr.ResourceType, 64) + ", not a ClaimResponse"}
	}
	return cr, nil
}

// LastUpdated is meta.lastUpdated read leniently; zero when absent or
// unreadable (trap 14).
func (cr ClaimResponse) LastUpdated() time.Time {
	if cr.Meta == nil {
		return time.Time{}
	}
	return ParseTime(cr.Meta.LastUpdated)
}

// timeLayouts are the forms of timestamps servers send: FHIR instants and
// dateTimes, Aidbox-zen's "2023-09-04 10:38:43.020984+03", HAPI's bare
// dates (docs/upstreams/fhir-subscriptions.md §2.3, trap 14).
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
	"2006-01",
	"2006",
}

// ParseTime reads a timestamp leniently: the zero time when it is
// unreadable, never an error (trap 14). Times without a zone are UTC.
func ParseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
