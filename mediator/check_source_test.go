package mediator_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// checkSource runs "mediator check --source name" on a mediator built from
// b's options changed by edit (not started).
func (b *testBundle) checkSource(t *testing.T, name string, edit func(*mediator.Options)) (bool, string) {
	t.Helper()
	opts := b.opts
	opts.Store = b.store
	opts.Sources = append([]mediator.Source(nil), b.opts.Sources...)
	opts.Metrics = mediator.NewMetrics() // the running mediator keeps serving its own
	if edit != nil {
		edit(&opts)
	}
	m, err := mediator.New(opts)
	require.NoError(t, err)
	results, err := m.CheckSource(context.Background(), name)
	require.NoError(t, err)
	return report(results)
}

// onlyReads says whether every request the fake received was a read.
func onlyReads(t *testing.T, fake *fhirtest.Server, since int) {
	t.Helper()
	for _, r := range fake.Requests()[since:] {
		require.Contains(t, []string{http.MethodGet, http.MethodHead}, r.Method, "the check wrote %s %s", r.Method, r.Path)
	}
}

// A working Kodjin source (bearer token): every line passes, from the
// credentials to the callback, and the check only reads.
func TestCheck_SourceWorking(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, Token: "kodjin-token"})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
		auth: fhir.Bearer{Token: "kodjin-token"}, edit: func(s *mediator.Source) { s.Auth = "bearer" }})})
	sub := waitSubscription(t, kodjin, "active")
	before := len(kodjin.Requests())

	ok, out := b.checkSource(t, "kodjin", nil)
	require.True(t, ok, out)
	for _, line := range []string{
		"ok    source kodjin credentials: accepted (FHIR_KODJIN_AUTH=bearer)",
		"ok    source kodjin dialect: r4-criteria (Kodjin FHIR Server, FHIR 4.0.1)",
		"ok    source kodjin right: search ClaimResponse: the catch-up search is answered",
		"ok    source kodjin subscription: " + sub.ID + " active",
		"ok    source kodjin callback endpoint: " + b.srv.URL + "/mediator/fhir/kodjin",
		"all checks passed",
	} {
		require.Contains(t, out, line)
	}
	require.NotContains(t, out, "topic", "no topic line for a criteria dialect")
	require.NotContains(t, out, "openIMIS", "--source checks that source alone")
	onlyReads(t, kodjin, before)

	// The whole check ends with the source's lines.
	ok, out = b.checkWith(t, nil)
	require.Contains(t, out, "ok    source kodjin subscription: "+sub.ID+" active", out)
	_ = ok // the openIMIS fake here has no Claim subscriptions: a warning

	// A wrong token: the credentials fail, with the variable to fix, and
	// what needs them is skipped.
	ok, out = b.checkSource(t, "kodjin", func(o *mediator.Options) {
		client, err := fhir.New(fhir.Options{BaseURL: kodjin.BaseURL, Vendor: fhir.VendorKodjin, Auth: fhir.Bearer{Token: "stale"}, Timeout: 5 * time.Second})
		require.NoError(t, err)
		o.Sources[0].Client = client
	})
	require.False(t, ok, out)
	require.Contains(t, out, "FAIL  source kodjin credentials: ", out)
	require.Contains(t, out, "401", out)
	require.Contains(t, out, "fix: check FHIR_KODJIN_TOKEN", out)
	require.Contains(t, out, "SKIP  source kodjin dialect: needs: source kodjin credentials", out)
	require.NotContains(t, out, "stale")

	_, err := func() ([]mediator.CheckResult, error) {
		m, err := mediator.New(func() mediator.Options { o := b.opts; o.Store = b.store; return o }())
		require.NoError(t, err)
		return m.CheckSource(context.Background(), "nope")
	}()
	require.EqualError(t, err, `no FHIR source "nope": FHIR_SOURCES names kodjin`)
}

// HeyDonto with a wrong password: the login is refused, and the fix names
// the e-mail and the password variables.
func TestCheck_SourceWrongPassword(t *testing.T) {
	t.Parallel()
	hd := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HeyDonto})
	login, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{
		URL: fhir.DefaultLoginURL(fhir.VendorHeyDonto, hd.BaseURL), UserField: "email",
		Username: fhirtest.DefaultEmail, Password: "not-the-password",
	})
	require.NoError(t, err)
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "heydonto", fake: hd, vendor: fhir.VendorHeyDonto, auth: login,
		edit: func(s *mediator.Source) { s.Auth = "login"; s.ManageSubscription = false }})})
	ok, out := b.checkSource(t, "heydonto", nil)
	require.False(t, ok, out)
	require.Contains(t, out, "FAIL  source heydonto credentials: fhir login ", out)
	require.Contains(t, out, "fix: check FHIR_HEYDONTO_USERNAME (the login's user or e-mail: HeyDonto logs in with an e-mail) and FHIR_HEYDONTO_PASSWORD", out)
	require.Contains(t, out, "SKIP  source heydonto right: search ClaimResponse", out)
	require.Contains(t, out, "some checks failed")
	require.NotContains(t, out, "not-the-password")
	require.Zero(t, hd.Logins())
}

// A server without a CapabilityStatement (trap 2): with DIALECT=auto the
// check fails naming FHIR_<N>_DIALECT; with the dialect set, it is a
// warning and the rest passes.
func TestCheck_SourceMetadataNotFound(t *testing.T) {
	t.Parallel()
	hapi := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.HAPI, MetadataNotFound: true})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "hapi-eu", fake: hapi, vendor: fhir.VendorHAPI,
		edit: func(s *mediator.Source) { s.ManageSubscription = false }})})
	ok, out := b.checkSource(t, "hapi-eu", nil)
	require.False(t, ok, out)
	require.Contains(t, out, "ok    source hapi-eu credentials: the server answers without credentials (FHIR_HAPI_EU_AUTH=none)", out)
	require.Contains(t, out, "FAIL  source hapi-eu dialect: cannot detect the subscription dialect: ", out)
	require.Contains(t, out, "metadata: 404", out)
	require.Contains(t, out, "fix: set FHIR_HAPI_EU_DIALECT (r4-criteria", out)
	require.Contains(t, out, "ok    source hapi-eu subscription: not managed (FHIR_HAPI_EU_SUBSCRIPTION=off)", out)

	ok, out = b.checkSource(t, "hapi-eu", func(o *mediator.Options) { o.Sources[0].Dialect = fhir.DialectR4Criteria })
	require.True(t, ok, out)
	require.Contains(t, out, "WARN  source hapi-eu dialect: FHIR_HAPI_EU_DIALECT=r4-criteria is used; the server's CapabilityStatement cannot be read", out)
}

// A topic-based server (Aidbox zen): the dialect is detected, the one
// advertised topic is known; a configured topic it does not advertise
// fails with the ones it does.
func TestCheck_SourceTopic(t *testing.T) {
	t.Parallel()
	box := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.AidboxZen})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "box", fake: box, vendor: fhir.VendorAidboxZen})})
	ok, out := b.checkSource(t, "box", nil)
	require.Contains(t, out, "ok    source box dialect: r4b-backport (Aidbox, FHIR 4.3.0)", out)
	require.Contains(t, out, "ok    source box topic: "+fhirtest.DefaultTopic.URL+" (the one the server advertises)", out)
	require.True(t, ok, out)

	ok, out = b.checkSource(t, "box", func(o *mediator.Options) { o.Sources[0].Topic = "http://example.org/SubscriptionTopic/other" })
	require.False(t, ok, out)
	require.Contains(t, out, "FAIL  source box topic: the server does not advertise the topic http://example.org/SubscriptionTopic/other", out)
	require.Contains(t, out, "fix: set FHIR_BOX_TOPIC to one of "+fhirtest.DefaultTopic.URL, out)
}

// A callback the server cannot reach: a bare container name, or the
// mediator's loopback, given to a server outside.
func TestCheck_SourceCallbackEndpoint(t *testing.T) {
	t.Parallel()
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin})
	b := setup(t, setupOpts{edit: withSources(t, sourceSetup{name: "kodjin", fake: kodjin, vendor: fhir.VendorKodjin,
		edit: func(s *mediator.Source) { s.ManageSubscription = false }})})
	fakeAddr := strings.Split(strings.TrimPrefix(kodjin.BaseURL, "http://"), "/")[0]
	outside := func(o *mediator.Options) {
		// The same fake, addressed as a server outside the mediator's
		// network (its name dialled to the fake).
		var d net.Dialer
		client, err := fhir.New(fhir.Options{
			BaseURL: strings.Replace(kodjin.BaseURL, "127.0.0.1", "kodjin.example.org", 1), Vendor: fhir.VendorKodjin,
			Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, fakeAddr)
			}},
		})
		require.NoError(t, err)
		o.Sources[0].Client = client
		o.Sources[0].ManageSubscription = true
	}
	for endpoint, want := range map[string]string{
		"http://mediator:6000/mediator/fhir/kodjin":               "a bare container name resolves only inside the mediator's network",
		"http://127.0.0.1:6000/mediator/fhir/kodjin":              "that is its own loopback",
		"https://him.example.org:5000/mediator/fhir/other-source": "does not end in /mediator/fhir/kodjin",
	} {
		_, out := b.checkSource(t, "kodjin", func(o *mediator.Options) { outside(o); o.Sources[0].Endpoint = endpoint })
		require.Contains(t, out, "FAIL  source kodjin callback endpoint: ", out)
		require.Contains(t, out, want, out)
		require.Contains(t, out, "fix: set FHIR_KODJIN_CALLBACK_ENDPOINT (or CHT_OPENIMIS_CALLBACK_ENDPOINT", out)
	}
	_, out := b.checkSource(t, "kodjin", func(o *mediator.Options) {
		outside(o)
		o.Sources[0].Endpoint = "https://him.example.org:5000/mediator/fhir/kodjin"
	})
	require.Contains(t, out, "ok    source kodjin callback endpoint: https://him.example.org:5000/mediator/fhir/kodjin", out)
}
