package mediator_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// subscription show|delete|renew --source on Kodjin: show masks the
// header; delete unsubscribes and the running upkeep leaves the server
// alone (state disabled) until renew, which makes a new one.
func TestSourceSubscriptionCommands_DeleteIsNotUndoneRenewIs(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		o.SubscriptionCheck = 200 * time.Millisecond
		withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin})(o)
	}})
	first := waitSubscription(t, kodjin, "active").ID
	b.waitLog(t, "source subscription created") // and its id stored
	ctx := context.Background()

	shown, err := b.m.SourceSubscription(ctx, "kodjin")
	require.NoError(t, err)
	require.False(t, shown.Disabled)
	require.Equal(t, first, shown.StoredID)
	require.Len(t, shown.Subscriptions, 1)
	s := shown.Subscriptions[0]
	require.Equal(t, first, s.ID)
	require.Equal(t, "active", s.Status)
	require.Equal(t, "ClaimResponse?", s.Criteria)
	require.Equal(t, b.srv.URL+"/mediator/fhir/kodjin", s.Endpoint)
	require.Equal(t, "application/fhir+json", s.Payload)
	require.Equal(t, []string{"Authorization: Basic ****"}, s.Headers)
	require.NotContains(t, fmt.Sprint(shown), mediatorPass)

	deleted, err := b.m.DeleteSourceSubscription(ctx, "kodjin")
	require.NoError(t, err)
	require.Equal(t, []string{first}, deleted)
	require.Empty(t, kodjin.Subscriptions())
	// Several upkeep periods pass: the server leaves it deleted.
	require.Eventually(t, func() bool {
		return strings.Count(b.logs.String(), "source subscription disabled by an operator") >= 3
	}, 15*time.Second, 20*time.Millisecond)
	require.Empty(t, kodjin.Subscriptions())
	metrics := string(b.get(t, "/metrics").body)
	require.Contains(t, metrics, `mediator_source_subscription_state{source="kodjin",state="disabled"} 1`)
	require.Contains(t, string(b.get(t, "/ready").body), "disabled by an operator")
	_, out := b.checkSource(t, "kodjin", nil)
	require.Contains(t, out, "WARN  source kodjin subscription: disabled by an operator", out)
	require.Contains(t, out, "mediator subscription renew --source kodjin re-enables it", out)
	shown, err = b.m.SourceSubscription(ctx, "kodjin")
	require.NoError(t, err)
	require.True(t, shown.Disabled)
	require.Empty(t, shown.Subscriptions)

	renewed, err := b.m.RenewSourceSubscription(ctx, "kodjin")
	require.NoError(t, err)
	subs := kodjin.Subscriptions()
	require.Len(t, subs, 1)
	require.NotEqual(t, first, subs[0].ID)
	require.Equal(t, subs[0].ID, renewed)
	waitSubscription(t, kodjin, "active")
	require.Eventually(t, func() bool {
		return strings.Contains(string(b.get(t, "/metrics").body), `mediator_source_subscription_state{source="kodjin",state="active"} 1`)
	}, 15*time.Second, 20*time.Millisecond, "the upkeep took the source up again")
	time.Sleep(500 * time.Millisecond) // upkeep runs meanwhile
	require.Len(t, kodjin.Subscriptions(), 1, "the upkeep keeps the renewed one")

	// Renew replaces a live one: created first, then the old one deleted.
	again, err := b.m.RenewSourceSubscription(ctx, "kodjin")
	require.NoError(t, err)
	require.NotEqual(t, renewed, again)
	subs = kodjin.Subscriptions()
	require.Len(t, subs, 1)
	require.Equal(t, again, subs[0].ID)
	var order []string
	for _, r := range kodjin.Requests() {
		if strings.Contains(r.Path, "/Subscription") && (r.Method == http.MethodPost || r.Method == http.MethodDelete) {
			order = append(order, r.Method)
		}
	}
	require.Equal(t, []string{http.MethodPost, http.MethodDelete}, order[len(order)-2:], "created before the old one is deleted")

	_, err = b.m.SourceSubscription(ctx, "nope")
	require.EqualError(t, err, `no FHIR source "nope": FHIR_SOURCES names kodjin`)
}

// HeyDonto (H5): its delete answers 200 {"statusText":"OK","status":200},
// which is a success; its subscriptions stay requested, listed through
// _page_token pages.
func TestSourceSubscriptionCommands_HeyDontoDelete(t *testing.T) {
	t.Parallel()
	hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
	login, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{
		URL: fhir.DefaultLoginURL(fhir.VendorHeyDonto, hd.BaseURL), UserField: "email",
		Username: fhirtest.DefaultEmail, Password: fhirtest.DefaultPassword,
	})
	require.NoError(t, err)
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: login})})
	id := waitSubscription(t, hd, "requested").ID
	ctx := context.Background()

	shown, err := b.m.SourceSubscription(ctx, "heydonto")
	require.NoError(t, err)
	require.Len(t, shown.Subscriptions, 1)
	require.Equal(t, "requested", shown.Subscriptions[0].Status)

	deleted, err := b.m.DeleteSourceSubscription(ctx, "heydonto")
	require.NoError(t, err)
	require.Equal(t, []string{id}, deleted)
	require.Empty(t, hd.Subscriptions())
	var answered bool
	for _, r := range hd.Requests() {
		if r.Method == http.MethodDelete && strings.HasSuffix(r.Path, "/subscription/"+id) {
			answered = true
		}
	}
	require.True(t, answered, "the kebab-case path of HeyDonto was used")

	// Nothing left to delete: no error, and it stays disabled.
	deleted, err = b.m.DeleteSourceSubscription(ctx, "heydonto")
	require.NoError(t, err)
	require.Empty(t, deleted)
	shown, err = b.m.SourceSubscription(ctx, "heydonto")
	require.NoError(t, err)
	require.True(t, shown.Disabled)
}
