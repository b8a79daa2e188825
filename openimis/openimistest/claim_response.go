package openimistest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// claim is a stored openIMIS claim, kept as its ClaimResponse.
type claim struct {
	code    string
	created time.Time
	// feedback is the feedback UUID once feedback was delivered.
	feedback  string
	id        string
	patientID string
	// resource is the ClaimResponse as stored (kept as JSON: a fake holding
	// many claims stays small for the garbage collector).
	resource json.RawMessage
	seq      int
}

var claimResponsesView = view{
	auth: true, lastUpdated: true, name: "ClaimResponse/",
	handlers:    map[string]func(*call){http.MethodGet: (*call).listClaimResponses},
	notModelled: []string{http.MethodPost},
	rights:      map[string]int{http.MethodGet: RightClaimRead},
}

var claimResponseView = view{
	auth: true, lastUpdated: true, name: "ClaimResponse/<id>/",
	handlers:    map[string]func(*call){http.MethodGet: (*call).getClaimResponse},
	notModelled: []string{http.MethodPut, http.MethodDelete},
	rights:      map[string]int{http.MethodGet: RightClaimRead},
}

// AddClaim stores a claim as its ClaimResponse JSON, created (validity_from)
// at the given time; GET ClaimResponse/ filters and orders on that time, and
// POST Communication/ accepts feedback for it. The claim id is the "id"
// element, else the value of the identifier of type UUID; the claim code is
// the first other identifier's value; the insuree is patient.reference. An
// existing claim with the same id is replaced (its feedback is kept). The id
// is matched as an exact string, as upstream does (store it lower-case for
// GET ClaimResponse/<uuid>/ to find it). AddClaim panics if the JSON is not
// an object or has no id, for ease of use in tests.
func (s *Server) AddClaim(claimResponse json.RawMessage, created time.Time) {
	cl := parseClaim(claimResponse)
	cl.created = created.UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putClaim(cl)
}

// parseClaim reads a ClaimResponse into a claim, panicking on bad input.
func parseClaim(claimResponse []byte) *claim {
	m, err := decodeObject(claimResponse)
	if err != nil {
		panic("openimistest: ClaimResponse is not a JSON object: " + err.Error())
	}
	id := asString(m["id"])
	if id == "" {
		id = identifierValue(m, func(code string) bool { return code == "UUID" })
	}
	if id == "" {
		panic("openimistest: ClaimResponse has neither id nor a UUID identifier")
	}
	m["id"] = id
	patient := asObject(m["patient"])
	patientID := asString(asObject(patient["identifier"])["value"])
	if ref := asString(patient["reference"]); strings.Contains(ref, "/") {
		patientID = ref[strings.LastIndex(ref, "/")+1:]
	}
	return &claim{
		code:      identifierValue(m, func(code string) bool { return code != "UUID" }),
		id:        id,
		patientID: patientID,
		resource:  mustMarshal(m),
	}
}

// putClaim inserts or replaces a claim. The caller holds s.mu.
func (s *Server) putClaim(cl *claim) {
	if old, ok := s.claims[cl.id]; ok {
		cl.feedback = old.feedback
		cl.seq = old.seq
	} else {
		s.claimSeq++
		cl.seq = s.claimSeq
	}
	s.claims[cl.id] = cl
}

// fhir renders the ClaimResponse as served: the stored JSON plus
// communicationRequest once feedback exists. The caller holds s.mu.
func (cl *claim) fhir() json.RawMessage {
	if cl.feedback == "" {
		return cl.resource
	}
	m, err := decodeObject(cl.resource)
	if err != nil {
		panic("openimistest: stored ClaimResponse: " + err.Error())
	}
	m["communicationRequest"] = []any{reference("CommunicationRequest", cl.feedback, "")}
	return mustMarshal(m)
}

// sortedClaims returns the claims passing f ordered by creation time.
// The caller holds s.mu.
func (s *Server) sortedClaims(f lastUpdatedFilter) []*claim {
	var out []*claim
	for _, cl := range s.claims {
		if f.match(cl.created) {
			out = append(out, cl)
		}
	}
	slices.SortFunc(out, func(a, b *claim) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	return out
}

// listClaimResponses answers GET ClaimResponse/ (contract §6): claims ordered
// by creation time, filtered by _lastUpdated on the creation time.
func (c *call) listClaimResponses() {
	c.s.mu.Lock()
	var items []pageItem
	for _, cl := range c.s.sortedClaims(c.filter) {
		items = append(items, pageItem{id: cl.id, resource: cl.fhir()})
	}
	total := c.s.count("ClaimResponse|"+c.user.name+"|"+c.filter.key(), len(items))
	c.s.mu.Unlock()
	c.page(items, total)
}

// getClaimResponse answers GET ClaimResponse/<uuid or code>/: a UUID is
// looked up canonically (lower-case), anything else as the claim code; an
// unknown claim is a 500, not a 404 (contract §7).
func (c *call) getClaimResponse() {
	c.s.mu.Lock()
	claims := c.s.sortedClaims(c.filter)
	var found *claim
	var filter string
	if canonical, ok := pyUUID(c.id); ok {
		filter = fmt.Sprintf("{'uuid': UUID('%s')}", canonical)
		for _, cl := range claims {
			if cl.id == canonical {
				found = cl
			}
		}
	} else {
		filter = fmt.Sprintf("{'validity_to__isnull': True, 'code': %s}", pyRepr(c.id))
		for _, cl := range claims {
			if cl.code == c.id {
				found = cl
			}
		}
	}
	var body json.RawMessage
	if found != nil {
		body = found.fhir()
	}
	c.s.mu.Unlock()
	if found == nil {
		c.fail(errServer(pyListRepr(fmt.Sprintf(
			"failed to retrieve Claim with the filter %s; details Claim matching query does not exist.", filter))))
		return
	}
	c.json(http.StatusOK, body)
}
