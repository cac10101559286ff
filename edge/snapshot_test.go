package edge

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/internal/natstest"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// snapshotConfig is a test edge's config with a snapshot file of its own.
func snapshotConfig(t *testing.T, o *origin) config.Config {
	c := testConfig(o.addr())
	c.Cache.SnapshotPath = filepath.Join(t.TempDir(), "edge.snapshot")
	c.Purge.Token = testToken
	return c
}

// warmUp fetches paths until each is a HIT.
func warmUp(t *testing.T, te *testEdge, paths ...string) {
	t.Helper()
	for _, p := range paths {
		te.get(p, "Host", newsHost)
		te.settle()
		if r := te.get(p, "Host", newsHost); r.get("X-Cache") != "HIT" {
			t.Fatalf("%s: X-Cache %q after two requests", p, r.get("X-Cache"))
		}
	}
}

// TestSnapshotRestart: a restart with cache.snapshot_path keeps the cache:
// what was a HIT before is a HIT after, its Age counting from when it was
// first stored, and the origin sees no request for it; the file is gone
// once loaded.
func TestSnapshotRestart(t *testing.T) {
	o, version := versionedOrigin(t)
	c := snapshotConfig(t, o)
	first := startEdge(t, c)
	paths := []string{"/a", "/b", "/c"}
	warmUp(t, first, paths...)
	stopEdge(t, first)
	if _, err := os.Stat(c.Cache.SnapshotPath); err != nil {
		t.Fatalf("no snapshot after SIGTERM's shutdown: %v", err)
	}
	if n := counter(first.m.snapshotObjects.WithLabelValues("write")); n != 3 {
		t.Fatalf("snapshot wrote %v objects, want 3", n)
	}
	version.Add(1) // anything fetched again would say v1
	fetched := o.hits.Load()

	second := startEdge(t, c)
	second.advance(40 * time.Second)
	for _, p := range paths {
		r := second.get(p, "Host", newsHost)
		if r.get("X-Cache") != "HIT" || r.body != p+" v0" {
			t.Fatalf("%s after the restart: X-Cache %q, body %q; want the HIT stored before", p, r.get("X-Cache"), r.body)
		}
		if age, _ := strconv.Atoi(r.get("Age")); age < 40 || age > 45 {
			t.Fatalf("%s after the restart: Age %q, want the age it had plus the 40s since", p, r.get("Age"))
		}
	}
	if got := o.hits.Load(); got != fetched {
		t.Fatalf("the origin saw %d requests after the restart, want none", got-fetched)
	}
	if _, err := os.Stat(c.Cache.SnapshotPath); !os.IsNotExist(err) {
		t.Fatalf("the loaded snapshot is still there (%v): a crash would bring it back", err)
	}
	if n := counter(second.m.snapshotObjects.WithLabelValues("load")); n != 3 {
		t.Fatalf("snapshot loaded %v objects, want 3", n)
	}
	// Purges reach loaded objects through their tags.
	r := doURL(t, http.MethodPost, "http://"+second.AdminAddr()+"/api/purge", `{"tags":["tag-b"]}`, "Authorization", "Bearer "+testToken)
	if r.status != 200 || !strings.Contains(r.body, `"purged":1`) {
		t.Fatalf("purge of a loaded object's tag: %d %s", r.status, r.body)
	}
	if r := second.get("/b", "Host", newsHost); r.body != "/b v1" {
		t.Fatalf("/b after its purge: %q", r.body)
	}
}

// TestSnapshotTornStartsEmpty: a snapshot cut short (the disk filled, the
// machine died while writing it under its own name) is refused whole with
// a message; the edge starts empty and the file is moved aside.
func TestSnapshotTornStartsEmpty(t *testing.T) {
	o, _ := versionedOrigin(t)
	c := snapshotConfig(t, o)
	first := startEdge(t, c)
	warmUp(t, first, "/a", "/b")
	stopEdge(t, first)
	b, err := os.ReadFile(c.Cache.SnapshotPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Cache.SnapshotPath, b[:len(b)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	second := startEdge(t, c)
	if n := counter(second.m.snapshotErrors.WithLabelValues("load")); n != 1 {
		t.Fatalf("snapshot load errors %v, want 1", n)
	}
	if objects, _ := second.store.Size(); objects != 0 {
		t.Fatalf("%d objects stored from a torn snapshot", objects)
	}
	if r := second.get("/a", "Host", newsHost); r.get("X-Cache") != "MISS" {
		t.Fatalf("/a after a torn snapshot: X-Cache %q", r.get("X-Cache"))
	}
	if _, err := os.Stat(c.Cache.SnapshotPath + ".refused"); err != nil {
		t.Fatalf("the torn snapshot was not moved aside: %v", err)
	}
}

// TestSnapshotBusPurgeWhileDown: with a purge bus, a purge issued while the
// edge was down is applied before the restarted edge serves anything it
// loaded; what the purge did not name is still a HIT.
func TestSnapshotBusPurgeWhileDown(t *testing.T) {
	ns := natstest.Start(t)
	o, version := versionedOrigin(t)
	c := snapshotConfig(t, o)
	c.Purge.Bus.URL = ns.URL()
	c.Edge.NodeID = "s1"
	first := startEdge(t, c)
	eventually(t, "ready", func() bool { return first.health() == 200 })
	warmUp(t, first, "/a", "/b")
	stopEdge(t, first)

	pub, err := bus.Connect(c.Purge.Bus, bus.Options{Name: "test publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// Enough purges that catching up takes a while, and the one that
	// matters last.
	for i := range 500 {
		if _, err := pub.Publish(t.Context(), purge.Message{ID: fmt.Sprintf("other-%d", i), Tags: []string{fmt.Sprintf("t%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.Publish(t.Context(), purge.Message{ID: "while-down", Tags: []string{"tag-a"}}); err != nil {
		t.Fatal(err)
	}
	version.Add(1)

	second := startEdge(t, c)
	// The very first request: the edge serves it only once caught up.
	if r := second.get("/a", "Host", newsHost); r.body != "/a v1" {
		t.Fatalf("/a, purged while the edge was down, answered %q (X-Cache %s) after the restart", r.body, r.get("X-Cache"))
	}
	if r := second.get("/b", "Host", newsHost); r.get("X-Cache") != "HIT" || r.body != "/b v0" {
		t.Fatalf("/b after the restart: X-Cache %q, body %q; want the HIT loaded", r.get("X-Cache"), r.body)
	}
	if st := second.bus.consumer().Status(); st.Gaps != 0 || st.Applied < 501 {
		t.Fatalf("consumer status %+v: want every purge applied, no gap", st)
	}
}

// TestSnapshotWithoutPositionIsStale: a snapshot written without a bus
// position, loaded by an edge with a purge bus, cannot know which purges
// it missed: everything loaded is served stale (revalidated), not fresh.
func TestSnapshotWithoutPositionIsStale(t *testing.T) {
	ns := natstest.Start(t)
	o, version := versionedOrigin(t)
	c := snapshotConfig(t, o)
	first := startEdge(t, c) // no bus
	warmUp(t, first, "/a")
	stopEdge(t, first)
	version.Add(1)
	c.Purge.Bus.URL = ns.URL()
	c.Edge.NodeID = "s2"
	second := startEdge(t, c)
	second.get("/a", "Host", newsHost) // stale: answered, refreshed behind
	second.settle()
	eventually(t, "/a refreshed", func() bool { return second.get("/a", "Host", newsHost).body == "/a v1" })
	if n := counter(second.m.busGaps); n < 1 {
		t.Fatalf("bus gaps %v, want the loaded objects counted as one", n)
	}
}

// TestSnapshotPurgesHeldDuringHandOver: while an upgrade hands the cache
// over, the purge API and PURGE answer 503 with Retry-After, and serve
// again when the hand-over is called off.
func TestSnapshotPurgesHeldDuringHandOver(t *testing.T) {
	o, _ := versionedOrigin(t)
	c := snapshotConfig(t, o)
	c.Purge.AllowNetworks = []string{"127.0.0.1/32"}
	te := startEdge(t, c)
	warmUp(t, te, "/a")
	te.HoldPurges(true)
	if err := te.WriteSnapshot(); err != nil {
		t.Fatal(err)
	}
	api := func() response {
		return doURL(t, http.MethodPost, "http://"+te.AdminAddr()+"/api/purge", `{"tags":["tag-a"]}`, "Authorization", "Bearer "+testToken)
	}
	if r := api(); r.status != 503 || r.get("Retry-After") != "1" {
		t.Fatalf("purge API during a hand-over: %d, Retry-After %q", r.status, r.get("Retry-After"))
	}
	if r := te.do("PURGE", "/a", "Host", newsHost); r.status != 503 || r.get("Retry-After") != "1" {
		t.Fatalf("PURGE during a hand-over: %d, Retry-After %q", r.status, r.get("Retry-After"))
	}
	if r := te.get("/a", "Host", newsHost); r.get("X-Cache") != "HIT" {
		t.Fatalf("/a purged during the hand-over: X-Cache %q", r.get("X-Cache"))
	}
	// The upgrade failed: the file goes, purges are served again.
	te.RemoveSnapshot()
	te.HoldPurges(false)
	if _, err := os.Stat(c.Cache.SnapshotPath); !os.IsNotExist(err) {
		t.Fatalf("snapshot still there after the failed hand-over: %v", err)
	}
	if r := api(); r.status != 200 {
		t.Fatalf("purge API after the hand-over was called off: %d %s", r.status, r.body)
	}
	if n := counter(te.m.purgeRefusals.WithLabelValues("handover")); n != 2 {
		t.Fatalf("handover refusals %v, want 2", n)
	}
}

// TestSnapshotPathChecked: an edge refuses at start a snapshot path it
// could not write at the end, naming the key.
func TestSnapshotPathChecked(t *testing.T) {
	dir := t.TempDir()
	for path, want := range map[string]string{
		filepath.Join(dir, "missing", "edge.snapshot"): "cache.snapshot_path: the directory " + filepath.Join(dir, "missing") + " does not exist",
		dir: "cache.snapshot_path: " + dir + " is a directory",
	} {
		c := testConfig("127.0.0.1:1")
		c.Cache.SnapshotPath = path
		s, err := New(c, discardLogger(), newTestRegistry())
		if err == nil {
			s.store.Close()
			t.Fatalf("snapshot_path %s accepted", path)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("snapshot_path %s: %v, want %q", path, err, want)
		}
	}
}
