package edge

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// switchable is an origin whose behaviour the test changes: up, failing
// with a status, or hanging.
type switchable struct {
	*origin
	mode    atomic.Int64 // 0 up, >0 answer that status, -1 hang
	version atomic.Int64
	inm     atomic.Value // last If-None-Match seen
	hang    chan struct{}
}

func startSwitchable(t *testing.T, cacheControl string) *switchable {
	s := &switchable{hang: make(chan struct{})}
	s.inm.Store("")
	s.origin = startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		s.inm.Store(r.Header.Get("If-None-Match"))
		switch m := s.mode.Load(); {
		case m > 0:
			w.WriteHeader(int(m))
			fmt.Fprint(w, "origin error")
			return
		case m < 0:
			<-s.hang
			return
		}
		etag := fmt.Sprintf(`"v%d"`, s.version.Load())
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d", s.version.Load())
	})
	t.Cleanup(func() { close(s.hang) })
	return s
}

func TestGraceAndKeepWindows(t *testing.T) {
	// fresh 10 s, grace 20 s, stale-if-error 60 s (keep 40 s after grace).
	o := startSwitchable(t, "max-age=10, stale-while-revalidate=20, stale-if-error=60")
	c := testConfig(o.addr())
	c.Backends.FirstByteTimeout = 300 * time.Millisecond
	e := startEdge(t, c)
	e.get("/")
	f := func(at time.Duration, mode int64, wantCache, wantBody string, wantStatus int) {
		t.Helper()
		o.mode.Store(mode)
		r := e.get("/")
		if r.get("X-Cache") != wantCache || r.body != wantBody || r.status != wantStatus {
			t.Errorf("at %s (origin mode %d): %d %s %q, want %d %s %q (Cache-Status %q)",
				at, mode, r.status, r.get("X-Cache"), r.body, wantStatus, wantCache, wantBody, r.get("Cache-Status"))
		}
	}
	e.advance(5 * time.Second)
	f(5*time.Second, 0, "HIT", "v0", 200)
	// In grace: stale at once, whatever the origin does.
	e.advance(10 * time.Second)
	f(15*time.Second, 503, "STALE", "v0", 200)
	f(15*time.Second, -1, "STALE", "v0", 200)
	// In keep: the origin is asked; when it fails, the stale copy is served.
	e.advance(20 * time.Second)
	f(35*time.Second, 500, "STALE", "v0", 200)
	f(35*time.Second, 503, "STALE", "v0", 200)
	f(35*time.Second, -1, "STALE", "v0", 200) // timeout
	// That answer came after cache.stale_wait; the fetch went on until its
	// first-byte timeout.
	eventually(t, "the hung fetch to time out", func() bool {
		b := e.g().dir.Snapshots(time.Now())[0]
		return b.Fetching == 0 && b.Queued == 0
	})
	// Past keep: nothing to serve; the origin's error comes through.
	e.advance(40 * time.Second)
	f(75*time.Second, 503, "MISS", "origin error", 503)
}

func TestStaleWhenOriginUnreachable(t *testing.T) {
	o := startSwitchable(t, "max-age=10, stale-if-error=3600")
	c := testConfig(o.addr())
	c.Cache.Grace = 0
	e := startEdge(t, c)
	e.get("/")
	o.Close() // gone: connections are refused
	e.advance(time.Minute)
	r := e.get("/")
	if r.status != 200 || r.body != "v0" || r.get("X-Cache") != "STALE" {
		t.Errorf("origin down: %d %q %q, want the stale copy", r.status, r.body, r.get("X-Cache"))
	}
	if r := e.get("/other"); r.status != http.StatusBadGateway {
		t.Errorf("origin down, nothing stale: %d, want 502", r.status)
	}
}

func TestOneBackgroundRefreshForManyStaleReaders(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if n > 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", n)
	})
	e := startEdge(t, testConfig(o.addr()))
	e.get("/front")
	e.advance(20 * time.Second)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get("/front"); r.body != "v1" || r.get("X-Cache") != "STALE" {
				t.Errorf("stale reader: %q %q", r.body, r.get("X-Cache"))
			}
		}()
	}
	wg.Wait()
	close(release)
	eventually(t, "the refreshed object", func() bool { return e.get("/front").body == "v2" })
	if n := hits.Load(); n != 2 {
		t.Errorf("origin fetches = %d, want 2 (one refresh for 50 stale readers)", n)
	}
	if r := e.get("/front"); r.get("X-Cache") != "HIT" {
		t.Errorf("after the refresh: %q, want HIT", r.get("X-Cache"))
	}
}

func TestFailedRefreshKeepsStaleAndRetriesLater(t *testing.T) {
	o := startSwitchable(t, "max-age=10, stale-while-revalidate=600")
	e := startEdge(t, testConfig(o.addr()))
	e.get("/")
	e.advance(20 * time.Second)
	o.mode.Store(503)
	before := o.hits.Load()
	for range 20 {
		if r := e.get("/"); r.body != "v0" || r.get("X-Cache") != "STALE" {
			t.Fatalf("with refreshes failing: %q %q", r.body, r.get("X-Cache"))
		}
	}
	eventually(t, "the failed refresh", func() bool { return o.hits.Load() > before })
	if n := o.hits.Load() - before; n > 1 {
		t.Errorf("%d refreshes within the retry interval, want 1 (no storm)", n)
	}
	// After the retry interval, the next reader triggers another attempt.
	o.mode.Store(0)
	o.version.Store(1)
	e.advance(2 * refreshRetry)
	e.get("/")
	eventually(t, "the retried refresh", func() bool { return e.get("/").body == "v1" })
}

func TestConditionalRefresh(t *testing.T) {
	o := startSwitchable(t, "max-age=10")
	c := testConfig(o.addr())
	c.Cache.Grace = 0
	c.Cache.Keep = time.Hour
	e := startEdge(t, c)
	e.get("/")
	before := o.hits.Load()
	e.advance(30 * time.Second)
	r := e.get("/")
	if r.body != "v0" || r.get("X-Cache") != "REVALIDATED" {
		t.Errorf("revalidation: %q %q (%s), want v0 REVALIDATED", r.body, r.get("X-Cache"), r.get("Cache-Status"))
	}
	if got := o.inm.Load(); got != `"v0"` {
		t.Errorf("origin saw If-None-Match %q, want \"v0\"", got)
	}
	if o.hits.Load() != before+1 {
		t.Errorf("origin hits %d, want %d", o.hits.Load(), before+1)
	}
	// The 304 made it fresh again.
	if r := e.get("/"); r.get("X-Cache") != "HIT" || r.get("Age") != "0" {
		t.Errorf("after the 304: %q Age %q, want HIT 0", r.get("X-Cache"), r.get("Age"))
	}
	// A changed object comes back whole.
	o.version.Store(1)
	e.advance(30 * time.Second)
	if r := e.get("/"); r.body != "v1" {
		t.Errorf("after a change: %q", r.body)
	}
}

func TestNoCacheRevalidatedOnEveryUse(t *testing.T) {
	o := startSwitchable(t, "no-cache")
	e := startEdge(t, testConfig(o.addr()))
	e.get("/")
	for i := range 3 {
		r := e.get("/")
		if r.body != "v0" || r.get("X-Cache") != "REVALIDATED" {
			t.Errorf("use %d: %q %q, want v0 REVALIDATED", i, r.body, r.get("X-Cache"))
		}
		if got := o.inm.Load(); got != `"v0"` {
			t.Errorf("use %d: origin saw If-None-Match %q", i, got)
		}
	}
	if n := o.hits.Load(); n != 4 {
		t.Errorf("origin hits = %d, want 4 (every use revalidated)", n)
	}
}

// healthOrigin answers /healthz with the status in health, and pages with
// its name.
func healthOrigin(t *testing.T, name string) (*origin, *atomic.Int64) {
	var health atomic.Int64
	health.Store(200)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(int(health.Load()))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, name)
	})
	return o, &health
}

func probeConfig(backends ...string) config.Config {
	c := testConfig(backends...)
	c.Backends.Probe.Enabled = true
	c.Backends.Probe.Interval = 20 * time.Millisecond
	c.Backends.Probe.Timeout = time.Second
	c.Backends.Probe.Window = 3
	c.Backends.Probe.Threshold = 2
	c.Backends.Probe.Initial = 2
	return c
}

func (te *testEdge) backendHealthy(i int) bool {
	return te.g().dir.Snapshots(time.Now())[i].Healthy
}

func TestProbesTakeBackendOutAndBackIn(t *testing.T) {
	a, _ := healthOrigin(t, "a")
	b, bHealth := healthOrigin(t, "b")
	e := startEdge(t, probeConfig(a.addr(), b.addr()))
	seen := func() map[string]int {
		m := map[string]int{}
		for range 10 {
			m[e.get("/x").body]++
		}
		return m
	}
	if m := seen(); m["a"] == 0 || m["b"] == 0 {
		t.Errorf("both healthy: %v, want round robin", m)
	}
	bHealth.Store(500)
	eventually(t, "b out of rotation", func() bool { return !e.backendHealthy(1) })
	if m := seen(); m["b"] != 0 {
		t.Errorf("b sick: %v, want only a", m)
	}
	bHealth.Store(200)
	eventually(t, "b back in rotation", func() bool { return e.backendHealthy(1) })
	if m := seen(); m["b"] == 0 {
		t.Errorf("b healthy again: %v, want b too", m)
	}
	// The state is in the metrics.
	if v := counter(e.m.backends.Healthy.WithLabelValues(b.addr())); v != 1 {
		t.Errorf("lakka_edge_backend_healthy{backend=b} = %v", v)
	}
}

func TestAllBackendsSick(t *testing.T) {
	a, aHealth := healthOrigin(t, "a")
	var version atomic.Int64
	pages := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(int(aHealth.Load()))
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=3600")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	_ = a
	c := probeConfig(pages.addr())
	c.Cache.Grace = 0
	e := startEdge(t, c)
	e.get("/cached")
	aHealth.Store(503)
	eventually(t, "the backend out of rotation", func() bool { return !e.backendHealthy(0) })
	e.advance(time.Minute)
	before := pages.hits.Load()
	if r := e.get("/cached"); r.body != "v0" || r.get("X-Cache") != "STALE" {
		t.Errorf("all sick, object in keep: %q %q, want stale", r.body, r.get("X-Cache"))
	}
	start := time.Now()
	if r := e.get("/never-seen"); r.status != http.StatusServiceUnavailable {
		t.Errorf("all sick, nothing stale: %d, want 503", r.status)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("503 took %s", d)
	}
	if n := pages.hits.Load() - before; n > 20 {
		t.Errorf("a sick backend got %d page requests", n)
	}
}

func TestPassiveHealth(t *testing.T) {
	good, _ := healthOrigin(t, "good")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The dead backend hangs up on every connection without a word. The
	// port stays bound, so no other test's server can take it over (a
	// closed port could be reused, and this test flaked that way once).
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	dead := ln.Addr().String()
	c := testConfig(dead, good.addr())
	c.Backends.Passive.Failures = 2
	c.Backends.Passive.Cooldown = time.Hour
	e := startEdge(t, c)
	failures := 0
	for range 10 {
		if r := e.get("/p"); r.status != 200 {
			failures++
		}
	}
	if failures > 2 {
		t.Errorf("%d requests failed, want at most 2 before the dead backend is taken out", failures)
	}
	if e.backendHealthy(0) {
		t.Errorf("dead backend still in rotation")
	}
}

func TestFallbackDirector(t *testing.T) {
	primary, pHealth := healthOrigin(t, "primary")
	secondary, _ := healthOrigin(t, "secondary")
	c := probeConfig(primary.addr(), secondary.addr())
	c.Backends.Director = "fallback"
	e := startEdge(t, c)
	for range 5 {
		if r := e.get("/f"); r.body != "primary" {
			t.Errorf("primary healthy: got %q", r.body)
		}
	}
	pHealth.Store(500)
	eventually(t, "primary out", func() bool { return !e.backendHealthy(0) })
	if r := e.get("/f"); r.body != "secondary" {
		t.Errorf("primary sick: got %q, want secondary", r.body)
	}
}

func TestFetchLimitPrefersStale(t *testing.T) {
	gate := make(chan struct{})
	var n atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			<-gate
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=3600")
		fmt.Fprint(w, r.URL.Path)
	})
	c := testConfig(o.addr())
	c.Cache.Grace = 0
	c.Backends.MaxFetches = 1
	c.Backends.QueueTimeout = 50 * time.Millisecond
	e := startEdge(t, c)
	e.get("/kept")
	e.advance(time.Minute)
	// One slow fetch holds the only slot.
	done := make(chan response, 1)
	go func() { done <- e.get("/slow") }()
	eventually(t, "the slow fetch", func() bool { return n.Load() == 2 })
	if r := e.get("/kept"); r.body != "/kept" || r.get("X-Cache") != "STALE" {
		t.Errorf("at the fetch limit with a stale copy: %q %q", r.body, r.get("X-Cache"))
	}
	if r := e.get("/new"); r.status != http.StatusServiceUnavailable {
		t.Errorf("at the fetch limit, nothing stale: %d, want 503", r.status)
	}
	close(gate)
	<-done
}

// TestReadyzShowsTheOriginSide: /readyz (behind the admin token) reports
// the backends' states and answers 503 only when no backend's probes pass,
// while /healthz keeps answering 200: an edge with stale copies still
// serves, and a load balancer must not take it out for its origin.
func TestReadyzShowsTheOriginSide(t *testing.T) {
	a, aHealth := healthOrigin(t, "a")
	b, bHealth := healthOrigin(t, "b")
	c := probeConfig(a.addr(), b.addr())
	c.Admin.Token = testAdminToken
	e := startEdge(t, c)
	admin := "http://" + e.AdminAddr()
	auth := []string{"Authorization", "Bearer " + testAdminToken}
	ready := func() (int, Readiness) {
		t.Helper()
		r := doURL(t, http.MethodGet, admin+"/readyz", "", auth...)
		var out Readiness
		if err := json.Unmarshal([]byte(r.body), &out); err != nil {
			t.Fatalf("/readyz: %d %q: %v", r.status, r.body, err)
		}
		return r.status, out
	}
	if r := doURL(t, http.MethodGet, admin+"/readyz", ""); r.status != http.StatusUnauthorized {
		t.Errorf("/readyz without the token: %d, want 401", r.status)
	}
	if st, out := ready(); st != 200 || out.Origin != "up" || out.InRotation != 2 || len(out.Backends) != 2 || !out.Serving {
		t.Errorf("both up: %d %+v, want 200, up, 2 in rotation", st, out)
	}
	bHealth.Store(500)
	eventually(t, "b out of rotation", func() bool { return !e.backendHealthy(1) })
	if st, out := ready(); st != 200 || out.Origin != "degraded" || out.InRotation != 1 || out.Backends[1].Healthy {
		t.Errorf("b sick: %d %+v, want 200, degraded, 1 in rotation", st, out)
	}
	aHealth.Store(500)
	eventually(t, "a out of rotation", func() bool { return !e.backendHealthy(0) })
	if st, out := ready(); st != http.StatusServiceUnavailable || out.Origin != "down" || out.InRotation != 0 {
		t.Errorf("both sick: %d %+v, want 503, down", st, out)
	}
	if r := doURL(t, http.MethodGet, admin+"/healthz", ""); r.status != 200 {
		t.Errorf("/healthz with every origin down: %d, want 200 (the edge still serves)", r.status)
	}
}
