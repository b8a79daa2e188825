package chttest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
)

// embeddedForms holds the default JSON form definitions, one file per form
// code. OP.json is the reference deployment's OP form
// (cht-interoperability app_settings.json forms.OP).
//
//go:embed testdata/forms/*.json
var embeddedForms embed.FS

// DefaultForms returns the form definitions the fake uses when
// Options.Forms is nil: the OP form, keyed "OP". The caller owns the map.
func DefaultForms() map[string]json.RawMessage {
	entries, err := embeddedForms.ReadDir("testdata/forms")
	if err != nil {
		panic("chttest: read embedded forms: " + err.Error())
	}
	out := make(map[string]json.RawMessage, len(entries))
	for _, e := range entries {
		b, err := embeddedForms.ReadFile(path.Join("testdata/forms", e.Name()))
		if err != nil {
			panic("chttest: read embedded form: " + err.Error())
		}
		out[strings.ToUpper(strings.TrimSuffix(e.Name(), ".json"))] = json.RawMessage(b)
	}
	return out
}

// formDef is the part of an app_settings form definition the records API
// reads.
type formDef struct {
	// fieldOrder is the order of the fields object, which is the order in
	// which the API validates and reports fields.
	fieldOrder []string
	fields     map[string]fieldDef
	// facilityReference is the optional facility_reference field name.
	facilityReference string
}

// fieldDef is one entry of a form's fields object.
type fieldDef struct {
	typ      string
	required bool
	// list is the undocumented SMS "list" option, which turns off type
	// checks.
	list bool
}

func parseForms(raw map[string]json.RawMessage) (map[string]*formDef, error) {
	forms := make(map[string]*formDef, len(raw))
	for code, def := range raw {
		f, err := parseForm(def)
		if err != nil {
			return nil, fmt.Errorf("form %q: %w", code, err)
		}
		forms[code] = f
	}
	return forms, nil
}

func parseForm(raw json.RawMessage) (*formDef, error) {
	var top struct {
		Fields            json.RawMessage `json:"fields"`
		FacilityReference any             `json:"facility_reference"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	keys, values, err := decodeOrdered(top.Fields)
	if err != nil {
		return nil, fmt.Errorf("fields: %w", err)
	}
	f := &formDef{fieldOrder: keys, fields: make(map[string]fieldDef, len(keys))}
	if s, ok := top.FacilityReference.(string); ok {
		f.facilityReference = s
	}
	for _, k := range keys {
		m, ok := values[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("field %q is not an object", k)
		}
		typ, _ := m["type"].(string)
		f.fields[k] = fieldDef{typ: typ, required: truthy(m["required"]), list: truthy(m["list"])}
	}
	return f, nil
}

// decodeOrdered decodes a JSON object, keeping the order of its keys as
// JSON.parse does: a repeated key keeps its first position and its last
// value. Numbers decode to float64, as in JavaScript.
func decodeOrdered(data []byte) (keys []string, values map[string]any, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("not a JSON object")
	}
	values = make(map[string]any)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("object key is not a string")
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if _, seen := values[k]; !seen {
			keys = append(keys, k)
		}
		values[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("data after the top-level value")
	}
	return keys, values, nil
}
