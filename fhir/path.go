package fhir

import (
	"strings"
	"unicode"
)

// PathStyle says how a server names a resource type in its URLs.
type PathStyle string

const (
	// PathFHIR is the standard form: the type as written, ClaimResponse.
	PathFHIR PathStyle = "fhir"
	// PathKebabLower is HeyDonto's form: claim-response, subscription
	// (docs/upstreams/fhir-subscriptions.md §6.3, trap 22).
	PathKebabLower PathStyle = "kebab-lower"
)

// Valid reports whether s is a known style.
func (s PathStyle) Valid() bool { return s == PathFHIR || s == PathKebabLower }

// Paths maps resource types to path segments below the FHIR base.
type Paths struct {
	// Style applies to every type without an override. Empty is PathFHIR.
	Style PathStyle
	// Overrides names the segment of single types, e.g. ClaimResponse →
	// claimresponse where a server departs from its own style.
	Overrides map[string]string
}

// Segment is the path segment of resourceType.
func (p Paths) Segment(resourceType string) string {
	if s, ok := p.Overrides[resourceType]; ok && s != "" {
		return s
	}
	if p.Style == PathKebabLower {
		return KebabLower(resourceType)
	}
	return resourceType
}

// KebabLower writes a resource type in lower case with a hyphen before each
// inner capital: ClaimResponse → claim-response, Subscription →
// subscription.
func KebabLower(resourceType string) string {
	var b strings.Builder
	for i, r := range resourceType {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// validType reports whether s can be a FHIR resource type: a capital
// letter then letters and digits.
func validType(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validID reports whether s can be a logical id: FHIR's letters, digits,
// '-' and '.', and also '_' and up to 128 characters, which some servers
// use beyond the specification's 64.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
