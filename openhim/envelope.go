package openhim

import (
	"net/http"
	"strings"
	"time"
)

// ContentTypeEnvelope is the content type of an answer in the mediator
// envelope: OpenHIM core unwraps an answer of this type and answers its own
// client with the envelope's response (docs/upstreams/openhim.md §4.2).
const ContentTypeEnvelope = "application/json+openhim"

// Envelope is the OpenHIM mediator response (docs/upstreams/openhim.md §4.2).
type Envelope struct {
	Properties map[string]string `json:"properties,omitempty"`
	Response   EnvelopeResponse  `json:"response"`
	Status     string            `json:"status"`
	URN        string            `json:"x-mediator-urn"`
}

// EnvelopeResponse is what OpenHIM answers its client: the body is the JSON
// answer as a string (docs/upstreams/openhim.md trap 12).
type EnvelopeResponse struct {
	Body      string            `json:"body"`
	Headers   map[string]string `json:"headers"`
	Status    int               `json:"status"`
	Timestamp string            `json:"timestamp"`
}

// NewEnvelope wraps a JSON answer of the mediator urn: its status, its body,
// and those of header's values the client needs (WWW-Authenticate,
// Retry-After and X-Request-Id, which also becomes the request_id property).
// The transaction status is the one core would derive itself, made explicit:
// Failed for a 5xx, Completed for a 4xx, else Successful.
func NewEnvelope(urn string, status int, body []byte, header http.Header) Envelope {
	headers := map[string]string{"content-type": "application/json"}
	for _, h := range []string{"WWW-Authenticate", "Retry-After", "X-Request-Id"} {
		if v := header.Get(h); v != "" {
			headers[strings.ToLower(h)] = v
		}
	}
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
	if id := header.Get("X-Request-Id"); id != "" {
		env.Properties = map[string]string{"request_id": id}
	}
	return env
}
