// Package openhimtest is a strict in-process fake of OpenHIM core (the
// management API and the router), for the mediator's integration tests and
// a sandbox demo.
//
// It reproduces core's rules as read from jembi/openhim-core-js (v8.5.0,
// with the 7.x behaviour where it differs) and described in
// spec/contracts/openhim.md, including the inconvenient ones, so that a
// mediator that works against the fake works against core.
//
// # API
//
// New and NewServer serve the API over TLS with httptest's self-signed
// certificate (Options.PlainHTTP for http); Server.Client,
// Server.Certificate and Server.CertificatePEM trust it.
//
//   - Bodies are parsed as koa-bodyparser does, before authentication: only
//     a JSON Content-Type (application/json and a few +json types, any
//     parameters) or a form is parsed. Any other body reads as {}, so a
//     registration without "Content-Type: application/json" gets 400 "URN
//     is required" and a heartbeat 400 "Bad Request". JSON must be an object
//     or an array (strict mode): anything else, or invalid JSON, gets 400
//     "Bad Request".
//   - GET /authenticate/{email} needs no credentials: 200
//     {"salt","ts"} for a user with a token passport (User.Salt), 404 text
//     otherwise.
//   - Every other route needs HTTP Basic with the exact (case-sensitive)
//     email and the password, or the legacy token headers (auth-username
//     matched case-insensitively, auth-ts within Options.AuthWindow of the
//     server clock, auth-salt, auth-token = AuthToken(PassHash(salt,
//     password), auth-salt, auth-ts)). When any token header is present only
//     the token scheme is tried. Failure gives 401 "Unauthorized"; a user
//     outside the admin group gets 403 with core's text on /mediators*.
//     Options.DisableBasic and Options.DisableToken switch a scheme off.
//   - POST /mediators validates as core does (urn, semver version, configDefs
//     and config, then mongoose's required/enum/min/max and casts on a new
//     mediator, which needs at least one endpoint) and answers 400 "Could not
//     add Mediator via the API: ValidationError: …". A new urn is stored
//     with mongoose's defaults; a known urn with the same or a lower version
//     changes nothing; a higher version $sets the fields sent, stored config
//     values winning over the new defaults (keys missing from the new config
//     are dropped, no config keeps the stored one), without touching
//     _configModifiedTS. All three answer 201 "Created"; there is no 409.
//   - POST /mediators/{urn}/heartbeat: 404 for an unknown urn, 400 without
//     uptime, 500 when uptime is not a number core can cast. The answer is
//     the stored config as JSON (passwords in clear) when the body has
//     "config": true or the config changed after the previous heartbeat,
//     "OK" when such a config was asked for but none is stored, and an empty
//     body otherwise. Then _lastHeartbeat and _uptime are stored.
//   - PUT /mediators/{urn}/config (Server.SetConfig does the same): masked
//     passwords are restored, the config validated (400 with the bare
//     message), stored whole and _configModifiedTS set. GET /mediators/{urn}
//     masks password values as "**********"; GET /mediators does not (core
//     masks nothing there). DELETE /mediators/{urn} answers 200 either way.
//   - POST /mediators/{urn}/channels installs defaultChannelConfig entries
//     as channels (see Server.Channels): [] installs all of them, a list of
//     names those (400 for an unknown name), and a body that is not a JSON
//     array (none, {}) installs nothing, still 201, as in core. A channel
//     name that exists already gives 500.
//   - Paths match as koa-route does: case-insensitively, with an optional
//     trailing slash; the urn segment is percent-decoded. Other core routes
//     answer 501 naming the gap; unknown paths 404 "Not Found" (after
//     authentication, as in core).
//
// Texts are Koa's: a status without a body set sends its status message
// ("Created", "Not Found", "Unauthorized") as text/plain; charset=utf-8.
//
// # Router
//
// Server.Forward plays the router for one client request routed to the
// mediator and interprets the answer as core does, including the
// application/json+openhim envelope; ForwardResult.Problems lists what
// is wrong with an envelope. Server.Transactions logs the forwarded
// requests.
//
// # Test-side controls
//
// State is read through Server.Mediators, Server.Mediator,
// Server.Registrations, Server.Heartbeats, Server.Channels,
// Server.Requests and Server.Transactions; faults are injected with
// Server.FailNext, Server.FailNextPath, Server.DropNext,
// Server.DropNextPath and Server.SetDown. The clock is Options.Now. All
// methods are safe for concurrent use.
//
// # Not modelled
//
// Sessions (POST /authenticate/local, cookies; a successful Basic call
// sets no cookie), openid, the role-based permissions of core after 8.5.0
// (the admin group decides), users, clients, channels and transactions
// APIs, audits, the router's channel matching, client authentication,
// allowed methods (405), async channels, URL rewriting, compression of the
// client's answer and transaction storage. Error texts of mongoose casts
// and validations follow mongoose 6's formats but may differ in detail.
// Date.parse is modelled for ISO-8601, toString() and toUTCString()
// strings only; the fake rejects other auth-ts formats and date-times
// without a time zone, which core may accept.
package openhimtest
