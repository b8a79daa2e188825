package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
)

// Capabilities is what a server's CapabilityStatement says about
// subscriptions (docs/upstreams/fhir-subscriptions.md §5).
type Capabilities struct {
	// FHIRVersion is fhirVersion, e.g. 4.0.1, 4.3.0, 5.0.0.
	FHIRVersion string
	// SoftwareName is software.name, e.g. Aidbox, HAPI FHIR Server.
	SoftwareName string
	// Backport is true when any backport marker is present: instantiates
	// under the IG, the backport profile on Subscription, a $status
	// operation, the topic-canonical extension, or a SubscriptionTopic
	// resource.
	Backport bool
	// Topics are the topic canonicals the server advertises with the
	// capabilitystatement-subscriptiontopic-canonical extension.
	Topics []string
	// Operations are the names of the Subscription resource's operations
	// (status, events, …).
	Operations []string
}

// DetectError says why the dialect cannot be detected; the operator sets
// it by hand (trap 2), in the setting the caller names (DialectChoices
// lists the values): this package does not know what it is called.
type DetectError struct {
	Reason string
}

// Error implements error.
func (e *DetectError) Error() string {
	return "cannot detect dialect (" + e.Reason + ")"
}

// DialectChoices lists the dialects an operator can set, for messages.
const DialectChoices = "r4-criteria, r4-backport, r4b-backport or r5"

type capabilityJSON struct {
	ResourceType string   `json:"resourceType"`
	FHIRVersion  string   `json:"fhirVersion"`
	Instantiates []string `json:"instantiates"`
	Software     *struct {
		Name string `json:"name"`
	} `json:"software"`
	Rest []struct {
		Resource []struct {
			Type             string      `json:"type"`
			SupportedProfile []string    `json:"supportedProfile"`
			Extension        []Extension `json:"extension"`
			Operation        []struct {
				Name string `json:"name"`
			} `json:"operation"`
		} `json:"resource"`
	} `json:"rest"`
}

// Metadata reads GET <base>/metadata. An answer that is not a
// CapabilityStatement (openIMIS has no such route, HeyDonto may not, trap
// 2) is a *DetectError, wrapping the *APIError when there was one.
func (c *Client) Metadata(ctx context.Context) (Capabilities, error) {
	u := c.urlOf("metadata")
	resp, err := c.do(ctx, request{method: http.MethodGet, url: u})
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return Capabilities{}, fmt.Errorf("%w: %w", &DetectError{Reason: fmt.Sprintf("metadata: %d", ae.Status)}, err)
		}
		return Capabilities{}, err
	}
	var cs capabilityJSON
	if json.Unmarshal(resp.Body(), &cs) != nil || cs.ResourceType != "CapabilityStatement" {
		return Capabilities{}, &DetectError{Reason: "metadata: the answer is not a CapabilityStatement"}
	}
	return cs.capabilities(), nil
}

// ParseCapabilities reads a CapabilityStatement.
func ParseCapabilities(body []byte) (Capabilities, error) {
	var cs capabilityJSON
	if json.Unmarshal(body, &cs) != nil || cs.ResourceType != "CapabilityStatement" {
		return Capabilities{}, &DetectError{Reason: "metadata: not a CapabilityStatement"}
	}
	return cs.capabilities(), nil
}

func (cs capabilityJSON) capabilities() Capabilities {
	c := Capabilities{FHIRVersion: strings.TrimSpace(cs.FHIRVersion)}
	if cs.Software != nil {
		c.SoftwareName = cs.Software.Name
	}
	for _, in := range cs.Instantiates {
		// Match the IG's prefix: its pages and its resources spell the
		// server CapabilityStatement's URL differently (§5).
		if strings.HasPrefix(in, backportPrefix) {
			c.Backport = true
		}
	}
	for _, rest := range cs.Rest {
		for _, r := range rest.Resource {
			switch r.Type {
			case "SubscriptionTopic":
				c.Backport = true
			case "Subscription":
				if hasBackportProfile(r.SupportedProfile) {
					c.Backport = true
				}
				for _, op := range r.Operation {
					c.Operations = append(c.Operations, op.Name)
					if op.Name == "status" || op.Name == "$status" {
						c.Backport = true
					}
				}
				for _, e := range r.Extension {
					if e.URL == extTopicCanonical {
						c.Backport = true
						if t := firstNonEmpty(e.ValueCanonical, e.ValueURI, e.ValueString); t != "" && !slices.Contains(c.Topics, t) {
							c.Topics = append(c.Topics, t)
						}
					}
				}
			}
		}
	}
	return c
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Detect picks the dialect and the vendor from capabilities
// (docs/upstreams/fhir-subscriptions.md §5): fhirVersion 5 is r5; with a
// backport marker 4.3 is r4b-backport and 4.0 r4-backport; without one,
// r4-criteria: "topic" is never guessed without a marker (trap 2). The
// vendor comes from software.name, generic when unknown; Aidbox is the
// current one (the zen generation is told apart by its GET-only $events,
// which the client learns on a 405).
func Detect(c Capabilities) (Dialect, Vendor, error) {
	v := c.FHIRVersion
	if v == "" {
		return "", "", &DetectError{Reason: "metadata has no fhirVersion"}
	}
	vendor := VendorGeneric
	name := strings.ToLower(c.SoftwareName)
	for _, cand := range Vendors() {
		q, _ := QuirksOf(cand)
		for _, frag := range q.Software {
			if strings.Contains(name, frag) {
				vendor = cand
			}
		}
	}
	switch {
	case strings.HasPrefix(v, "5."):
		return DialectR5, vendor, nil
	case strings.HasPrefix(v, "4.3") && c.Backport:
		return DialectR4BBackport, vendor, nil
	case strings.HasPrefix(v, "4.0") && c.Backport:
		return DialectR4Backport, vendor, nil
	case strings.HasPrefix(v, "4.") && c.Backport:
		return "", "", &DetectError{Reason: fmt.Sprintf("fhirVersion %s with backport markers is neither 4.0 nor 4.3", errtext.Cut(v, 20))}
	case strings.HasPrefix(v, "4."):
		return DialectR4Criteria, vendor, nil
	}
	return "", "", &DetectError{Reason: fmt.Sprintf("fhirVersion %s is not supported", errtext.Cut(v, 20))}
}
