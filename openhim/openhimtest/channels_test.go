package openhimtest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

// TestInstallChannels pins §1.3 and trap 24: the console's "+" installs the
// default channels as they are; a second install is a 500.
func TestInstallChannels(t *testing.T) {
	t.Parallel()
	b := setup(t, openhimtest.Options{})
	b.register(t, mediatorDoc("1.0.0"))

	status, _ := b.do(t, http.MethodPost, "/mediators/urn:mediator:nobody/channels", "", nil)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = b.do(t, http.MethodPost, "/mediators/"+testURN+"/channels", `["Nothing"]`, nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, body := b.do(t, http.MethodPost, "/mediators/"+testURN+"/channels", "", nil)
	require.Equal(t, http.StatusCreated, status, body)
	status, _ = b.do(t, http.MethodPost, "/mediators/"+testURN+"/channels", `["Claims"]`, nil)
	require.Equal(t, http.StatusInternalServerError, status)

	status, body = b.do(t, http.MethodGet, "/channels", "", nil)
	require.Equal(t, http.StatusOK, status)
	var channels []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &channels))
	require.Len(t, channels, 1)
	route := channels[0]["routes"].([]any)[0].(map[string]any)
	require.NotContains(t, route, "username", "copied as is: no credentials")
	require.NotContains(t, route, "forwardAuthHeader")
}

// TestSend pins §4.1 and traps 16, 21 and 24: a client's request through an
// installed channel reaches the route without the client's Authorization,
// with the route's credentials once an operator set them, and the
// transaction log keeps the client's Authorization verbatim.
func TestSend(t *testing.T) {
	t.Parallel()
	b := setup(t, openhimtest.Options{})
	medURL, seen := newMediator(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	u, err := url.Parse(medURL)
	require.NoError(t, err)
	port, _ := strconv.Atoi(u.Port())
	doc := mediatorDoc("1.0.0")
	route := doc["defaultChannelConfig"].([]any)[0].(map[string]any)["routes"].([]any)[0].(map[string]any)
	route["host"], route["port"], route["primary"], route["path"] = u.Hostname(), port, true, "/mediator/claims"
	b.register(t, doc)
	require.NoError(t, b.srv.InstallChannels(testURN))

	send := func() *http.Request {
		res, err := b.srv.Send(t.Context(), openhimtest.ForwardRequest{
			Method: http.MethodPost, Path: "/claims", Body: []byte("{}"),
			Header: http.Header{"Authorization": {"Basic b3BlbmltaXM6c2VjcmV0"}},
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status)
		return <-seen
	}
	r := send()
	require.Equal(t, "/mediator/claims", r.URL.Path)
	require.Empty(t, r.Header.Get("Authorization"), "installed as is: no credentials reach the mediator")

	require.NoError(t, b.srv.EditRoute("Claims", "r", map[string]any{"username": "him", "password": "route-secret"}))
	r = send()
	user, pass, ok := r.BasicAuth()
	require.True(t, ok)
	require.Equal(t, "him", user)
	require.Equal(t, "route-secret", pass)

	txs := b.srv.Transactions()
	require.Len(t, txs, 2)
	require.Equal(t, "Claims", txs[0].Channel)
	require.Equal(t, "Basic b3BlbmltaXM6c2VjcmV0", txs[1].RequestHeader.Get("Authorization"), "stored verbatim")

	res, err := b.srv.Send(t.Context(), openhimtest.ForwardRequest{Method: http.MethodPost, Path: "/other"})
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, res.Status)
}
