package openimis

// ClaimResponse holds the elements of an openIMIS ClaimResponse the mediator
// reads (§4). openIMIS posts it bare to Claim subscribers (§3.3) and returns
// it from GET ClaimResponse/ (§6).
type ClaimResponse struct {
	Communication []Reference  `json:"communicationRequest,omitempty"`
	Created       string       `json:"created,omitempty"`
	ID            string       `json:"id,omitempty"`
	Identifier    []Identifier `json:"identifier,omitempty"`
	Outcome       string       `json:"outcome,omitempty"`
	Patient       *Reference   `json:"patient,omitempty"`
	Request       *Reference   `json:"request,omitempty"`
	ResourceType  string       `json:"resourceType"`
	Status        string       `json:"status,omitempty"`
}
