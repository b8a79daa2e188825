package chttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

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

// contactType is contact-types-utils getTypeId: type, or contact_type for a
// doc of type "contact".
func contactType(doc map[string]any) string {
	t, _ := doc["type"].(string)
	if t == "contact" {
		t, _ = doc["contact_type"].(string)
	}
	return t
}

func isPersonDoc(doc map[string]any) bool { return contactType(doc) == "person" }

func isPlaceDoc(doc map[string]any) bool { return placeTypes[contactType(doc)] }

// postPeople is POST /api/v1/people (api/src/routing.js:487-497, then
// people.createPerson in shared-libs/contacts/src/people.js:27-79;
// docs/upstreams/cht.md §3):
//
//   - the Content-Type must be exactly application/json, or 400, before
//     authentication (routing.js:95-110; trap 13);
//   - an empty body is 400; type defaults to "person", any other type is
//     400; "name" is required and must be a string (400);
//   - "place" must be the _id of an existing place, or 404 "Failed to find
//     place."; it becomes the person's parent (places.js:223-239): without
//     it no CHW ever receives the person (trap 8);
//   - every other property is stored as sent (openimis_id: trap 7), and the
//     doc goes to db.medic.post, so a caller's _id is kept and a second
//     create with it is CouchDB's 409 conflict;
//   - the answer is 200 with the post result {"ok":true,"id":…,"rev":…}.
//
// No shortcode is added: sentinel does that later (trap 6). A reported_date
// that is not epoch ms is replaced by now (the API refuses an unparsable
// one); inline place creation is not modelled.
func (s *Server) postPeople(x *exchange) response {
	body, resp, ok := x.parseJSON()
	if !ok {
		return resp
	}
	if x.r.Header.Get("Content-Type") != "application/json" {
		return x.respond(http.StatusBadRequest, "Content-Type must be application/json", nil)
	}
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	doc, _ := body.(map[string]any)
	if len(doc) == 0 {
		return x.respond(http.StatusBadRequest,
			"Request body is empty or Content-Type header was not set to application/json.", nil)
	}
	if doc["type"] == nil || doc["type"] == "" {
		doc["type"] = "person"
	}
	if _, ok := doc["reported_date"].(float64); !ok {
		doc["reported_date"] = float64(s.now().UnixMilli())
	}
	name, hasName := doc["name"]
	_, nameIsString := name.(string)
	switch {
	case !isPersonDoc(doc):
		return x.respond(http.StatusBadRequest, "Wrong type, this is not a person.", nil)
	case !hasName:
		return x.respond(http.StatusBadRequest, `Person is missing a "name" property.`, nil)
	case !nameIsString:
		return x.respond(http.StatusBadRequest, `Property "name" must be a string.`, nil)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch place := doc["place"].(type) {
	case nil:
	case string:
		parent, ok := s.contacts[place]
		if !ok || !isPlaceDoc(parent) {
			return x.respond(http.StatusNotFound, "Failed to find place.", nil)
		}
		doc["parent"] = minifyLineage(parent)
		delete(doc, "place")
	case map[string]any:
		return x.respond(http.StatusBadRequest, "chttest: creating a place inline is not modelled", nil)
	default:
		return x.respond(http.StatusBadRequest, "Place must be a new object or string identifier (UUID).", nil)
	}
	id, given := doc["_id"].(string)
	switch {
	case doc["_id"] != nil && (!given || id == ""):
		return x.respond(http.StatusBadRequest, "Document id must be a non-empty string", nil)
	case !given:
		id = strings.ReplaceAll(uuid.NewString(), "-", "") // CouchDB's own ids
	case s.contacts[id] != nil || s.reports[id] != nil:
		return x.respond(http.StatusConflict, "Document update conflict.", nil)
	}
	doc["_id"], doc["_rev"] = id, newRev()
	s.putContactLocked(doc)
	return jsonResponse(http.StatusOK, map[string]any{"ok": true, "id": id, "rev": doc["_rev"]})
}

// minifyLineage is lineage minifyLineage for a stored place: its _id, and
// its parent chain, which is stored minified already.
func minifyLineage(place map[string]any) map[string]any {
	out := map[string]any{"_id": place["_id"]}
	if parent, ok := place["parent"].(map[string]any); ok {
		out["parent"] = copyDoc(parent)
	}
	return out
}

// putContactLocked stores a new contact doc. The caller holds s.mu.
func (s *Server) putContactLocked(doc map[string]any) {
	id := doc["_id"].(string)
	s.contactOrder = append(s.contactOrder, id)
	s.contacts[id] = doc
	s.contactView.put(id, contactFreetextKeys(doc))
}

// getContactDoc is GET /api/v1/person/{uuid} (api/src/controllers/person.js,
// CHT 4.9+) and GET /api/v1/place/{uuid} (api/src/controllers/place.js): the
// stored doc, or 404 with notFound ("Person not found") when there is no
// contact of that kind with that _id. with_lineage is not modelled.
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
	return jsonResponse(http.StatusOK, doc)
}

// AddPlace stores a place (a health_center with no parent) with the given
// id, as if it had been created in the CHT beforehand. AddPlace panics if a
// doc with that id exists.
func (s *Server) AddPlace(id string) {
	s.add(map[string]any{"_id": id, "type": "health_center", "name": "chttest place"})
}

// AddPerson stores doc as a contact, as if it had been written to the CHT
// beforehand, without the API's checks, and returns its _id. The fake adds
// an _id when doc has none, a _rev, and type "person" when type is missing.
// The doc is copied through JSON, so Go ints become float64. AddPerson
// panics if a doc with that _id exists or doc is not JSON.
func (s *Server) AddPerson(doc map[string]any) string {
	doc = copyDoc(doc)
	if doc["type"] == nil || doc["type"] == "" {
		doc["type"] = "person"
	}
	return s.add(doc)
}

func (s *Server) add(doc map[string]any) string {
	id, _ := doc["_id"].(string)
	if id == "" {
		id = strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	doc["_id"], doc["_rev"] = id, newRev()
	if _, ok := doc["reported_date"]; !ok {
		doc["reported_date"] = float64(s.now().UnixMilli())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contacts[id] != nil || s.reports[id] != nil {
		panic(fmt.Sprintf("chttest: doc %q exists", id))
	}
	s.putContactLocked(doc)
	return id
}

// People returns copies of the stored person contacts, oldest first.
func (s *Server) People() []Person {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Person
	for _, id := range s.contactOrder {
		if doc := s.contacts[id]; isPersonDoc(doc) {
			out = append(out, Person{ID: id, Doc: copyDoc(doc)})
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
	return Person{ID: id, Doc: copyDoc(doc)}, true
}

// copyDoc deep-copies a doc through JSON, so that it holds only what a JSON
// decoder produces. nil becomes an empty doc. It panics if doc is not JSON.
func copyDoc(doc map[string]any) map[string]any {
	b, err := json.Marshal(doc)
	if err != nil {
		panic("chttest: doc is not JSON: " + err.Error())
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		panic("chttest: doc is not JSON: " + err.Error())
	}
	if out == nil {
		out = map[string]any{}
	}
	return out
}

// newRev returns a CouchDB-style first revision: "1-" and 32 hex digits.
func newRev() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "1-" + hex.EncodeToString(b)
}
