// Package chttest is an in-process fake of the parts of the CHT (Community
// Health Toolkit) 4.x API that the mediator uses. It is meant for integration
// tests and for a sandbox demo.
//
// The fake is strict. It copies the real API's quirks, as described in
// spec/contracts/cht.md and read from cht-core 4.21.0, instead of being
// lenient:
//
//   - Every request must carry HTTP Basic credentials. A 401 body is JSON
//     only when the Accept header prefers application/json over text
//     (Express req.accepts(['text','json'])). Otherwise it is the text
//     "not logged in" with WWW-Authenticate.
//   - The failed-login limiter answers 429 once ten 401/429 answers have been
//     sent within 10 s for one key. The keys are the client IP, the Basic
//     username and the Basic password, as in api/src/services/rate-limit.js.
//     Only requests that carry a Basic username are limited.
//   - POST /api/v2/records answers 500 for an unknown form, a missing _meta
//     or an unsupported Content-Type. It lower-cases keys, silently drops
//     keys the form does not define, and answers 200 even when validation
//     fails. Validation errors are kept only in the stored doc's errors.
//     There is no idempotency: every POST stores a new report.
//   - POST /api/v1/people wants exactly "Content-Type: application/json",
//     needs a "name", checks that "place" exists, and answers 409 when the
//     caller's _id already exists.
//   - GET /api/v1/person/{id}, /api/v1/contact/{id} and /api/v1/report/{id}
//     return stored docs. GET /api/v1/contact/uuid and /api/v1/report/uuid
//     search a copy of the contacts_by_freetext and reports_by_freetext
//     views.
//   - Paths are matched as Express matches them with strict routing:
//     case-insensitively, with no trailing-slash tolerance. Any other path or
//     method is proxied to CouchDB in the real system. Here it answers 404
//     {"error":"not_found","reason":"Database does not exist."}, after
//     authentication.
//
// The order of checks follows the real routes. For example, a records POST
// whose JSON is malformed gets 500 before credentials are checked, and a
// people POST with the wrong Content-Type gets 400 before credentials are
// checked, as in cht-core.
//
// Tests read the state through People, Reports and Requests, seed it with
// AddPlace and AddPerson, and inject faults with FailNext, FailNextPath,
// DropNext, DropNextPath, SetDown and SetLatency. All methods are safe for
// concurrent use.
//
// The fake does not model the following: CHT transitions (no
// update_clinics, registration or shortcode generation, so reports get no
// doc.contact and people get no patient_id unless a test calls
// SetShortcode); permissions, where the single configured user may do
// everything and 403 never happens; phone-number normalisation of
// _meta.from; the form-encoded (SMS) records variant; inline place creation
// in POST /api/v1/people; session cookies; CouchDB endpoints.
package chttest
