// Package openimistest is a strict in-process fake of the parts of the openIMIS
// FHIR R4 API (module openimis-be-api_fhir_r4_py, release 24.10) that the
// mediator uses, for integration tests and sandbox demos.
//
// The fake reproduces the real server's rules, including the inconvenient ones
// listed as "Traps" in spec/contracts/openimis.md, so that a client that works
// against it also works against openIMIS. Everything is mounted under
// [FHIRPath] (/api/api_fhir_r4/) below [Server.URL].
//
// # Rules for every route
//
//   - Trailing slash: a path that matches a route only with a trailing slash
//     answers like Django's CommonMiddleware with DEBUG on (MODE=DEV): GET,
//     HEAD, DELETE and OPTIONS get 301 to the slashed path (query kept);
//     POST, PUT and PATCH get 500 text/plain "RuntimeError ... APPEND_SLASH".
//     Any other unknown path gets Django's HTML 404 page (text/html).
//   - Content negotiation (DRF): an Accept header that matches neither
//     application/json nor text/html (for example application/fhir+json alone)
//     gives 406. A request body is parsed only by its Content-Type:
//     application/json (parameters allowed), form or multipart; anything else,
//     including application/fhir+json or a missing type with a non-empty body,
//     gives 415. An empty body reads as {}. Invalid JSON gives 400.
//   - Authentication: "Authorization: Bearer <token>" (prefix case-insensitive)
//     with a token from login/, or HTTP Basic with a known user. A bad or
//     expired token gives 401 OperationOutcome "INCORRECT_CREDENTIALS"; bad
//     Basic credentials 401 "Invalid username/password."; no credentials 401
//     "Authentication credentials were not provided.". Authentication runs on
//     login/ too, so an expired Bearer token there gives 401.
//   - Rights: each route needs the right codes of the contract (Subscription
//     search 158001, create 158002, update 158003, delete 158004; ClaimResponse
//     111001; Communication POST 111009; Patient 101101). A missing right gives
//     403 "You do not have permission to perform this action.".
//   - Errors inside the FHIR API are OperationOutcome JSON. DRF exceptions
//     (401, 403, 404 "Invalid page.", 405, 406, 415, 400) have severity
//     "fatal"; FHIR validation errors, Django errors and unexpected errors have
//     severity "error", code "exception" and HTTP 500 (or
//     [Options.ValidationStatus]); unknown Subscription ids give 404 with code
//     "not-found". details.text is a string, except for DRF ValidationError
//     (the Subscription resource whitelist), where it is a JSON array.
//   - Empty responses (204, the 400 of a wrong login password) carry no
//     Content-Type, as DRF removes it.
//
// # Routes
//
//   - POST login/: see [Server.Logins] and [Options.TokenLifetime].
//   - GET, POST Subscription/ and GET, PUT, DELETE Subscription/<id>/.
//   - GET Patient/<uuid>/ (unknown uuid: 500; a non-UUID: 404).
//   - GET ClaimResponse/ (searchset Bundle, _lastUpdated, _count, page-offset)
//     and GET ClaimResponse/<uuid or claim code>/ (unknown: 500).
//   - POST Communication/ (claim feedback, one per claim).
//   - POST QuestionnaireResponse/ only with [Options.QuestionnaireResponse];
//     otherwise the route does not exist (HTML 404), as upstream.
//
// Methods that openIMIS serves on these routes but the fake does not model
// (for example GET Communication/) answer 501 with an OperationOutcome naming
// the gap, so a test never mistakes them for real behaviour.
//
// # Paging
//
// Lists are FHIR searchset Bundles. _count is the page size (default 10;
// invalid, zero or negative values fall back to 10) and page-offset is the
// 1-based page NUMBER ("last" is accepted); a page past the end gives 404
// "Invalid page.". link[].url values are whole absolute URLs percent-encoded
// like Python's quote_plus, built from [Options.PublicBaseURL] (default: the
// request's Host), and next/previous links have their query parameters
// re-sorted. entry[].fullUrl is <base><path><id> without a trailing slash.
// The total of each distinct filter is cached for [Options.CountCacheTTL]
// (default one hour), as upstream caches COUNT(*) per SQL query: rows added
// later stay invisible to an identical query until the entry expires (see
// [Server.FlushCountCache]).
//
// # Test-side controls
//
// [Server.EmitClaim] plays openIMIS notifying Claim subscribers (see its doc
// for the delivery and success rules). Seeding uses [Server.AddClaim],
// [Server.AddPatient], [Server.AddUser], [ClaimResponseFixture] and
// [PatientFixture]; inspection uses [Server.Subscriptions],
// [Server.Communications], [Server.QuestionnaireResponses],
// [Server.Requests] and [Server.Logins]; faults use [Server.ExpireTokens],
// [Server.FailNext], [Server.FailNextPath], [Server.DropNext],
// [Server.DropNextPath], [Server.SetDown], [Server.SetLatency],
// [Server.FlushCountCache] and [Server.DeleteSubscriptionAsAdmin]. The clock
// is [Options.Now]. [NewHandler] gives an unstarted server for a sandbox. All
// methods are safe for concurrent use.
//
// Unless [Options.SkipSeed] is set, the server starts with the upstream
// fixtures: the Patient [SeedPatientID] (insurance number [SeedPatientCHFID])
// and the ClaimResponse [SeedClaimID] (code [SeedClaimCode], created
// 2021-09-27T00:00:00Z).
package openimistest
