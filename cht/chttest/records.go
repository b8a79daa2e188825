package chttest

import (
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// parseJSON is body-parser's json parser as the routes mount it
// (api/src/routing.js:88-92). It reads the body only when the media type is
// application/json, with any parameters; body is nil when it did not (no
// body, or another type). A body over MAX_REQUEST_SIZE gets 413, one that is
// not a JSON object or array gets 500, both before authentication. ok is
// false when resp must be sent.
func (x *exchange) parseJSON() (body any, resp response, ok bool) {
	mt, _, _ := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if mt != "application/json" || len(x.body) == 0 {
		return nil, response{}, true
	}
	if len(x.body) > maxBodyBytes {
		return nil, x.respond(http.StatusRequestEntityTooLarge, "Payload Too Large", nil), false
	}
	if x.bodyErr != nil || json.Unmarshal(x.body, &body) != nil {
		return nil, x.serverError(""), false
	}
	switch body.(type) {
	case map[string]any, []any:
		return body, response{}, true
	}
	return nil, x.serverError(""), false // strict mode: objects and arrays only
}

// postRecord is POST /api/v2/records (api/src/controllers/records.js,
// createRecordByJSON in api/src/services/records.js:204-247;
// docs/upstreams/cht.md §1). After the body parser and auth.check:
//
//   - a body that is not JSON is "Content type not supported.": 500 with no
//     details (trap 2);
//   - a missing or empty _meta is PublicError "Missing _meta property.", a
//     missing _meta.form "Missing required field: form", an unknown form
//     "Form not found: <CODE>": 500 with the message in details (trap 2);
//   - _meta.form is upper-cased; every other key is lower-cased, and only the
//     keys the form defines are kept in fields, the rest dropped silently
//     (trap 3);
//   - validation failures go to doc.errors and the answer is still 200
//     (trap 1); a bsAggreDate is never computed (trap 4);
//   - every POST stores a new report with a fresh uuid: no idempotency
//     (trap 5). The answer is 200 {"success":true,"id":<report id>}.
//
// The synchronous transitions that run before the save are not modelled.
func (s *Server) postRecord(x *exchange) response {
	body, resp, ok := x.parseJSON()
	if !ok {
		return resp
	}
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	if body == nil {
		return x.serverError("") // throw new Error('Content type not supported.')
	}
	obj, _ := body.(map[string]any) // an array has no _meta
	if m := obj["_meta"]; m == nil || m == "" {
		return x.serverError("Missing _meta property.")
	}
	meta, _ := obj["_meta"].(map[string]any)
	if f := meta["form"]; f == nil || f == "" {
		return x.serverError("Missing required field: form")
	}
	form, ok := meta["form"].(string)
	if !ok {
		return x.serverError("") // options.form.toUpperCase is not a function
	}
	form = strings.ToUpper(form)
	meta["form"] = form
	def := s.forms[form]
	if def == nil {
		return x.serverError("Form not found: " + form)
	}

	formData := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "_meta" {
			k = strings.ToLower(k)
			formData[k] = convert(def.fields[k].Type, v)
		}
	}
	fields := map[string]any{}
	for _, k := range def.order {
		if v, ok := formData[k]; ok {
			fields[k] = v // smsparser.merge: only the form's keys
		}
	}
	reported := float64(s.now().UnixMilli())
	if rd, ok := meta["reported_date"].(float64); ok && rd != 0 {
		reported = rd
	}
	doc := map[string]any{
		"_id": uuid.NewString(), "_rev": newRev(),
		"type": "data_record", "form": form, "errors": validate(def, formData), "tasks": []any{},
		"fields": fields, "reported_date": reported, "sms_message": meta,
	}
	if from, ok := meta["from"]; ok {
		doc["from"] = from // E.164 normalisation is not modelled
	}

	// The synchronous transitions run inside the request, before the save
	// (shared-libs/transitions/src/transitions/index.js:84,181): a slow
	// transition delays the save itself, and the save happens even when the
	// client has given up meanwhile (docs/upstreams/cht.md §1).
	s.mu.Lock()
	held := s.savesHeld
	s.mu.Unlock()
	if held != nil {
		<-held
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lostSaves > 0 {
		s.lostSaves--
		return jsonResponse(http.StatusOK, map[string]any{"success": true})
	}
	id := doc["_id"].(string)
	s.reports[id] = doc
	s.reportOrder = append(s.reportOrder, id)
	s.reportView.put(id, reportFreetextKeys(doc))
	return jsonResponse(http.StatusOK, map[string]any{"success": true, "id": id})
}

// LoseNextSaves makes the next n valid records POSTs fail to save their
// report inside the CHT: processDocs hands a save error back as a result
// (shared-libs/transitions/src/transitions/index.js:100-112), so nothing is
// stored and the answer is still 200 {"success":true}, without an id
// (docs/upstreams/cht.md §1, trap 1).
func (s *Server) LoseNextSaves(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lostSaves += max(n, 0)
}

// HoldSaves makes every valid records POST wait, before its report is
// saved, until release is called, as slow synchronous transitions do: a
// client that times out meanwhile has not seen the answer, and the report is
// saved all the same, after it gave up. Close releases held saves too.
func (s *Server) HoldSaves() (release func()) {
	held := make(chan struct{})
	s.mu.Lock()
	s.savesHeld = held
	s.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			if s.savesHeld == held {
				s.savesHeld = nil
			}
			s.mu.Unlock()
			close(held)
		})
	}
	s.mu.Lock()
	s.releases = append(s.releases, release)
	s.mu.Unlock()
	return release
}

// convert is the only value conversion of the JSON path
// (api/src/services/records.js:232-241): a "date" field becomes
// moment(value).valueOf(), epoch ms (here: a number, or an RFC 3339 string;
// anything else is NaN, stored as null), and a "boolean" field turns 1 and 0
// into true and false. Nothing else is converted: BS parts stay as sent.
func convert(typ string, v any) any {
	switch typ {
	case "date":
		switch d := v.(type) {
		case float64:
			return math.Trunc(d)
		case string:
			for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
				if t, err := time.Parse(layout, d); err == nil {
					return float64(t.UnixMilli())
				}
			}
		}
		return nil
	case "boolean":
		if v == float64(1) || v == float64(0) {
			return v == float64(1)
		}
	}
	return v
}

// validate is api/src/services/report/validate.js with the English
// messages: a required field that is missing or null is reported in one
// sys.missing_fields error, a value of the wrong JSON type in a
// sys.incorrect_type error. length, date and the bs* types are not checked.
func validate(def *formDef, formData map[string]any) []any {
	errs := []any{}
	var missing []string
	for _, k := range def.order {
		field, value := def.fields[k], formData[k]
		if value == nil {
			if field.Required {
				missing = append(missing, k)
			}
			continue
		}
		ok := true
		switch field.Type {
		case "integer":
			f, isNum := value.(float64)
			ok = isNum && f == math.Trunc(f)
		case "string":
			_, ok = value.(string)
		case "boolean":
			_, ok = value.(bool)
		case "complex":
			switch value.(type) {
			case map[string]any, []any:
			default:
				ok = false
			}
		}
		if !ok {
			errs = append(errs, map[string]any{"code": "sys.incorrect_type",
				"message": "Incorrect type of field " + k + ", expected " + field.Type + "."})
		}
	}
	if len(missing) > 0 {
		errs = append(errs, map[string]any{"code": "sys.missing_fields",
			"message": "Missing or invalid fields: " + strings.Join(missing, ",") + "."})
	}
	return errs
}
