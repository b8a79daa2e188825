package chttest

// Report is a data_record stored by POST /api/v2/records.
type Report struct {
	// ID is the report's _id, the id the records API answered.
	ID string
	// Form is the upper-cased form code.
	Form string
	// Fields are the kept fields: lower-cased keys that the form defines.
	// JSON numbers are float64.
	Fields map[string]any
	// Errors are the validation errors stored in the doc; the API still
	// answered 200 for them.
	Errors []DocError
	// ReportedDate is reported_date in epoch milliseconds.
	ReportedDate int64
	// Meta is the stored sms_message: the request's _meta, form upper-cased.
	Meta map[string]any
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
		out = append(out, reportOf(s.reports[id]))
	}
	return out
}

// ReportCount returns how many reports exist, without copying them.
func (s *Server) ReportCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reportOrder)
}

// Report returns a copy of the report id.
func (s *Server) Report(id string) (Report, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.reports[id]
	if !ok {
		return Report{}, false
	}
	return reportOf(doc), true
}

// reportOf builds the Report view of a copy of a stored doc.
func reportOf(stored map[string]any) Report {
	doc := copyDoc(stored)
	r := Report{Doc: doc}
	r.ID, _ = doc["_id"].(string)
	r.Form, _ = doc["form"].(string)
	r.Fields, _ = doc["fields"].(map[string]any)
	r.Meta, _ = doc["sms_message"].(map[string]any)
	if rd, ok := doc["reported_date"].(float64); ok {
		r.ReportedDate = int64(rd)
	}
	errs, _ := doc["errors"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		code, _ := m["code"].(string)
		msg, _ := m["message"].(string)
		r.Errors = append(r.Errors, DocError{Code: code, Message: msg})
	}
	return r
}
