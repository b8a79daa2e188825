package chttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Person is a person contact as stored by the fake.
type Person struct {
	// ID is the doc's _id.
	ID string
	// Doc is the whole stored doc: _id, _rev, type, name, reported_date,
	// parent, and whatever else the caller sent.
	Doc map[string]any
}

// placeTypes are the place contact types of the default CHT configuration.
var placeTypes = map[string]bool{"district_hospital": true, "health_center": true, "clinic": true}

// contactTypeID is contact-types-utils getTypeId.
func contactTypeID(doc map[string]any) string {
	var t any = doc["type"]
	if t == "contact" {
		t = doc["contact_type"]
	}
	s, _ := t.(string)
	return s
}

func isPersonDoc(doc map[string]any) bool { return contactTypeID(doc) == "person" }

func isPlaceDoc(doc map[string]any) bool { return placeTypes[contactTypeID(doc)] }

func isContactDoc(doc map[string]any) bool { return isPersonDoc(doc) || isPlaceDoc(doc) }

// peopleResult is the CouchDB post result that POST /api/v1/people returns.
type peopleResult struct {
	OK  bool   `json:"ok"`
	ID  string `json:"id"`
	Rev string `json:"rev"`
}

// postPeople is POST /api/v1/people (api/src/routing.js postJson, then
// shared-libs/contacts people.createPerson). The json parser and the exact
// Content-Type check run before the credentials are checked.
func (s *Server) postPeople(x *exchange) response {
	body, resp, ok := x.parseBody(false)
	if !ok {
		return resp
	}
	if x.r.Header.Get("Content-Type") != "application/json" {
		return x.respond(http.StatusBadRequest, "Content-Type must be application/json", nil)
	}
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	if body.isEmptyJSON() {
		return x.respond(http.StatusBadRequest,
			"Request body is empty or Content-Type header was not set to application/json.", nil)
	}
	if body.kind == bodyJSONArray {
		// An array gets type "person" and then has no name.
		return x.respond(http.StatusBadRequest, `Person is missing a "name" property.`, nil)
	}
	doc := cloneMap(body.values)
	if !truthy(doc["type"]) {
		doc["type"] = "person"
	}
	if msg := validatePerson(doc); msg != "" {
		return x.respond(http.StatusBadRequest, msg, nil)
	}
	reported := s.now()
	if truthy(doc["reported_date"]) {
		reported, _ = parseContactDate(doc["reported_date"])
	}
	doc["reported_date"] = float64(reported.UnixMilli())

	s.mu.Lock()
	defer s.mu.Unlock()
	if place := doc["place"]; truthy(place) {
		switch p := place.(type) {
		case string:
			parent, ok := s.contacts[p]
			if !ok || !isPlaceDoc(parent) {
				return x.respond(http.StatusNotFound, "Failed to find place.", nil)
			}
			doc["parent"] = minifyLineage(parent)
			delete(doc, "place")
		case map[string]any, []any:
			return x.respond(http.StatusBadRequest, "chttest: creating a place inline is not modelled", nil)
		default:
			return x.respond(http.StatusBadRequest, "Place must be a new object or string identifier (UUID).", nil)
		}
	}
	id, rev, status, msg := s.newDocID(doc)
	if status != 0 {
		return x.respond(status, msg, nil)
	}
	doc["_id"] = id
	doc["_rev"] = rev
	s.putContactLocked(doc)
	return jsonResponse(http.StatusOK, peopleResult{OK: true, ID: id, Rev: rev})
}

// validatePerson is people.js validatePerson.
func validatePerson(doc map[string]any) string {
	if !isPersonDoc(doc) {
		return "Wrong type, this is not a person."
	}
	name, ok := doc["name"]
	if !ok {
		return `Person is missing a "name" property.`
	}
	if _, isStr := name.(string); !isStr {
		return `Property "name" must be a string.`
	}
	if rd, ok := doc["reported_date"]; ok {
		if _, valid := parseContactDate(rd); !valid {
			return "Reported date is invalid: " + jsString(rd)
		}
	}
	return ""
}

// contactTimestamp is moment's strict "x" format: epoch milliseconds.
var contactTimestamp = regexp.MustCompile(`^[+-]?\d+(\.\d{1,3})?$`)

// parseContactDate is contacts utils parseDate: strict moment with the
// formats YYYY-MM-DDTHH:mm:ssZ, YYYY-MM-DDTHH:mm:ss.SSSZ and x (epoch ms).
// moment turns a number into a string before parsing it.
func parseContactDate(v any) (time.Time, bool) {
	if v == nil {
		return time.Time{}, false
	}
	s := jsString(v)
	if contactTimestamp.MatchString(s) {
		return time.UnixMilli(int64(jsNumber(s))), true
	}
	for _, layout := range []string{
		"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z0700",
		"2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000Z0700",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// minifyLineage is lineage minifyLineage for a stored place: its _id and its
// parent chain of _ids.
func minifyLineage(place map[string]any) map[string]any {
	out := map[string]any{"_id": place["_id"]}
	if parent, ok := place["parent"].(map[string]any); ok {
		out["parent"] = minifyStub(parent)
	}
	return out
}

func minifyStub(stub map[string]any) map[string]any {
	out := map[string]any{"_id": stub["_id"]}
	if parent, ok := stub["parent"].(map[string]any); ok {
		out["parent"] = minifyStub(parent)
	}
	return out
}

// validRev is PouchDB's revision format check, made before it sends a doc.
var validRev = regexp.MustCompile(`^\d+-[^-]*$`)

// newDocID returns the _id under which db.medic.post(doc) saves doc, the
// way PouchDB and CouchDB assign or check it, and the revision to give it.
// A refused doc gets the status and message the API answers with: PouchDB
// turns CouchDB's per-doc conflict into {status:409, message}, which
// server-utils answers as {"code":409,"error":"Document update conflict."}.
// A _rev equal to the stored contact's revision is an update, as in
// CouchDB. The caller holds s.mu.
func (s *Server) newDocID(doc map[string]any) (id, rev string, status int, msg string) {
	rawRev, hasRev := doc["_rev"]
	if hasRev {
		if r, ok := rawRev.(string); !ok || !validRev.MatchString(r) {
			return "", "", http.StatusBadRequest, "Invalid rev format"
		}
	}
	raw, given := doc["_id"]
	if !given {
		if hasRev {
			return "", "", http.StatusConflict, "Document update conflict."
		}
		// CouchDB's own ids are 32 lower-case hex digits.
		return strings.ReplaceAll(uuid.NewString(), "-", ""), newRev(), 0, ""
	}
	id, ok := raw.(string)
	switch {
	case !ok:
		return "", "", http.StatusBadRequest, "Document id must be a string"
	case id == "":
		return "", "", http.StatusBadRequest, "Document id must not be empty"
	case strings.HasPrefix(id, "_") && !strings.HasPrefix(id, "_design/") && !strings.HasPrefix(id, "_local/"):
		return "", "", http.StatusBadRequest, "Only reserved document ids may start with underscore."
	}
	stored, isContact := s.contacts[id]
	_, isReport := s.reports[id]
	switch {
	case isContact && hasRev && stored["_rev"] == rawRev:
		return id, nextRev(rawRev.(string)), 0, ""
	case isContact || isReport || hasRev:
		return "", "", http.StatusConflict, "Document update conflict."
	}
	return id, newRev(), 0, ""
}

// putContactLocked stores a contact doc, new or updated. The caller holds
// s.mu.
func (s *Server) putContactLocked(doc map[string]any) {
	id := doc["_id"].(string)
	if _, ok := s.contacts[id]; !ok {
		s.contactOrder = append(s.contactOrder, id)
	}
	s.contacts[id] = doc
	s.contactView.put(id, contactFreetextKeys(doc))
}

// getPerson is GET /api/v1/person/{uuid} (api/src/controllers/person.js).
func (s *Server) getPerson(x *exchange, id string) response {
	return s.getContactDoc(x, id, isPersonDoc, "Person not found")
}

// getContact is GET /api/v1/contact/{uuid} (api/src/controllers/contact.js).
func (s *Server) getContact(x *exchange, id string) response {
	return s.getContactDoc(x, id, isContactDoc, "Contact not found")
}

func (s *Server) getContactDoc(x *exchange, id string, is func(map[string]any) bool, notFound string) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.contacts[id]
	if !ok || !is(doc) {
		return x.respond(http.StatusNotFound, notFound, nil)
	}
	out := cloneMap(doc)
	if x.r.URL.Query().Get("with_lineage") == "true" {
		s.hydrateLineageLocked(out)
	}
	return jsonResponse(http.StatusOK, out)
}

// hydrateLineageLocked replaces the parent stubs of doc with copies of the
// stored parent docs, as with_lineage=true does. A stub whose doc is
// missing stays as it is. The caller holds s.mu.
func (s *Server) hydrateLineageLocked(doc map[string]any) {
	for depth := 0; depth < 100; depth++ {
		stub, ok := doc["parent"].(map[string]any)
		if !ok {
			return
		}
		id, _ := stub["_id"].(string)
		parent, ok := s.contacts[id]
		if !ok {
			return
		}
		full := cloneMap(parent)
		doc["parent"] = full
		doc = full
	}
}

// AddPlace stores a place (a health_center with no parent) with the given
// id, as if it had been created in the CHT beforehand. People can then be
// created under it. AddPlace panics if a doc with that id exists.
func (s *Server) AddPlace(id string) {
	if id == "" {
		panic("chttest: AddPlace with an empty id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.contacts[id]; ok {
		panic(fmt.Sprintf("chttest: AddPlace: doc %q exists", id))
	}
	s.putContactLocked(map[string]any{
		"_id":           id,
		"_rev":          newRev(),
		"type":          "health_center",
		"name":          "chttest place",
		"reported_date": float64(s.now().UnixMilli()),
	})
}

// AddPerson stores doc as a contact, as if it had been written to the CHT
// beforehand, without the API's validation. The fake adds an _id when doc
// has none, adds a _rev, and sets type "person" when type is missing. It
// returns the _id. The doc is copied through JSON, so Go ints become
// float64 as in any doc the fake serves. AddPerson panics if a doc with that
// _id exists or if doc cannot be encoded as JSON.
func (s *Server) AddPerson(doc map[string]any) string {
	doc = normalizeDoc(doc)
	id, _ := doc["_id"].(string)
	if id == "" {
		id = strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	doc["_id"] = id
	doc["_rev"] = newRev()
	if !truthy(doc["type"]) {
		doc["type"] = "person"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.contacts[id]; ok {
		panic(fmt.Sprintf("chttest: AddPerson: doc %q exists", id))
	}
	s.putContactLocked(doc)
	return id
}

// SetShortcode sets patient_id on the contact id and bumps its _rev. It does
// what sentinel's generate_shortcode_on_contacts transition does some time
// after POST /api/v1/people. The fake never does it by itself. SetShortcode
// panics if there is no such contact.
func (s *Server) SetShortcode(id, shortcode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.contacts[id]
	if !ok {
		panic(fmt.Sprintf("chttest: SetShortcode: no contact %q", id))
	}
	doc["patient_id"] = shortcode
	doc["_rev"] = nextRev(doc["_rev"].(string))
	s.contactView.put(id, contactFreetextKeys(doc))
}

// People returns copies of the stored person contacts, oldest first.
func (s *Server) People() []Person {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Person
	for _, id := range s.contactOrder {
		doc := s.contacts[id]
		if isPersonDoc(doc) {
			out = append(out, Person{ID: id, Doc: cloneMap(doc)})
		}
	}
	return out
}

// Person returns a copy of the person contact id.
func (s *Server) Person(id string) (Person, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.contacts[id]
	if !ok || !isPersonDoc(doc) {
		return Person{}, false
	}
	return Person{ID: id, Doc: cloneMap(doc)}, true
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// normalizeDoc copies a caller's doc through JSON, so that it holds only the
// values a JSON decoder produces. nil becomes an empty doc.
func normalizeDoc(doc map[string]any) map[string]any {
	b, err := json.Marshal(doc)
	if err != nil {
		panic("chttest: doc is not JSON: " + err.Error())
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic("chttest: doc is not JSON: " + err.Error())
	}
	if out == nil {
		out = map[string]any{}
	}
	return out
}
