// Package fhirtest is a set of strict in-process fakes of the FHIR servers
// the mediator may take claim outcomes from through R4 criteria-based
// subscriptions: HAPI FHIR, Kodjin and HeyDonto. It is for tests and the
// sandbox, and imports nothing of the module but internal/upstreamtest.
//
// It reads as a specification: every rule the fake enforces cites where the
// real server's behaviour is written down, as C§n (a section) or C-trap n
// (a trap) of docs/upstreams/fhir-subscriptions.md. Where the servers' own
// documentation is silent, the fake says so and offers a knob in Options
// rather than guessing quietly.
//
// One Server, configured by Options.Vendor, serves the FHIR API under
// Options.BasePath (never the root, so a client that drops it fails):
//
//   - GET metadata: an R4 CapabilityStatement whose software.name tells the
//     vendor ("HAPI FHIR Server", "Kodjin FHIR Server"; none on HeyDonto),
//     or 404 with Options.MetadataNotFound (C§5, C-trap 2).
//   - GET <Type>/<id>, GET <Type>/<id>/_history and searches of
//     ClaimResponse, Patient and Subscription with _lastUpdated
//     (eq|ge|gt|le|lt, date or dateTime), _count, _sort=[-]_lastUpdated and
//     a few filters per type; a parameter the fake does not model is 400.
//     Paging is HAPI's snapshot (GET [base]?_getpages=…), Kodjin's _offset
//     links, or HeyDonto's opaque _page_token, bound to its query (400 with
//     another) and served in next links without /site/<id> as documented
//     (C§6.3, C§7, C-trap 21).
//   - POST, PUT and DELETE Subscription with each vendor's rules: criteria
//     "Type?params" on HAPI (a bare type is 422 "must be in the form",
//     C§1.1, C-trap 5); status requested only on Kodjin, requested or active
//     on HAPI, both activated at once; HeyDonto's staying requested unless
//     Options.Activate (C§1.1, C-trap 4); channel headers "Name: value"
//     (C-trap 6); Kodjin's payload only application/fhir+json (C§1.1);
//     HeyDonto's DELETE answering 200 {"statusText":"OK","status":200}
//     (C-trap 23).
//   - HeyDonto: paths /site/<id>/fhir/<kebab-lower type> (claim-response,
//     history instead of _history; PascalCase is 404), case-insensitive ids,
//     POST /auth/login {email,password} answering {"token"} or
//     {"accessToken"} (Options.LoginField), Bearer required everywhere else,
//     ExpireTokens (C§6.3, C§8, C-trap 22, C-trap 24). HAPI and Kodjin want
//     Options.Token as a Bearer token when it is set.
//   - Bodies must be application/fhir+json or application/json (415);
//     unknown paths are 404 and unmodelled methods 405, as OperationOutcomes.
//
// Tests change the data with CreateClaimResponse, UpdateClaimResponse and
// AddPatient; each change is notified at once to the subscriptions whose
// criteria match, in the vendor's form (C§2.1, C-trap 7): HAPI PUTs the
// resource to <endpoint>/<Type>/<id> with a payload and POSTs an empty body
// without; Kodjin the same, or PUT <endpoint> with Options.PutToEndpoint;
// HeyDonto as Options.Notify says (put-resource, post-resource, post-empty,
// or none, the default). Every attempt is recorded (Deliveries) with the
// request and the answer, judged by the vendor's success rule (HAPI parses
// a non-empty answer as FHIR, C-trap 8), and failures follow the vendor's
// retry rule: Kodjin turns the subscription error, retries Options.Retries
// times newest first, then turns it off (C§3, C-trap 18); HAPI retries for
// Options.RetryWindow then drops (C-trap 26); Kodjin turns a subscription
// off at its end (C-trap 27). Time is the Server's Clock: retries and
// expiry run when a test advances it and calls Tick, never by sleeping.
//
// Test-side controls: Subscriptions, Subscription, SetStatus, ClaimResponses,
// Patients, Deliveries, PendingRetries, Dropped, Logins, ExpireTokens,
// ExpirePageTokens, Requests, and the faults of internal/upstreamtest
// (FailNext, FailNextPath, DropNext, DropNextPath, SetDown, SetLatency),
// answered with an OperationOutcome.
//
// Not modelled, and why:
//
//   - Aidbox (zen and new) and every topic-based (R4/R4B backport, R5)
//     behaviour: handshakes, heartbeats, event numbers, $status and $events
//     (C§1.2, C§3, C§4). New panics for those vendors.
//   - HeyDonto's notification format and whether its subscriptions ever turn
//     active are undocumented (C§6.3): Options.Notify and Options.Activate
//     let tests try each possibility. Its ClaimResponse path claim-response
//     is presumed (C§6.3). It makes no retries: none are documented.
//   - Whether Kodjin's PUT appends /<Type>/<id> to the endpoint is
//     unverified (C§1.1): Options.PutToEndpoint.
//   - Kodjin's SMART token endpoint (C§6.2; Options.Token stands for a token
//     from it), its websocket, email and sms channels, and HAPI's XML
//     payloads. Writes of ClaimResponse and Patient over HTTP (405), update
//     of an unknown Subscription (404), conditional requests.
package fhirtest
