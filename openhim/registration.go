package openhim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// semver is the x.y.z form core requires of a version (docs/upstreams/openhim.md §1).
var semver = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// Registration is a prepared registration document.
type Registration struct {
	// Doc is the document to POST, with hosts and ports filled in.
	Doc json.RawMessage
	// URN and Version identify the mediator.
	URN, Version string
}

// PrepareRegistration checks a registration document (openhim-mediator.json)
// and writes the host, port and scheme of mediatorURL, where OpenHIM reaches
// this mediator, into every endpoint and every default channel route, so that
// each deployment registers its own address (docs/upstreams/openhim.md trap 18). A non-nil config
// replaces the document's default config: the values this deployment starts
// with. Core keeps values already stored for a mediator (docs/upstreams/openhim.md §1.1).
func PrepareRegistration(doc []byte, mediatorURL *url.URL, config map[string]any) (Registration, error) {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return Registration{}, fmt.Errorf("openhim: registration document: %w", err)
	}
	urn, _ := m["urn"].(string)
	version, _ := m["version"].(string)
	switch {
	case urn == "" || strings.Contains(urn, "/"):
		return Registration{}, errors.New("openhim: registration document: urn must be set and free of /")
	case !semver.MatchString(version):
		return Registration{}, fmt.Errorf("openhim: registration document: version %q is not semver x.y.z", version)
	}
	if mediatorURL != nil {
		host := mediatorURL.Hostname()
		port, secured := 80, mediatorURL.Scheme == "https"
		if secured {
			port = 443
		}
		if p := mediatorURL.Port(); p != "" {
			port, _ = strconv.Atoi(p)
		}
		set := func(route map[string]any) {
			route["host"], route["port"], route["secured"] = host, port, secured
		}
		for _, e := range list(m["endpoints"]) {
			set(e)
		}
		for _, ch := range list(m["defaultChannelConfig"]) {
			for _, r := range list(ch["routes"]) {
				set(r)
			}
		}
	}
	if config != nil {
		m["config"] = config
	}
	out, err := json.Marshal(m)
	if err != nil {
		return Registration{}, err
	}
	return Registration{Doc: out, URN: urn, Version: version}, nil
}

func list(v any) []map[string]any {
	items, _ := v.([]any)
	var out []map[string]any
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// WithRouteCredentials returns the registration with username and password
// as the Basic credentials of every default channel route. OpenHIM drops
// the caller's Authorization and sends a route's own credentials to the
// mediator (docs/upstreams/openhim.md §4.1, trap 16), and the console's "+"
// installs the default channels as they are (trap 24): without them, every
// request of an installed channel reaches the mediator unauthenticated.
func (r Registration) WithRouteCredentials(username, password string) (Registration, error) {
	var m map[string]any
	if err := json.Unmarshal(r.Doc, &m); err != nil {
		return r, fmt.Errorf("openhim: registration document: %w", err)
	}
	for _, ch := range list(m["defaultChannelConfig"]) {
		for _, route := range list(ch["routes"]) {
			route["username"], route["password"] = username, password
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return r, err
	}
	r.Doc = out
	return r, nil
}
