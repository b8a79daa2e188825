package chtopenimis_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/cht-openimis/cht-openimis-mediator"

// importRule says what one package's non-test files may import: the
// packages of this module (by path below the module, "" for the root) and
// the third-party modules (by path prefix). The standard library is always
// allowed.
type importRule struct {
	project    []string
	thirdParty []string
}

// layout is the dependency direction of README "Architecture": the clients
// and config import nothing of the project (but what the clients share
// in internal/), mapping only the clients' types and internal/fastjson,
// mediator never config, cmd or a store implementation, the store only its
// leaf types, and the fakes only their parent and the shared test support.
var layout = map[string]importRule{
	"":                         {},
	"config":                   {thirdParty: []string{"github.com/spf13/viper"}},
	"mapping":                  {project: []string{"openimis", "cht", "fhir", "internal/fastjson"}},
	"openimis":                 {project: []string{"internal/retryafter", "internal/errtext", "internal/httpc", "internal/fastjson"}, thirdParty: []string{"github.com/go-resty/resty/v2"}},
	"cht":                      {project: []string{"internal/retryafter", "internal/errtext", "internal/httpc", "internal/fastjson"}, thirdParty: []string{"github.com/go-resty/resty/v2"}},
	"openhim":                  {project: []string{"internal/errtext", "internal/httpc"}, thirdParty: []string{"github.com/go-resty/resty/v2"}},
	"fhir":                     {project: []string{"internal/retryafter", "internal/errtext", "internal/httpc"}, thirdParty: []string{"github.com/go-resty/resty/v2", "golang.org/x/oauth2"}},
	"openimis/openimistest":    {project: []string{"openimis", "internal/upstreamtest"}, thirdParty: []string{"github.com/google/uuid"}},
	"cht/chttest":              {project: []string{"cht", "internal/upstreamtest"}, thirdParty: []string{"github.com/google/uuid"}},
	"openhim/openhimtest":      {project: []string{"openhim", "internal/upstreamtest"}},
	"fhir/fhirtest":            {project: []string{"internal/upstreamtest"}},
	"internal/upstreamtest":    {},
	"internal/retryafter":      {},
	"internal/errtext":         {},
	"internal/fastjson":        {thirdParty: []string{"github.com/goccy/go-json"}},
	"internal/httpc":           {thirdParty: []string{"github.com/go-resty/resty/v2"}},
	"mediator/storetype":       {thirdParty: []string{"github.com/riverqueue/river"}},
	"mediator/store":           {project: []string{"mediator/storetype"}, thirdParty: []string{"github.com/riverqueue/river", "github.com/jackc/pgx/v5", "modernc.org/"}},
	"mediator/store/storetest": {thirdParty: []string{"github.com/jackc/pgx/v5"}},
	"mediator": {
		project:    []string{"openimis", "cht", "openhim", "fhir", "mapping", "mediator/storetype"},
		thirdParty: []string{"github.com/gin-gonic/gin", "github.com/riverqueue/river", "github.com/rs/zerolog", "github.com/prometheus/client_golang"},
	},
	// cmd wires everything; only the sandbox and the load generator, which
	// run the fakes, may import them.
	"cmd/internal/app": {
		project:    []string{"", "config", "openimis", "cht", "openhim", "fhir", "mediator", "mediator/store", "mediator/storetype"},
		thirdParty: []string{"github.com/rs/zerolog"},
	},
	"cmd/mediator": {project: []string{"cmd/internal/app", "config", "mediator", "mediator/store"}},
	"cmd/sandbox": {
		project:    []string{"cmd/internal/app", "config", "openimis/openimistest", "cht/chttest", "openhim/openhimtest", "fhir/fhirtest"},
		thirdParty: []string{"github.com/spf13/viper"},
	},
	"cmd/loadgen": {project: []string{"openimis/openimistest", "cht/chttest"}},
	// deploy holds the Prometheus rules and the Grafana dashboard; its
	// package is only their tests.
	"deploy": {},
}

// TestLayout_ImportsFollowTheArrows checks every package's imports (test
// files aside) against layout, so that the layering cannot erode silently.
// A new package must be added to layout.
func TestLayout_ImportsFollowTheArrows(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		rule, ok := layout[pkg]
		if !ok {
			t.Errorf("package %q is not in the layout: add its import rule", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if err := rule.check(imp); err != "" {
				t.Errorf("%s imports %s: %s", fields[0], imp, err)
			}
		}
	}
}

func (r importRule) check(imp string) string {
	switch {
	case imp == module || strings.HasPrefix(imp, module+"/"):
		if !slices.Contains(r.project, strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")) {
			return "not allowed by the layout"
		}
	case strings.Contains(strings.Split(imp, "/")[0], "."): // a module, not the standard library
		for _, p := range r.thirdParty {
			if strings.HasPrefix(imp, p) {
				return ""
			}
		}
		return "third-party module not allowed here"
	}
	return ""
}

// The store builds without the HTTP framework, the HTTP client and the
// upstream clients.
func TestLayout_StoreBuildsAlone(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "./mediator/store").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/gin-gonic/", "github.com/go-resty/", module + "/openimis", module + "/cht", module + "/openhim", module + "/mediator"} {
			if strings.HasPrefix(dep, banned) && !strings.HasPrefix(dep, module+"/mediator/store") {
				t.Errorf("mediator/store depends on %s", dep)
			}
		}
	}
}
