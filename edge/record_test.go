package edge

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAccessLog(t *testing.T) {
	o := startOrigin(t, fixed("hello", "Cache-Control", "max-age=60"))
	combined := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\?x=1 HTTP/1\.1" 200 5 "http://ref/" "agent \\x22quoted\\x22" (MISS|HIT) \d+\.\d{6}$`)
	for _, format := range []string{"combined", "json"} {
		path := filepath.Join(t.TempDir(), "access.log")
		c := testConfig(o.addr())
		c.Log.Access = path
		c.Log.AccessFormat = format
		s := mustNew(t, c, discardLogger(), newTestRegistry(), seams{})
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve() }()
		for range 2 {
			doURL(t, http.MethodGet, "http://"+s.Addr()+"/a?x=1", "", "Referer", "http://ref/", "User-Agent", `agent "quoted"`)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines, want 2:\n%s", format, len(lines), b)
		}
		for i, l := range lines {
			if format == "combined" {
				if !combined.MatchString(l) {
					t.Errorf("combined line %d: %q", i, l)
				}
				continue
			}
			var v struct {
				Time, Remote, Method, Host, URI, Proto, Referer, Cache string
				UserAgent                                              string `json:"user_agent"`
				Status, Bytes                                          int
				DurationMS                                             float64 `json:"duration_ms"`
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Errorf("json line %d: %v: %q", i, err, l)
				continue
			}
			if v.Method != "GET" || v.URI != "/a?x=1" || v.Status != 200 || v.Bytes != 5 || v.UserAgent != `agent "quoted"` ||
				v.Remote != "127.0.0.1" || (v.Cache != "MISS" && v.Cache != "HIT") || v.Time == "" {
				t.Errorf("json line %d: %+v", i, v)
			}
			if when, err := time.Parse("2006-01-02T15:04:05.000000Z", v.Time); err != nil || time.Since(when) > time.Minute {
				t.Errorf("json line %d: time %q (%v)", i, v.Time, err)
			}
		}
	}
}

// TestAccessLogReopenAndHost: Reopen (SIGUSR1) makes the edge write to a
// new file at the log's path after logrotate moved the old one, with the
// lines before it in the old file; log.access_host puts the Host first.
func TestAccessLogReopenAndHost(t *testing.T) {
	o := startOrigin(t, fixed("hello", "Cache-Control", "max-age=60"))
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	c := testConfig(o.addr())
	c.Log.Access = path
	c.Log.AccessHost = true
	e := startEdge(t, c)
	e.get("/before", "Host", "www.Example.com")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := e.ReopenLog(); err != nil {
		t.Fatal(err)
	}
	e.get("/after", "Host", "news.example.com")
	e.g().access.close() // writes what is pending
	old, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^www\.Example\.com 127\.0\.0\.1 - - \[.*\] "GET /before HTTP/1\.1" 200 5 `).Match(old) || strings.Count(string(old), "\n") != 1 {
		t.Errorf("the rotated file: %q", old)
	}
	if !regexp.MustCompile(`^news\.example\.com 127\.0\.0\.1 - - \[.*\] "GET /after HTTP/1\.1" 200 5 `).Match(cur) || strings.Count(string(cur), "\n") != 1 {
		t.Errorf("the reopened file: %q", cur)
	}
}

func TestMetricsExposed(t *testing.T) {
	o := startOrigin(t, fixed("hello", "Cache-Control", "max-age=60"))
	c := testConfig(o.addr())
	c.Admin.Token = testAdminToken
	e := startEdge(t, c)
	e.get("/")
	e.get("/")
	r := doURL(t, http.MethodGet, "http://"+e.AdminAddr()+"/metrics", "", "Authorization", "Bearer "+testAdminToken)
	for _, want := range []string{
		`lakka_edge_requests_total{cache="HIT"} 1`,
		`lakka_edge_requests_total{cache="MISS"} 1`,
		"lakka_edge_origin_fetches_total{backend=",
		"lakka_edge_origin_fetch_duration_seconds_bucket",
		"lakka_edge_cache_objects 1",
		"lakka_edge_cache_bytes ",
		"lakka_edge_cache_evictions_total",
		"lakka_edge_request_duration_seconds_bucket",
		"lakka_edge_backend_healthy",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if r := doURL(t, http.MethodGet, "http://"+e.AdminAddr()+"/healthz", ""); r.status != 200 {
		t.Errorf("/healthz: %d", r.status)
	}
}
