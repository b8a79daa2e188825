package openimistest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func TestPatient_Get(t *testing.T) {
	t.Parallel()

	b := setup(t, openimistest.Options{})

	t.Run("Seeded", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{openimistest.SeedPatientID, strings.ToUpper(openimistest.SeedPatientID)} {
			resp := b.do(t, req{path: "Patient/" + id + "/"})
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			m := resp.object(t)
			require.Equal(t, "Patient", m["resourceType"])
			require.Equal(t, openimistest.SeedPatientID, m["id"])
			require.Equal(t, "1990-03-24", m["birthDate"])
			idents := m["identifier"].([]any)
			require.Equal(t, openimistest.SeedPatientID, idents[0].(map[string]any)["value"])
			require.Equal(t, openimistest.SeedPatientCHFID, idents[1].(map[string]any)["value"])
		}
	})

	t.Run("UnknownUUIDIs500", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		b.do(t, req{path: "Patient/" + id + "/"}).requireOutcome(t, http.StatusInternalServerError, "error",
			`["failed to retrieve Insuree with the filter {'uuid': UUID('`+id+`')}; details Insuree matching query does not exist."]`)
	})

	t.Run("NotAUUIDIs404", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, req{path: "Patient/" + openimistest.SeedPatientCHFID + "/"})
		require.Equal(t, http.StatusNotFound, resp.status)
		_, code, _ := resp.outcome(t)
		require.Equal(t, "not-found", code)
	})

	t.Run("Added", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		b.srv.AddPatient(id, []byte(`{"resourceType":"Patient","name":[{"family":"Doe","given":["Jane"]}]}`))
		m := b.do(t, req{path: "Patient/" + id + "/"}).object(t)
		require.Equal(t, id, m["id"])
		require.Equal(t, id, m["identifier"].([]any)[0].(map[string]any)["value"])
	})
}
