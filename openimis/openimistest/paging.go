package openimistest

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// defaultPageSize is upstream's default _count.
const defaultPageSize = 10

// lastUpdatedFilter is a parsed _lastUpdated parameter (contract §6): a
// Django lookup on a naive-UTC datetime. The zero value matches everything.
type lastUpdatedFilter struct {
	lookup string
	value  time.Time
	// from and to bound the "ap" range.
	from, to time.Time
}

// lastUpdatedPrefixes are tried in this order, as upstream does.
var lastUpdatedPrefixes = []struct{ prefix, lookup string }{
	{"eq", "exact"}, {"ne", "exclude"}, {"gt", "gt"}, {"lt", "lt"}, {"ge", "gte"},
	{"le", "lte"}, {"sa", "gte"}, {"eb", "lte"}, {"ap", "range"},
}

// parseLastUpdated reads the LAST _lastUpdated value (QueryDict semantics) in
// the exact format YYYY-MM-DDTHH:MM:SS; anything else is a 500.
func parseLastUpdated(q url.Values, now time.Time) (lastUpdatedFilter, *apiError) {
	vals, ok := q["_lastUpdated"]
	if !ok || len(vals) == 0 {
		return lastUpdatedFilter{}, nil
	}
	raw := vals[len(vals)-1]
	lookup, rest := "exact", raw
	for _, p := range lastUpdatedPrefixes {
		if strings.HasPrefix(raw, p.prefix) {
			lookup, rest = p.lookup, raw[len(p.prefix):]
			break
		}
	}
	t, err := time.Parse("2006-01-02T15:04:05", rest)
	if err != nil || len(rest) != len("2006-01-02T15:04:05") {
		return lastUpdatedFilter{}, errServer("_lastUpdated value is not a valid datetime")
	}
	f := lastUpdatedFilter{lookup: lookup, value: t}
	if lookup == "range" {
		// range_size = (now - value).days * 0.1 days, .days floored.
		days := math.Floor(now.Sub(t).Hours() / 24)
		size := time.Duration(days * 0.1 * 24 * float64(time.Hour))
		f.from, f.to = t.Add(-size), t.Add(size)
	}
	return f, nil
}

// match reports whether a row with the given timestamp passes the filter.
func (f lastUpdatedFilter) match(ts time.Time) bool {
	switch f.lookup {
	case "exact":
		return ts.Equal(f.value)
	case "exclude":
		return !ts.Equal(f.value)
	case "gt":
		return ts.After(f.value)
	case "lt":
		return ts.Before(f.value)
	case "gte":
		return !ts.Before(f.value)
	case "lte":
		return !ts.After(f.value)
	case "range":
		return !ts.Before(f.from) && !ts.After(f.to)
	default:
		return true
	}
}

// key identifies the SQL the filter produces, for the count cache.
func (f lastUpdatedFilter) key() string {
	if f.lookup == "" {
		return "-"
	}
	if f.lookup == "range" {
		return "range:" + f.from.Format(time.RFC3339Nano) + "/" + f.to.Format(time.RFC3339Nano)
	}
	return f.lookup + ":" + f.value.Format(time.RFC3339)
}

// cachedCount is one entry of the count cache.
type cachedCount struct {
	count   int
	expires time.Time
}

// FlushCountCache empties the cache of list totals (see
// [Options.CountCacheTTL]), as restarting openIMIS would.
func (s *Server) FlushCountCache() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.countCache)
}

// count returns the cached total for key, caching n when there is none.
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

// pageItem is one resource of a list, in order.
type pageItem struct {
	id       string
	resource json.RawMessage
}

// bundle is the searchset Bundle wire form.
type bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        int           `json:"total"`
	Link         []bundleLink  `json:"link"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource"`
}

// page answers a list request with one page of items, like
// FhirBundleResultsSetPagination over a CachedCountQueryset. total is the
// (possibly cached, possibly stale) count; only the first total items are
// pageable.
func (c *call) page(items []pageItem, total int) {
	q := c.r.URL.Query()
	size := defaultPageSize
	if vs := q["_count"]; len(vs) > 0 {
		if n, ok := pyInt(vs[len(vs)-1]); ok && n > 0 && n <= math.MaxInt32 {
			size = int(n)
		}
	}
	numPages := int(math.Ceil(float64(max(1, total)) / float64(size)))
	number := 1
	if vs := q["page-offset"]; len(vs) > 0 && vs[len(vs)-1] != "" {
		raw := vs[len(vs)-1]
		if raw == "last" {
			number = numPages
		} else {
			n, ok := pyInt(raw)
			if !ok || n < 1 || n > int64(numPages) {
				c.fail(errFatal(http.StatusNotFound, msgInvalidPage))
				return
			}
			number = int(n)
		}
	}
	bottom := (number - 1) * size
	top := min(bottom+size, total)
	var entries []bundleEntry
	base := c.s.baseURL(c.r)
	for i := bottom; i < top && i < len(items); i++ {
		e := bundleEntry{Resource: items[i].resource}
		if items[i].id != "" {
			e.FullURL = base + c.r.URL.EscapedPath() + items[i].id
		}
		entries = append(entries, e)
	}

	self := base + c.r.URL.EscapedPath()
	if c.r.URL.RawQuery != "" {
		self += "?" + c.r.URL.RawQuery
	}
	links := []bundleLink{{Relation: "self", URL: url.QueryEscape(self)}}
	if number < numPages {
		links = append(links, bundleLink{Relation: "next", URL: url.QueryEscape(c.pageURL(base, number+1))})
	}
	if number > 1 {
		links = append(links, bundleLink{Relation: "previous", URL: url.QueryEscape(c.pageURL(base, number-1))})
	}
	c.json(http.StatusOK, bundle{ResourceType: "Bundle", Type: "searchset", Total: total, Link: links, Entry: entries})
}

// pageURL rebuilds the request URL for another page like DRF's
// replace_query_param/remove_query_param: the query is re-encoded with its
// keys sorted, and page 1 drops page-offset.
func (c *call) pageURL(base string, number int) string {
	q, _ := url.ParseQuery(c.r.URL.RawQuery)
	if number == 1 {
		q.Del("page-offset")
	} else {
		q.Set("page-offset", strconv.Itoa(number))
	}
	u := base + c.r.URL.EscapedPath()
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}
