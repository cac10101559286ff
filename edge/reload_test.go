package edge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// TestReload: a reload swaps routes, cache defaults, tokens and backends
// for new requests while the cache stays (a HIT before is a HIT after);
// an invalid configuration changes nothing and is counted; keys that need
// new sockets or a new store keep their running values and are reported.
func TestReload(t *testing.T) {
	a := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprint(w, "a", r.URL.Path)
	})
	b := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprint(w, "b", r.URL.Path)
	})
	c := testConfig(a.addr())
	e := startEdge(t, c)
	e.get("/kept")
	if r := e.get("/kept"); r.get("X-Cache") != "HIT" || r.body != "a/kept" {
		t.Fatalf("before: %s %q", r.get("X-Cache"), r.body)
	}

	next := c
	next.Backends.Servers = []config.Backend{{Address: b.addr()}}
	next.Routes = []config.Route{{Name: "live", PathPrefix: "/live/", Pass: true}}
	next.Admin.Token = testAdminToken
	next.Edge.Listen = "127.0.0.1:1" // needs new sockets
	next.Cache.SizeBytes = 2 * c.Cache.SizeBytes
	got, err := e.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"edge.listen", "cache.size_bytes"}; !slices.Equal(got.NeedsUpgrade, want) {
		t.Errorf("needs upgrade %v, want %v", got.NeedsUpgrade, want)
	}
	if r := e.get("/kept"); r.get("X-Cache") != "HIT" || r.body != "a/kept" {
		t.Errorf("after the reload: %s %q, want the stored HIT", r.get("X-Cache"), r.body)
	}
	if r := e.get("/new"); r.body != "b/new" {
		t.Errorf("a miss after the reload: %q, want it from the new backend", r.body)
	}
	e.get("/live/x")
	if r := e.get("/live/x"); r.get("X-Cache") != "PASS" {
		t.Errorf("the new pass route: X-Cache %s, want PASS", r.get("X-Cache"))
	}
	if r := doURL(t, http.MethodGet, "http://"+e.AdminAddr()+"/api/stats", "", "Authorization", "Bearer "+testAdminToken); r.status != 200 || !strings.Contains(r.body, `"needs_upgrade":["edge.listen","cache.size_bytes"]`) {
		t.Errorf("stats with the new admin token: %d %s", r.status, r.body)
	}
	if e.Addr() == "127.0.0.1:1" || e.cfg.Cache.SizeBytes != c.Cache.SizeBytes {
		t.Error("a key that needs an upgrade was applied")
	}

	bad := next
	bad.Routes = append(bad.Routes, config.Route{Name: "bad", PathPrefix: "no-slash"})
	if _, err := e.Reload(bad); err == nil || !strings.Contains(err.Error(), "routes[1].path_prefix") {
		t.Fatalf("invalid reload: %v, want the key path", err)
	}
	if r := e.get("/live/x"); r.get("X-Cache") != "PASS" {
		t.Errorf("after an invalid reload: X-Cache %s, want the running config's PASS", r.get("X-Cache"))
	}
	if got := counter(e.m.reloads.WithLabelValues("invalid")); got != 1 {
		t.Errorf("invalid reloads counted %v", got)
	}
	if st := e.lastReload.Load(); st == nil || st.OK || !strings.Contains(st.Error, "routes[1]") {
		t.Errorf("last reload %+v, want the failure", st)
	}
}

// TestReloadUnderLoad: requests keep being answered while reloads swap
// backends back and forth; none fails.
func TestReloadUnderLoad(t *testing.T) {
	a := startOrigin(t, fixed("a", "Cache-Control", "no-store"))
	b := startOrigin(t, fixed("b", "Cache-Control", "no-store"))
	c := testConfig(a.addr())
	e := startEdge(t, c)
	stop := make(chan struct{})
	done := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				r := e.get("/x")
				if r.status != 200 || (r.body != "a" && r.body != "b") {
					done <- fmt.Errorf("status %d body %q", r.status, r.body)
					return
				}
			}
		}()
	}
	for i := range 20 {
		next := c
		if i%2 == 0 {
			next.Backends.Servers = []config.Backend{{Address: b.addr()}}
		}
		if _, err := e.Reload(next); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestReloadRulesAndPools: a reload swaps the rules and the pools; the
// cache and the match counters stay; rules that do not compile change
// nothing and are reported with the rule and field.
func TestReloadRulesAndPools(t *testing.T) {
	a := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprint(w, "a", r.URL.Path)
	})
	b := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprint(w, "b", r.URL.Path)
	})
	c := testConfig(a.addr())
	e := startEdge(t, c)
	e.get("/x")
	e.settle()

	next := c
	next.Pools = map[string]config.Pool{"canary": {Servers: []config.Backend{{Address: b.addr()}}}}
	next.Rules = []config.Rule{
		{Name: "health", When: config.Condition{Path: []string{"/health"}}, Do: config.Actions{Synthetic: &config.Synthetic{Status: 200, Body: "up"}}},
		{Name: "canary", When: config.Condition{PathPrefix: []string{"/c/"}}, Do: config.Actions{Pool: "canary"}},
	}
	if _, err := e.Reload(next); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/health"); r.body != "up" || r.get("X-Cache") != "SYNTH" {
		t.Errorf("/health after the reload: %q %s", r.body, r.get("X-Cache"))
	}
	if r := e.get("/c/1"); r.body != "b/c/1" {
		t.Errorf("/c/1 after the reload: %q, want the canary pool's", r.body)
	}
	if r := e.get("/x"); r.get("X-Cache") != "HIT" {
		t.Errorf("/x after the reload: %s, want the stored HIT", r.get("X-Cache"))
	}
	bad := next
	bad.Rules = append([]config.Rule{}, next.Rules...)
	bad.Rules[1].Do.Pool = "blue"
	_, err := e.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), `rules[1] (canary).do.pool: no pool "blue"`) {
		t.Fatalf("reload with a bad rule: %v", err)
	}
	if r := e.get("/health"); r.body != "up" {
		t.Errorf("/health after the refused reload: %q", r.body)
	}
	if n := counter(e.m.ruleMatches.WithLabelValues("health")); n != 2 {
		t.Errorf("health matched %v times, want 2", n)
	}
}
