package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleReport builds a report through the collector, as a run does.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	c := newCollector(10*time.Second, false)
	ms := time.Millisecond
	var batch []result
	for i := range 100 {
		at := time.Duration(i) * 20 * ms
		r := result{at: at, sent: at, done: at + time.Duration(1+i%10)*ms, status: 200, cache: cacheHit, bytes: 100}
		switch {
		case i%10 == 0:
			r.cache = cacheMiss
		case i == 7:
			r.err, r.status = errTimeout, 0
		case i == 8:
			r.status = 503
		}
		if i >= 60 {
			r.version = 2
		}
		batch = append(batch, r)
	}
	c.add(batch)
	c.recordEdit(1100*ms, 2)
	c.recordEdit(1900*ms, 3) // never seen
	c.recordOrigin(0, 50)
	c.recordOrigin(time.Second, 55)
	c.recordOrigin(2*time.Second, 62)
	c.setCPU(200*ms, 2*time.Second)
	r := c.report(2*time.Second, 8)
	r.Kind, r.Label, r.Target = "spike", "lakka <edge>", "http://127.0.0.1:8080"
	r.StartedAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r.Settings = map[string]string{"rate": "50"}
	return r
}

func TestReportFigures(t *testing.T) {
	r := sampleReport(t)
	if r.Requests != 100 || r.Responses != 99 || r.Offered != 100 {
		t.Errorf("requests %d responses %d offered %d", r.Requests, r.Responses, r.Offered)
	}
	if e := r.Errors; e.Total != 2 || e.Timeout != 1 || e.HTTP5xx != 1 || e.Other != 0 || len(e.OtherExamples) != 0 {
		t.Errorf("errors %+v", r.Errors)
	}
	// 99 responses with a cache status, 10 of them MISS (i = 0, 10, ... 90).
	if r.HitRatio == nil || *r.HitRatio != round4(89.0/99) {
		t.Errorf("hit ratio %v", r.HitRatio)
	}
	if r.LatencyMs.Max != 10 || r.LatencyMs.P50 < 5 || r.LatencyMs.P50 > 6 {
		t.Errorf("latency %+v", r.LatencyMs)
	}
	if r.OriginRequests == nil || *r.OriginRequests != 12 || *r.OriginRPS != 6 {
		t.Errorf("origin %v %v", r.OriginRequests, r.OriginRPS)
	}
	// Version 2 first seen at 1200 ms + 1 ms latency (i = 60, done at 1201 ms).
	if f := r.FreshnessLagMs; f.Edits != 2 || f.Seen != 1 || f.Max == nil || *f.Max != 101 {
		t.Errorf("freshness %+v (max %v)", f, f.Max)
	}
	if r.Edits[1].LagMs != nil {
		t.Errorf("unseen edit has a lag %v", *r.Edits[1].LagMs)
	}
	if len(r.Series) != 2 || r.Series[0].Offered != 50 || r.Series[1].OriginRequests == nil || *r.Series[1].OriginRequests != 5 {
		t.Errorf("series %+v", r.Series)
	}
	if r.BenchCPU <= 0 {
		t.Errorf("bench cpu %v", r.BenchCPU)
	}
}

// TestReportSchema checks the keys of report.json that docs/bench.md
// documents and that other tools read.
func TestReportSchema(t *testing.T) {
	b, err := json.Marshal(sampleReport(t))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "kind", "label", "target", "started_at", "duration_s", "settings",
		"requests", "offered", "unsent", "responses", "offered_rps", "achieved_rps", "errors", "status",
		"hit_ratio", "cache", "latency_ms", "send_delay_ms", "bytes", "origin_requests", "origin_rps",
		"freshness_lag_ms", "edits", "bench_cpu", "host_load", "limits", "series"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	sub := func(key string, want ...string) {
		t.Helper()
		obj, _ := m[key].(map[string]any)
		for _, k := range want {
			if _, ok := obj[k]; !ok {
				t.Errorf("report.json %s lacks %q", key, k)
			}
		}
	}
	sub("latency_ms", "p50", "p90", "p99", "p999", "max", "mean")
	sub("freshness_lag_ms", "edits", "seen", "p50", "p99", "max")
	sub("errors", "total", "connect", "timeout", "http_4xx", "http_5xx", "other", "other_examples")
	sub("limits", "late", "pool_late", "bench_late", "pool_limited", "bench_limited", "messages")
	series, _ := m["series"].([]any)
	if len(series) == 0 {
		t.Fatal("no series")
	}
	s0, _ := series[0].(map[string]any)
	for _, k := range []string{"t", "offered", "achieved", "errors", "p50_ms", "p99_ms", "max_ms", "hit_ratio", "bytes", "origin_requests", "late", "bench_cpu"} {
		if _, ok := s0[k]; !ok {
			t.Errorf("series entry lacks %q", k)
		}
	}
	if m["schema"] != SchemaVersion {
		t.Errorf("schema %v", m["schema"])
	}
}

func TestReportFilesAndCompare(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport(t)
	if err := r.WriteFiles(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(filepath.Join(dir, "a")) // a directory works
	if err != nil {
		t.Fatal(err)
	}
	if back.Requests != r.Requests || back.Label != r.Label || *back.HitRatio != *r.HitRatio {
		t.Errorf("read back %+v", back)
	}
	if _, err := ReadReport(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing report: no error")
	}
	os.WriteFile(filepath.Join(dir, "old.json"), []byte(`{"schema":"something-else"}`), 0o644)
	if _, err := ReadReport(filepath.Join(dir, "old.json")); err == nil {
		t.Error("other schema: no error")
	}

	html, err := os.ReadFile(filepath.Join(dir, "a", "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	h := string(html)
	// Self-contained: no script, and nothing fetched from anywhere (the only
	// URLs are the SVG namespace and text).
	if strings.Contains(strings.ToLower(h), "<script") {
		t.Error("report.html has a script")
	}
	if regexp.MustCompile(`(?i)(src|href)\s*=|@import|url\(`).MatchString(h) {
		t.Error("report.html loads something")
	}
	if n := strings.Count(h, "<svg"); n < 6 {
		t.Errorf("report.html has %d charts, want at least 6", n)
	}
	if !strings.Contains(h, "lakka &lt;edge&gt;") || strings.Contains(h, "lakka <edge>") {
		t.Error("label not escaped in report.html")
	}

	var out bytes.Buffer
	other := sampleReport(t)
	other.LatencyMs.P99 = 42.5
	if err := WriteComparison(&out, []string{"lakka", "varnish"}, []*Report{r, other}); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, want := range []string{"lakka", "varnish", "latency p99 ms", "42.500", "hit ratio", "89.9%", "freshness lag max ms"} {
		if !strings.Contains(table, want) {
			t.Errorf("comparison lacks %q:\n%s", want, table)
		}
	}
	out.Reset()
	if err := r.WriteSummary(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "errors") || !strings.Contains(out.String(), "timeout 1") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestChartScales(t *testing.T) {
	for _, c := range []struct{ span, want float64 }{{10, 2.5}, {100, 25}, {7, 2}, {0, 1}, {1e6, 250000}} {
		if got := niceStep(c.span, 4); got != c.want {
			t.Errorf("niceStep(%v) = %v, want %v", c.span, got, c.want)
		}
	}
	// Empty and all-gap series render without NaN coordinates.
	nan := []float64{}
	for range 3 {
		nan = append(nan, 0/func() float64 { return 0 }())
	}
	for _, c := range []chart{{title: "empty"}, {title: "gaps", lines: []line{{"x", colorA, nan}}}, {title: "log", log: true, lines: []line{{"x", colorA, []float64{0, 1, 1000}}}}} {
		if s := string(c.svg()); strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Errorf("chart %q has NaN/Inf coordinates", c.title)
		}
	}
}
