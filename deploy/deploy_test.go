// Package deploy_test checks what deploy/ ships for operators: the Prometheus
// rules (promtool check rules, and the rule tests of
// prometheus/*_test.yml) and the Grafana dashboard (every expression parses
// and names only series the README lists). The test against a real
// Prometheus scraping the real mediator is in cmd/mediator
// (prometheus_test.go).
package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	rulesFile     = "prometheus/mediator.rules.yml"
	dashboardFile = "grafana/mediator.json"
)

// promtool returns the path of promtool. Without it the test skips, except
// in CI (CI=true), where a missing promtool must fail: .ci/run installs it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed, and CI=true: .ci/run installs it (Debian package prometheus)")
		}
		t.Skip("promtool is not installed: install the Debian package prometheus (apt-get install prometheus) to run this test")
	}
	return path
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func TestRules_Check(t *testing.T) {
	t.Parallel()
	out := runPromtool(t, "check", "rules", rulesFile)
	require.Contains(t, out, "SUCCESS")
}

// TestRules_UnitTests runs the rule tests: for each alert, series that fire
// it and series that must not.
func TestRules_UnitTests(t *testing.T) {
	t.Parallel()
	tests, err := filepath.Glob("prometheus/*_test.yml")
	require.NoError(t, err)
	require.NotEmpty(t, tests)
	out := runPromtool(t, append([]string{"test", "rules"}, tests...)...)
	require.Contains(t, out, "SUCCESS")
	require.NotContains(t, out, "FAILED")
}

// Every alert of the rules file has a test case that fires it, and one
// (at another time or with other series) where it must not fire.
func TestRules_EveryAlertTested(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	tests, err := os.ReadFile("prometheus/mediator.rules_test.yml")
	require.NoError(t, err)
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)$`).FindAllStringSubmatch(string(rules), -1)
	require.NotEmpty(t, alerts)
	// A case names its alert, then its expected alerts: empty ("[]") or a
	// list whose first item names the labels.
	cases := regexp.MustCompile(`alertname: (\w+)\n\s+exp_alerts:( \[\]|\n\s+- exp_labels)`).FindAllStringSubmatch(string(tests), -1)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		if c[2] == " []" {
			quiet[c[1]] = true
		} else {
			fires[c[1]] = true
		}
	}
	for _, a := range alerts {
		require.True(t, fires[a[1]], "no test case fires %s", a[1])
		require.True(t, quiet[a[1]], "no test case where %s must not fire", a[1])
		require.Contains(t, string(rules), "- alert: "+a[1]+"\n", "alert names are unique")
	}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Panels        []panel
	Templating    struct {
		List []struct {
			Name       string
			Type       string
			Query      json.RawMessage
			Datasource *datasource
		}
	}
}

type panel struct {
	Type       string
	Title      string
	Datasource *datasource
	Targets    []struct {
		Expr       string
		Datasource *datasource
	}
}

type datasource struct {
	Type string
	UID  string
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	return d
}

// expressions returns every PromQL expression of the dashboard: the panels'
// and the variables' (label_values(<selector>, label) → the selector).
func expressions(t *testing.T, d dashboard) []string {
	t.Helper()
	var out []string
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			out = append(out, target.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), \w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		require.NoError(t, json.Unmarshal(v.Query, &q), "variable %s", v.Name)
		m := labelValues.FindStringSubmatch(q.Query)
		require.NotNil(t, m, "variable %s: %q", v.Name, q.Query)
		out = append(out, m[1])
	}
	return out
}

// promQL makes a dashboard expression plain PromQL, with the values Grafana
// would put in place of its variables.
func promQL(expr string) string {
	return strings.NewReplacer("$__rate_interval", "5m", `"$job"`, `".*"`, `"$instance"`, `".*"`).Replace(expr)
}

func TestDashboard_Shape(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	require.GreaterOrEqual(t, d.SchemaVersion, 39)
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
		if v.Name == "datasource" {
			require.Equal(t, "datasource", v.Type)
			require.JSONEq(t, `"prometheus"`, string(v.Query))
		}
	}
	require.Equal(t, []string{"datasource", "job", "instance"}, vars)
	want := &datasource{Type: "prometheus", UID: "${datasource}"}
	var titles []string
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if p.Type == "row" {
			continue
		}
		require.Equal(t, want, p.Datasource, "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q", p.Title)
		for _, target := range p.Targets {
			require.Equal(t, want, target.Datasource, "panel %q", p.Title)
			if strings.Contains(target.Expr, "{") {
				require.Contains(t, target.Expr, `job=~"$job",instance=~"$instance"`, "panel %q follows the variables", p.Title)
			}
		}
	}
	for _, title := range []string{"Requests answered (in)", "Job attempts (out)", "Queue depth", "Oldest queued job",
		"Job failures and retries", "Upstream latency", "Concurrency limits", "Subscription state", "openIMIS logins", "OpenHIM"} {
		require.Contains(t, titles, title)
	}
}

// TestDashboard_ExpressionsParse has promtool parse every expression of the
// dashboard, as the expression of a recording rule (promtool has no
// single-expression check).
func TestDashboard_ExpressionsParse(t *testing.T) {
	t.Parallel()
	exprs := expressions(t, readDashboard(t))
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		quoted, err := json.Marshal(promQL(e)) // a JSON string is a YAML string
		require.NoError(t, err)
		fmt.Fprintf(&rules, "      - record: dashboard:expression_%d\n        expr: %s\n", i, quoted)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	require.NoError(t, os.WriteFile(file, []byte(rules.String()), 0o600))
	out := runPromtool(t, "check", "rules", file)
	require.Contains(t, out, "SUCCESS")

	// promtool does find a broken expression that way.
	require.NoError(t, os.WriteFile(file, []byte("groups:\n  - name: dashboard\n    rules:\n      - record: dashboard:expression\n        expr: \"sum by (kind (mediator_queue_depth)\"\n"), 0o600))
	broken, err := exec.Command(promtool(t), "check", "rules", file).CombinedOutput()
	require.Error(t, err, "%s", broken)
}

// identifier matches PromQL names; those of the mediator's series, and of
// the Go and process collectors', start with these prefixes (recorded
// series hold colons).
var (
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	seriesName = regexp.MustCompile(`^(?:mediator|process|go)_[a-z0-9_]+$`)
)

// namedSeries returns the series names expr uses, histogram suffixes cut
// (the README lists the histogram), label values aside.
func namedSeries(expr string) []string {
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	var out []string
	for _, n := range identifier.FindAllString(expr, -1) {
		if !seriesName.MatchString(n) {
			continue
		}
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if strings.HasSuffix(n, "_seconds"+suffix) {
				n = strings.TrimSuffix(n, suffix)
			}
		}
		out = append(out, n)
	}
	return out
}

// readmeSeries returns the series README.md's "Metrics" section names.
func readmeSeries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "\n### Metrics\n")
	require.True(t, ok, "README has a Metrics section")
	section, _, _ = strings.Cut(section, "\n### ")
	return regexp.MustCompile("`((?:mediator|process|go)_[a-z0-9_]+)").FindAllString(section, -1)
}

// The dashboard and the rules name only series the README lists (the
// integration test checks those against the running mediator).
func TestDashboardAndRules_NameListedSeries(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, s := range readmeSeries(t) {
		listed[strings.TrimPrefix(s, "`")] = true
	}
	require.True(t, listed["mediator_queue_depth"], "%v", listed)
	rules, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var exprs []string
	for _, line := range strings.Split(string(rules), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") { // comments aside
			exprs = append(exprs, line)
		}
	}
	exprs = append(exprs, expressions(t, readDashboard(t))...)
	var unlisted []string
	for _, e := range exprs {
		for _, name := range namedSeries(e) {
			if !listed[name] && !slices.Contains(unlisted, name) {
				unlisted = append(unlisted, name)
			}
		}
	}
	require.Empty(t, unlisted, "series the README's Metrics section does not list")
}
