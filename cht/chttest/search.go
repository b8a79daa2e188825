package chttest

import (
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"
)

// defaultIDsPageLimit is cht-datasource DEFAULT_IDS_PAGE_LIMIT.
const defaultIDsPageLimit = 10000

// contactTypeIDs are the contact types of the default configuration, the
// valid values of the type query parameter.
var contactTypeIDs = []string{"district_hospital", "health_center", "clinic", "person"}

// uuidPage is cht-datasource's Page<string>.
type uuidPage struct {
	Data   []string `json:"data"`
	Cursor *string  `json:"cursor"`
}

// indexRow is one row of a freetext view: the emitted key and the doc id.
type indexRow struct {
	key, id string
}

// freetextEmitter copies the emitField/emitMaybe logic shared by the
// contacts_by_freetext and reports_by_freetext map functions.
type freetextEmitter struct {
	skip map[string]bool
	used map[string]bool
	keys []string
}

func newFreetextEmitter(skip ...string) *freetextEmitter {
	e := &freetextEmitter{skip: map[string]bool{}, used: map[string]bool{}}
	for _, k := range skip {
		e.skip[k] = true
	}
	return e
}

// emitMaybe emits key once per doc, if it is longer than 2 characters.
func (e *freetextEmitter) emitMaybe(key string) {
	if e.used[key] || jsLength(key) <= 2 {
		return
	}
	e.used[key] = true
	e.keys = append(e.keys, key)
}

// emitField indexes a string value word by word and as "key:value", and a
// number as "key:value". Falsy values, skipped keys and keys ending in _date
// are not indexed.
func (e *freetextEmitter) emitField(key string, value any) {
	if key == "" || !truthy(value) {
		return
	}
	key = strings.ToLower(key)
	if e.skip[key] || strings.HasSuffix(key, "_date") {
		return
	}
	switch v := value.(type) {
	case string:
		v = strings.ToLower(v)
		for _, word := range strings.Fields(v) {
			e.emitMaybe(word)
		}
		e.emitMaybe(key + ":" + v)
	case float64:
		e.emitMaybe(key + ":" + jsNumberString(v))
	}
}

func (e *freetextEmitter) emitObject(doc map[string]any) {
	for _, k := range sortedKeys(doc) {
		e.emitField(k, doc[k])
	}
}

// jsLength is String.prototype.length: UTF-16 code units.
func jsLength(s string) int {
	return len(utf16.Encode([]rune(s)))
}

// contactFreetextKeys is the medic-client/contacts_by_freetext map function.
func contactFreetextKeys(doc map[string]any) []string {
	t, _ := doc["type"].(string)
	if t != "contact" && !placeTypes[t] && t != "person" {
		return nil
	}
	e := newFreetextEmitter("_id", "_rev", "type", "refid", "geolocation")
	e.emitObject(doc)
	return e.keys
}

// reportFreetextKeys is the medic-client/reports_by_freetext map function.
func reportFreetextKeys(doc map[string]any) []string {
	if doc["type"] != "data_record" || !truthy(doc["form"]) {
		return nil
	}
	e := newFreetextEmitter("_id", "_rev", "type", "refid", "content")
	e.emitObject(doc)
	if fields, ok := doc["fields"].(map[string]any); ok {
		e.emitObject(fields)
	}
	if contact, ok := doc["contact"].(map[string]any); ok {
		if id, ok := contact["_id"].(string); ok && id != "" {
			e.emitMaybe("contact:" + strings.ToLower(id))
		}
	}
	return e.keys
}

// viewIndex is a freetext view's rows: each doc's keys, and for an exact
// "key:value" query the docs that emit a key, so that a lookup does not scan
// every doc (CouchDB reads a key range of its sorted index). Keys are
// compared in byte order, which approximates CouchDB's ICU collation; rows
// are then sorted by key, then doc id.
type viewIndex struct {
	keys  map[string][]string       // doc id → its rows' keys
	byKey map[string]map[string]int // key → doc id → rows with that key
}

func newViewIndex() viewIndex {
	return viewIndex{keys: map[string][]string{}, byKey: map[string]map[string]int{}}
}

// put replaces a doc's rows.
func (v viewIndex) put(id string, keys []string) {
	for _, k := range v.keys[id] {
		if ids := v.byKey[k]; ids != nil {
			if ids[id]--; ids[id] <= 0 {
				delete(ids, id)
			}
			if len(ids) == 0 {
				delete(v.byKey, k)
			}
		}
	}
	v.keys[id] = keys
	for _, k := range keys {
		ids := v.byKey[k]
		if ids == nil {
			ids = map[string]int{}
			v.byKey[k] = ids
		}
		ids[id]++
	}
}

// query returns the rows a freetext query selects, unsorted, of the docs
// keep accepts: a "key:value" query is an exact key lookup, anything else a
// starts-with range.
func (v viewIndex) query(freetext string, keep func(id string) bool) []indexRow {
	q := strings.ToLower(strings.TrimSpace(freetext))
	var rows []indexRow
	if strings.Contains(freetext, ":") {
		for id, n := range v.byKey[q] {
			if !keep(id) {
				continue
			}
			for range n {
				rows = append(rows, indexRow{key: q, id: id})
			}
		}
		return rows
	}
	for id, keys := range v.keys {
		for _, k := range keys {
			if strings.HasPrefix(k, q) && keep(id) {
				rows = append(rows, indexRow{key: k, id: id})
			}
		}
	}
	return rows
}

func sortRows(rows []indexRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].key != rows[j].key {
			return rows[i].key < rows[j].key
		}
		return rows[i].id < rows[j].id
	})
}

// fetchAndFilterUUIDs pages through rows like cht-datasource
// fetchAndFilterUuids: the cursor is a row offset, and an id that appears
// twice within one page is returned once.
func fetchAndFilterUUIDs(rows []indexRow, limit, skip int) uuidPage {
	get := func(limit, skip int) []string {
		var ids []string
		for i := skip; i < len(rows) && i < skip+limit; i++ {
			ids = append(ids, rows[i].id)
		}
		return ids
	}
	seen := map[string]bool{}
	var total []string
	curLimit, curSkip := limit, skip
	for {
		ids := get(curLimit, curSkip)
		noMore := len(ids) < curLimit
		var fresh []string
		for _, id := range ids {
			if id != "" && !seen[id] {
				seen[id] = true
				fresh = append(fresh, id)
			}
		}
		overFetch := len(total) + len(fresh) - limit
		total = append(total, fresh...)
		if len(total) > limit {
			total = total[:limit]
		}
		if noMore {
			return uuidPage{Data: nonNil(total)}
		}
		if len(total) == limit {
			next := jsNumberString(float64(curSkip + curLimit - overFetch))
			return uuidPage{Data: total, Cursor: &next}
		}
		missing := curLimit - len(fresh)
		curSkip += curLimit
		curLimit = missing * 2
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// queryParam is an Express req.query value: nil when absent, a string, or a
// []string when repeated.
func queryParam(q url.Values, name string) any {
	vs, ok := q[name]
	switch {
	case !ok:
		return nil
	case len(vs) == 1:
		return vs[0]
	}
	return vs
}

var whitespace = regexp.MustCompile(`\s`)

// freetextError is Qualifier.byFreetext's check: a string of at least 3
// characters, without whitespace unless it is a "key:value" query. It
// returns the InvalidArgumentError message, or "".
func freetextError(v any) string {
	s, ok := v.(string)
	if !ok || jsLength(s) < 3 || (!strings.Contains(s, ":") && whitespace.MatchString(s)) {
		return "Invalid freetext [" + jsonOrUndefined(v) + "]."
	}
	return ""
}

// jsonOrUndefined is JSON.stringify(v) inside a template string.
func jsonOrUndefined(v any) string {
	if v == nil {
		return "undefined"
	}
	return string(marshalJS(v))
}

// pageArgs checks cursor and limit as assertCursor, assertLimit and
// validateCursor do, and returns the skip and limit. msg is the
// InvalidArgumentError message when they are invalid.
func pageArgs(q url.Values) (skip, limit int, msg string) {
	limit = defaultIDsPageLimit
	cursor := queryParam(q, "cursor")
	if cursor != nil {
		if c, ok := cursor.(string); !ok || c == "" {
			return 0, 0, "The cursor must be a string or null for first page: [" + jsonOrUndefined(cursor) + "]."
		}
	}
	if l := queryParam(q, "limit"); l != nil {
		n := jsNumberOf(l)
		if !isJSInteger(n) || n <= 0 {
			return 0, 0, "The limit must be a positive integer: [" + jsonOrUndefined(l) + "]."
		}
		limit = int(min(n, 1<<31))
	}
	if cursor != nil {
		n := jsNumberOf(cursor)
		if !isJSInteger(n) || n < 0 {
			return 0, 0, "The cursor must be a string or null for first page: [" + jsonOrUndefined(cursor) + "]."
		}
		skip = int(min(n, 1<<31))
	}
	return skip, limit, ""
}

// jsNumberOf is Number(v) for a query value.
func jsNumberOf(v any) float64 {
	switch v := v.(type) {
	case string:
		return jsNumber(v)
	case []string:
		if len(v) == 1 {
			return jsNumber(v[0])
		}
		if len(v) == 0 {
			return 0
		}
	}
	return math.NaN()
}

// isJSInteger is Number.isInteger.
func isJSInteger(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0) && f == math.Trunc(f)
}

// getContactUUIDs is GET /api/v1/contact/uuid (api/src/controllers/contact.js
// getUuids, cht-datasource Contact.v1.getUuidsPage).
func (s *Server) getContactUUIDs(x *exchange) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	q := x.r.URL.Query()
	freetext, typ := queryParam(q, "freetext"), queryParam(q, "type")
	if !truthyQuery(freetext) && !truthyQuery(typ) {
		return x.respond(http.StatusBadRequest, "Either query param freetext or type is required", nil)
	}
	if truthyQuery(freetext) {
		if msg := freetextError(freetext); msg != "" {
			return x.respond(http.StatusBadRequest, msg, nil)
		}
	}
	if truthyQuery(typ) {
		if _, ok := typ.(string); !ok {
			return x.respond(http.StatusBadRequest, "Invalid contact type ["+jsonOrUndefined(typ)+"].", nil)
		}
	}
	skip, limit, msg := pageArgs(q)
	if msg != "" {
		return x.respond(http.StatusBadRequest, msg, nil)
	}
	typeID, _ := typ.(string)
	if typeID != "" && !slices.Contains(contactTypeIDs, typeID) {
		return x.respond(http.StatusBadRequest, "Invalid contact type ["+typeID+"].", nil)
	}
	ft, _ := freetext.(string)

	ofType := func(id string) bool { return typeID == "" || contactTypeID(s.contacts[id]) == typeID }
	s.mu.Lock()
	var rows []indexRow
	if ft != "" {
		rows = s.contactView.query(ft, ofType)
	} else {
		// contacts_by_type emits one row per contact.
		for id := range s.contacts {
			if ofType(id) {
				rows = append(rows, indexRow{key: typeID, id: id})
			}
		}
	}
	s.mu.Unlock()

	sortRows(rows)
	return jsonResponse(http.StatusOK, fetchAndFilterUUIDs(rows, limit, skip))
}

// getReportUUIDs is GET /api/v1/report/uuid (api/src/controllers/report.js
// getUuids, cht-datasource Report.v1.getUuidsPage).
func (s *Server) getReportUUIDs(x *exchange) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	q := x.r.URL.Query()
	freetext := queryParam(q, "freetext")
	if msg := freetextError(freetext); msg != "" {
		return x.respond(http.StatusBadRequest, msg, nil)
	}
	skip, limit, msg := pageArgs(q)
	if msg != "" {
		return x.respond(http.StatusBadRequest, msg, nil)
	}

	s.mu.Lock()
	rows := s.reportView.query(freetext.(string), func(string) bool { return true })
	s.mu.Unlock()

	sortRows(rows)
	return jsonResponse(http.StatusOK, fetchAndFilterUUIDs(rows, limit, skip))
}

// truthyQuery is JavaScript truthiness for a query value.
func truthyQuery(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	}
	return true
}
