package openimistest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// QuestionnaireResponse is a QuestionnaireResponse stored by POST
// QuestionnaireResponse/ (only with [Options.QuestionnaireResponse]), as
// returned by [Server.QuestionnaireResponses].
type QuestionnaireResponse struct {
	// Body is the posted body, unchanged.
	Body json.RawMessage
	// ClaimID is the claim the response referenced.
	ClaimID string
	// Created is the server clock's time of creation.
	Created time.Time
	// ID is the id the fake assigned (a UUID), also in the 201 body.
	ID string
	// Owner is the user who posted it.
	Owner string
}

var questionnaireResponsesView = view{
	auth: true, name: "QuestionnaireResponse/",
	handlers: map[string]func(*call){http.MethodPost: (*call).createQuestionnaireResponse},
	rights:   map[string]int{http.MethodPost: RightFeedbackDeliver},
}

var questionnaireResponseView = view{
	auth: true, name: "QuestionnaireResponse/<id>/",
	rights: map[string]int{http.MethodGet: RightFeedbackDeliver},
}

// QuestionnaireResponses returns every QuestionnaireResponse stored, oldest
// first.
func (s *Server) QuestionnaireResponses() []QuestionnaireResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]QuestionnaireResponse, len(s.questionnaireResponses))
	for i, q := range s.questionnaireResponses {
		q.Body = append(json.RawMessage(nil), q.Body...)
		out[i] = q
	}
	return out
}

// createQuestionnaireResponse answers POST QuestionnaireResponse/, an
// endpoint no openIMIS release has. The fake's rules, kept simple: the body
// is a JSON object with resourceType "QuestionnaireResponse" and status
// "completed", and somewhere (subject, basedOn, partOf, an answer's
// valueReference...) a "reference" of the form "Claim/<id>" naming an
// existing claim (exact string). The claim's single feedback slot is shared
// with Communication: a second feedback of either kind fails with "Feedback
// exists for this claim". Errors use [Options.ValidationStatus]. Success is
// 201 with the body plus the new "id"; the body is stored as posted.
func (c *call) createQuestionnaireResponse() {
	m, err := c.object()
	if err != nil {
		c.fail(err)
		return
	}
	if m["resourceType"] != "QuestionnaireResponse" {
		c.fail(c.s.errValidation("resourceType must be QuestionnaireResponse"))
		return
	}
	if m["status"] != "completed" {
		c.fail(c.s.errValidation("status value must be = completed"))
		return
	}
	claimRefs := claimReferences(m, nil)
	slices.Sort(claimRefs)
	if len(claimRefs) == 0 {
		c.fail(c.s.errValidation("a reference \"Claim/<uuid>\" is required"))
		return
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	var cl *claim
	for _, id := range claimRefs {
		if cl = c.s.claims[id]; cl != nil {
			break
		}
	}
	if cl == nil {
		c.fail(c.s.errValidation("Claim does not exist"))
		return
	}
	if cl.feedback != "" {
		c.fail(c.s.errValidation("Feedback exists for this claim"))
		return
	}
	id := uuid.NewString()
	cl.feedback = id
	c.s.questionnaireResponses = append(c.s.questionnaireResponses, QuestionnaireResponse{
		Body:    append(json.RawMessage(nil), c.body...),
		ClaimID: cl.id,
		Created: c.s.now(),
		ID:      id,
		Owner:   c.user.name,
	})
	m["id"] = id
	c.json(http.StatusCreated, mustMarshal(m))
}

// claimReferences collects the ids of every "reference": "Claim/<id>" in v.
func claimReferences(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "reference" {
				if id, ok := strings.CutPrefix(s, "Claim/"); ok && id != "" {
					out = append(out, id)
				}
				continue
			}
			out = claimReferences(e, out)
		}
	case []any:
		for _, e := range x {
			out = claimReferences(e, out)
		}
	}
	return out
}
