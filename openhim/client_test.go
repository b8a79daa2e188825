package openhim_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// minimalDoc is a registration without config: core then has none to
// answer a config request with.
const minimalDoc = `{"urn":"urn:mediator:client-test","version":"1.0.0","name":"client test",
"endpoints":[{"name":"e","host":"127.0.0.1","port":6000,"path":"/","secured":false,"primary":true}]}`

func newClient(t *testing.T, him *openhimtest.Server, user string) *openhim.Client {
	t.Helper()
	c, err := openhim.New(openhim.Options{
		APIURL: him.URL, Username: user, Password: openhimtest.RootPassword, Transport: him.Client().Transport,
	})
	require.NoError(t, err)
	return c
}

// Core answers a heartbeat with the text OK when config was asked for and
// none is stored, and with an empty body when it was not asked for and
// nothing changed (docs/upstreams/openhim.md trap 5): neither is a config.
func TestClient_HeartbeatWithoutConfig(t *testing.T) {
	t.Parallel()
	him := openhimtest.NewServer(t, openhimtest.Options{})
	c := newClient(t, him, openhimtest.RootEmail)
	require.NoError(t, c.Register(t.Context(), json.RawMessage(minimalDoc)))

	cfg, err := c.Heartbeat(t.Context(), "urn:mediator:client-test", time.Second, true)
	require.NoError(t, err)
	require.Nil(t, cfg)
	cfg, err = c.Heartbeat(t.Context(), "urn:mediator:client-test", 2*time.Second, false)
	require.NoError(t, err)
	require.Nil(t, cfg)

	hbs := him.Heartbeats()
	require.Len(t, hbs, 2)
	require.Equal(t, "OK", string(hbs[0].Response), "the forced heartbeat found no config")
	require.Empty(t, hbs[1].Response)
}

// Basic matches the email exactly and core stores emails lower-cased
// (docs/upstreams/openhim.md §2.2, trap 7): the client lower-cases it.
func TestClient_EmailLowerCased(t *testing.T) {
	t.Parallel()
	him := openhimtest.NewServer(t, openhimtest.Options{})
	c := newClient(t, him, "Root@OpenHIM.org")
	_, err := c.Mediators(t.Context())
	require.NoError(t, err)
	reqs := him.Requests()
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		require.Empty(t, r.Header.Get("auth-token"), "Basic, not the token fallback")
		user, _, ok := (&http.Request{Header: r.Header}).BasicAuth()
		require.True(t, ok)
		require.Equal(t, "root@openhim.org", user)
	}
}

// The fake serves TLS with a self-signed certificate, as core does by
// default (docs/upstreams/openhim.md trap 10): refused unless
// TrustSelfSigned.
func TestClient_TrustSelfSigned(t *testing.T) {
	t.Parallel()
	him := openhimtest.NewServer(t, openhimtest.Options{})
	for _, trust := range []bool{false, true} {
		c, err := openhim.New(openhim.Options{
			APIURL: him.URL, Username: openhimtest.RootEmail, Password: openhimtest.RootPassword, TrustSelfSigned: trust,
		})
		require.NoError(t, err)
		_, err = c.Mediators(t.Context())
		if trust {
			require.NoError(t, err)
			continue
		}
		var unknown x509.UnknownAuthorityError
		var invalid *x509.CertificateInvalidError
		require.True(t, errors.As(err, &unknown) || errors.As(err, &invalid), "%v", err)
	}
}
