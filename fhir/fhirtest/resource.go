package fhirtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Resource is one stored version of a resource.
type Resource struct {
	// Type and ID name the resource, ID as it was created.
	Type, ID string
	// VersionID is meta.versionId: "1", "2", ...
	VersionID string
	// LastUpdated is meta.lastUpdated, from the fake's clock.
	LastUpdated time.Time
	// JSON is the resource as served, meta included.
	JSON json.RawMessage
}

// entry is every version of one resource, oldest first.
type entry struct {
	versions []Resource
	deleted  bool
}

func (e *entry) latest() Resource { return e.versions[len(e.versions)-1] }

// key is the store key of a resource. HeyDonto ids are case-insensitive
// (C§6.3), so its keys are lower-cased.
func (s *Server) key(typ, id string) string {
	if s.opts.Vendor == HeyDonto {
		id = strings.ToLower(id)
	}
	return typ + "/" + id
}

// assignID is the id a server gives a created resource: HAPI numbers them
// from 1, the others use UUIDs. The caller holds s.mu.
func (s *Server) assignID() string {
	if s.opts.Vendor == HAPI {
		s.seq++
		return strconv.Itoa(s.seq)
	}
	return newID()
}

// put stores a new version of res (a decoded resource of type typ whose id
// is set), stamping meta.versionId and meta.lastUpdated. The caller holds
// s.mu.
func (s *Server) put(typ string, res map[string]any) Resource {
	id, _ := res["id"].(string)
	k := s.key(typ, id)
	e := s.resources[k]
	if e == nil || e.deleted {
		if e == nil {
			s.order = append(s.order, k)
		}
		e = &entry{versions: e.versionsOrNil()}
		s.resources[k] = e
	} else {
		id = e.versions[0].ID // the id as created, whatever its case here
		res["id"] = id
	}
	now := s.Clock.Now()
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	version := strconv.Itoa(len(e.versions) + 1)
	meta["versionId"] = version
	meta["lastUpdated"] = now.Format(time.RFC3339Nano)
	res["meta"] = meta
	res["resourceType"] = typ
	r := Resource{Type: typ, ID: id, VersionID: version, LastUpdated: now, JSON: mustJSON(res)}
	e.versions = append(e.versions, r)
	return r
}

func (e *entry) versionsOrNil() []Resource {
	if e == nil {
		return nil
	}
	return e.versions
}

// get returns the latest version of a resource that exists. The caller holds
// s.mu.
func (s *Server) get(typ, id string) (Resource, bool) {
	e := s.resources[s.key(typ, id)]
	if e == nil || e.deleted {
		return Resource{}, false
	}
	return e.latest(), true
}

// all returns the latest version of every existing resource of typ, in
// creation order. The caller holds s.mu.
func (s *Server) all(typ string) []Resource {
	var out []Resource
	for _, k := range s.order {
		if e := s.resources[k]; !e.deleted && e.versions[0].Type == typ {
			out = append(out, e.latest())
		}
	}
	return out
}

// decodeResource parses test-supplied JSON of type typ; it panics on a bad
// one, as test support does (httptest.NewRequest).
func decodeResource(typ string, raw []byte) map[string]any {
	var res map[string]any
	if err := json.Unmarshal(raw, &res); err != nil {
		panic(fmt.Sprintf("fhirtest: %s is not JSON: %v", typ, err))
	}
	if rt, _ := res["resourceType"].(string); rt != typ {
		panic(fmt.Sprintf("fhirtest: resourceType %q, want %s", rt, typ))
	}
	return res
}

// CreateClaimResponse stores a new ClaimResponse (its id is kept, or
// assigned when absent) and notifies the subscriptions whose criteria it
// matches. It returns after the first delivery attempt of each
// notification; retries wait for Tick. It panics on JSON that is not a
// ClaimResponse or an id that exists.
func (s *Server) CreateClaimResponse(raw []byte) Resource {
	return s.create("ClaimResponse", raw)
}

// UpdateClaimResponse stores raw as the next version of the ClaimResponse
// id and notifies as CreateClaimResponse does. It panics if id does not
// exist.
func (s *Server) UpdateClaimResponse(id string, raw []byte) Resource {
	return s.update("ClaimResponse", id, raw)
}

// AddPatient stores a Patient (its id kept, or assigned) and notifies as
// CreateClaimResponse does.
func (s *Server) AddPatient(raw []byte) Resource {
	return s.create("Patient", raw)
}

func (s *Server) create(typ string, raw []byte) Resource {
	res := decodeResource(typ, raw)
	s.mu.Lock()
	if id, _ := res["id"].(string); id == "" {
		res["id"] = s.assignID()
	} else if _, ok := s.get(typ, id); ok {
		s.mu.Unlock()
		panic(fmt.Sprintf("fhirtest: %s/%s exists", typ, id))
	}
	r := s.put(typ, res)
	batch := s.trigger(r)
	s.mu.Unlock()
	s.deliverAll(batch)
	return r
}

func (s *Server) update(typ, id string, raw []byte) Resource {
	res := decodeResource(typ, raw)
	res["id"] = id
	s.mu.Lock()
	if _, ok := s.get(typ, id); !ok {
		s.mu.Unlock()
		panic(fmt.Sprintf("fhirtest: %s/%s does not exist", typ, id))
	}
	r := s.put(typ, res)
	batch := s.trigger(r)
	s.mu.Unlock()
	s.deliverAll(batch)
	return r
}

// ClaimResponses returns the latest version of every ClaimResponse, in
// creation order.
func (s *Server) ClaimResponses() []Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all("ClaimResponse")
}

// Patients returns the latest version of every Patient, in creation order.
func (s *Server) Patients() []Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all("Patient")
}

// read is GET <Type>/<id>: the latest version, 404 for an unknown id and
// 410 for a deleted one (FHIR R4 http.html#read). HeyDonto matches ids
// case-insensitively (C§6.3).
func (s *Server) read(x *exchange, typ, id string) response {
	s.mu.Lock()
	e := s.resources[s.key(typ, id)]
	var r Resource
	if e != nil {
		r = e.latest()
	}
	s.mu.Unlock()
	switch {
	case e == nil:
		return x.outcome(http.StatusNotFound, "not-found", "Resource "+typ+"/"+id+" is not known")
	case e.deleted:
		return x.outcome(http.StatusGone, "deleted", "Resource "+typ+"/"+id+" was deleted")
	}
	return response{status: http.StatusOK, header: http.Header{
		"Content-Type":  {s.contentType()},
		"Etag":          {`W/"` + r.VersionID + `"`},
		"Last-Modified": {r.LastUpdated.Format(http.TimeFormat)},
	}, body: r.JSON}
}

// history is GET <Type>/<id>/_history (HeyDonto: /history, C§6.3): a
// history Bundle of every version, newest first.
func (s *Server) history(x *exchange, typ, id string) response {
	s.mu.Lock()
	e := s.resources[s.key(typ, id)]
	var versions []Resource
	if e != nil {
		versions = append(versions, e.versions...)
	}
	s.mu.Unlock()
	if e == nil {
		return x.outcome(http.StatusNotFound, "not-found", "Resource "+typ+"/"+id+" is not known")
	}
	entries := make([]any, 0, len(versions))
	for i := len(versions) - 1; i >= 0; i-- {
		entries = append(entries, map[string]any{
			"fullUrl":  s.fullURL(x.r, typ, versions[i].ID),
			"resource": versions[i].JSON,
		})
	}
	return x.json(http.StatusOK, map[string]any{
		"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries,
	})
}

// fullURL is the absolute URL of a resource on this fake.
func (s *Server) fullURL(r *http.Request, typ, id string) string {
	return origin(r) + s.base + "/" + s.segment(typ) + "/" + id
}
