package openimistest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// claim is a stored claim, kept as its ClaimResponse.
type claim struct {
	code    string
	created time.Time // validity_from
	// feedback is the feedback UUID once feedback was delivered.
	feedback  string
	id        string
	patientID string
	resource  json.RawMessage
	seq       int
}

// AddClaim stores a claim as its ClaimResponse JSON, created (validity_from)
// at the given time: GET ClaimResponse/ filters and orders on it, and POST
// Communication/ accepts one feedback for it. The claim id is "id", else the
// identifier of type UUID (a ClaimResponse without "id" is fine); the code is
// the other identifier; the insuree is patient.reference. The id is matched
// as an exact string, as upstream does (trap 15). An existing claim is
// replaced, keeping its feedback. AddClaim panics on a JSON without an id.
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
	id, _ := m["id"].(string)
	if id == "" {
		id = identifierValue(m, func(code string) bool { return code == "UUID" })
	}
	if id == "" {
		panic("openimistest: ClaimResponse has neither id nor a UUID identifier")
	}
	m["id"] = id
	ref, _ := asObject(m["patient"])["reference"].(string)
	return &claim{
		code:      identifierValue(m, func(code string) bool { return code != "UUID" }),
		id:        id,
		patientID: ref[strings.LastIndex(ref, "/")+1:],
		resource:  mustMarshal(m),
	}
}

// putClaim inserts or replaces a claim. The caller holds s.mu.
func (s *Server) putClaim(cl *claim) {
	if old, ok := s.claims[cl.id]; ok {
		cl.feedback, cl.seq = old.feedback, old.seq
	} else {
		s.claimSeq++
		cl.seq = s.claimSeq
	}
	s.claims[cl.id] = cl
}

// fhir renders the ClaimResponse: the stored JSON plus communicationRequest
// once feedback exists (claimResponseConverter.py, trap 13).
func (cl *claim) fhir() json.RawMessage {
	if cl.feedback == "" {
		return cl.resource
	}
	m, _ := decodeObject(cl.resource)
	m["communicationRequest"] = []any{reference("CommunicationRequest", cl.feedback, "")}
	return mustMarshal(m)
}

// converted renders the ClaimResponse as a request converts it at now:
// claimResponseConverter.py writes created as the date of the conversion,
// not of the claim (§4, trap 21), in the server's local time.
func (cl *claim) converted(now time.Time, loc *time.Location) json.RawMessage {
	m, _ := decodeObject(cl.fhir())
	m["created"] = now.In(loc).Format(time.DateOnly)
	return mustMarshal(m)
}

// claimFHIR renders the claim as GET Claim/<uuid>/ does
// (converters/claimConverter.py): created is the claim's own date (its
// creation, validity_from, in the server's local time), which the
// ClaimResponse does not carry (trap 21).
func (cl *claim) claimFHIR(loc *time.Location) json.RawMessage {
	ids := []any{uuidIdentifier(cl.id)}
	if cl.code != "" {
		ids = append(ids, map[string]any{
			"type":  map[string]any{"coding": []any{map[string]any{"system": identifierSystem, "code": "Code"}}},
			"value": cl.code,
		})
	}
	return mustMarshal(map[string]any{
		"resourceType": "Claim", "id": cl.id, "identifier": ids, "status": "active", "use": "claim",
		"created": cl.created.In(loc).Format(time.DateOnly),
		"patient": reference("Patient", cl.patientID, ""),
	})
}

// getClaim answers GET Claim/<uuid or code>/ (views/fhir/claim.py,
// model_retrievers.py) like GET ClaimResponse/<id>/: an unknown claim is a
// 500 "matching query does not exist", not a 404 (trap 15).
func (c *call) getClaim() {
	canonical, isUUID := canonicalUUID(c.id)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, cl := range c.s.claims {
		if isUUID && cl.id == canonical || !isUUID && cl.code == c.id {
			c.json(http.StatusOK, cl.claimFHIR(c.s.opts.Location))
			return
		}
	}
	c.fail(errServer(`["failed to retrieve Claim; details Claim matching query does not exist."]`))
}

// listClaimResponses answers GET ClaimResponse/ (views/fhir/claim_response.py,
// §6, trap 14): the claims ordered by creation time (validity_from, not
// bumped by later changes), filtered by _lastUpdated on it, paged; each
// converted now, so created is today's date (trap 21).
func (c *call) listClaimResponses() {
	c.s.mu.Lock()
	var claims []*claim
	for _, cl := range c.s.claims {
		if c.filter.match(cl.created) {
			claims = append(claims, cl)
		}
	}
	slices.SortFunc(claims, func(a, b *claim) int { return cmp.Or(a.created.Compare(b.created), a.seq-b.seq) })
	var items []pageItem
	for _, cl := range claims {
		items = append(items, pageItem{id: cl.id, resource: cl.converted(c.s.now(), c.s.opts.Location)})
	}
	total := c.s.count("ClaimResponse|"+c.user.name+"|"+fmt.Sprint(c.filter), len(items))
	c.s.mu.Unlock()
	c.page(items, total)
}

// getClaimResponse answers GET ClaimResponse/<uuid or code>/
// (model_retrievers.py): a UUID is looked up canonically, anything else as
// the claim code; an unknown claim is a 500 "matching query does not exist",
// not a 404 (trap 15).
func (c *call) getClaimResponse() {
	canonical, isUUID := canonicalUUID(c.id)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, cl := range c.s.claims {
		if isUUID && cl.id == canonical || !isUUID && cl.code == c.id {
			c.json(http.StatusOK, cl.converted(c.s.now(), c.s.opts.Location))
			return
		}
	}
	filter := "{'validity_to__isnull': True, 'code': '" + c.id + "'}"
	if isUUID {
		filter = "{'uuid': UUID('" + canonical + "')}"
	}
	c.fail(errServer(`["failed to retrieve Claim with the filter ` + filter + `; details Claim matching query does not exist."]`))
}

// lastUpdatedFilter is a parsed _lastUpdated (views/filters/
// requestParameterFilter.py): a comparison with a naive UTC time. The zero
// value matches everything.
type lastUpdatedFilter struct {
	op    string
	value time.Time
}

// parseLastUpdated reads the LAST _lastUpdated value (QueryDict semantics:
// no ranges) as an optional prefix eq, ne, gt, lt, ge, le, sa or eb, then
// exactly YYYY-MM-DDTHH:MM:SS: no timezone, no fractions; anything else is a
// 500 (trap 14). The prefix ap is not modelled.
func parseLastUpdated(q url.Values) (lastUpdatedFilter, *apiError) {
	vals := q["_lastUpdated"]
	if len(vals) == 0 {
		return lastUpdatedFilter{}, nil
	}
	raw, op := vals[len(vals)-1], "eq"
	for _, p := range []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"} {
		if rest, ok := strings.CutPrefix(raw, p); ok {
			raw, op = rest, p
			break
		}
	}
	t, err := time.Parse("2006-01-02T15:04:05", raw)
	if err != nil || len(raw) != len("2006-01-02T15:04:05") {
		return lastUpdatedFilter{}, errServer("_lastUpdated value is not a valid datetime")
	}
	return lastUpdatedFilter{op: op, value: t}, nil
}

// match reports whether a row with time ts passes the filter.
func (f lastUpdatedFilter) match(ts time.Time) bool {
	c := ts.Compare(f.value)
	switch f.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "lt":
		return c < 0
	case "ge", "sa":
		return c >= 0
	case "le", "eb":
		return c <= 0
	}
	return true
}

// cachedCount is one entry of the count cache.
type cachedCount struct {
	count   int
	expires time.Time
}

// count returns the cached total of a query, caching n when there is none:
// upstream caches COUNT(*) per identical SQL for an hour (paginations.py),
// so an identical query can under-report and hide the newest rows (trap 14).
// The caller holds s.mu.
func (s *Server) count(key string, n int) int {
	if s.opts.CountCacheTTL < 0 {
		return n
	}
	now := s.now()
	if e, ok := s.countCache[key]; ok && now.Before(e.expires) {
		return e.count
	}
	s.countCache[key] = cachedCount{count: n, expires: now.Add(s.opts.CountCacheTTL)}
	return n
}

// pageItem is one resource of a list.
type pageItem struct {
	id       string
	resource json.RawMessage
}

// page answers a list request with one page, like paginations.py (§6, trap
// 14): _count is the page size (default 10; invalid values fall back to it),
// page-offset the 1-based page NUMBER ("last" accepted); a page past the end
// is 404 "Invalid page.". The Bundle is a searchset with the (cached) total;
// only the first total items are pageable. link[].url values are whole
// absolute URLs, percent-encoded like Python's quote_plus, from the host the
// request named; next/previous links have their query re-sorted (DRF's
// replace_query_param). entry[].fullUrl has no trailing slash.
func (c *call) page(items []pageItem, total int) {
	q := c.r.URL.Query()
	size := 10
	if n, err := strconv.Atoi(q.Get("_count")); err == nil && n > 0 {
		size = n
	}
	pages := max(1, int(math.Ceil(float64(total)/float64(size))))
	number := 1
	if raw := q.Get("page-offset"); raw == "last" {
		number = pages
	} else if raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > pages {
			c.fail(errFatal(http.StatusNotFound, "Invalid page."))
			return
		}
		number = n
	}
	base := baseURL(c.r) + c.r.URL.EscapedPath()
	var entries []map[string]any
	for i := (number - 1) * size; i < min(number*size, total, len(items)); i++ {
		entries = append(entries, map[string]any{"fullUrl": base + items[i].id, "resource": items[i].resource})
	}
	pageURL := func(n int) string {
		q := c.r.URL.Query()
		q.Set("page-offset", strconv.Itoa(n))
		if n == 1 {
			q.Del("page-offset")
		}
		if len(q) == 0 {
			return url.QueryEscape(base)
		}
		return url.QueryEscape(base + "?" + q.Encode())
	}
	self := base
	if c.r.URL.RawQuery != "" {
		self += "?" + c.r.URL.RawQuery
	}
	links := []map[string]string{{"relation": "self", "url": url.QueryEscape(self)}}
	if number < pages {
		links = append(links, map[string]string{"relation": "next", "url": pageURL(number + 1)})
	}
	if number > 1 {
		links = append(links, map[string]string{"relation": "previous", "url": pageURL(number - 1)})
	}
	bundle := map[string]any{"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
	if len(entries) > 0 {
		bundle["entry"] = entries
	}
	c.json(http.StatusOK, bundle)
}
