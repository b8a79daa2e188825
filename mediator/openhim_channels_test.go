package mediator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// The channels installed with the console's "+" copy the registration's
// default channels as they are (docs/upstreams/openhim.md trap 24), and
// OpenHIM drops the caller's Authorization: they must reach the mediator
// with credentials it accepts, without an operator editing them.
func TestOpenHIM_InstalledChannelsWork(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	require.NoError(t, b.him.InstallChannels(b.opts.Registration.URN))

	claim := b.him.Send
	res, err := claim(context.Background(), openhimtest.ForwardRequest{
		Method: http.MethodPost, Path: "/mediator/claim-response", ClientID: "openimis",
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Basic b3BlbmltaXM6Y2xpZW50LXNlY3JldA=="}},
		Body:   claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30"),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	b.waitDelivered(t, fixtureClaimUUID)

	res, err = claim(context.Background(), openhimtest.ForwardRequest{
		Method: http.MethodPost, Path: "/mediator/claims-feedback", ClientID: "cht",
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Basic Y2h0OmNsaWVudC1zZWNyZXQ="}},
		Body:   feedbackBody(t, "chan-1", "claimUUID", "insureeUUID", "76aca309-f8cf-4890-8f2e-b416d78de00b"),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.Status, "%s", res.Body)
}

// OpenHIM keeps each caller's Authorization in its transaction log
// (docs/upstreams/openhim.md trap 21). With route credentials, what openIMIS
// presents to OpenHIM (the subscription's MEDIATOR_USERNAME/PASSWORD) is not
// a credential the mediator accepts: only the routes' is.
func TestOpenHIM_RouteCredentialsKeptApart(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}, edit: func(o *mediator.Options) {
		o.RouteUsername, o.RoutePassword = "openhim-routes", "route-secret"
	}})
	b.waitRegistered(t)
	require.NoError(t, b.him.InstallChannels(b.opts.Registration.URN))

	subscriptionHeader := "Basic " + base64.StdEncoding.EncodeToString([]byte(mediatorUser+":"+mediatorPass))
	res, err := b.him.Send(context.Background(), openhimtest.ForwardRequest{
		Method: http.MethodPost, Path: "/mediator/claim-response", ClientID: "openimis",
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {subscriptionHeader}},
		Body:   claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30"),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	b.waitDelivered(t, fixtureClaimUUID)

	// What the transaction log shows opens nothing at the mediator.
	logged := b.him.Transactions()[0].RequestHeader.Get("Authorization")
	require.Equal(t, subscriptionHeader, logged)
	direct := func(auth string) int {
		req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/mediator/claim-response",
			bytes.NewReader(claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, direct(logged))
	require.Equal(t, http.StatusOK, direct("Basic "+base64.StdEncoding.EncodeToString([]byte("openhim-routes:route-secret"))))
}

// mediator check finds the channels routed to this mediator and says when
// their routes present no credentials it accepts.
func TestCheck_OpenHIMChannels(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}})
	b.waitRegistered(t)
	ok, out := b.checkWith(t, nil)
	require.True(t, ok, out)
	require.Contains(t, out, "WARN  OpenHIM channels: no installed channel routes to this mediator")
	require.Contains(t, out, "ok    OpenHIM credentials: openIMIS calls the mediator directly")

	require.NoError(t, b.him.InstallChannels(b.opts.Registration.URN))
	ok, out = b.checkWith(t, nil)
	require.True(t, ok, out)
	require.Contains(t, out, "ok    OpenHIM channels: 3 route(s) present the credentials the mediator accepts")

	// Channels installed from a registration without route credentials.
	for _, ch := range []string{"openIMIS claim notifications", "CHT claims feedback"} {
		require.NoError(t, b.him.EditRoute(ch, "CHT openIMIS mediator", map[string]any{"username": "", "password": ""}))
	}
	ok, out = b.checkWith(t, nil)
	require.False(t, ok, out)
	require.Contains(t, out, `FAIL  OpenHIM channels: 2 route(s) to this mediator present no credentials it accepts, so every request through them is answered 401: channel "openIMIS claim notifications" route "CHT openIMIS mediator" (no credentials)`)
	require.Contains(t, out, "fix: in the OpenHIM console, edit each of these routes and set its Basic auth username and password to MEDIATOR_USERNAME and MEDIATOR_PASSWORD")
	require.NotContains(t, out, mediatorPass)

	// Behind OpenHIM without route credentials, the subscription's credential
	// is the mediator's own.
	ok, out = b.checkWith(t, func(o *mediator.Options) {
		o.CallbackEndpoint = "https://him.example.org:5000/mediator/claim-response"
	})
	require.Contains(t, out, "WARN  OpenHIM credentials: openIMIS presents MEDIATOR_USERNAME and MEDIATOR_PASSWORD to OpenHIM")
	require.Contains(t, out, "fix: set OPENHIM_ROUTE_USERNAME and OPENHIM_ROUTE_PASSWORD")
	_ = ok
}

// The third default channel carries the FHIR sources' callbacks: its route
// has no path, so OpenHIM forwards the request's own path (source, and the
// Type/id of a Kodjin or HAPI PUT; docs/upstreams/openhim.md §4.1), with the
// route's credentials like the other channels.
func TestSource_ThroughTheOpenHIMChannel(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{openhim: &openhimtest.Options{}, edit: func(o *mediator.Options) {
		o.RouteUsername, o.RoutePassword = "openhim-routes", "route-secret"
		withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
			edit: func(s *mediator.Source) { s.ManageSubscription = false }})(o)
	}})
	b.waitRegistered(t)
	require.NoError(t, b.him.InstallChannels(b.opts.Registration.URN))

	kodjin.AddPatient(sourcePatient("pat-h", "Gita", "Thapa"))
	res, err := b.him.Send(context.Background(), openhimtest.ForwardRequest{
		Method: http.MethodPut, Path: "/mediator/fhir/kodjin/ClaimResponse/cr-him", ClientID: "kodjin",
		Header: http.Header{"Content-Type": {"application/fhir+json"}, "Authorization": {"Basic a29kamluOmNsaWVudC1zZWNyZXQ="}},
		Body:   sourceClaim("cr-him", "pat-h", "CLM-HIM", "2025-06-30"),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, "FHIR source notifications", b.him.Transactions()[0].Channel)
	reports := b.waitReports(t, "cr-him", 1)
	require.Equal(t, "CLM-HIM", reports[0].Fields["op_claim_id"])

	// An empty ping through the channel (Kodjin without payload).
	res, err = b.him.Send(context.Background(), openhimtest.ForwardRequest{
		Method: http.MethodPost, Path: "/mediator/fhir/kodjin", ClientID: "kodjin",
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
}
