package fhirtest

import (
	"maps"
	"net/http"
	"slices"
)

// metadata is GET [base]/metadata: an R4 CapabilityStatement naming the
// software, which is how a client tells the vendor (C§5), with the three
// modelled resource types and no backport markers (these are R4
// criteria-based servers, C§1.1). Options.MetadataNotFound makes it 404, as
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
		resources = append(resources, map[string]any{"type": t, "interaction": interactions, "searchParam": params})
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
	return x.json(http.StatusOK, cs)
}
