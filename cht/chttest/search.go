package chttest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// view is a freetext view's index: each emitted key and the docs that emit
// it. Docs are written once, so a doc's rows are only ever added.
type view map[string]map[string]bool

func (v view) put(id string, keys []string) {
	for _, k := range keys {
		if v[k] == nil {
			v[k] = map[string]bool{}
		}
		v[k][id] = true
	}
}

// query returns the ids of the docs a freetext query selects, sorted: a
// "key:value" query is an exact, lower-cased key lookup; any other a
// starts-with match on the keys (cht-datasource
// shared-libs/cht-datasource/src/local/contact.ts:80-140, and report.ts).
func (v view) query(freetext string) []string {
	q := strings.ToLower(strings.TrimSpace(freetext))
	found := v[q]
	if !strings.Contains(q, ":") {
		found = map[string]bool{}
		for k, ids := range v {
			if strings.HasPrefix(k, q) {
				maps.Copy(found, ids)
			}
		}
	}
	out := make([]string, 0, len(found))
	for id := range found {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// freetextKeys is the emitField logic the contacts_by_freetext and
// reports_by_freetext map functions share
// (ddocs/medic-db/medic-client/views/*_by_freetext/map.js): for each
// top-level key that is not skipped and does not end in _date, a string
// value is emitted lower-cased word by word and as "key:value", a number as
// "key:value"; objects, arrays and falsy values are not indexed, nor are
// keys of 2 characters or fewer.
func freetextKeys(into map[string]bool, doc map[string]any, skip ...string) {
	emit := func(key string) {
		if utf8.RuneCountInString(key) > 2 {
			into[key] = true
		}
	}
	for key, value := range doc {
		key = strings.ToLower(key)
		if slices.Contains(skip, key) || strings.HasSuffix(key, "_date") {
			continue
		}
		switch v := value.(type) {
		case string:
			if v == "" {
				continue
			}
			v = strings.ToLower(v)
			for _, word := range strings.Fields(v) {
				emit(word)
			}
			emit(key + ":" + v)
		case float64:
			if v != 0 {
				emit(key + ":" + strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
	}
}

// contactFreetextKeys is the contacts_by_freetext map function: every
// contact's top-level fields but _id, _rev, type, refid and geolocation.
// openimis_id:<uuid> finds the person created for an insuree (§3).
func contactFreetextKeys(doc map[string]any) []string {
	if t, _ := doc["type"].(string); t != "contact" && t != "person" && !placeTypes[t] {
		return nil
	}
	keys := map[string]bool{}
	freetextKeys(keys, doc, "_id", "_rev", "type", "refid", "geolocation")
	return setKeys(keys)
}

// reportFreetextKeys is the reports_by_freetext map function: a data_record's
// top-level keys and those of its fields (nested groups and _meta, stored as
// sms_message, are not indexed). op_claim_uuid:<uuid>
// finds the report of a claim, the mediator's dedupe (trap 5).
func reportFreetextKeys(doc map[string]any) []string {
	if doc["type"] != "data_record" || doc["form"] == nil {
		return nil
	}
	keys := map[string]bool{}
	freetextKeys(keys, doc, "_id", "_rev", "type", "refid", "content")
	if fields, ok := doc["fields"].(map[string]any); ok {
		freetextKeys(keys, fields, "_id", "_rev", "type", "refid", "content")
	}
	return setKeys(keys)
}

func setKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// uuidPage is cht-datasource's Page<string>.
type uuidPage struct {
	Data   []string `json:"data"`
	Cursor *string  `json:"cursor"`
}

// getUUIDs is GET /api/v1/contact/uuid and GET /api/v1/report/uuid (CHT
// 4.18+; api/src/controllers/contact.js and report.js getUuids, then
// cht-datasource getUuidsPage; docs/upstreams/cht.md §3):
//
//   - freetext must be a string of at least 3 characters, with no
//     whitespace unless it is a "key:value" query, else 400
//     "Invalid freetext [<json>]." (for contacts, a missing freetext is
//     "Either query param freetext or type is required": the type filter is
//     not modelled);
//   - limit (default 10000) must be a positive integer and cursor a
//     non-negative integer, the offset of the page, else 400;
//   - the answer is {"data":[ids],"cursor":<next offset, or null>}.
func (s *Server) getUUIDs(x *exchange, v view, contacts bool) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	q := x.r.URL.Query()
	freetext, given := q.Get("freetext"), q.Has("freetext")
	quoted := "undefined"
	if given {
		b, _ := json.Marshal(freetext)
		quoted = string(b)
	}
	switch {
	case contacts && freetext == "":
		return x.respond(http.StatusBadRequest, "Either query param freetext or type is required", nil)
	case utf8.RuneCountInString(freetext) < 3 || (!strings.Contains(freetext, ":") && strings.ContainsAny(freetext, " \t\r\n")):
		return x.respond(http.StatusBadRequest, "Invalid freetext ["+quoted+"].", nil)
	}
	limit, skip := 10000, 0
	if l := q.Get("limit"); q.Has("limit") {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return x.respond(http.StatusBadRequest, `The limit must be a positive integer: ["`+l+`"].`, nil)
		}
		limit = n
	}
	if c := q.Get("cursor"); q.Has("cursor") {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return x.respond(http.StatusBadRequest, `The cursor must be a string or null for first page: ["`+c+`"].`, nil)
		}
		skip = n
	}

	s.mu.Lock()
	ids := v.query(freetext)
	s.mu.Unlock()
	page := uuidPage{Data: ids[min(skip, len(ids)):min(skip+limit, len(ids))]}
	if len(page.Data) == limit {
		next := strconv.Itoa(skip + limit)
		page.Cursor = &next
	}
	return jsonResponse(http.StatusOK, page)
}
