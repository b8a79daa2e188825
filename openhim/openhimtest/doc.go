// Package openhimtest is a fake OpenHIM core for the mediator's tests and
// the sandbox demo: the part of the management API a mediator uses, and the
// router's handling of a mediator's answer.
//
// It reproduces what core does, as read from jembi/openhim-core-js (8.5.0,
// with the 7.x behaviour where it differs) and described in
// docs/upstreams/openhim.md, including the inconvenient rules a mediator
// must cope with (the "traps" of that note), so that a mediator that works
// against the fake works against core. Each handler's comment says what core
// does and where; § and trap numbers are those of docs/upstreams/openhim.md.
//
// Served over HTTPS with httptest's self-signed certificate
// (Server.Client trusts it):
//
//   - GET /authenticate/{email}: the token scheme's salt, no credentials.
//   - GET /mediators, GET /mediators/{urn}: the stored documents.
//   - POST /mediators: registration.
//   - POST /mediators/{urn}/heartbeat: uptime; answers the config.
//   - PUT /mediators/{urn}/config: a console edit (also Server.SetConfig).
//   - POST /mediators/{urn}/channels: the console's "+", installing default
//     channels as they are (also Server.InstallChannels; Server.EditRoute
//     edits an installed route).
//   - GET /channels: the installed channels, route credentials in clear.
//
// Any other path answers 404 "Not Found" once authenticated. Server.Forward
// plays the router for one client request routed to the mediator;
// Server.Send does it through the installed channel that matches the path,
// and records the transaction (Server.Transactions) with the client's
// headers verbatim, as core's transaction log does.
//
// Tests read the state with Server.Mediator, Server.Registrations,
// Server.Heartbeats and Server.Requests, and inject faults with the
// embedded upstreamtest.Faults (FailNext, SetDown, SetLatency…). The clock
// is Options.Now. Every method is safe for concurrent use.
//
// Not modelled: sessions, openid, role-based permissions after 8.5.0 (the
// admin group decides), the users, clients and transactions APIs, channel
// edits through the API, the router's client authentication and allow
// lists, mongoose's casts, and Date.parse beyond ISO-8601
// with a time zone.
package openhimtest
