package openhimtest_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func TestLoadDefaultChannels(t *testing.T) {
	t.Parallel()

	install := func(t *testing.T, b *testBundle, body, contentType string) response {
		t.Helper()
		return b.do(t, req{method: http.MethodPost, path: "/mediators/" + testURN + "/channels", body: body, contentType: contentType})
	}
	names := func(b *testBundle) []string {
		var out []string
		for _, c := range b.srv.Channels() {
			out = append(out, c.Name)
		}
		return out
	}

	t.Run("AllWithEmptyArray", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		require.Empty(t, b.srv.Channels(), "registration creates no channels")
		r := install(t, b, `[]`, "")
		require.Equal(t, http.StatusCreated, r.status, r.body)
		require.Equal(t, "Created", r.body)
		require.Equal(t, []string{"Claim Response", "Claims Feedback"}, names(b))

		ch := b.srv.Channels()[0]
		require.Equal(t, testURN, ch.URN)
		require.Equal(t, "^/mediator/claim-response/?$", ch.URLPattern)
		require.Equal(t, map[string]any{"id": ch.Doc["updatedBy"].(map[string]any)["id"], "name": "Super User"}, ch.Doc["updatedBy"])
		m, _ := b.srv.Mediator(testURN)
		dcc := m.Doc["defaultChannelConfig"].([]any)[0].(map[string]any)
		require.NotEqual(t, dcc["_id"], ch.Doc["_id"], "a channel gets a new _id")
		route := ch.Doc["routes"].([]any)[0].(map[string]any)
		require.Equal(t, "/mediator/claim-response", route["path"])
		require.Equal(t, "enabled", route["status"])
	})

	t.Run("ByName", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		require.Equal(t, http.StatusCreated, install(t, b, `["Claims Feedback"]`, "").status)
		require.Equal(t, []string{"Claims Feedback"}, names(b))
	})

	t.Run("UnknownName", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		r := install(t, b, `["Claims Feedback","Nope"]`, "")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "Could not load mediator default channel config, one or more channels in the request body not found in the mediator config (urn: "+testURN+")", r.body)
		require.Empty(t, b.srv.Channels())
	})

	t.Run("UnknownURN", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		r := install(t, b, `[]`, "")
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "No mediator found for this urn.", r.body)
	})

	t.Run("SecondInstallIs500", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		require.Equal(t, http.StatusCreated, install(t, b, `["Claim Response"]`, "").status)
		r := install(t, b, `[]`, "")
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, "Could not load mediator default channel config (urn: "+testURN+`): MongoServerError: E11000 duplicate key error collection: openhim-development.channels index: name_1 dup key: { name: "Claim Response" }`, r.body)
		// The other channel was still inserted.
		require.Equal(t, []string{"Claim Response", "Claims Feedback"}, names(b))
	})

	t.Run("BodyNotAnArrayInstallsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		for _, tc := range []struct{ body, ct string }{{"", "-"}, {`{}`, ""}, {`["Claim Response"]`, "-"}} {
			r := install(t, b, tc.body, tc.ct)
			require.Equal(t, http.StatusCreated, r.status)
		}
		require.Empty(t, b.srv.Channels())
	})

	t.Run("ChannelValidatedOnInstall", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openhimtest.Options{})
		b.register(t, mediatorDoc("1.0.0"))
		// An update is not validated, so a channel without urlPattern can
		// be stored; installing it fails.
		m := mediatorDoc("1.1.0")
		delete(m["defaultChannelConfig"].([]any)[0].(map[string]any), "urlPattern")
		b.register(t, m)
		r := install(t, b, `["Claim Response"]`, "")
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, "Could not load mediator default channel config (urn: "+testURN+"): ValidationError: Channel validation failed: urlPattern: Path `urlPattern` is required.", r.body)
	})
}
