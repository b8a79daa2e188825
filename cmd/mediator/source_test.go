package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// The operator's commands of a FHIR source, on the real binary against the
// Kodjin fake: check --source, then subscription renew, show and delete
// --source; no secret in their output.
func TestSourceCommands_Binary(t *testing.T) {
	t.Parallel()
	const token = "kodjin-Secret-4"
	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass})
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	kodjin := fhirtest.NewServer(t, fhirtest.Options{Vendor: fhirtest.Kodjin, Token: token})
	bin := buildBinary(t)
	dir := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"OPENIMIS_API_URL=" + oi.URL, "OPENIMIS_USERNAME=api", "OPENIMIS_PASSWORD=" + imisPass,
		"CHT_OPENIMIS_CALLBACK_ENDPOINT=http://127.0.0.1:1/mediator/claim-response",
		"CHT_URL=" + ch.URL, "CHT_USERNAME=" + chttest.DefaultUsername, "CHT_PASSWORD=" + chtPass,
		"CHT_PLACE_ID=" + chttest.DefaultPlaceID,
		"MEDIATOR_USERNAME=openimis", "MEDIATOR_PASSWORD=" + mediatorPass,
		"DATABASE_URL=sqlite://" + filepath.Join(dir, "mediator.db"),
		"FHIR_SOURCES=kodjin", "FHIR_KODJIN_URL=" + kodjin.BaseURL, "FHIR_KODJIN_VENDOR=kodjin",
		"FHIR_KODJIN_AUTH=bearer", "FHIR_KODJIN_TOKEN=" + token,
	}
	mediator := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		for _, secret := range []string{token, mediatorPass, imisPass, chtPass} {
			require.NotContains(t, string(out), secret)
		}
		return string(out), err
	}

	out, err := mediator("check", "--source", "kodjin")
	require.NoError(t, err, out)
	require.Contains(t, out, "ok    source kodjin credentials: accepted (FHIR_KODJIN_AUTH=bearer)\n")
	require.Contains(t, out, "ok    source kodjin dialect: r4-criteria (Kodjin FHIR Server, FHIR 4.0.1)\n")
	require.Contains(t, out, "WARN  source kodjin subscription: none to http://127.0.0.1:1/mediator/fhir/kodjin yet\n")
	require.Contains(t, out, "all checks passed\n")
	require.NotContains(t, out, "openIMIS")

	out, err = mediator("subscription", "renew", "--source", "kodjin")
	require.NoError(t, err, out)
	subs := kodjin.Subscriptions()
	require.Len(t, subs, 1)
	require.Equal(t, "subscription "+subs[0].ID+" on kodjin replaced; the server keeps it renewed\n", out)

	out, err = mediator("subscription", "show", "--source", "kodjin")
	require.NoError(t, err, out)
	require.Contains(t, out, "id:        "+subs[0].ID+" (the one the mediator keeps)\n")
	require.Contains(t, out, "criteria:  ClaimResponse?\n")
	require.Contains(t, out, "header:    Authorization: Basic ****\n")

	out, err = mediator("subscription", "delete", "--source", "kodjin")
	require.NoError(t, err, out)
	require.Contains(t, out, "deleted subscription "+subs[0].ID+" on kodjin\n")
	require.Contains(t, out, `"mediator subscription renew --source kodjin" re-enables it`)
	require.Empty(t, kodjin.Subscriptions())
	out, err = mediator("subscription", "show", "--source", "kodjin")
	require.NoError(t, err, out)
	require.True(t, strings.HasPrefix(out, "disabled by an operator"), out)

	out, err = mediator("check", "--source", "nope")
	require.Error(t, err)
	require.Contains(t, out, `mediator: no FHIR source "nope": FHIR_SOURCES names kodjin`)
	out, err = mediator("subscription", "show", "--source")
	require.Error(t, err)
	require.Contains(t, out, "usage:")
}
