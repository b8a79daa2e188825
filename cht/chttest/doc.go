// Package chttest is an in-process fake of the parts of the CHT (Community
// Health Toolkit) 4.x API the mediator uses, for tests and the sandbox demo.
//
// It reads as a specification: each handler says what the real API does and
// where in medic/cht-core 4.21.0 that is written, and the fake copies the
// quirks a mediator must survive (docs/upstreams/cht.md, "Traps a mediator
// must handle") rather than being lenient:
//
//   - Every route but GET /api/info wants HTTP Basic credentials. Errors are
//     JSON only when Accept prefers application/json over text (trap 2).
//   - Ten 401/429 answers within 10 s lock out the client IP, the username
//     and the password with 429 (trap 14).
//   - POST /api/v2/records answers 500 for an unknown form, a missing _meta
//     or an unsupported Content-Type (trap 2). It lower-cases keys, drops the
//     keys the form does not define (trap 3), answers 200 when validation
//     fails (trap 1), and stores a new report for every POST (trap 5).
//     LoseNextSaves makes it answer 200 {success:true} with no id and store
//     nothing (trap 1).
//   - POST /api/v1/people wants exactly "Content-Type: application/json"
//     (trap 13), a "name", and an existing "place", which becomes the
//     person's parent (trap 8). A second create with the same _id is 409.
//   - GET /api/v1/contact/uuid and /api/v1/report/uuid search copies of the
//     contacts_by_freetext and reports_by_freetext views (§3).
//   - SetDown(503) is the start-up router: 503 JSON, or a 200 HTML page for a
//     client that does not ask for JSON (§1).
//   - Bodies over 32 MiB get 413. Latency is applied after the request took
//     effect, so a client that timed out has still stored its report.
//   - Unknown paths, and paths with a trailing slash, are proxied to CouchDB
//     by the real API; here they answer CouchDB's 404 after authentication.
//
// OutboundPusher is the other direction: the CHT's outbound push of a
// claims_feedback report to the mediator, with its 10 s abort, its queue
// retried by a 5-minute schedule (driven by the test with RunSchedule), and
// the same doc._id pushed again after an edit (§4, traps 11 and 12).
//
// Not modelled: transitions (reports get no doc.contact, people no
// shortcode), permissions (the one user may do everything), phone
// normalisation, the form-encoded (SMS) records variant, inline place
// creation, session cookies and the CouchDB endpoints.
//
// Tests read the state with People, Person, Reports and Report, seed it with
// AddPlace and AddPerson, read the request log with Requests, and inject
// faults with FailNext, FailNextPath, DropNext, DropNextPath, SetDown,
// SetLatency and LoseNextSaves. All methods are safe for concurrent use.
package chttest
