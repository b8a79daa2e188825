package mediator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
)

// heyDontoLogin is the JSON login HeyDonto wants: an e-mail.
func heyDontoLogin(t *testing.T, hd *fhirtest.Server) fhir.Authenticator {
	t.Helper()
	login, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{
		URL: fhir.DefaultLoginURL(fhir.VendorHeyDonto, hd.BaseURL), UserField: "email",
		Username: fhirtest.DefaultEmail, Password: fhirtest.DefaultPassword,
	})
	require.NoError(t, err)
	return login
}

// HeyDonto (H4): whichever form its undocumented notifications take, a new
// claim gives exactly one report (an empty POST through the search).
func TestSource_HeyDontoEveryNotificationForm(t *testing.T) {
	t.Parallel()
	for _, form := range []fhirtest.Notify{fhirtest.NotifyPutResource, fhirtest.NotifyPostResource, fhirtest.NotifyPostEmpty} {
		t.Run(string(form), func(t *testing.T) {
			t.Parallel()
			hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, Notify: form})
			b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: heyDontoLogin(t, hd)})})
			sub := waitSubscription(t, hd, "requested")
			require.Equal(t, "ClaimResponse?", sub.Criteria)

			hd.CreateClaimResponse(sourceClaim("HD-1", "p1", "H-1", "2025-06-30"))
			b.waitReports(t, "HD-1", 1)
			require.NotEmpty(t, hd.Deliveries(), "the claim came by a notification, not the start-up search")
			for _, d := range hd.Deliveries() {
				require.True(t, d.Success, "%+v", d)
			}
			time.Sleep(200 * time.Millisecond)
			require.Len(t, b.reportsFor("HD-1"), 1)
		})
	}
}

// HeyDonto (H2): after a restart the mediator finds its subscription again
// by paging through the server's subscriptions with page tokens whose next
// links lack /site/<id>, and makes no second one.
func TestSource_HeyDontoFindsItsSubscriptionThroughPages(t *testing.T) {
	t.Parallel()
	hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
	client, err := fhir.New(fhir.Options{BaseURL: hd.BaseURL, Vendor: fhir.VendorHeyDonto, Auth: heyDontoLogin(t, hd)})
	require.NoError(t, err)
	for i := range 250 {
		sub, err := fhir.SubscriptionSpec{Dialect: fhir.DialectR4Criteria, Criteria: "ClaimResponse?",
			Endpoint: fmt.Sprintf("https://other-%d.example.org/hook", i), Reason: "another subscriber"}.Build()
		require.NoError(t, err)
		_, err = client.CreateSubscription(context.Background(), sub)
		require.NoError(t, err)
	}
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: heyDontoLogin(t, hd)})})
	ours := func() []fhirtest.Subscription {
		var out []fhirtest.Subscription
		for _, s := range hd.Subscriptions() {
			if s.Endpoint == b.srv.URL+"/mediator/fhir/heydonto" {
				out = append(out, s)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(ours()) == 1 }, 15*time.Second, 10*time.Millisecond)

	// A new store: the subscription id is forgotten, only paging finds it.
	b.stop(t)
	b.dbURL = storetest.DatabaseURL(t)
	b.start(t)
	b.waitLog(t, `"source":"heydonto"`)
	require.Eventually(t, func() bool {
		id, ok, err := b.store.Setting(context.Background(), "source/heydonto/subscription_id")
		require.NoError(t, err)
		return ok && id == ours()[0].ID
	}, 15*time.Second, 10*time.Millisecond, "the restarted mediator recorded the subscription it found")
	require.Len(t, ours(), 1, "found through the pages, not made again")
	require.Len(t, hd.Subscriptions(), 251)
}
