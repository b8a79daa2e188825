package mediator

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// routeClaimResponse answers errors as FHIR OperationOutcomes: its caller is
// openIMIS.
const routeClaimResponse = "/mediator/claim-response"

// respond writes status and body as JSON. It is the one place answers are
// written: a request OpenHIM forwarded (X-OpenHIM-TransactionID) gets the
// same status and body inside the mediator envelope.
func (m *Mediator) respond(c *gin.Context, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		zerolog.Ctx(c.Request.Context()).Error().Err(err).Msg("encode answer")
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	if c.GetHeader(headerTransactionID) == "" {
		c.Data(status, "application/json", b)
		return
	}
	env, err := json.Marshal(m.envelope(c, status, b))
	if err != nil {
		zerolog.Ctx(c.Request.Context()).Error().Err(err).Msg("encode envelope")
		c.Data(http.StatusInternalServerError, "application/json", []byte(`{"error":"internal error"}`))
		return
	}
	c.Data(status, "application/json+openhim", env)
}

// Envelope is the OpenHIM mediator response (OpenHIM contract §4.2).
type Envelope struct {
	Properties map[string]string `json:"properties,omitempty"`
	Response   EnvelopeResponse  `json:"response"`
	Status     string            `json:"status"`
	URN        string            `json:"x-mediator-urn"`
}

// EnvelopeResponse is what OpenHIM answers its client: the body is the JSON
// answer as a string (trap 12).
type EnvelopeResponse struct {
	Body      string            `json:"body"`
	Headers   map[string]string `json:"headers"`
	Status    int               `json:"status"`
	Timestamp string            `json:"timestamp"`
}

func (m *Mediator) envelope(c *gin.Context, status int, body []byte) Envelope {
	return newEnvelope(m.opts.Registration.URN, status, body, c.Writer.Header())
}

// newEnvelope wraps an answer: its status, its JSON body and the headers the
// client needs of those already set on the answer.
func newEnvelope(urn string, status int, body []byte, header http.Header) Envelope {
	headers := map[string]string{"content-type": "application/json"}
	for _, h := range []string{"WWW-Authenticate", "Retry-After", headerRequestID} {
		if v := header.Get(h); v != "" {
			headers[strings.ToLower(h)] = v
		}
	}
	// The transaction status OpenHIM would derive itself, made explicit.
	txStatus := "Successful"
	switch {
	case status >= 500:
		txStatus = "Failed"
	case status >= 400:
		txStatus = "Completed"
	}
	env := Envelope{
		URN:    urn,
		Status: txStatus,
		Response: EnvelopeResponse{
			Status:    status,
			Headers:   headers,
			Body:      string(body),
			Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
		},
	}
	if id := header.Get(headerRequestID); id != "" {
		env.Properties = map[string]string{"request_id": id}
	}
	return env
}

// errorBody is the JSON error answer of the non-FHIR routes.
type errorBody struct {
	Error  string               `json:"error"`
	Fields []mapping.FieldError `json:"fields,omitempty"`
}

// fail answers an error: an OperationOutcome on the openIMIS route, a JSON
// errorBody elsewhere. msg is shown to the caller; it must hold no secret.
func (m *Mediator) fail(c *gin.Context, status int, msg string, fields ...mapping.FieldError) {
	if strings.TrimSuffix(c.Request.URL.Path, "/") == routeClaimResponse { // also a 405 there
		m.respond(c, status, operationOutcome(status, msg, fields))
		return
	}
	m.respond(c, status, errorBody{Error: msg, Fields: fields})
}

// OperationOutcome is the FHIR error resource the claim route answers with.
type OperationOutcome struct {
	Issue        []OutcomeIssue `json:"issue"`
	ResourceType string         `json:"resourceType"`
}

// OutcomeIssue is one issue of an OperationOutcome.
type OutcomeIssue struct {
	Code        string         `json:"code"`
	Details     OutcomeDetails `json:"details"`
	Diagnostics string         `json:"diagnostics,omitempty"`
	Expression  []string       `json:"expression,omitempty"`
	Severity    string         `json:"severity"`
}

// OutcomeDetails carries an issue's text.
type OutcomeDetails struct {
	Text string `json:"text"`
}

func operationOutcome(status int, msg string, fields []mapping.FieldError) OperationOutcome {
	code := issueCode(status)
	oo := OperationOutcome{ResourceType: "OperationOutcome"}
	for _, f := range fields {
		oo.Issue = append(oo.Issue, OutcomeIssue{
			Severity: "error", Code: code, Expression: []string{f.Field},
			Details: OutcomeDetails{Text: f.Field + ": " + f.Message},
		})
	}
	if len(oo.Issue) == 0 {
		oo.Issue = []OutcomeIssue{{Severity: "error", Code: code, Details: OutcomeDetails{Text: msg}}}
	}
	return oo
}

// issueCode maps an HTTP status to a FHIR issue-type code.
func issueCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "login"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return "not-supported"
	case http.StatusRequestEntityTooLarge:
		return "too-costly"
	case http.StatusServiceUnavailable:
		return "transient"
	}
	return "exception"
}
