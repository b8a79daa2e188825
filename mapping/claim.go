package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/fastjson"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// Claim is what the mediator needs of an openIMIS ClaimResponse.
type Claim struct {
	// Code is the claim's non-UUID identifier (type MR by default, Code on
	// some deployments), shown to the health worker.
	Code string `json:"code"`
	// Created is the ClaimResponse's created date, YYYY-MM-DD, as a date in
	// Nepal time; for a polled claim, the mediator replaces it with its
	// Claim's (ClaimDate).
	Created string `json:"created"`
	// InsureeUUID is the patient's UUID, exactly as received.
	InsureeUUID string `json:"insuree_uuid"`
	// UUID is the claim's UUID, exactly as received.
	UUID string `json:"uuid"`
}

// Nepal is Nepal Standard Time, UTC+05:45, in which claim dates are read.
var Nepal = time.FixedZone("NPT", 5*3600+45*60)

// ParseClaimResponse decodes and validates the body of a ClaimResponse
// notification. Problems come back as FieldErrors (or a JSON syntax error).
func ParseClaimResponse(body []byte) (Claim, error) {
	cr, err := decodeClaimResponse(body)
	if err != nil {
		return Claim{}, err
	}
	return ClaimFromResponse(cr)
}

// decodeClaimResponse decodes a ClaimResponse body, refusing text that is
// not valid UTF-8 or holds lone surrogate escapes first.
func decodeClaimResponse(body []byte) (openimis.ClaimResponse, error) {
	if err := checkText(body); err != nil {
		return openimis.ClaimResponse{}, err
	}
	var cr openimis.ClaimResponse
	// goccy/go-json decodes a notification about five times faster than
	// encoding/json (most of a ClaimResponse is items the mediator skips),
	// and this is the mediator's busiest decode. Its error messages are
	// vaguer, so a body it refuses is decoded again by encoding/json, whose
	// verdict and message count.
	if fastjson.Fast(body, &cr) != nil {
		cr = openimis.ClaimResponse{}
		if err := decodeOne(json.NewDecoder(bytes.NewReader(body)), &cr); err != nil {
			return cr, err
		}
	}
	return cr, nil
}

// decodeOne decodes exactly one JSON value with dec.
func decodeOne(dec *json.Decoder, v any) error {
	if err := dec.Decode(v); err != nil {
		return FieldErrors{{Field: "body", Message: "not a JSON ClaimResponse: " + jsonProblem(err)}}
	}
	if dec.More() {
		return FieldErrors{{Field: "body", Message: "trailing data after the JSON object"}}
	}
	return nil
}

// jsonProblem describes a decoding error without echoing input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be %s, not %s", te.Field, te.Type, te.Value)
	}
	return "invalid JSON"
}

// ClaimFromResponse validates a ClaimResponse and extracts the claim (docs/upstreams/openimis.md
// §4, trap 7).
func ClaimFromResponse(cr openimis.ClaimResponse) (Claim, error) {
	return claimFromResponse(cr, claimDate)
}

// claimFromResponse is ClaimFromResponse reading created with date.
func claimFromResponse(cr openimis.ClaimResponse, date func(string) (string, error)) (Claim, error) {
	var errs FieldErrors
	if cr.ResourceType != "ClaimResponse" {
		errs.add("resourceType", fmt.Sprintf("must be ClaimResponse, got %q", truncate(cr.ResourceType)))
	}
	// openIMIS sends the claim UUID as id and again as the identifier of
	// type UUID; a body with only the identifier (openIMIS's own test
	// fixture) is read from it.
	c := Claim{UUID: cr.ID}
	for _, id := range cr.Identifier {
		code, value := id.Type.Code(), strings.TrimSpace(id.Value)
		switch {
		case code == "UUID" && c.UUID == "":
			c.UUID = value
		case code != "UUID" && value != "" && c.Code == "":
			c.Code = value
		}
	}
	switch {
	case c.UUID == "":
		errs.add("id", "is required (the claim UUID; or an identifier of type UUID)")
	case !IsUUID(c.UUID):
		errs.add("id", "must be a UUID")
	}
	switch {
	case c.Code == "":
		errs.add("identifier", "needs the claim code (an identifier whose type is not UUID)")
	case hasControl(c.Code):
		errs.add("identifier", "the claim code must not hold control characters")
	case len(c.Code) > 128:
		errs.add("identifier", "the claim code must be at most 128 bytes")
	}
	c.InsureeUUID = insureeUUID(cr.Patient)
	if c.InsureeUUID == "" {
		errs.add("patient", "must reference the insuree as Patient/<uuid>")
	}
	created, err := date(cr.Created)
	if err != nil {
		errs.add("created", err.Error())
	}
	c.Created = created
	if err := errs.err(); err != nil {
		return Claim{}, err
	}
	return c, nil
}

// ClaimInsuree returns the insuree UUID a ClaimResponse names, or "".
func ClaimInsuree(cr openimis.ClaimResponse) string {
	return insureeUUID(cr.Patient)
}

// insureeUUID reads the patient UUID from a reference "Patient/<uuid>" or
// from its UUID identifier.
func insureeUUID(ref *openimis.Reference) string {
	if ref == nil {
		return ""
	}
	if id, ok := strings.CutPrefix(ref.Reference, "Patient/"); ok && IsUUID(id) {
		return id
	}
	if ref.Identifier != nil && ref.Identifier.Type.Code() == "UUID" && IsUUID(ref.Identifier.Value) {
		return ref.Identifier.Value
	}
	return ""
}

// ClaimDate reads a claim date as Claim.Created holds it (YYYY-MM-DD, a
// dateTime reduced to its date in Nepal time): the date of a Claim's created,
// which a polled claim takes instead of its ClaimResponse's
// (docs/upstreams/openimis.md trap 21).
func ClaimDate(s string) (string, error) {
	d, err := claimDate(s)
	if err != nil {
		return "", fmt.Errorf("created %w", err)
	}
	return d, nil
}

// claimDate reduces a FHIR date or dateTime to a YYYY-MM-DD date in Nepal.
func claimDate(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("is required (YYYY-MM-DD)")
	}
	if len(s) == len(time.DateOnly) {
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			return t.Format(time.DateOnly), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.In(Nepal).Format(time.DateOnly), nil
	}
	// FHIR wants a timezone with a time, but a server may leave it out: such
	// a time is read as Nepal's own, so its date is the one written.
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, Nepal); err == nil {
		return t.Format(time.DateOnly), nil
	}
	return "", fmt.Errorf("must be a date YYYY-MM-DD or a dateTime, got %q", truncate(s))
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
