package chttest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// embeddedForms holds the default JSON form definitions, one file per form
// code. OP.json is the reference deployment's OP form
// (cht-interoperability cht-config/app_settings.json forms.OP).
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
// reads: its fields, in the order of the fields object, which is the order
// in which the API validates them and names them in errors.
type formDef struct {
	order  []string
	fields map[string]fieldDef
}

// fieldDef is one entry of a form's fields object.
type fieldDef struct {
	Type     string `json:"type"`
	Required bool   `json:"required"`
}

func parseForms(raw map[string]json.RawMessage) (map[string]*formDef, error) {
	forms := make(map[string]*formDef, len(raw))
	for code, def := range raw {
		var top struct {
			Fields map[string]fieldDef `json:"fields"`
		}
		if err := json.Unmarshal(def, &top); err != nil {
			return nil, fmt.Errorf("form %q: %w", code, err)
		}
		var withOrder struct {
			Fields json.RawMessage `json:"fields"`
		}
		_ = json.Unmarshal(def, &withOrder)
		forms[code] = &formDef{order: objectKeys(withOrder.Fields), fields: top.Fields}
	}
	return forms, nil
}

// objectKeys returns the keys of a JSON object in their order, as
// JavaScript keeps them. The object is known to be valid.
func objectKeys(obj json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		tok, _ := dec.Token()
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		_ = dec.Decode(&skip)
	}
	return keys
}
