package mediator_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

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
