package mediator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
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

// HeyDonto (H1): its login names no expiry, so a token is used until the
// server refuses it. One 401 (ExpireTokens) costs one new login and no
// failed job, whether the notification's claim job or the catch-up search
// meets it first; claims keep arriving.
func TestSource_HeyDontoTokenExpiryIsOneLogin(t *testing.T) {
	t.Parallel()
	hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto, Notify: fhirtest.NotifyPutResource})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: heyDontoLogin(t, hd),
		edit: func(s *mediator.Source) { s.PollInterval = 200 * time.Millisecond }})})
	waitSubscription(t, hd, "requested")
	hd.AddPatient(sourcePatient("p1", "Asha", "Rai"))
	hd.CreateClaimResponse(sourceClaim("HD-1", "p1", "H-1", "2025-06-30"))
	b.waitReports(t, "HD-1", 1)
	require.Equal(t, 1, hd.Logins(), "one login serves every request")

	hd.ExpireTokens()
	// A claim for a new patient: its job reads the Patient with the expired
	// token, as the next search does.
	hd.AddPatient(sourcePatient("p2", "Bina", "KC"))
	hd.CreateClaimResponse(sourceClaim("HD-2", "p2", "H-2", "2025-06-30"))
	b.waitReports(t, "HD-2", 1)
	require.Eventually(t, func() bool { return hd.Logins() == 2 }, 15*time.Second, 10*time.Millisecond)
	people := b.cht.People()
	require.Len(t, people, 2)

	// Claims keep arriving, on the new token.
	hd.CreateClaimResponse(sourceClaim("HD-3", "p2", "H-3", "2025-07-01"))
	b.waitReports(t, "HD-3", 1)
	time.Sleep(500 * time.Millisecond) // a few more searches
	require.Equal(t, 2, hd.Logins(), "one 401, one new login")
	for _, id := range []string{"HD-1", "HD-2", "HD-3"} {
		require.Len(t, b.reportsFor(id), 1, id)
	}
	require.NotRegexp(t, `mediator_jobs_total\{kind="fhir_[a-z_]+",outcome="(failed|retry)"\}`, b.scrape(t), "no job failed")
	for _, line := range b.logLines(t, "job attempt failed; will retry") {
		require.NotContains(t, line["job_kind"], "fhir_", "%v", line)
	}
}
