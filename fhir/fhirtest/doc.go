// Package fhirtest is a set of strict in-process fakes of the FHIR servers
// the mediator may take claim outcomes from: HAPI FHIR, Kodjin and HeyDonto
// with R4 criteria-based subscriptions, HAPI also with R4 backport
// topic-based ones (Options.TopicMode), and Aidbox with topic-based
// subscriptions in its two generations: zen-configured R4B backport (seed
// 001) and the newer Aidbox's R4 backport, R4B backport or R5. It is for
// tests and the sandbox, and imports nothing of the module but
// internal/upstreamtest.
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
//   - GET metadata: a CapabilityStatement (R4 unless said below) whose software.name tells the
//     vendor ("HAPI FHIR Server", "Kodjin FHIR Server", "Aidbox" for both
//     generations; none on HeyDonto), or 404 with Options.MetadataNotFound
//     (C§5, C-trap 2).
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
//   - Aidbox zen (AidboxZen): R4B metadata with the backport markers and
//     the topics (Options.Topics) as capabilitystatement-subscriptiontopic-
//     canonical extensions (C§5). A Subscription must name the backport
//     profile, a known topic in criteria, filters in _criteria.extension on
//     the topic's canFilterBy, channel.payload, content in
//     channel._payload.extension not above the topic's maxContent (empty
//     unless set); heartbeat, timeout and maxCount are read from
//     channel.extension with zen's defaults 120 s, 30 s, 10 (C§1.2, C-trap 3,
//     C-trap 5). It is stored requested whatever was posted, keeps the
//     client's id, and cannot be modified (PUT is 422, C-trap 17); DELETE
//     answers the resource, and its events go with it (C-trap 28).
//     GET Subscription/<id>/$status and $events answer history Bundles;
//     POST is 405 (C§4, C-trap 19, C-trap 20). Search pages are "page"
//     links.
//   - The newer Aidbox (Aidbox), in Options.FHIRVersion R4, R4B (the
//     default) or R5 (C§1.2, C§1.3, C§6.1): the same topics, content caps,
//     defaults, client ids, PUT 422 and DELETE as zen. R4 and R4B take
//     zen's backport Subscription; R5 a native one (topic; filterBy with filterParameter,
//     value and comparator eq or none on canFilterBy; channelType the
//     rest-hook Coding; endpoint; parameter[{name,value}] headers;
//     contentType application/fhir+json; content, empty when absent;
//     heartbeatPeriod, timeout, maxCount as integers), and either version
//     refuses the other's elements (400). Status must be posted requested
//     (422 otherwise, C-trap 4). R4B metadata is zen's; R4 metadata is
//     fhirVersion 4.0.1 instantiating backport-subscription-server-r4, with
//     the backport profile, operations and topics; R5 metadata is
//     fhirVersion 5.0.0 with R5's Subscription operations and no backport
//     marker or topic list (topics are SubscriptionTopic resources, not
//     served). $status answers GET and POST with a query-status in a
//     history Bundle in R4 and R4B (as its tutorials show) and a
//     subscription-notification Bundle in R5, C-trap 20; $events POST only with
//     Parameters (eventsSinceNumber and eventsUntilNumber as valueString,
//     content as valueCode; anything else 400; GET 405), the last 100 by
//     default, entries as content or the subscription's content say;
//     Options.Retention deletes older events (C§4, C-trap 19). In R4 both
//     answers name no topic, and $events has no notification-event parts
//     and bare resource entries, as its R4 tutorial shows it, unless
//     Options.R4EventParts (C§4, C-trap 19): the events' numbers are then
//     unknown to a client. A
//     subscription whose end has passed turns off and gets nothing more
//     (C§6.1, C-trap 27; the status is not documented).
//   - HAPI with TopicMode (R4 backport, C§1.2, C§6.4): R4 metadata that
//     instantiates backport-subscription-server-r4 and advertises the
//     backport profile and the topics (C§5). A Subscription with the
//     backport profile follows Aidbox's validation (a known topic in
//     criteria, filters on canFilterBy, channel.payload), with content
//     full-resource by default and no cap; HAPI assigns the id and
//     activates it at once, without a handshake, and sends no heartbeats
//     and no batches (C§3); it can be updated. Other Subscriptions are
//     criteria subscriptions as without TopicMode.
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
// off at its end (C-trap 27).
//
// Aidbox zen sends a handshake once it answered the create (Flush waits
// for it); only HTTP 200 succeeds, and after 3 tries 10 s apart the
// subscription is error for good (C§3, C-trap 8, C-trap 9). Events are
// numbered per subscription from 1 and counted whatever happens to them;
// they are sent in history Bundles whose SubscriptionStatus carries JSON
// numbers, zen's "2023-09-04 10:38:43.020984+03" timestamps and absolute
// references on Options.InternalOrigin, with entries as the content allows
// (C§2, C-trap 10, C-trap 12 to 14). A batch goes when it reaches maxCount
// or when the heartbeat period has passed, and a heartbeat after a period
// of silence (C§3, C-trap 15); a notification not answered 200 turns the
// subscription error. DropEvents, StopDelivering, StopHeartbeats and
// SetStatus make the losses a client must notice. Options.Deliverers sends
// the batches of both generations through parallel deliverers (the newer
// Aidbox's number-of-deliverer, C§3, C§6.1), so they arrive out of event
// order (C-trap 11), deterministically: a round of that many batches goes
// newest first, and a round not full at the next Tick.
//
// The newer Aidbox batches and beats the same way, but any 2xx succeeds and
// a failed handshake turns the subscription error at once (no retries are
// documented, C§2.4, C§3). Its notifications are history Bundles in R4B
// with counters as JSON strings, subscription-notification Bundles in R5
// with counters as numbers (C§2.1, C-trap 10), with instants as
// timestamps, the subscription reference on Options.InternalOrigin without
// /fhir and focus and fullUrl with it (C§2.3, C-trap 13), the status entry
// under a urn:uuid fullUrl with the $status request it mirrors, and event
// entries whose request is the create or update on the internal origin.
// In R4 they are history Bundles whose first entry, bare, is the R4 status
// Parameters: counters as valueString, the subscription as Subscription/<id>
// as its R4 answers write it (its notifications are not shown), event
// timestamps as instants, the focus on the internal origin (C§2.1, C§2.3).
//
// HAPI in TopicMode numbers each matching event from an in-memory counter
// that Restart sets back to 0 (C§0.4, C-trap 10), and POSTs one
// notification per event to the endpoint as a transaction: a history
// Bundle whose first entry, without request, is the R4 status Parameters
// (events-since-subscription-start and event-number as valueString, a
// timestamp that is a date, C-trap 14, the focus as Type/id or, with
// Options.DoubledFocus, ClaimResponse/ClaimResponse/<id>, C-trap 13), then
// the resource as a transaction entry (POST <Type> or PUT <Type>/<id>) as
// the content allows (C§2.1 to C§2.3). HAPI reads the answer as the
// transaction's Bundle: anything else is a failure, retried for
// Options.RetryWindow, then dropped (C§6.4, C-trap 8, C-trap 26).
// In R4, HAPI notifies a topic only when server code dispatches it (C§6.4):
// the fake is a deployment that dispatches every change of the topic's
// resource, and NeverFire one that does not (C-trap 25). DropEvents and
// StopDelivering apply as on Aidbox.
//
// Time is the Server's Clock: retries, batches, heartbeats and expiry run
// when a test advances it and calls Tick, never by sleeping. NewFixedClock
// stands still between Advances; the zero Clock follows the real time.
//
// Test-side controls: Subscriptions, Subscription, SetStatus, ClaimResponses,
// Patients, Deliveries, PendingRetries, Dropped, Logins, ExpireTokens,
// ExpirePageTokens, DropEvents, StopDelivering, StopHeartbeats, Restart,
// Flush, Tick, Requests, SearchOverlaps (searches of a type that began
// while another was answered; Options.SearchLatency makes each search
// page last), and the faults of internal/upstreamtest
// (FailNext, FailNextPath, DropNext, DropNextPath, SetDown, SetLatency),
// answered with an OperationOutcome.
//
// Not modelled, and why:
//
//   - The newer Aidbox's AidboxTopicDestination resources (Options.Topics
//     stand for them), its R4 notifications as they really are (no example
//     shows one: the fake writes them as its R4 answers, C§2.3), and its
//     deleted-resource events. Of both Aidbox generations: the real interleaving of parallel deliverers
//     (Options.Deliverers makes one order of them, the worst), deliverers
//     shared by the subscriptions of one destination (the fake's are per
//     subscription), the coercion of maxCount and heartbeat
//     seen in zen's documentation, zen's retention of $events, the
//     SubscriptionTopic resources, and the Basic and client-credentials
//     logins (Options.Token stands for a token).
//   - HeyDonto's notification format and whether its subscriptions ever turn
//     active are undocumented (C§6.3): Options.Notify and Options.Activate
//     let tests try each possibility. Its ClaimResponse path claim-response
//     is presumed (C§6.3). It makes no retries: none are documented.
//   - Whether Kodjin's PUT appends /<Type>/<id> to the endpoint is
//     unverified (C§1.1): Options.PutToEndpoint.
//   - Of HAPI's topic mode: its R4B and R5 forms (C§6.4: support lagged),
//     topics as resources (Options.Topics stands for them), $status and
//     $events (not read; 404 here), whether it refuses an unknown topic
//     (the fake does, as Aidbox), whether its counter survives an update of
//     the Subscription (kept here), whether fullUrl carries its base
//     (relative here), and the older HAPI that sent 1 for every event
//     (C§0.4).
//   - Kodjin's SMART token endpoint (C§6.2; Options.Token stands for a token
//     from it), its websocket, email and sms channels, and HAPI's XML
//     payloads. Writes of ClaimResponse and Patient over HTTP (405), update
//     of an unknown Subscription (404), conditional requests.
package fhirtest
