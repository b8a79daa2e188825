package openimistest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// identifierSystem is the openIMIS identifier CodeSystem.
const identifierSystem = "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/openimis-identifiers"

// domainResourceFields are the elements every R4B DomainResource accepts.
var domainResourceFields = []string{
	"resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
	"extension", "modifierExtension",
}

// pydanticErrors collects fhir.resources (pydantic v1) validation errors and
// renders them in pydantic's text format. The texts approximate upstream's;
// the status and the "N validation error(s) for <Model>" head are faithful.
type pydanticErrors struct {
	model string
	lines []string
}

// add records one error at loc.
func (p *pydanticErrors) add(loc, msg, typ string) {
	p.lines = append(p.lines, fmt.Sprintf("%s\n  %s (type=%s)", loc, msg, typ))
}

// String renders the errors like str(pydantic.ValidationError).
func (p *pydanticErrors) String() string {
	plural := "s"
	if len(p.lines) == 1 {
		plural = ""
	}
	return fmt.Sprintf("%d validation error%s for %s\n%s", len(p.lines), plural, p.model, strings.Join(p.lines, "\n"))
}

// extra reports keys of m outside allowed (and their "_" primitive-extension
// twins) as pydantic "extra fields not permitted".
func (p *pydanticErrors) extra(loc string, m map[string]any, allowed []string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(allowed, k) || slices.Contains(allowed, strings.TrimPrefix(k, "_")) {
			continue
		}
		p.add(join(loc, k), "extra fields not permitted", "value_error.extra")
	}
}

// resourceType checks the const resourceType field.
func (p *pydanticErrors) resourceType(m map[string]any, want string) {
	if v, ok := m["resourceType"]; ok && v != want {
		p.add("resourceType", fmt.Sprintf("unexpected value; permitted: %s", pyRepr(want)), "value_error.const")
	}
}

// primitive checks that m[key] is a non-empty string when present, and
// present when required.
func (p *pydanticErrors) primitive(loc string, m map[string]any, key string, required bool) (string, bool) {
	v, ok := m[key]
	if !ok || v == nil {
		if required {
			p.add(join(loc, key), "field required", "value_error.missing")
		}
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		p.add(join(loc, key), "str type expected", "type_error.str")
		return "", false
	}
	if s == "" {
		p.add(join(loc, key), "ensure this value has at least 1 characters", "value_error.any_str.min_length")
		return "", false
	}
	return s, true
}

// object checks that m[key] is an object when present, and present when
// required.
func (p *pydanticErrors) object(loc string, m map[string]any, key string, required bool) (map[string]any, bool) {
	v, ok := m[key]
	if !ok || v == nil {
		if required {
			p.add(join(loc, key), "field required", "value_error.missing")
		}
		return nil, false
	}
	o, ok := v.(map[string]any)
	if !ok {
		p.add(join(loc, key), "value is not a valid dict", "type_error.dict")
		return nil, false
	}
	return o, true
}

// list checks that m[key] is a list when present.
func (p *pydanticErrors) list(loc string, m map[string]any, key string) ([]any, bool) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, false
	}
	l, ok := v.([]any)
	if !ok {
		p.add(join(loc, key), "value is not a valid list", "type_error.list")
		return nil, false
	}
	return l, true
}

// join builds a pydantic error location ("channel -> type").
func join(loc, key string) string {
	if loc == "" {
		return key
	}
	return loc + " -> " + key
}

// asObject returns v as an object, or nil.
func asObject(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// asString returns v as a string, or "".
func asString(v any) string {
	s, _ := v.(string)
	return s
}

// asList returns v as a list, or nil.
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// mustMarshal encodes v as compact JSON without HTML escaping.
func mustMarshal(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("openimistest: " + err.Error())
	}
	return json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// uuidIdentifier is an openIMIS UUID identifier.
func uuidIdentifier(id string) map[string]any {
	return map[string]any{
		"type":  map[string]any{"coding": []any{map[string]any{"system": identifierSystem, "code": "UUID"}}},
		"value": id,
	}
}

// reference builds an openIMIS resource reference with a UUID identifier.
func reference(resourceType, id, display string) map[string]any {
	ref := map[string]any{
		"reference":  resourceType + "/" + id,
		"type":       resourceType,
		"identifier": uuidIdentifier(id),
	}
	if display != "" {
		ref["display"] = display
	}
	return ref
}

// identifierValue returns the value of the first identifier whose type code
// satisfies match.
func identifierValue(resource map[string]any, match func(code string) bool) string {
	for _, it := range asList(resource["identifier"]) {
		ident := asObject(it)
		coding := asList(asObject(ident["type"])["coding"])
		if len(coding) == 0 {
			continue
		}
		if match(asString(asObject(coding[0])["code"])) {
			return asString(ident["value"])
		}
	}
	return ""
}
