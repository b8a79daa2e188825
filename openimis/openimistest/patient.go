package openimistest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// patient is a stored insuree, kept as its FHIR Patient.
type patient struct {
	chfID    string
	created  time.Time
	id       string
	resource json.RawMessage
}

var patientsView = view{
	auth: true, lastUpdated: true, name: "Patient/",
	notModelled: []string{http.MethodGet, http.MethodPost},
	rights:      map[string]int{http.MethodGet: RightInsureeRead},
}

var patientView = view{
	auth: true, lastUpdated: true, name: "Patient/<id>/",
	handlers:    map[string]func(*call){http.MethodGet: (*call).getPatient},
	notModelled: []string{http.MethodPut, http.MethodDelete},
	rights:      map[string]int{http.MethodGet: RightInsureeRead},
}

// AddPatient stores an insuree as its FHIR Patient JSON under id (the insuree
// UUID, matched lower-case as upstream's UUID lookups do). The served Patient
// gets "id" and, when missing, a leading UUID identifier; the insurance
// number (CHFID) is the value of the identifier of type "Code". An existing
// patient with the same id is replaced. AddPatient panics if the JSON is not
// an object, for ease of use in tests.
func (s *Server) AddPatient(id string, patientJSON json.RawMessage) {
	m, err := decodeObject(patientJSON)
	if err != nil {
		panic("openimistest: Patient is not a JSON object: " + err.Error())
	}
	m["id"] = id
	if identifierValue(m, func(code string) bool { return code == "UUID" }) == "" {
		m["identifier"] = append([]any{uuidIdentifier(id)}, asList(m["identifier"])...)
	}
	p := &patient{
		chfID:    identifierValue(m, func(code string) bool { return code == "Code" }),
		id:       id,
		resource: mustMarshal(m),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p.created = s.now()
	s.patients[id] = p
}

// getPatient answers GET Patient/<uuid>/ (contract §7): an unknown UUID is a
// 500; an identifier that is not a UUID is a 404 (the CHFID retriever never
// applies with the default insuree-number validation).
func (c *call) getPatient() {
	canonical, ok := pyUUID(c.id)
	if !ok {
		c.fail(errNotFound(fmt.Sprintf("Resource for identifier %s not found", c.id)))
		return
	}
	c.s.mu.Lock()
	p := c.s.patients[canonical]
	if p != nil && !c.filter.match(p.created) {
		p = nil
	}
	c.s.mu.Unlock()
	if p == nil {
		c.fail(errServer(pyListRepr(fmt.Sprintf("failed to retrieve Insuree with the filter {'uuid': UUID('%s')}; "+
			"details Insuree matching query does not exist.", canonical))))
		return
	}
	c.json(http.StatusOK, p.resource)
}

// patientByReference resolves a FHIR Reference to an insuree like
// PatientConverter.get_imis_obj_by_fhir_reference: "<Type>/<id>" (type not
// checked) or type + identifier; an identifier type code "Code" (any case)
// means the CHFID, anything else a UUID with the CHFID as fallback when the
// value is not a UUID. It returns an error text when the reference is
// malformed. The caller holds s.mu.
func (s *Server) patientByReference(ref map[string]any) (*patient, string) {
	var id, codeType string
	if r := asString(ref["reference"]); strings.Contains(r, "/") {
		id = r[strings.LastIndex(r, "/")+1:]
	} else if _, ok := ref["type"].(string); ok {
		ident := asObject(ref["identifier"])
		value, ok := ident["value"].(string)
		if !ok {
			return nil, malformedReference(ref)
		}
		id = value
		if coding := asList(asObject(ident["type"])["coding"]); len(coding) > 0 {
			codeType = asString(asObject(coding[0])["code"])
		}
	} else {
		return nil, malformedReference(ref)
	}
	if !strings.EqualFold(codeType, "code") {
		if canonical, ok := pyUUID(id); ok {
			return s.patients[canonical], ""
		}
	}
	for _, p := range s.patients {
		if p.chfID == id {
			return p, ""
		}
	}
	return nil, ""
}

// malformedReference is FHIRRequestProcessException's text for a reference
// with neither "<Type>/<id>" nor type + identifier.value.
func malformedReference(ref map[string]any) string {
	return "The request cannot be processed due to the following issues:\nInvalid format of reference `" +
		string(mustMarshal(ref)) + "`. Should be string with format <ReferenceType>/<ReferenceId>"
}
