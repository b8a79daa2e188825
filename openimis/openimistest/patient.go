package openimistest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// patient is a stored insuree, kept as its FHIR Patient.
type patient struct {
	chfID    string
	id       string
	resource json.RawMessage
}

// AddPatient stores an insuree as its FHIR Patient JSON under id (the insuree
// UUID, looked up lower-case). The served Patient gets "id" and, when
// missing, a leading UUID identifier; the insurance number (CHFID) is the
// identifier of type "Code". An existing patient is replaced. AddPatient
// panics if the JSON is not an object.
func (s *Server) AddPatient(id string, patientJSON json.RawMessage) {
	m, err := decodeObject(patientJSON)
	if err != nil {
		panic("openimistest: Patient is not a JSON object: " + err.Error())
	}
	m["id"] = id
	if identifierValue(m, func(code string) bool { return code == "UUID" }) == "" {
		m["identifier"] = append([]any{uuidIdentifier(id)}, asList(m["identifier"])...)
	}
	p := &patient{chfID: identifierValue(m, func(code string) bool { return code == "Code" }), id: id, resource: mustMarshal(m)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.patients[id] = p
}

// getPatient answers GET Patient/<uuid>/ (views/fhir/insuree.py, §7): the
// Patient, or for an unknown UUID (or an insuree outside the user's area) a
// 500 "Insuree matching query does not exist", not a 404
// (model_retrievers.py, trap 15). An id that is not a UUID is a 404.
func (c *call) getPatient() {
	canonical, ok := canonicalUUID(c.id)
	if !ok {
		c.fail(&apiError{code: "not-found", severity: "error", status: http.StatusNotFound, text: "Resource for identifier " + c.id + " not found"})
		return
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if p := c.s.patients[canonical]; p != nil {
		c.json(http.StatusOK, p.resource)
		return
	}
	c.fail(errServer(`["failed to retrieve Insuree with the filter {'uuid': UUID('` + canonical +
		`')}; details Insuree matching query does not exist."]`))
}

// patientByReference resolves a Communication subject like
// PatientConverter.get_imis_obj_by_fhir_reference: "<Type>/<uuid>", or a
// type with an identifier whose type code is "Code" (the CHFID) or a UUID.
// The caller holds s.mu.
func (s *Server) patientByReference(ref map[string]any) *patient {
	id := ""
	if r, _ := ref["reference"].(string); strings.Contains(r, "/") {
		id = r[strings.LastIndex(r, "/")+1:]
	} else if ident := asObject(ref["identifier"]); ref["type"] != nil {
		id, _ = ident["value"].(string)
	}
	if canonical, ok := canonicalUUID(id); ok {
		return s.patients[canonical]
	}
	for _, p := range s.patients {
		if id != "" && p.chfID == id {
			return p
		}
	}
	return nil
}
