package chttest

import (
	"math"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// recordResult is the records API's success body.
type recordResult struct {
	Success bool   `json:"success"`
	ID      string `json:"id,omitempty"`
}

// postRecord is POST /api/v2/records (api/src/controllers/records.js): the
// json and urlencoded parsers, then auth.check, then the Content-Type
// dispatch, then createRecordByJSON (api/src/services/records.js). Errors
// thrown as PublicError become 500 "Server error" with the message in
// details.
func (s *Server) postRecord(x *exchange) response {
	body, resp, ok := x.parseBody(true)
	if !ok {
		return resp
	}
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	switch body.kind {
	case bodyForm:
		return s.createRecordByForm(x, body)
	case bodyJSONObject, bodyJSONArray:
		return s.createRecordByJSON(x, body)
	}
	// throw new Error('Content type not supported.'): no public message.
	return x.serverError(nil)
}

// publicError is a PublicError answer: 500 with the message in details.
func (x *exchange) publicError(msg string) response {
	return x.serverError(&msg)
}

// createRecordByForm covers only the checks the SMS-style variant makes
// before parsing the message. The message parser is not modelled.
func (s *Server) createRecordByForm(x *exchange, body parsedBody) response {
	if _, ok := body.form["from"]; !ok {
		return x.publicError("Missing required value: from")
	}
	if _, ok := body.form["message"]; !ok {
		return x.publicError("Missing required field: message")
	}
	return x.publicError("chttest: form-encoded (SMS) records are not modelled")
}

func (s *Server) createRecordByJSON(x *exchange, body parsedBody) response {
	if body.kind == bodyJSONArray {
		return x.publicError("Missing _meta property.")
	}
	rawMeta, hasMeta := body.values["_meta"]
	if !hasMeta || isEmptyValue(rawMeta) {
		return x.publicError("Missing _meta property.")
	}
	meta, _ := rawMeta.(map[string]any)
	formVal := meta["form"]
	if isEmptyValue(formVal) {
		return x.publicError("Missing required field: form")
	}
	form, ok := formVal.(string)
	if !ok {
		// options.form.toUpperCase is not a function: a TypeError.
		return x.serverError(nil)
	}
	form = strings.ToUpper(form)
	meta["form"] = form
	def := s.forms[form]
	if def == nil {
		return x.publicError("Form not found: " + form)
	}

	formData := make(map[string]any, len(body.keys))
	for _, k := range body.keys {
		if k == "_meta" {
			continue
		}
		v := body.values[k]
		// The conversions look the field up by the key as sent, before it
		// is lower-cased.
		if fd, ok := def.fields[k]; ok {
			switch {
			case fd.typ == "date":
				v = momentValue(v)
			case fd.typ == "boolean" && (v == float64(1) || v == float64(0)):
				v = v == float64(1)
			}
		}
		formData[strings.ToLower(k)] = v
	}

	doc := s.dataRecord(def, form, meta, formData)
	id := uuid.NewString()
	doc["_id"] = id
	doc["_rev"] = newRev()

	s.mu.Lock()
	if s.lostSaves > 0 {
		// processDocs hands a save error back as a result: the answer is
		// {success:true} without an id (transitions/index.js:100-112).
		s.lostSaves--
		s.mu.Unlock()
		return jsonResponse(http.StatusOK, recordResult{Success: true})
	}
	s.reports[id] = doc
	s.reportOrder = append(s.reportOrder, id)
	s.reportView.put(id, reportFreetextKeys(doc))
	s.mu.Unlock()

	return jsonResponse(http.StatusOK, recordResult{Success: true, ID: id})
}

// isEmptyValue is records.js empty(): the empty string, null or undefined.
func isEmptyValue(v any) bool {
	return v == nil || v == ""
}

// dataRecord is records.js getDataRecord for a known form. The synchronous
// transitions that run next in the real API are not modelled.
func (s *Server) dataRecord(def *formDef, form string, meta, formData map[string]any) map[string]any {
	doc := map[string]any{
		"type":          "data_record",
		"form":          form,
		"errors":        []any{},
		"tasks":         []any{},
		"fields":        map[string]any{},
		"reported_date": float64(s.now().UnixMilli()),
		"sms_message":   meta,
	}
	if from, ok := meta["from"]; ok {
		// Phone numbers are stored as sent: E.164 normalisation is not
		// modelled.
		doc["from"] = from
	}
	if ts := parseSentTimestamp(meta["reported_date"]); truthy(ts) {
		if f, _ := ts.(float64); math.IsInf(f, 0) {
			ts = nil // JSON.stringify(Infinity) is null.
		}
		doc["reported_date"] = ts
	}
	if def.facilityReference != "" {
		if val, ok := formData[def.facilityReference]; ok {
			if str, isStr := val.(string); isStr && truthy(val) {
				val = strings.ToUpper(str)
			}
			doc["refid"] = val
		}
	}
	fields := doc["fields"].(map[string]any)
	for _, k := range def.fieldOrder {
		merge(strings.Split(k, "."), fields, formData)
	}
	var errs []any
	for _, e := range validate(def, formData) {
		errs = append(errs, e)
	}
	if truthy(formData["_extra_fields"]) {
		errs = append(errs, map[string]any{"code": "extra_fields", "message": "Extra fields."})
	}
	if msg, ok := meta["message"].(string); ok && strings.TrimSpace(msg) == "" {
		errs = append(errs, map[string]any{"code": "sys.empty", "message": "Message appears empty."})
	}
	if errs != nil {
		doc["errors"] = errs
	}
	return doc
}

// merge is smsparser.merge: it copies formData's value for key into record,
// creating sub-objects for dotted keys. A missing value is not copied, as
// undefined is not saved.
func merge(key []string, record, formData map[string]any) {
	if len(key) > 1 {
		sub := formData[key[0]]
		if !truthy(sub) {
			return
		}
		if !truthy(record[key[0]]) {
			record[key[0]] = map[string]any{}
		}
		subRecord, ok := record[key[0]].(map[string]any)
		if !ok {
			return
		}
		subData, _ := sub.(map[string]any)
		merge(key[1:], subRecord, subData)
		return
	}
	if v, ok := formData[key[0]]; ok {
		record[key[0]] = v
	}
}

// validate is api/src/services/report/validate.js, with the English
// messages of the sys.incorrect_type and sys.missing_fields translations.
func validate(def *formDef, formData map[string]any) []map[string]any {
	var errs []map[string]any
	var missing []string
	for _, k := range def.fieldOrder {
		field := def.fields[k]
		value, present := formData[k]
		exists := present && value != nil
		if field.required && !exists {
			missing = append(missing, k)
			continue
		}
		if !exists || field.list {
			continue
		}
		expected := ""
		switch field.typ {
		case "integer":
			if f, ok := value.(float64); !ok || math.IsInf(f, 0) || f != math.Trunc(f) {
				expected = "integer"
			}
		case "string":
			if _, ok := value.(string); !ok {
				expected = "string"
			}
		case "boolean":
			if _, ok := value.(bool); !ok {
				expected = "boolean"
			}
		case "complex":
			switch value.(type) {
			case map[string]any, []any:
			default:
				expected = "complex"
			}
		}
		if expected != "" {
			errs = append(errs, map[string]any{
				"code":    "sys.incorrect_type",
				"message": "Incorrect type of field " + k + ", expected " + expected + ".",
			})
		}
	}
	if len(missing) > 0 {
		errs = append(errs, map[string]any{
			"code":    "sys.missing_fields",
			"message": "Missing or invalid fields: " + strings.Join(missing, ",") + ".",
		})
	}
	return errs
}

// dateNumberString is records.js DATE_NUMBER_STRING. It is not anchored.
var dateNumberString = regexp.MustCompile(`\d{13,}`)

// parseSentTimestamp is records.js parseSentTimestamp for _meta.reported_date:
// a number as is, a string holding 13 or more digits through Number(), any
// other string through moment. The result is nil for other types; the caller
// keeps "now" unless the result is truthy.
func parseSentTimestamp(v any) any {
	switch v := v.(type) {
	case float64:
		return v
	case string:
		if dateNumberString.MatchString(v) {
			return jsNumber(v)
		}
		if ms := momentValue(v); ms != nil {
			return ms
		}
		return math.NaN()
	}
	return nil
}
