// Package chtopenimis holds what the whole repository shares at its root:
// the OpenHIM registration document, openhim-mediator.json, embedded so that
// the binary registers exactly the document that is versioned beside it.
package chtopenimis // import "github.com/cht-openimis/cht-openimis-mediator"

import _ "embed"

// OpenHIMMediatorJSON is openhim-mediator.json: the mediator's OpenHIM
// registration (urn, version, endpoints, default channels, configDefs).
//
//go:embed openhim-mediator.json
var OpenHIMMediatorJSON []byte
