package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// The shipped rules and dashboard (deploy/), as operators load them.
var (
	rulesFile     = filepath.Join("..", "..", "deploy", "prometheus", "mediator.rules.yml")
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "mediator.json")
)

// TestPrometheus_RulesAgainstTheRealMediator starts a real Prometheus
// (Debian's package) that scrapes the real mediator binary, running against
// the fakes, every second and evaluates the shipped rules every second.
// During a CHT outage the queue alert goes pending; after recovery it
// resolves. Every series the rules and the dashboard name exists with the
// labels they use, every expression evaluates, and the README lists every
// series the mediator exports.
func TestPrometheus_RulesAgainstTheRealMediator(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed, and CI=true: .ci/run installs it (Debian package prometheus)")
		}
		t.Skip("prometheus is not installed: install the Debian package prometheus (apt-get install prometheus) to run this test")
	}
	bin := buildBinary(t)
	oi := openimistest.NewServer(t, openimistest.Options{Username: "api", Password: imisPass, ClaimSubscriptions: true})
	ch := chttest.NewServer(t, chttest.Options{Password: chtPass})
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	startBinary(t, bin, binaryEnv(t, port, base, oi.URL, ch.URL,
		"LISTEN_ADDRESS=127.0.0.1",
		"CLAIM_POLL_INTERVAL=5m",
	), base)
	prom := startPrometheus(t, promBin, "127.0.0.1:"+strconv.Itoa(port))

	// Traffic that makes every series appear: a claim delivered, a wrong
	// password.
	require.Equal(t, http.StatusOK, postClaimTo(base, openimistest.ClaimResponseFixture(openimistest.SeedClaimID, "PROM0", openimistest.SeedPatientID)))
	req, err := http.NewRequest(http.MethodPost, base+"/mediator/claim-response", strings.NewReader("{}"))
	require.NoError(t, err)
	req.SetBasicAuth("openimis", "wrong")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Eventually(t, func() bool { return len(ch.Reports()) == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return prom.value(t, `job:mediator_queue_depth:sum{job="mediator"}`) == "0"
	}, 30*time.Second, 100*time.Millisecond, "Prometheus scrapes the mediator and records the queue")
	require.Empty(t, prom.alertState(t, "MediatorQueueBacklogGrowing"))

	// The CHT is down: claims keep arriving and wait. The queue alert goes
	// pending (it fires after 15 minutes of this).
	ch.SetDown(http.StatusServiceUnavailable)
	const queued = 40
	sent := 0
	require.Eventually(t, func() bool {
		if sent < queued {
			claim := fmt.Sprintf("9f1c2d3e-0000-4000-8000-%012d", sent)
			if postClaimTo(base, openimistest.ClaimResponseFixture(claim, "PROM"+strconv.Itoa(sent+1), openimistest.SeedPatientID)) != http.StatusOK {
				return false // the claim is posted again at the next try
			}
			sent++
		}
		return prom.alertState(t, "MediatorQueueBacklogGrowing") == "pending"
	}, 60*time.Second, 200*time.Millisecond, "the queue alert goes pending during the outage")
	require.Positive(t, prom.number(t, `max(mediator_queue_oldest_job_age_seconds{job="mediator"})`), "the oldest job ages")
	require.Empty(t, prom.alertState(t, "MediatorStoreUnreachable"))

	// The CHT answers again: the queue drains and the alert resolves.
	ch.SetDown(0)
	require.Eventually(t, func() bool {
		return len(ch.Reports()) == 1+sent && prom.alertState(t, "MediatorQueueBacklogGrowing") == ""
	}, 90*time.Second, 200*time.Millisecond, "the queue drains and the alert resolves")

	series := prom.series(t)
	t.Run("RulesNameExportedSeries", func(t *testing.T) {
		rules := prom.rules(t)
		require.Len(t, rules, 20, "every rule of the shipped file is loaded")
		for _, r := range rules {
			require.Equal(t, "ok", r.Health, "%s: %s", r.Name, r.LastError)
			requireNamesExported(t, r.Name, r.Query, series)
		}
	})
	t.Run("DashboardNamesExportedSeries", func(t *testing.T) {
		exprs := dashboardExpressions(t)
		require.NotEmpty(t, exprs)
		for _, e := range exprs {
			require.NotEmpty(t, prom.query(t, e), "%s evaluates to nothing", e)
			requireNamesExported(t, "dashboard", e, series)
		}
	})
	t.Run("READMEListsEverySeries", func(t *testing.T) {
		readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
		require.NoError(t, err)
		_, section, _ := strings.Cut(string(readme), "\n### Metrics\n")
		section, _, _ = strings.Cut(section, "\n### ")
		for name := range series {
			if strings.HasPrefix(name, "mediator_") {
				family := regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(name, "")
				require.Contains(t, section, "| `"+family+"` |", "README's Metrics table lists %s", family)
			}
		}
	})
}

// promServer is a Prometheus server the test started.
type promServer struct{ url string }

// startPrometheus runs prometheus on a free port with a fresh store,
// scraping target every second and evaluating the shipped rules every
// second, until the test ends.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	require.NoError(t, err)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: mediator
    static_configs: [{targets: [%q]}]
`, rules, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(configFile, []byte(config), 0o600))
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	p := &promServer{url: "http://" + addr}
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "prometheus did not start: %s", &logs)
	return p
}

// get calls the HTTP API and decodes its data into out.
func (p *promServer) get(t *testing.T, path string, params url.Values, out any) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.url + path + "?" + params.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %v: %s", path, params, body)
	var envelope struct {
		Status string
		Data   json.RawMessage
	}
	require.NoError(t, json.Unmarshal(body, &envelope))
	require.Equal(t, "success", envelope.Status, "%s", body)
	require.NoError(t, json.Unmarshal(envelope.Data, out), "%s", body)
}

// query evaluates expr now and returns its samples' values.
func (p *promServer) query(t *testing.T, expr string) []string {
	t.Helper()
	var data struct {
		ResultType string
		Result     []struct {
			Value [2]any
		}
	}
	p.get(t, "/api/v1/query", url.Values{"query": {expr}}, &data)
	require.Equal(t, "vector", data.ResultType, "%s", expr)
	var out []string
	for _, r := range data.Result {
		out = append(out, fmt.Sprint(r.Value[1]))
	}
	return out
}

// value returns the single value of expr ("" without one).
func (p *promServer) value(t *testing.T, expr string) string {
	t.Helper()
	if v := p.query(t, expr); len(v) == 1 {
		return v[0]
	}
	return ""
}

// number returns the single value of expr as a number.
func (p *promServer) number(t *testing.T, expr string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(p.value(t, expr), 64)
	require.NoError(t, err, "%s", expr)
	return f
}

// alertState returns the state of the alert (pending, firing) or "" when
// it is not active.
func (p *promServer) alertState(t *testing.T, name string) string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	p.get(t, "/api/v1/alerts", nil, &data)
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name {
			return a.State
		}
	}
	return ""
}

// loadedRule is a rule as Prometheus loaded and evaluates it.
type loadedRule struct {
	Name      string
	Query     string
	Health    string
	LastError string
}

func (p *promServer) rules(t *testing.T) []loadedRule {
	t.Helper()
	var data struct {
		Groups []struct{ Rules []loadedRule }
	}
	p.get(t, "/api/v1/rules", nil, &data)
	var out []loadedRule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// series returns the label names of every series Prometheus scraped from
// the mediator, by metric name.
func (p *promServer) series(t *testing.T) map[string][]string {
	t.Helper()
	var data []map[string]string
	p.get(t, "/api/v1/series", url.Values{"match[]": {`{job="mediator"}`}}, &data)
	out := map[string][]string{}
	for _, s := range data {
		name := s["__name__"]
		for label := range s {
			if label != "__name__" && !slices.Contains(out[name], label) {
				out[name] = append(out[name], label)
			}
		}
	}
	return out
}

var (
	// selector matches a series name, with its matchers when it has any.
	selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?`)
	// matcherLabel matches the label name of a matcher.
	matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	// grouping matches by (…) and without (…).
	grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	// quoted matches a string literal.
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// requireNamesExported checks that every series expr names is exported
// (series) with the labels its matchers name, and that the labels it groups
// by or without are those of at least one series it names. Recorded series
// (names with a colon) come from the rules themselves.
func requireNamesExported(t *testing.T, what, expr string, series map[string][]string) {
	t.Helper()
	// Matchers' values aside, so that a label value is not read as a name.
	plain := quoted.ReplaceAllString(expr, `""`)
	var labels []string
	for _, m := range selector.FindAllStringSubmatch(plain, -1) {
		name := m[1]
		if !strings.HasPrefix(name, "mediator_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "go_") && name != "up" {
			continue
		}
		have, ok := series[name]
		require.True(t, ok, "%s: %s names %s, which the mediator does not export", what, expr, name)
		labels = append(labels, have...)
		for _, l := range matcherLabel.FindAllStringSubmatch(m[2], -1) {
			require.Contains(t, have, l[1], "%s: %s matches %s on %s, which it lacks", what, expr, name, l[1])
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(plain, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !strings.Contains(expr, ":") {
				require.Contains(t, labels, l, "%s: %s groups by %s, which no series it names has", what, expr, l)
			}
		}
	}
}

// dashboardExpressions returns the dashboard's panel expressions with the
// values Grafana puts in place of its variables.
func dashboardExpressions(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		Panels []struct{ Targets []struct{ Expr string } }
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	vars := strings.NewReplacer("$__rate_interval", "1m", `"$job"`, `".*"`, `"$instance"`, `".*"`)
	var out []string
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			out = append(out, vars.Replace(target.Expr))
		}
	}
	return out
}
