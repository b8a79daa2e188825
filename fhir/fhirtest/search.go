package fhirtest

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	// defaultCount is the page size without _count: 20 on HeyDonto (C§6.3)
	// and HAPI.
	defaultCount = 20
	// maxCount caps _count. HeyDonto's cap is undocumented (C§7: "_count ≤
	// ?"); the fake takes 100 there, so a client cannot rely on more.
	maxCountHeyDonto = 100
	maxCount         = 1000
)

// matcher says whether a resource (decoded) matches one value of a search
// parameter.
type matcher func(res map[string]any, value string) bool

// searchParams are the parameters the fake evaluates, per type, in searches
// and in subscription criteria. A parameter the fake does not model is
// refused with 400 rather than ignored, so that a test never mistakes an
// ignored filter for a match.
var searchParams = map[string]map[string]matcher{
	"ClaimResponse": {
		"_id":        matchID,
		"status":     matchField("status"),
		"outcome":    matchField("outcome"),
		"patient":    matchReference("patient"),
		"identifier": matchIdentifier,
	},
	"Patient": {
		"_id":        matchID,
		"identifier": matchIdentifier,
	},
	"Subscription": {
		"_id":    matchID,
		"status": matchField("status"),
		"url":    matchEndpoint,
		"_tag":   matchTag,
	},
}

// controlParams are the result parameters every search takes, besides the
// vendor's paging parameter.
var controlParams = []string{"_count", "_sort", "_lastUpdated"}

func matchID(res map[string]any, v string) bool {
	id, _ := res["id"].(string)
	return id == v
}

func matchField(name string) matcher {
	return func(res map[string]any, v string) bool {
		got, _ := res[name].(string)
		return got == v
	}
}

// matchReference compares the id of a reference field with the value's, so
// that "Patient/1", "1" and an absolute reference match alike.
func matchReference(name string) matcher {
	return func(res map[string]any, v string) bool {
		ref, _ := res[name].(map[string]any)
		got, _ := ref["reference"].(string)
		return got != "" && lastSegment(got) == lastSegment(v)
	}
}

func lastSegment(ref string) string {
	return ref[strings.LastIndex(ref, "/")+1:]
}

// matchIdentifier takes "value" or "system|value".
func matchIdentifier(res map[string]any, v string) bool {
	system, value, withSystem := strings.Cut(v, "|")
	if !withSystem {
		value = v
	}
	ids, _ := res["identifier"].([]any)
	for _, i := range ids {
		id, _ := i.(map[string]any)
		s, _ := id["system"].(string)
		val, _ := id["value"].(string)
		if val == value && (!withSystem || s == system) {
			return true
		}
	}
	return false
}

func matchEndpoint(res map[string]any, v string) bool {
	ch, _ := res["channel"].(map[string]any)
	got, _ := ch["endpoint"].(string)
	return got == v
}

// matchTag takes "code" or "system|code" against meta.tag.
func matchTag(res map[string]any, v string) bool {
	system, code, withSystem := strings.Cut(v, "|")
	if !withSystem {
		code = v
	}
	meta, _ := res["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		tag, _ := t.(map[string]any)
		s, _ := tag["system"].(string)
		c, _ := tag["code"].(string)
		if c == code && (!withSystem || s == system) {
			return true
		}
	}
	return false
}

// matches applies filter parameters (AND between parameters and repeats,
// OR between comma-separated values) to res; unknown names are skipped (the
// caller refused them). foldIDs matches _id case-insensitively (HeyDonto,
// C§6.3).
func matches(typ string, res map[string]any, q url.Values, foldIDs bool) bool {
	for name, values := range q {
		m := searchParams[typ][name]
		if m == nil {
			continue
		}
		if name == "_id" && foldIDs {
			m = func(res map[string]any, v string) bool {
				id, _ := res["id"].(string)
				return strings.EqualFold(id, v)
			}
		}
		for _, v := range values {
			if !slices.ContainsFunc(strings.Split(v, ","), func(alt string) bool { return m(res, alt) }) {
				return false
			}
		}
	}
	return true
}

// pagingParam is the vendor's paging parameter: HeyDonto's opaque
// _page_token (C§6.3), Kodjin's _offset links (C§7: links), HAPI's
// _getpages at the base (C§7).
func (s *Server) pagingParam() string {
	switch s.opts.Vendor {
	case HeyDonto:
		return "_page_token"
	case Kodjin:
		return "_offset"
	case AidboxZen, Aidbox:
		return "page"
	}
	return ""
}

// bound is one _lastUpdated comparison.
type bound struct {
	prefix string
	lo, hi time.Time // the value's range: an instant, or a whole day
}

// parseLastUpdated reads _lastUpdated=[ge|gt|le|lt|eq]<date or dateTime>
// (C§7: `_lastUpdated=ge…`, HeyDonto documents ge/lt with dates). A
// dateTime without a zone is taken as UTC.
func parseLastUpdated(v string) (bound, bool) {
	b := bound{prefix: "eq"}
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		b.prefix, v = v[:2], v[2:]
	}
	if !slices.Contains([]string{"eq", "ge", "gt", "le", "lt"}, b.prefix) {
		return b, false
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		b.lo, b.hi = t, t.AddDate(0, 0, 1)
		return b, true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			b.lo, b.hi = t, t
			return b, true
		}
	}
	return b, false
}

func (b bound) holds(t time.Time) bool {
	switch b.prefix {
	case "ge":
		return !t.Before(b.lo)
	case "gt":
		return !t.Before(b.hi) && !t.Equal(b.lo)
	case "le":
		return t.Before(b.hi) || t.Equal(b.hi)
	case "lt":
		return t.Before(b.lo)
	}
	return !t.Before(b.lo) && (t.Before(b.hi) || t.Equal(b.hi))
}

// query is a checked search.
type query struct {
	typ     string
	filters url.Values
	bounds  []bound
	count   int
	desc    bool
}

// parseQuery checks a search's parameters: each known for the type or a
// result parameter, _count a positive integer, _sort by _lastUpdated only,
// _lastUpdated well formed. Anything else is 400.
func (s *Server) parseQuery(x *exchange, typ string, q url.Values) (query, response, bool) {
	bad := func(msg string) (query, response, bool) {
		return query{}, x.outcome(http.StatusBadRequest, "invalid", msg), false
	}
	out := query{typ: typ, filters: url.Values{}, count: defaultCount}
	limit := maxCount
	if s.opts.Vendor == HeyDonto {
		limit = maxCountHeyDonto
	}
	for name, values := range q {
		switch {
		case name == s.pagingParam() && name != "":
		case name == "_count":
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 1 || len(values) > 1 {
				return bad("_count must be one positive integer")
			}
			out.count = min(n, limit)
		case name == "_sort":
			switch strings.Join(values, ",") {
			case "_lastUpdated":
			case "-_lastUpdated":
				out.desc = true
			default:
				return bad("_sort: only _lastUpdated and -_lastUpdated are supported")
			}
		case name == "_lastUpdated":
			for _, v := range values {
				b, ok := parseLastUpdated(v)
				if !ok {
					return bad("_lastUpdated: invalid value " + strconv.Quote(v))
				}
				out.bounds = append(out.bounds, b)
			}
		case searchParams[typ][name] != nil:
			out.filters[name] = values
		default:
			return bad("Unknown search parameter " + strconv.Quote(name) + " for resource type " + typ)
		}
	}
	return out, response{}, true
}

// run evaluates q over the latest versions, oldest meta.lastUpdated first
// (creation order among equals), or newest first with -_lastUpdated. The
// caller holds s.mu.
func (s *Server) run(q query) []Resource {
	var out []Resource
	for _, r := range s.all(q.typ) {
		if !slices.ContainsFunc(q.bounds, func(b bound) bool { return !b.holds(r.LastUpdated) }) &&
			matches(q.typ, decodeStored(r), q.filters, s.opts.Vendor == HeyDonto) {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		c := out[i].LastUpdated.Compare(out[j].LastUpdated)
		if q.desc {
			c = -c
		}
		return c < 0
	})
	return out
}

// search is GET <Type>?params: a searchset Bundle of one page, with a next
// link in the vendor's paging style.
func (s *Server) search(x *exchange, typ string) response {
	params := x.r.URL.Query()
	q, resp, ok := s.parseQuery(x, typ, params)
	if !ok {
		return resp
	}
	switch s.opts.Vendor {
	case HeyDonto:
		return s.searchByToken(x, q, params)
	case Kodjin:
		return s.searchByOffset(x, q, params)
	case AidboxZen, Aidbox:
		return s.searchByPage(x, q, params)
	}
	return s.searchBySnapshot(x, q)
}

// searchBySnapshot is HAPI: the first page, and the rest of the results
// kept as a snapshot served by GET [base]?_getpages=<id>&_getpagesoffset=n
// (C§7).
func (s *Server) searchBySnapshot(x *exchange, q query) response {
	s.mu.Lock()
	results := s.run(q)
	id := ""
	if len(results) > q.count {
		id = newID()
		s.snapshots[id] = results
	}
	s.mu.Unlock()
	next := ""
	if id != "" {
		next = origin(x.r) + s.base + "?" + pagesQuery(id, q.count, q.count)
	}
	return s.bundle(x, results[:min(q.count, len(results))], len(results), next)
}

// pagesQuery is the query of HAPI's paging links, in its order.
func pagesQuery(id string, offset, count int) string {
	return "_getpages=" + url.QueryEscape(id) + "&_getpagesoffset=" + strconv.Itoa(offset) +
		"&_count=" + strconv.Itoa(count) + "&_bundletype=searchset"
}

// getPages is HAPI's GET [base]?_getpages=...: an unknown snapshot is 410
// Gone ("may have expired").
func (s *Server) getPages(x *exchange) response {
	q := x.r.URL.Query()
	offset, err1 := strconv.Atoi(q.Get("_getpagesoffset"))
	count, err2 := strconv.Atoi(cmp.Or(q.Get("_count"), strconv.Itoa(defaultCount)))
	if err1 != nil || err2 != nil || offset < 0 || count < 1 {
		return x.outcome(http.StatusBadRequest, "invalid", "_getpagesoffset and _count must be numbers")
	}
	s.mu.Lock()
	results, ok := s.snapshots[q.Get("_getpages")]
	s.mu.Unlock()
	if !ok {
		return x.outcome(http.StatusGone, "not-found", "Search ID "+strconv.Quote(q.Get("_getpages"))+" does not exist and may have expired")
	}
	end := min(offset+count, len(results))
	next := ""
	if end < len(results) {
		next = origin(x.r) + s.base + "?" + pagesQuery(q.Get("_getpages"), end, count)
	}
	return s.bundle(x, results[min(offset, len(results)):end], len(results), next)
}

// searchByOffset is Kodjin: next links repeat the query with _offset.
func (s *Server) searchByOffset(x *exchange, q query, params url.Values) response {
	offset := 0
	if v := params.Get("_offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return x.outcome(http.StatusBadRequest, "invalid", "_offset must be a non-negative integer")
		}
		offset = n
	}
	s.mu.Lock()
	results := s.run(q)
	s.mu.Unlock()
	end := min(offset+q.count, len(results))
	next := ""
	if end < len(results) {
		nq := cloneValues(params)
		nq.Set("_offset", strconv.Itoa(end))
		next = origin(x.r) + s.base + "/" + s.segment(q.typ) + "?" + nq.Encode()
	}
	return s.bundle(x, results[min(offset, len(results)):end], len(results), next)
}

// pageToken is what a HeyDonto page token stands for: the query it was
// issued for and where the next page starts.
type pageToken struct {
	query  string
	offset int
}

// ExpirePageTokens makes every HeyDonto page token issued so far invalid
// (400), as tokens of a paged store expire (C§6.3, C-trap 21).
func (s *Server) ExpirePageTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pageTokens)
}

// searchByToken is HeyDonto: an opaque _page_token bound to the query it
// was issued for (another query with it is 400), and next links as
// documented: origin + "/fhir/<type>/?_count=N&_page_token=T", without
// /site/<id> and without the other parameters, unless
// Options.FixedNextLinks (C§6.3, C-trap 21).
func (s *Server) searchByToken(x *exchange, q query, params url.Values) response {
	rest := cloneValues(params)
	rest.Del("_page_token")
	signature := q.typ + "?" + rest.Encode()
	offset := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	if token := params.Get("_page_token"); token != "" {
		pt, ok := s.pageTokens[token]
		switch {
		case !ok:
			return x.outcome(http.StatusBadRequest, "invalid", "invalid or expired page token")
		case pt.query != signature:
			return x.outcome(http.StatusBadRequest, "invalid", "the page token was issued for another query")
		}
		offset = pt.offset
	}
	results := s.run(q)
	end := min(offset+q.count, len(results))
	next := ""
	if end < len(results) {
		token := newID()
		s.pageTokens[token] = pageToken{query: signature, offset: end}
		if s.opts.FixedNextLinks {
			nq := cloneValues(params)
			nq.Set("_page_token", token)
			next = origin(x.r) + s.base + "/" + s.segment(q.typ) + "?" + nq.Encode()
		} else {
			next = origin(x.r) + "/fhir/" + s.segment(q.typ) + "/?" +
				url.Values{"_count": {strconv.Itoa(q.count)}, "_page_token": {token}}.Encode()
		}
	}
	return s.bundle(x, results[min(offset, len(results)):end], len(results), next)
}

// bundle renders a searchset Bundle; it reads no state, so the caller may
// hold s.mu.
func (s *Server) bundle(x *exchange, page []Resource, total int, next string) response {
	links := []any{map[string]any{"relation": "self", "url": origin(x.r) + x.r.URL.RequestURI()}}
	if next != "" {
		links = append(links, map[string]any{"relation": "next", "url": next})
	}
	entries := make([]any, 0, len(page))
	for _, r := range page {
		entries = append(entries, map[string]any{
			"fullUrl":  s.fullURL(x.r, r.Type, r.ID),
			"resource": r.JSON,
			"search":   map[string]any{"mode": "match"},
		})
	}
	return x.json(http.StatusOK, map[string]any{
		"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries,
	})
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func decodeStored(r Resource) map[string]any {
	var res map[string]any
	if err := json.Unmarshal(r.JSON, &res); err != nil {
		panic("fhirtest: stored " + r.Type + ": " + err.Error())
	}
	return res
}

// parseQueryString parses the query part of a criteria.
func parseQueryString(q string) (url.Values, error) { return url.ParseQuery(q) }

// searchByPage is Aidbox: 1-based "page" links repeating the query (C§7).
func (s *Server) searchByPage(x *exchange, q query, params url.Values) response {
	page := 1
	if v := params.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return x.outcome(http.StatusBadRequest, "invalid", "page must be a positive integer")
		}
		page = n
	}
	s.mu.Lock()
	results := s.run(q)
	s.mu.Unlock()
	offset := min((page-1)*q.count, len(results))
	end := min(offset+q.count, len(results))
	next := ""
	if end < len(results) {
		nq := cloneValues(params)
		nq.Set("page", strconv.Itoa(page+1))
		next = origin(x.r) + s.base + "/" + s.segment(q.typ) + "?" + nq.Encode()
	}
	return s.bundle(x, results[offset:end], len(results), next)
}
