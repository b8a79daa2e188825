package fhir

import (
	"maps"
	"net/http"
	"slices"
)

// Vendor names a server implementation whose quirks the client knows.
type Vendor string

// The vendors of docs/upstreams/fhir-subscriptions.md §6.
const (
	VendorGeneric   Vendor = "generic"
	VendorAidbox    Vendor = "aidbox"     // Aidbox ≥ 2512 (§6.1)
	VendorAidboxZen Vendor = "aidbox-zen" // the zen-configured Aidbox of seed 001 (§6.1)
	VendorKodjin    Vendor = "kodjin"     // §6.2
	VendorHeyDonto  Vendor = "heydonto"   // §6.3
	VendorHAPI      Vendor = "hapi"       // §6.4
)

// DeleteAnswer is the form of a server's answer to a DELETE.
type DeleteAnswer string

const (
	// DeleteAnswerAny is 204, or 200 with the deleted resource or an
	// OperationOutcome: any 2xx is success (trap 23).
	DeleteAnswerAny DeleteAnswer = "any"
	// DeleteAnswerStatusText is HeyDonto's 200 {"statusText":"OK","status":200}:
	// the body's status decides (§1.1, §6.3).
	DeleteAnswerStatusText DeleteAnswer = "status-text"
)

// CounterEncoding is how a server writes event counters. Parsing accepts
// both; the encoding is recorded for the fakes and for reading a server's
// answers in tests (§2.1, trap 10).
type CounterEncoding string

const (
	CounterString CounterEncoding = "string" // the IG: valueString, R4B strings
	CounterNumber CounterEncoding = "number" // Aidbox-zen and Aidbox R5: JSON numbers
)

// Quirks are one vendor's departures from the specifications, as data: the
// client and the mediator read them instead of branching on the vendor.
type Quirks struct {
	// Paths maps resource types to URL segments (§6.3, trap 22).
	Paths Paths
	// StatusMethod and EventsMethod are the verbs of $status and $events
	// (§4, trap 19).
	StatusMethod, EventsMethod string
	// LoginPath is the JSON login's path on the server's origin when no
	// login URL is configured ("" when the vendor has none).
	LoginPath string
	// LoginUserField is the login body's field for the user: "username" or
	// "email" (§8).
	LoginUserField string
	// TokenFields are the login answer's fields that may hold the token,
	// in the order they are tried (trap 24).
	TokenFields []string
	// DeleteAnswer is the form of a DELETE's answer (trap 23).
	DeleteAnswer DeleteAnswer
	// RecreateOnError says the server forbids updating a Subscription: an
	// errored one is deleted and created again instead of PUT back to
	// requested (§3, trap 17).
	RecreateOnError bool
	// Counters is how the server writes event counters (trap 10).
	Counters CounterEncoding
	// CountersKept says the server stores its event counters with the
	// subscription (Aidbox keeps its events, §4, §6.1): a counter below one
	// already seen is a late or repeated delivery (trap 11), never a
	// restart. Elsewhere a counter that goes down is read as a restart
	// (trap 10; HAPI's counter lives in memory, finding 4).
	CountersKept bool
	// NoHeartbeats says the server sends no heartbeat notifications, whatever
	// heartbeat period its topic subscriptions store (HAPI's topic code has
	// no heartbeat builder, §3): its silence says nothing.
	NoHeartbeats bool
	// PageToken is the query parameter carrying the opaque page token, for
	// servers that page with one ("" for link-only paging). A next link
	// that does not lie under the base is rebuilt from the original query
	// plus this token (§7, trap 21).
	PageToken string
	// Software are lower-case fragments of CapabilityStatement
	// software.name that identify the vendor (§5).
	Software []string
}

// vendors is the quirk table (docs/upstreams/fhir-subscriptions.md §6).
var vendors = map[Vendor]Quirks{
	VendorGeneric: {
		StatusMethod: http.MethodGet, EventsMethod: http.MethodPost,
		LoginUserField: "username", TokenFields: defaultTokenFields,
		DeleteAnswer: DeleteAnswerAny, Counters: CounterString,
	},
	// Aidbox ≥ 2512: $events by POST, counters as strings in R4/R4B, no
	// Subscription updates (§4, §6.1; AB-NEW r4b tutorial:850).
	VendorAidbox: {
		StatusMethod: http.MethodGet, EventsMethod: http.MethodPost,
		LoginUserField: "username", TokenFields: defaultTokenFields,
		DeleteAnswer: DeleteAnswerAny, RecreateOnError: true, Counters: CounterString, CountersKept: true,
		Software: []string{"aidbox"},
	},
	// Aidbox zen (seed 001): GET $status, GET $events, numeric counters;
	// an errored subscription "should be deleted and recreated" (§3, §4).
	VendorAidboxZen: {
		StatusMethod: http.MethodGet, EventsMethod: http.MethodGet,
		LoginUserField: "username", TokenFields: defaultTokenFields,
		DeleteAnswer: DeleteAnswerAny, RecreateOnError: true, Counters: CounterNumber, CountersKept: true,
	},
	// Kodjin (seed 004): criteria subscriptions, updates allowed (§6.2).
	VendorKodjin: {
		StatusMethod: http.MethodGet, EventsMethod: http.MethodPost,
		LoginUserField: "username", TokenFields: defaultTokenFields,
		DeleteAnswer: DeleteAnswerAny, Counters: CounterString,
		Software: []string{"kodjin"},
	},
	// HeyDonto (seed 003): kebab-case paths, POST /auth/login with an
	// email, token in token or accessToken, DELETE answers
	// {statusText,status}, _page_token paging with next links that lose
	// /site/<id> (§6.3).
	VendorHeyDonto: {
		Paths:        Paths{Style: PathKebabLower},
		StatusMethod: http.MethodGet, EventsMethod: http.MethodPost,
		LoginPath: "/auth/login", LoginUserField: "email", TokenFields: []string{"token", "accessToken"},
		DeleteAnswer: DeleteAnswerStatusText, Counters: CounterString,
		PageToken: "_page_token",
		Software:  []string{"heydonto"},
	},
	// HAPI: in-memory R4 backport counter (finding 4, §6.4), no
	// heartbeats (§3).
	VendorHAPI: {
		StatusMethod: http.MethodGet, EventsMethod: http.MethodPost,
		LoginUserField: "username", TokenFields: defaultTokenFields,
		DeleteAnswer: DeleteAnswerAny, Counters: CounterString, NoHeartbeats: true,
		Software: []string{"hapi"},
	},
}

// defaultTokenFields are the fields a JSON login answer may hold its token
// in (§8, trap 24).
var defaultTokenFields = []string{"token", "accessToken", "access_token"}

// QuirksOf returns the quirks of v, and false for an unknown vendor (whose
// quirks are the generic ones).
func QuirksOf(v Vendor) (Quirks, bool) {
	q, ok := vendors[v]
	if !ok {
		q = vendors[VendorGeneric]
	}
	// Copies: a caller must not change the table.
	q.TokenFields = slices.Clone(q.TokenFields)
	q.Software = slices.Clone(q.Software)
	q.Paths.Overrides = maps.Clone(q.Paths.Overrides)
	return q, ok
}

// Vendors lists the known vendors.
func Vendors() []Vendor {
	return []Vendor{VendorGeneric, VendorAidbox, VendorAidboxZen, VendorKodjin, VendorHeyDonto, VendorHAPI}
}
