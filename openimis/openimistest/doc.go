// Package openimistest is a fake of the parts of the openIMIS FHIR R4 API
// (openimis-be-api_fhir_r4_py, release 24.10, with the newer Claim
// notifications behind an option) that the mediator uses, for integration
// tests and the sandbox. It reads as a specification: each handler's doc says
// what the real openIMIS does and where (the file in openimis-be-*_py), with
// the section or trap number of docs/upstreams/openimis.md. It reproduces
// the traps the mediator must handle, so that a client that works against
// it also works against openIMIS, and it drops the detail nothing relies on.
//
// Every route is below [FHIRPath] and needs a trailing slash (trap 10). In
// each request: content negotiation (406/415), authentication (401), rights
// (403), then the view; errors are OperationOutcomes (§8), validation errors
// HTTP 500 as in 24.10 unless [Options.ValidationStatus] (trap 11).
//
//   - POST login/ ([call.login], §1, trap 9)
//   - GET, POST Subscription/; GET, DELETE Subscription/<id>/ (§2, traps 1-3, 8)
//   - GET Patient/<uuid>/ (§7, trap 15)
//   - GET ClaimResponse/ with _lastUpdated and paging; GET ClaimResponse/<id>/ (§6, trap 14)
//   - POST Communication/ (§5, traps 12, 13)
//   - [Server.EmitClaim]: a newer openIMIS notifying Claim subscribers (§3, traps 4-7)
//
// Methods openIMIS serves on these routes that the fake does not model (PUT
// Subscription/<id>/, GET Communication/...) answer 501, so a test never
// mistakes a gap of the fake for openIMIS. QuestionnaireResponse/ does not
// exist (Django's HTML 404) unless [Options.QuestionnaireResponse].
//
// Test-side controls: seeding ([Server.AddClaim], [Server.AddPatient],
// [Server.AddUser], [ClaimResponseFixture], [PatientFixture]; the server
// starts with the Patient [SeedPatientID] and the claim [SeedClaimID]),
// inspection ([Server.Subscriptions], [Server.Communications],
// [Server.QuestionnaireResponses], [Server.Logins], Requests), and faults
// ([Server.ExpireTokens], [Server.DeleteSubscriptionAsAdmin], and FailNext,
// FailNextPath, DropNext, DropNextPath, SetDown, SetLatency from
// internal/upstreamtest, whose statuses get openIMIS-shaped bodies, see
// [writeInjectedFault]). The clock is [Options.Now].
package openimistest
