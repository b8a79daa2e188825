package mapping

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Feedback is a health worker's claims_feedback report, as CHT outbound push
// sends it (docs/upstreams/cht.md §4).
type Feedback struct {
	// DocID is the CHT report's _id: one feedback per DocID.
	DocID string `json:"doc_id"`
	// ClaimUUID is the claim the feedback is about, exactly as received.
	ClaimUUID string `json:"claim_uuid"`
	// InsureeUUID is the insuree, exactly as received; it may be empty when
	// the CHT person lacked openimis_id (docs/upstreams/cht.md §4).
	InsureeUUID string `json:"insuree_uuid,omitempty"`

	CareRendered   bool `json:"care_rendered"`
	PaymentAsked   bool `json:"payment_asked"`
	DrugPrescribed bool `json:"drug_prescribed"`
	DrugReceived   bool `json:"drug_received"`
	// Rating is the overall assessment, 0 to 5.
	Rating int `json:"rating"`
}

// feedbackQuestions are the yes/no questions, by their outbound keys.
var feedbackQuestions = []string{"care_rendered", "payment_asked", "drug_prescribed", "drug_received"}

// ParseFeedback decodes and validates a CHT outbound push body. It is
// liberal where real deployments differ (spec §3): the report id as nested
// {"doc":{"_id"}} or a flat "doc._id" key; claimUUID/claimuuid and
// insureeUUID/insureeuuid in any case; yes/no as yes/no/true/false/1/0 in any
// case, as strings, booleans or numbers; the rating as a string or number from
// 0 to 5. Everything else is an error naming each bad field.
func ParseFeedback(body []byte) (Feedback, error) {
	if err := checkText(body); err != nil {
		return Feedback{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil || raw == nil {
		msg := "must be a JSON object"
		if err != nil {
			msg += ": " + jsonProblem(err)
		}
		return Feedback{}, FieldErrors{{Field: "body", Message: msg}}
	}
	if dec.More() {
		return Feedback{}, FieldErrors{{Field: "body", Message: "trailing data after the JSON object"}}
	}
	// Keys match in any case; an error names a field as it was sent.
	keys := make(map[string]any, len(raw))
	sent := make(map[string]string, len(raw))
	for k, v := range raw {
		keys[strings.ToLower(k)] = v
		sent[strings.ToLower(k)] = k
	}
	name := func(key, missing string) string { return cmp.Or(sent[key], missing) }

	var errs FieldErrors
	var f Feedback
	f.DocID = docID(raw, &errs)
	f.ClaimUUID = uuidField(keys, "claimuuid", name("claimuuid", "claimUUID"), true, &errs)
	f.InsureeUUID = uuidField(keys, "insureeuuid", name("insureeuuid", "insureeUUID"), false, &errs)
	answers := []*bool{&f.CareRendered, &f.PaymentAsked, &f.DrugPrescribed, &f.DrugReceived}
	for i, q := range feedbackQuestions {
		b, msg := yesNo(keys[q])
		if msg != "" {
			errs.add(name(q, q), msg)
		}
		*answers[i] = b
	}
	rating, msg := ratingValue(keys["assessment_rating"])
	if msg != "" {
		errs.add(name("assessment_rating", "assessment_rating"), msg)
	}
	f.Rating = rating
	if err := errs.err(); err != nil {
		return Feedback{}, err
	}
	return f, nil
}

// docID reads {"doc":{"_id":…}} or a flat "doc._id".
func docID(raw map[string]any, errs *FieldErrors) string {
	v, ok := raw["doc._id"]
	if doc, isMap := raw["doc"].(map[string]any); !ok && isMap {
		v, ok = doc["_id"]
	}
	str, isString := v.(string)
	s := strings.TrimSpace(str)
	switch {
	case !ok:
		errs.add("doc._id", "is required (the CHT report id)")
	case hasControl(str):
		errs.add("doc._id", "must not hold control characters")
	case !isString || s == "":
		errs.add("doc._id", "must be a non-empty string")
	case len(s) > 128:
		errs.add("doc._id", "must be at most 128 characters")
	case !isDocID(s):
		errs.add("doc._id", "must be a CHT document id: letters, digits, - and _ only")
	default:
		return s
	}
	return ""
}

func uuidField(keys map[string]any, key, name string, required bool, errs *FieldErrors) string {
	v, ok := keys[key]
	s, isString := v.(string)
	s = strings.TrimSpace(s)
	switch {
	case !ok && required:
		errs.add(name, "is required")
	case !ok:
	case !isString:
		errs.add(name, "must be a string")
	case s == "" && required:
		errs.add(name, "must not be empty")
	case s != "" && !IsUUID(s):
		errs.add(name, "must be a UUID")
	default:
		return s
	}
	return ""
}

// yesNo reads a yes/no answer.
func yesNo(v any) (bool, string) {
	const want = "must be yes or no (or true/false, 1/0)"
	switch x := v.(type) {
	case nil:
		return false, "is required; " + want
	case bool:
		return x, ""
	case json.Number:
		switch x.String() {
		case "1":
			return true, ""
		case "0":
			return false, ""
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "yes", "true", "1":
			return true, ""
		case "no", "false", "0":
			return false, ""
		}
		return false, fmt.Sprintf("%s, got %q", want, truncate(x))
	}
	return false, want
}

// ratingValue reads the assessment rating, a whole number from 0 to 5.
func ratingValue(v any) (int, string) {
	const want = "must be a whole number from 0 to 5"
	var s string
	switch x := v.(type) {
	case nil:
		return 0, "is required; " + want
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, want
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f > 5 {
		return 0, fmt.Sprintf("%s, got %q", want, truncate(s))
	}
	return int(f), ""
}
