package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The dashboard and the alerting rules ops load (deploy/) name metrics;
// a renamed or removed metric would leave a panel empty and an alert
// silent without anyone noticing. These tests hold them to what a plain
// edge (no purge bus) really exports.

// dashboardExprs returns every PromQL expression of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	b, err := os.ReadFile("../../deploy/grafana/lakka-edge.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("lakka-edge.json: %v", err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// alertRules is deploy/prometheus/alerts.yml as far as these tests read it.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alertExprs(t *testing.T) map[string]string {
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var r alertRules
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	out := map[string]string{}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" || rule.Expr == "" || rule.Annotations["summary"] == "" || rule.Labels["severity"] == "" {
				t.Errorf("alerts.yml: rule %q in group %q lacks a name, an expression, a severity or a summary", rule.Alert, g.Name)
			}
			out[rule.Alert] = rule.Expr
		}
	}
	return out
}

var (
	// metricRef is a metric name in an expression, with its label
	// matchers when it has some.
	metricRef = regexp.MustCompile(`\b((?:lakka|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)
	// labelEq is an equality matcher (not =~, !=, !~).
	labelEq = regexp.MustCompile(`([a-z_]+)="([^"$]*)"`)
)

// TestDashboardAndAlertsNameExportedMetrics: every metric the dashboard and
// the alerts name, and every label value they match exactly, is in the
// /metrics of an edge started with no purge bus, no cluster and no
// traffic (at zero: the features are off).
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	a, _, logs := startBinary(t, listening, []string{"LAKKA_ADMIN_TOKEN=" + testAdminToken}, "edge",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend", "127.0.0.1:1")
	req, _ := http.NewRequest(http.MethodGet, "http://"+a[1]+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v\n%s", resp.StatusCode, err, logs())
	}
	var samples []string
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "#") {
			samples = append(samples, line)
		}
	}
	exported := func(name, matchers string) string {
		var lines []string
		for _, l := range samples {
			if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			return "is not exported"
		}
		for _, m := range labelEq.FindAllStringSubmatch(matchers, -1) {
			pair := m[1] + `="` + m[2] + `"`
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, pair) }) {
				return "has no series with " + pair
			}
		}
		return ""
	}
	check := func(where, expr string) {
		refs := metricRef.FindAllStringSubmatch(expr, -1)
		if len(refs) == 0 {
			t.Errorf("%s: names no metric: %s", where, expr)
		}
		for _, r := range refs {
			if problem := exported(r[1], r[2]); problem != "" {
				t.Errorf("%s: %s %s", where, r[1], problem)
			}
		}
	}
	exprs := dashboardExprs(t)
	if len(exprs) < 20 {
		t.Fatalf("the dashboard has %d expressions", len(exprs))
	}
	for _, e := range exprs {
		check("lakka-edge.json", e)
	}
	alerts := alertExprs(t)
	for _, want := range []string{"LakkaEdgeNotReady", "LakkaHitRatioCollapse", "LakkaPurgeLag", "LakkaOriginErrors", "LakkaMemoryOverBound"} {
		if _, ok := alerts[want]; !ok {
			t.Errorf("alerts.yml has no %s", want)
		}
	}
	for name, e := range alerts {
		check("alerts.yml "+name, e)
	}
}

// TestAlertRulesCheck runs promtool on the rules where it is installed
// (the prometheus package; not needed by anything else here).
func TestAlertRulesCheck(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed: the rules are only checked against the exported metrics (TestDashboardAndAlertsNameExportedMetrics)")
	}
	out, err := exec.Command(promtool, "check", "rules", "../../deploy/prometheus/alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
