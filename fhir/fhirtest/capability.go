package fhirtest

import (
	"maps"
	"net/http"
	"slices"
)

// metadata is GET [base]/metadata: a CapabilityStatement naming the
// software, which is how a client tells the vendor (C§5), with the three
// modelled resource types; R4 without backport markers for the
// criteria-based servers (C§1.1), R4B with them and the topics on Aidbox,
// R4 with the backport profile, the topics and instantiates
// backport-subscription-server-r4 on the newer Aidbox in R4 and on HAPI
// with TopicMode (which answers no $status or $events, not modelled for
// HAPI: its metadata lists neither), and 5.0.0
// with R5's own Subscription operations on the newer Aidbox in R5, which
// needs no backport marker (C§5). Options.MetadataNotFound makes it 404, as
// on openIMIS and perhaps HeyDonto (C§5, C-trap 2).
func (s *Server) metadata(x *exchange) response {
	if s.opts.MetadataNotFound {
		return x.notFound()
	}
	var software map[string]any
	switch s.opts.Vendor {
	case HAPI:
		software = map[string]any{"name": "HAPI FHIR Server", "version": "7.4.0"}
	case Kodjin:
		software = map[string]any{"name": "Kodjin FHIR Server"}
	case AidboxZen, Aidbox:
		// Both generations call themselves Aidbox; the mediator's
		// detection maps the name to the newer one (C§5, C§6.1).
		software = map[string]any{"name": "Aidbox"}
	case HeyDonto:
		// HeyDonto documents a searchable CapabilityStatement, not what
		// /metadata answers (C§5); the fake names no software.
	}
	var resources []any
	for _, t := range modelledTypes {
		var params []any
		for _, name := range slices.Sorted(maps.Keys(searchParams[t])) {
			params = append(params, map[string]any{"name": name})
		}
		interactions := []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}}
		if t == "Subscription" {
			interactions = append(interactions, map[string]any{"code": "create"},
				map[string]any{"code": "update"}, map[string]any{"code": "delete"})
		}
		r := map[string]any{"type": t, "interaction": interactions, "searchParam": params}
		switch {
		case t != "Subscription" || !s.opts.servesTopics():
		case s.r5():
			// R5's own operations; topics are SubscriptionTopic resources,
			// which the fake does not serve (C§5).
			r["operation"] = []any{
				map[string]any{"name": "status", "definition": "http://hl7.org/fhir/OperationDefinition/Subscription-status"},
				map[string]any{"name": "events", "definition": "http://hl7.org/fhir/OperationDefinition/Subscription-events"},
			}
		default:
			// The backport markers and advertised topics (C§5).
			r["supportedProfile"] = []string{backportProfile}
			if s.opts.Vendor != HAPI {
				r["operation"] = []any{
					map[string]any{"name": "status", "definition": backportIG + "OperationDefinition/backport-subscription-status"},
					map[string]any{"name": "events", "definition": backportIG + "OperationDefinition/backport-subscription-events"},
				}
			}
			var topics []any
			for _, topic := range s.opts.Topics {
				topics = append(topics, map[string]any{"url": extTopicCanonical, "valueCanonical": topic.URL})
			}
			r["extension"] = topics
		}
		resources = append(resources, r)
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         s.Clock.Now().Format("2006-01-02"),
		"kind":         "instance",
		"fhirVersion":  "4.0.1",
		"format":       []string{"application/fhir+json", "json"},
		"rest":         []any{map[string]any{"mode": "server", "resource": resources}},
	}
	if software != nil {
		cs["software"] = software
	}
	switch {
	case s.r5():
		cs["fhirVersion"] = "5.0.0"
	case s.r4() || s.opts.TopicMode:
		cs["instantiates"] = []string{backportServerR4}
	case s.opts.Vendor.topicBased():
		cs["fhirVersion"] = "4.3.0"
		cs["instantiates"] = []string{backportServerR4B}
	}
	return x.json(http.StatusOK, cs)
}
