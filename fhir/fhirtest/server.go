package fhirtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/upstreamtest"
)

// Vendor is the FHIR server a Server imitates.
type Vendor string

// The vendors modelled (see the package documentation for what each does).
const (
	// HAPI is HAPI FHIR JPA server, R4 criteria subscriptions, and R4
	// backport topic subscriptions with Options.TopicMode (C§6.4).
	HAPI Vendor = "hapi"
	// Kodjin is Kodjin FHIR server, R4 criteria subscriptions (C§6.2).
	Kodjin Vendor = "kodjin"
	// HeyDonto is HeyDonto's FHIR Exchange API, R4 criteria subscriptions
	// under /site/<id>/fhir with kebab-case paths (C§6.3).
	HeyDonto Vendor = "heydonto"
	// AidboxZen is Aidbox with zen-configured R4B backport topic-based
	// subscriptions, as seed 001 documents them (C§6.1).
	AidboxZen Vendor = "aidbox-zen"
	// Aidbox is the newer Aidbox (≥ 2601 for R4B and R5): FHIR-native
	// topic-based subscriptions behind an AidboxTopicDestination, R4B
	// backport or R5 as Options.FHIRVersion says (C§6.1).
	Aidbox Vendor = "aidbox"
)

// topicBased reports whether the vendor serves topic-based subscriptions
// (both Aidbox generations, C§1.2, C§1.3).
func (v Vendor) topicBased() bool { return v == AidboxZen || v == Aidbox }

// servesTopics reports whether the fake takes topic-based subscriptions:
// Aidbox's, or HAPI's in TopicMode.
func (o Options) servesTopics() bool { return o.Vendor.topicBased() || o.TopicMode }

// The FHIR versions the newer Aidbox may serve its subscriptions in
// (AidboxTopicDestination subscription-specification-version, C§6.1).
const (
	// R4 is the R4 backport (R4-backported, Aidbox 2512 and later): backport
	// Subscriptions, history Bundles whose status is a Parameters resource
	// (C§1.2, C§2.1).
	R4 = "R4"
	// R4B is the R4B backport: backport Subscriptions, history Bundles with
	// a SubscriptionStatus (C§1.2, C§2.1).
	R4B = "R4B"
	// R5 is native R5: Subscription.topic, filterBy, channelType…, and
	// subscription-notification Bundles (C§1.3, C§2.1).
	R5 = "R5"
)

// Notify is how a HeyDonto fake notifies a subscriber. The real format is not
// documented (C§6.3), so tests choose it.
type Notify string

// The HeyDonto notification forms.
const (
	// NotifyNone sends nothing (the default: nothing is documented).
	NotifyNone Notify = "none"
	// NotifyPutResource PUTs the resource to <endpoint>/<Type>/<id>, the R4
	// rest-hook form with a payload (C§1.1).
	NotifyPutResource Notify = "put-resource"
	// NotifyPostResource POSTs the resource to the endpoint.
	NotifyPostResource Notify = "post-resource"
	// NotifyPostEmpty POSTs an empty body to the endpoint, the R4 rest-hook
	// form without a payload (C§1.1).
	NotifyPostEmpty Notify = "post-empty"
)

const (
	// DefaultEmail and DefaultPassword are the HeyDonto login the fake
	// accepts when Options.Email and Options.Password are empty.
	DefaultEmail    = "mediator@example.org"
	DefaultPassword = "password"

	// maxBodyBytes bounds how much of a request body the fake reads.
	maxBodyBytes = 4 << 20
	// maxAnswerBytes bounds how much of a subscriber's answer is kept.
	maxAnswerBytes = 1 << 20
)

// heyDontoBase is the only base path HeyDonto serves its FHIR API under
// (C§6.3).
var heyDontoBase = regexp.MustCompile(`^/site/[^/]+/fhir$`)

// Options configures a Server. Vendor is required; the rest has defaults.
type Options struct {
	// Vendor is the server imitated: HAPI, Kodjin, HeyDonto, AidboxZen or
	// Aidbox.
	Vendor Vendor
	// BasePath is the path of the FHIR base below the origin, without a
	// trailing slash, never empty (so that a client that drops it fails).
	// Defaults to "/fhir", and to "/site/1/fhir" for HeyDonto, which accepts
	// only /site/<id>/fhir (C§6.3).
	BasePath string
	// Clock is the fake's time: meta.lastUpdated, `end`, retries. Defaults
	// to a new Clock (the real time).
	Clock *Clock
	// Token, when set, is the Bearer token HAPI and Kodjin require on every
	// request (Kodjin issues tokens through SMART backend services, C§6.2,
	// which the fake does not model). HeyDonto always requires a token from
	// POST /auth/login.
	Token string
	// Email and Password are the HeyDonto login (C§6.3). Default to
	// DefaultEmail and DefaultPassword.
	Email, Password string
	// LoginField is the field of the HeyDonto login answer that carries the
	// token: "token" (the default, the newer documentation) or "accessToken"
	// (the older one) (C§6.3, C-trap 24).
	LoginField string
	// MetadataNotFound makes GET metadata answer 404, as openIMIS does and
	// HeyDonto may (C§5, C-trap 2).
	MetadataNotFound bool
	// Notify is HeyDonto's notification form. Defaults to NotifyNone.
	Notify Notify
	// Activate makes HeyDonto turn subscriptions active; by default they stay
	// requested, as in every documented example (C§1.1, C§6.3).
	Activate bool
	// FixedNextLinks makes HeyDonto's next links keep /site/<id> and the
	// original query; by default they are as documented: without the site
	// prefix, a slash before "?", and only _count and _page_token (C§6.3,
	// C-trap 21).
	FixedNextLinks bool
	// PutToEndpoint makes Kodjin PUT the resource to the endpoint itself;
	// by default to <endpoint>/<Type>/<id>. Which one Kodjin does is not
	// documented (C§1.1).
	PutToEndpoint bool
	// Retries is how many times Kodjin retries a failed notification before
	// it turns the subscription off (C§3: "N, configured on a server
	// level"). Defaults to 3.
	Retries int
	// RetryInterval is the time between retries (Kodjin, HAPI). Defaults to
	// 10 s.
	RetryInterval time.Duration
	// RetryWindow is how long HAPI retries a notification before it drops it
	// (C§3: about one minute). Defaults to 1 min.
	RetryWindow time.Duration
	// EmptyPostContentType is the Content-Type of HAPI's empty POST (none by
	// default; HAPI builds it as a parameter request, C-trap 7).
	EmptyPostContentType string
	// NeverFire makes HAPI accept and activate subscriptions and never
	// notify, as a starter without subscription matching did, criteria and
	// topic subscriptions alike (C§3, C-trap 25).
	NeverFire bool
	// TopicMode makes HAPI an R4 backport topic server besides its criteria
	// subscriptions: its metadata advertises the backport and Options.Topics,
	// a Subscription with the backport profile is a topic subscription, and
	// every change of a topic's resource is dispatched to it, as a HAPI
	// whose server code dispatches them does (C§1.2, C§5, C§6.4). Without
	// it, HAPI refuses one: its criteria is not "Type?params" (C-trap 5).
	TopicMode bool
	// DoubledFocus makes HAPI's topic notifications name their focus
	// ClaimResponse/ClaimResponse/<id>, as old HAPI did (C§2.3, C-trap 13).
	// It needs TopicMode.
	DoubledFocus bool
	// DeliveryTimeout bounds each notification request. Defaults to 10 s;
	// Aidbox also applies the subscription's own timeout.
	DeliveryTimeout time.Duration
	// Topics are the SubscriptionTopics an Aidbox fake, or HAPI with
	// TopicMode, knows. nil means DefaultTopic alone. HAPI caps no content:
	// an empty MaxContent is full-resource there.
	Topics []Topic
	// SearchLatency makes every search page (a first page, or a next page
	// in the vendor's paging style) take at least this long from its
	// arrival, so that searches last and SearchOverlaps can tell whether a
	// client ran two at once. A test knob: no server documents one.
	SearchLatency time.Duration
	// InternalOrigin is the origin Aidbox writes in the references of its
	// notifications, its own host as it sees itself, not the URL clients
	// use (C§2.3, C-trap 13). Defaults to "http://localhost:8765".
	InternalOrigin string
	// FHIRVersion is the version the newer Aidbox serves subscriptions in:
	// R4, R4B (the default) or R5 (C§6.1).
	FHIRVersion string
	// R4EventParts makes the newer Aidbox's R4 $events answers carry a
	// notification-event part per event, as the IG's R4 form has them; by
	// default they are left out, as its R4 tutorial shows the answer (C§4,
	// C-trap 19). It needs FHIRVersion R4.
	R4EventParts bool
	// Retention is how long the newer Aidbox keeps events for $events (its
	// destination's keep-events-for-period, C§4); older ones are deleted.
	// Zero keeps them all.
	Retention time.Duration
	// Deliverers is how many deliverers an Aidbox fake sends its event
	// batches with: the newer Aidbox's number-of-deliverer, 4 by default
	// there (C§3, C§6.1); zen documents none. Concurrent deliverers deliver
	// out of event order (C-trap 11), which the fake makes deterministic:
	// with n > 1, batches wait until n are ready, and that round is sent
	// newest first; a round not full goes at the next Tick. 0 or 1 (the
	// default) sends each batch at once, in order.
	Deliverers int
}

// Request is one request the fake received, recorded before any fault or
// check applied to it.
type Request = upstreamtest.Request

// Server is a fake FHIR server and an http.Handler. New and NewServer serve
// it on 127.0.0.1. The embedded Recorder keeps the request log (Requests);
// the embedded Faults hold the injected faults (FailNext, FailNextPath,
// DropNext, DropNextPath, SetDown, SetLatency), answered with an
// OperationOutcome. All methods are safe for concurrent use.
type Server struct {
	upstreamtest.Recorder
	*upstreamtest.Faults

	// URL is the origin of the running fake ("http://127.0.0.1:port"),
	// empty for a Server from NewHandler.
	URL string
	// BaseURL is URL followed by the base path: the FHIR base a client is
	// configured with.
	BaseURL string
	// Clock is the fake's clock, for tests to advance.
	Clock *Clock

	opts      Options
	base      string
	srv       *httptest.Server
	client    *http.Client
	closeOnce sync.Once

	mu         sync.Mutex
	resources  map[string]*entry // by resourceKey
	order      []string          // resource keys in creation order
	seq        int               // HAPI's server-assigned ids
	tokens     map[string]bool   // HeyDonto tokens issued and not expired
	logins     int
	pageTokens map[string]pageToken
	snapshots  map[string][]Resource
	pending    []*notification
	deliveries []Delivery
	dropped    int
	nextSeq    int                  // notification trigger order
	topicSubs  map[string]*topicSub // Aidbox's delivery state, by resource key
	after      int                  // jobs running after their answer
	afterDone  *sync.Cond           // signalled when after drops to 0, on mu
	searching  map[string]int       // search pages being answered, by type
	overlaps   map[string]int       // search pages that began during another, by type
}

// New starts a fake on 127.0.0.1 with a random port. Call Close when done.
// It panics on invalid Options.
func New(opts Options) *Server {
	s := NewHandler(opts)
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	s.BaseURL = s.URL + s.base
	return s
}

// NewServer is New plus tb.Cleanup(s.Close).
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// NewHandler returns a fake that is not listening. It panics on invalid
// Options.
func NewHandler(opts Options) *Server {
	switch opts.Vendor {
	case HAPI, Kodjin, AidboxZen, Aidbox:
		if opts.BasePath == "" {
			opts.BasePath = "/fhir"
		}
	case HeyDonto:
		if opts.BasePath == "" {
			opts.BasePath = "/site/1/fhir"
		}
		if !heyDontoBase.MatchString(opts.BasePath) {
			panic(fmt.Sprintf("fhirtest: HeyDonto serves FHIR only under /site/<id>/fhir, not %q", opts.BasePath))
		}
	default:
		panic(fmt.Sprintf("fhirtest: vendor %q is not modelled (hapi, kodjin, heydonto, aidbox-zen, aidbox)", opts.Vendor))
	}
	checkKnobs(opts)
	if opts.BasePath == "/" || !strings.HasPrefix(opts.BasePath, "/") || strings.HasSuffix(opts.BasePath, "/") {
		panic(fmt.Sprintf("fhirtest: BasePath %q must start with a slash, not end with one, and not be the root", opts.BasePath))
	}
	if opts.Clock == nil {
		opts.Clock = &Clock{}
	}
	if opts.Email == "" {
		opts.Email = DefaultEmail
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	switch opts.LoginField {
	case "":
		opts.LoginField = "token"
	case "token", "accessToken":
	default:
		panic(fmt.Sprintf("fhirtest: LoginField %q is neither token nor accessToken", opts.LoginField))
	}
	switch opts.Notify {
	case "":
		opts.Notify = NotifyNone
	case NotifyNone, NotifyPutResource, NotifyPostResource, NotifyPostEmpty:
	default:
		panic(fmt.Sprintf("fhirtest: Notify %q is not a notification form", opts.Notify))
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 10 * time.Second
	}
	if opts.RetryWindow == 0 {
		opts.RetryWindow = time.Minute
	}
	if opts.DeliveryTimeout == 0 {
		opts.DeliveryTimeout = 10 * time.Second
	}
	if opts.Vendor == Aidbox {
		switch opts.FHIRVersion {
		case "":
			opts.FHIRVersion = R4B
		case R4, R4B, R5:
		default:
			panic(fmt.Sprintf("fhirtest: FHIRVersion %q is none of R4, R4B and R5", opts.FHIRVersion))
		}
	}
	if opts.servesTopics() {
		if opts.Topics == nil {
			opts.Topics = []Topic{DefaultTopic}
		}
		checkTopics(opts.Topics)
	}
	if opts.Vendor.topicBased() && opts.InternalOrigin == "" {
		opts.InternalOrigin = "http://localhost:8765"
	}
	if opts.TopicMode {
		opts.Topics = slices.Clone(opts.Topics)
		for i := range opts.Topics {
			opts.Topics[i].MaxContent = cmp.Or(opts.Topics[i].MaxContent, "full-resource")
		}
	}
	s := &Server{
		Faults:     upstreamtest.NewFaults(0),
		Clock:      opts.Clock,
		opts:       opts,
		base:       opts.BasePath,
		client:     &http.Client{Timeout: opts.DeliveryTimeout},
		resources:  map[string]*entry{},
		tokens:     map[string]bool{},
		pageTokens: map[string]pageToken{},
		snapshots:  map[string][]Resource{},
		topicSubs:  map[string]*topicSub{},
		searching:  map[string]int{},
		overlaps:   map[string]int{},
	}
	s.afterDone = sync.NewCond(&s.mu)
	return s
}

// Close stops the fake and waits for requests in flight. It can be called
// more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.Faults.Close()
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Vendor is the vendor the fake imitates.
func (s *Server) Vendor() Vendor { return s.opts.Vendor }

// ServeHTTP records the request, applies the injected faults, authenticates
// and routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := s.Record(r, maxBodyBytes, s.Clock.Now())
	x := &exchange{s: s, r: r, body: body, bodyErr: err}
	searched := s.searchBegins(r)
	resp, authorized := s.handle(x)
	drop := authorized && s.TakeDrop(r.URL.Path)
	s.Delay(r.Context(), arrived)
	// Before the answer: a client's next page must not seem to overlap.
	s.searchEnds(r.Context(), searched, arrived)
	if drop {
		upstreamtest.DropConnection(w)
	} else {
		resp.write(w)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	for _, job := range x.after {
		job()
	}
	if len(x.after) > 0 {
		s.mu.Lock()
		s.after--
		if s.after == 0 {
			s.afterDone.Broadcast()
		}
		s.mu.Unlock()
	}
}

// searchedType is the resource type whose search r asks a page of: GET
// [base]/<Type>, or HAPI's GET [base]?_getpages= of a snapshot (C§7); ""
// for any other request.
func (s *Server) searchedType(r *http.Request) string {
	if r.Method != http.MethodGet {
		return ""
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.base)
	rest = strings.Trim(rest, "/")
	switch {
	case !ok:
		return ""
	case rest == "" && s.opts.Vendor == HAPI:
		s.mu.Lock()
		defer s.mu.Unlock()
		if snap := s.snapshots[r.URL.Query().Get("_getpages")]; len(snap) > 0 {
			return snap[0].Type
		}
		return ""
	case strings.Contains(rest, "/"):
		return ""
	}
	typ, _ := s.typeOfSegment(rest)
	return typ
}

// searchBegins counts a search page as being answered, and as an overlap
// when another of its type is; it returns the type, "" for a request that
// is no search.
func (s *Server) searchBegins(r *http.Request) string {
	typ := s.searchedType(r)
	if typ == "" {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.searching[typ] > 0 {
		s.overlaps[typ]++
	}
	s.searching[typ]++
	return typ
}

// searchEnds waits out SearchLatency and counts the page answered.
func (s *Server) searchEnds(ctx context.Context, typ string, arrived time.Time) {
	if typ == "" {
		return
	}
	if d := time.Until(arrived.Add(s.opts.SearchLatency)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searching[typ]--
}

// Searching reports whether a search of typ is being answered now.
func (s *Server) Searching(typ string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searching[typ] > 0
}

// SearchOverlaps counts the search pages of typ that arrived while another
// search page of typ was being answered: none for a client that runs one
// search at a time.
func (s *Server) SearchOverlaps(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlaps[typ]
}

// runAfter makes job run once the answer to x is written, as Aidbox sends a
// handshake after answering the create (C§3). The caller holds s.mu.
func (s *Server) runAfter(x *exchange, job func()) {
	if len(x.after) == 0 {
		s.after++
	}
	x.after = append(x.after, job)
}

// Flush waits until the work the fake does after answering a request (an
// Aidbox handshake) is done.
func (s *Server) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.after > 0 {
		s.afterDone.Wait()
	}
}

// handle answers x; authorized says whether it passed the faults and the
// authentication, after which a DropNext may apply.
func (s *Server) handle(x *exchange) (response, bool) {
	if down := s.Down(); down != 0 {
		return x.outcome(down, "transient", "the server is down"), false
	}
	if status := s.TakeFail(x.r.URL.Path); status != 0 {
		return x.outcome(status, "transient", "injected failure"), false
	}
	if x.bodyErr != nil {
		return x.outcome(http.StatusBadRequest, "structure", "cannot read the request body"), false
	}
	if len(x.body) > maxBodyBytes {
		return x.outcome(http.StatusRequestEntityTooLarge, "too-costly", "request body too large"), false
	}
	// HeyDonto logs in at the origin, outside the FHIR base (C§6.3, C§8).
	if s.opts.Vendor == HeyDonto && x.r.URL.Path == "/auth/login" {
		return s.login(x), true
	}
	if resp, ok := s.authenticate(x); !ok {
		return resp, false
	}
	return s.route(x), true
}

// route dispatches a request below the base path. Paths are case-sensitive:
// HAPI and Kodjin name types in PascalCase, HeyDonto in kebab-lower case
// (C§6.3, C-trap 22); anything else is 404.
func (s *Server) route(x *exchange) response {
	p := x.r.URL.Path
	if p != s.base && !strings.HasPrefix(p, s.base+"/") {
		return x.notFound()
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(p, s.base), "/")
	// HeyDonto's documented paths may end in a slash (C§6.3: next links
	// ".../subscription/?_count=..."); the others do not tolerate one.
	if s.opts.Vendor == HeyDonto {
		rest = strings.TrimSuffix(rest, "/")
	}
	var segs []string
	if rest != "" {
		segs = strings.Split(rest, "/")
	}
	for _, seg := range segs {
		if seg == "" {
			return x.notFound()
		}
	}
	method := x.r.Method
	if len(segs) == 0 {
		if s.opts.Vendor == HAPI && method == http.MethodGet && x.r.URL.Query().Has("_getpages") {
			return s.getPages(x)
		}
		return x.notFound()
	}
	if segs[0] == "metadata" && len(segs) == 1 {
		if method != http.MethodGet {
			return x.notAllowed()
		}
		return s.metadata(x)
	}
	typ, ok := s.typeOfSegment(segs[0])
	if !ok {
		return x.notFound()
	}
	switch len(segs) {
	case 1:
		switch {
		case method == http.MethodGet:
			return s.search(x, typ)
		case method == http.MethodPost && typ == "Subscription":
			return s.createSubscription(x)
		}
	case 2:
		switch {
		case method == http.MethodGet:
			return s.read(x, typ, segs[1])
		case method == http.MethodPut && typ == "Subscription":
			return s.updateSubscription(x, segs[1])
		case method == http.MethodDelete && typ == "Subscription":
			return s.deleteSubscription(x, segs[1])
		}
	case 3:
		if s.opts.Vendor.topicBased() && typ == "Subscription" && (segs[2] == "$status" || segs[2] == "$events") {
			return s.topicOperation(x, segs[1], segs[2])
		}
		if segs[2] != s.historySegment() {
			return x.notFound()
		}
		if method == http.MethodGet {
			return s.history(x, typ, segs[1])
		}
	default:
		return x.notFound()
	}
	// The mediator never writes claims or patients; the fake does not model
	// those writes rather than accept them loosely.
	return x.notAllowed()
}

// modelledTypes are the resource types the fake stores.
var modelledTypes = []string{"ClaimResponse", "Patient", "Subscription"}

// typeOfSegment maps a path segment to its resource type, in the vendor's
// path style.
func (s *Server) typeOfSegment(seg string) (string, bool) {
	for _, t := range modelledTypes {
		if s.segment(t) == seg {
			return t, true
		}
	}
	return "", false
}

// segment is the path segment of a resource type: the type itself, or on
// HeyDonto its kebab-lower form, "claim-response" (C§6.3, C-trap 22).
func (s *Server) segment(typ string) string {
	if s.opts.Vendor != HeyDonto {
		return typ
	}
	var b strings.Builder
	for i, c := range typ {
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// historySegment is "_history", or on HeyDonto "history" (C§6.3).
func (s *Server) historySegment() string {
	if s.opts.Vendor == HeyDonto {
		return "history"
	}
	return "_history"
}

// origin is the scheme and host the request came to, for absolute links.
func origin(r *http.Request) string {
	return "http://" + r.Host
}

// checkBody accepts the JSON a FHIR server takes: Content-Type
// application/fhir+json, or application/json, which HeyDonto's documented
// requests carry (C§1.1 example) and FHIR servers accept as JSON; parameters
// allowed. Anything else is 415.
func (x *exchange) checkBody() (response, bool) {
	mt, _, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		return x.outcome(http.StatusUnsupportedMediaType, "not-supported",
			"Content-Type must be application/fhir+json or application/json"), false
	}
	return response{}, true
}

// newID is a random 128-bit id in UUID form.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("fhirtest: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// checkKnobs panics when an option is set for a vendor it does not apply to,
// so that a test never believes it configured a behaviour the fake ignores.
func checkKnobs(opts Options) {
	only := func(v Vendor, name string, set bool) {
		if set && opts.Vendor != v {
			panic(fmt.Sprintf("fhirtest: Options.%s applies to %s only, not %s", name, v, opts.Vendor))
		}
	}
	onlyAidbox := func(name string, set bool) {
		if set && !opts.Vendor.topicBased() {
			panic(fmt.Sprintf("fhirtest: Options.%s applies to %s and %s only, not %s", name, AidboxZen, Aidbox, opts.Vendor))
		}
	}
	only(HeyDonto, "Email", opts.Email != "")
	only(HeyDonto, "Password", opts.Password != "")
	only(HeyDonto, "LoginField", opts.LoginField != "")
	only(HeyDonto, "Notify", opts.Notify != "")
	only(HeyDonto, "Activate", opts.Activate)
	only(HeyDonto, "FixedNextLinks", opts.FixedNextLinks)
	only(Kodjin, "PutToEndpoint", opts.PutToEndpoint)
	only(Kodjin, "Retries", opts.Retries != 0)
	only(HAPI, "RetryWindow", opts.RetryWindow != 0)
	only(HAPI, "EmptyPostContentType", opts.EmptyPostContentType != "")
	only(HAPI, "NeverFire", opts.NeverFire)
	only(HAPI, "TopicMode", opts.TopicMode)
	if opts.DoubledFocus && !opts.TopicMode {
		panic("fhirtest: Options.DoubledFocus needs HAPI's TopicMode")
	}
	if opts.Topics != nil && !opts.servesTopics() {
		panic(fmt.Sprintf("fhirtest: Options.Topics applies to %s, %s and HAPI's TopicMode only, not %s", AidboxZen, Aidbox, opts.Vendor))
	}
	onlyAidbox("InternalOrigin", opts.InternalOrigin != "")
	only(Aidbox, "FHIRVersion", opts.FHIRVersion != "")
	only(Aidbox, "Retention", opts.Retention != 0)
	if opts.R4EventParts && (opts.Vendor != Aidbox || opts.FHIRVersion != R4) {
		panic("fhirtest: Options.R4EventParts needs the newer Aidbox in FHIRVersion R4")
	}
	onlyAidbox("Deliverers", opts.Deliverers != 0)
	if opts.Token != "" && opts.Vendor == HeyDonto {
		panic("fhirtest: Options.Token does not apply to HeyDonto, whose tokens come from POST /auth/login")
	}
	if opts.Retries < 0 || opts.RetryInterval < 0 || opts.RetryWindow < 0 || opts.DeliveryTimeout < 0 || opts.Retention < 0 ||
		opts.SearchLatency < 0 || opts.Deliverers < 0 {
		panic("fhirtest: negative Retries, RetryInterval, RetryWindow, DeliveryTimeout, Retention, SearchLatency or Deliverers")
	}
}

// checkTopics panics on a topic the fake could not serve.
func checkTopics(topics []Topic) {
	for _, t := range topics {
		params, ok := searchParams[t.Resource]
		if t.URL == "" || !ok {
			panic(fmt.Sprintf("fhirtest: topic %q needs a URL and a resource the fake stores", t.URL))
		}
		for _, p := range t.CanFilterBy {
			if params[p] == nil {
				panic(fmt.Sprintf("fhirtest: topic %q: the fake cannot filter %s by %s", t.URL, t.Resource, p))
			}
		}
		if t.MaxContent != "" && !slices.Contains(contentLevels, t.MaxContent) {
			panic(fmt.Sprintf("fhirtest: topic %q: maxContent %q", t.URL, t.MaxContent))
		}
	}
}
