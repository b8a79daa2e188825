package chttest

import (
	"math"
	"net/http"
)

// Report is a data_record stored by POST /api/v2/records.
type Report struct {
	// ID is the report's _id, the id the records API answered.
	ID string
	// Form is the upper-cased form code.
	Form string
	// Fields are the kept fields: lower-cased keys that the form defines.
	// JSON numbers are float64, as in JavaScript.
	Fields map[string]any
	// Errors are the validation errors stored in the doc. The API still
	// answered 200 for them.
	Errors []DocError
	// ReportedDate is reported_date in epoch milliseconds.
	ReportedDate int64
	// Meta is the stored sms_message: the request's _meta object, with form
	// upper-cased.
	Meta map[string]any
	// Subject is the report's subject id, as registration-utils getSubjectId
	// finds it: the first of patient_id, patient_uuid, place_id and
	// place_uuid, at the top level or in fields. Empty when there is none.
	Subject string
	// ContactID is the _id of the contact the report is about. The subject
	// is looked up first as a shortcode (a contact's patient_id or place_id),
	// then as a contact _id, as lineage hydration does. It is computed when
	// Reports is called, so a contact created later still counts. Empty
	// when no stored contact matches.
	ContactID string
	// Doc is the whole stored doc.
	Doc map[string]any
}

// DocError is one entry of a report's errors.
type DocError struct {
	// Code is e.g. "sys.missing_fields" or "sys.incorrect_type".
	Code string
	// Message is the English message, e.g.
	// "Missing or invalid fields: patient_id.".
	Message string
}

// Reports returns copies of the stored reports, oldest first.
func (s *Server) Reports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Report, 0, len(s.reportOrder))
	for _, id := range s.reportOrder {
		out = append(out, s.reportLocked(id))
	}
	return out
}

// ReportCount returns how many reports exist, without copying them (for
// load tests that poll it).
func (s *Server) ReportCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reportOrder)
}

// Report returns a copy of the report id.
func (s *Server) Report(id string) (Report, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reports[id]; !ok {
		return Report{}, false
	}
	return s.reportLocked(id), true
}

// reportLocked builds the Report view of a stored doc. The caller holds
// s.mu.
func (s *Server) reportLocked(id string) Report {
	doc := cloneMap(s.reports[id])
	r := Report{ID: id, Doc: doc}
	r.Form, _ = doc["form"].(string)
	r.Fields, _ = doc["fields"].(map[string]any)
	r.Meta, _ = doc["sms_message"].(map[string]any)
	if rd, ok := doc["reported_date"].(float64); ok && !math.IsNaN(rd) && !math.IsInf(rd, 0) {
		r.ReportedDate = int64(rd)
	}
	if errs, ok := doc["errors"].([]any); ok {
		for _, e := range errs {
			m, _ := e.(map[string]any)
			code, _ := m["code"].(string)
			msg, _ := m["message"].(string)
			r.Errors = append(r.Errors, DocError{Code: code, Message: msg})
		}
	}
	r.Subject = subjectID(doc)
	r.ContactID = s.resolveSubjectLocked(r.Subject)
	return r
}

// subjectID is registration-utils getSubjectId.
func subjectID(doc map[string]any) string {
	fields, _ := doc["fields"].(map[string]any)
	for _, prop := range []string{"patient_id", "patient_uuid", "place_id", "place_uuid"} {
		if v := doc[prop]; truthy(v) {
			return jsString(v)
		}
		if v := fields[prop]; truthy(v) {
			return jsString(v)
		}
	}
	return ""
}

// resolveSubjectLocked finds the contact a subject id names: a shortcode
// first (contacts_by_reference), then an _id. The caller holds s.mu.
func (s *Server) resolveSubjectLocked(subject string) string {
	if subject == "" {
		return ""
	}
	for _, id := range s.contactOrder {
		doc := s.contacts[id]
		if doc["patient_id"] == subject || doc["place_id"] == subject {
			return id
		}
	}
	if _, ok := s.contacts[subject]; ok {
		return subject
	}
	return ""
}

// getReport is GET /api/v1/report/{uuid} (api/src/controllers/report.js).
func (s *Server) getReport(x *exchange, id string) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.reports[id]
	if !ok {
		return x.respond(http.StatusNotFound, "Report not found", nil)
	}
	return jsonResponse(http.StatusOK, cloneMap(doc))
}
