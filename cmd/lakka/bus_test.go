package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/internal/natstest"
	"github.com/lakka-cache/lakka/origin"
	"github.com/lakka-cache/lakka/origin/pgtest"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// busFleet is edges run as real binaries on one purge bus, in front of one
// origin whose pages carry a version.
type busFleet struct {
	t       *testing.T
	ns      *natstest.Server
	version atomic.Int64
	origin  *httptest.Server
	edges   []busEdgeProc
}

type busEdgeProc struct {
	node, addr, admin string
	cmd               *exec.Cmd
	logs              func() string
}

func startBusFleet(t *testing.T, nodes ...string) *busFleet {
	f := &busFleet{t: t, ns: natstest.Start(t)}
	f.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Surrogate-Key", "page"+strings.ReplaceAll(r.URL.Path, "/", "-")+" all")
		fmt.Fprintf(w, "%s v%d", r.URL.Path, f.version.Load())
	}))
	t.Cleanup(f.origin.Close)
	for i, n := range nodes {
		a, cmd, logs := startBinary(t, listening, []string{"LAKKA_ADMIN_TOKEN=" + testAdminToken}, "edge",
			"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend", strings.TrimPrefix(f.origin.URL, "http://"),
			"--cache-size", "32MiB", "--purge-bus", f.ns.URL(), "--node-id", n, "--zone", fmt.Sprintf("z%d", i%2))
		f.edges = append(f.edges, busEdgeProc{node: n, addr: a[0], admin: a[1], cmd: cmd, logs: logs})
	}
	// Every edge announced itself, ready.
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, _ := runCLI(t, "fleet", "--bus", f.ns.URL())
		if code == 0 && strings.Contains(out, fmt.Sprintf("%d live edges", len(nodes))) && strings.Count(out, " ready ") == len(nodes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet not ready after 15s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f
}

// body GETs path on edge i.
func (f *busFleet) body(i int, path string) (string, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.edges[i].addr+path, nil)
	req.Host = "news.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get("X-Cache")
}

func (f *busFleet) publisher() *bus.Bus {
	f.t.Helper()
	c := config.Default().Purge.Bus
	c.URL = f.ns.URL()
	b, err := bus.Connect(c, bus.Options{Name: "test publisher"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(b.Close)
	return b
}

// TestPurgeBusWaitAndStoppedEdge: "lakka purge --bus --wait" reports every
// live edge's lag; with one edge stopped (SIGSTOP) it exits 1 naming it.
// The stopped edge, continued after purges flowed for 5 s, applies all of
// them within 3 s, in order, and serves fresh pages.
func TestPurgeBusWaitAndStoppedEdge(t *testing.T) {
	f := startBusFleet(t, "a1", "a2", "b1")
	for i := range f.edges {
		f.body(i, "/story")
		if _, x := f.body(i, "/story"); x != "HIT" {
			t.Fatalf("edge %d: X-Cache %s, want HIT", i, x)
		}
	}
	f.version.Add(1)
	code, out, errOut := runCLI(t, "purge", "--bus", f.ns.URL(), "--tag", "page-story", "--wait", "--timeout", "5s")
	if code != 0 || strings.Count(out, "applied") != 3 || !strings.Contains(out, "lag ") {
		t.Fatalf("purge --wait: exit %d\n%s%s", code, out, errOut)
	}
	for i := range f.edges {
		if b, _ := f.body(i, "/story"); b != "/story v1" {
			t.Errorf("edge %d after purge --wait: %q, want v1", i, b)
		}
	}

	stopped := f.edges[2]
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	defer func() {
		if !continued {
			_ = stopped.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	code, out, errOut = runCLI(t, "purge", "--bus", f.ns.URL(), "--tag", "page-other", "--wait", "--timeout", "1s")
	if code != 1 || !strings.Contains(errOut, "b1") || strings.Contains(errOut, "a1") || !strings.Contains(out, "NOT APPLIED") {
		t.Fatalf("purge --wait with b1 stopped: exit %d, want 1 naming b1 only\n%s%s", code, out, errOut)
	}

	// Purges flow for 5 s while b1 is stopped.
	pub := f.publisher()
	var last bus.Published
	for i := range 50 {
		var err error
		last, err = pub.Publish(context.Background(), purge.Message{ID: fmt.Sprintf("flow-%d", i), Tags: []string{"page-story"}, IssuedAt: time.Now(), Issuer: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 25 {
			f.version.Add(1) // v2 from here
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	continued = true
	start := time.Now()
	for {
		ms, err := pub.Members(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var m bus.Member
		for _, x := range ms {
			if x.NodeID == "b1" {
				m = x
			}
		}
		if m.Applied >= last.Seq {
			t.Logf("b1 applied the %d purges issued while it was stopped %v after SIGCONT (last lag %v)", 50, time.Since(start).Round(time.Millisecond), m.Lag)
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("b1 applied up to seq %d 3s after SIGCONT, want %d", m.Applied, last.Seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, _ := f.body(2, "/story"); b != "/story v2" {
		t.Errorf("b1 after catching up: %q, want v2", b)
	}
	code, out, _ = runCLI(t, "fleet", "--bus", f.ns.URL())
	if code != 0 || !strings.Contains(out, "3 live edges") || !strings.Contains(out, "b1") {
		t.Errorf("fleet: exit %d\n%s", code, out)
	}
	for _, e := range f.edges {
		stopBinary(t, e.cmd, e.logs)
	}
}

// TestPurgeBusUnreachable: publishing without a bus exits 1 and names it.
func TestPurgeBusUnreachable(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
	code, _, errOut := runCLI(t, "purge", "--bus", url, "--tag", "x")
	if code != 1 || !strings.Contains(errOut, url) {
		t.Errorf("purge on a bus nobody runs: exit %d, stderr %q; want 1 naming %s", code, errOut, url)
	}
	code, _, errOut = runCLI(t, "purge", "--bus", "http://x", "--tag", "x")
	if code != 2 || !strings.Contains(errOut, "purge.bus.url") || !strings.Contains(errOut, "--bus") {
		t.Errorf("purge --bus http://x: exit %d, stderr %q; want 2 naming the flag", code, errOut)
	}
	code, _, errOut = runCLI(t, "purge", "--bus", url, "--tag", "two words")
	if code != 2 || !strings.Contains(errOut, "tags[0]") {
		t.Errorf("purge --bus of a tag no edge takes: exit %d, stderr %q; want 2 naming it", code, errOut)
	}
	code, _, errOut = runCLI(t, "purge", "--bus", url, "--admin", "127.0.0.1:1", "--tag", "x")
	if code != 2 || !strings.Contains(errOut, "--admin and --bus") {
		t.Errorf("purge with --admin and --bus: exit %d, stderr %q", code, errOut)
	}
}

// startBusEdge starts an in-process edge on the purge bus at url.
func startBusEdge(t *testing.T, backend, url, node string) *e2eEdge {
	t.Helper()
	c := e2eConfig(backend, "127.0.0.1:0", "127.0.0.1:0")
	c.Edge.NodeID = node
	c.Purge.Bus.URL = url
	return startEdgeConfig(t, c)
}

// TestEndToEndBusPostgres: one origin on PostgreSQL publishing its outbox
// on the purge bus, three edges consuming it. An article edit is fresh on
// all three within a second; with nats-server killed, an edit waits in the
// outbox and reaches all three once the server is back (same store).
func TestEndToEndBusPostgres(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	oc := config.Default().Origin
	oc.DatabaseURL = pgtest.URL(t)
	st, err := origin.Open(ctx, oc, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the origin stops (cleanups run last first)
	if _, err := st.Seed(ctx, 20); err != nil {
		t.Fatal(err)
	}
	a, err := st.Article(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bc := config.Default().Purge.Bus
	bc.URL = ns.URL()
	pub, err := bus.Connect(bc, bus.Options{Name: "test origin", Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	serveOrigin(t, st, ln, oc, pub)
	originURL := "http://" + ln.Addr().String()

	var pages []string
	for i := range 3 {
		e := startBusEdge(t, ln.Addr().String(), ns.URL(), fmt.Sprintf("pg%d", i))
		pages = append(pages, "http://"+e.srv.Addr()+a.URL)
	}
	for _, p := range pages {
		cached(t, p, 1)
	}
	// A second, as the fleet promises; under the race detector on a
	// loaded 2-core machine, three (it takes 30-120 ms alone).
	limit := freshWithin
	if raceEnabled {
		limit = 3 * freshWithin
	}
	start := time.Now()
	v := updateArticle(t, originURL, a.ID, a.Title+" (edited)")
	for _, p := range pages {
		servesWithin(t, p, v, start, limit)
	}

	// The bus goes away: the edit waits in the outbox.
	for _, p := range pages {
		cached(t, p, v)
	}
	ns.Kill()
	v = updateArticle(t, originURL, a.ID, a.Title+" (edited while the bus was down)")
	time.Sleep(500 * time.Millisecond)
	for _, p := range pages {
		if _, _, got := read(t, p); got != v-1 {
			t.Fatalf("%s serves version %d with the bus down, want the cached %d", p, got, v-1)
		}
	}
	ns.Restart()
	start = time.Now()
	for _, p := range pages {
		servesWithin(t, p, v, start, 10*time.Second)
	}
}

// TestBusGapAfterRetention: an edge paused (SIGSTOP) for longer than the
// stream keeps purges (purge.bus.max_age 2s here) misses purges it can
// never apply: on return it finds the gap, counts it and soft-purges
// everything it stored, so the page a missed purge concerned is fetched
// again instead of served from cache for its whole max-age.
func TestBusGapAfterRetention(t *testing.T) {
	ns := natstest.Start(t)
	var version atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Surrogate-Key", "story")
		fmt.Fprintf(w, "v%d", version.Load())
	}))
	defer o.Close()
	file := filepath.Join(t.TempDir(), "edge.yaml")
	yaml := fmt.Sprintf("purge:\n  bus:\n    url: %s\n    max_age: 2s\n    duplicate_window: 1s\n", ns.URL())
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, cmd, logs := startBinary(t, listening, []string{"LAKKA_ADMIN_TOKEN=" + testAdminToken}, "edge", "--config", file,
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend", strings.TrimPrefix(o.URL, "http://"),
		"--cache-size", "32MiB", "--node-id", "g1")
	get := func() (string, string) {
		resp, err := http.Get("http://" + a[0] + "/story")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("X-Cache")
	}
	gaps := func() string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+a[1]+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "lakka_edge_purge_bus_gaps_total ") {
				return strings.TrimPrefix(l, "lakka_edge_purge_bus_gaps_total ")
			}
		}
		return ""
	}
	get()
	if b, x := get(); b != "v0" || x != "HIT" {
		t.Fatalf("before: %q %s, want a HIT of v0", b, x)
	}
	pubCfg := config.Default().Purge.Bus
	pubCfg.URL, pubCfg.MaxAge, pubCfg.DuplicateWindow = ns.URL(), 2*time.Second, time.Second
	pub, err := bus.Connect(pubCfg, bus.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The pull request the edge had waiting expires (1 s) before anything
	// is published: the purges stay on the stream until they leave it.
	time.Sleep(1500 * time.Millisecond)
	version.Add(1)
	for i := range 3 {
		if _, err := pub.Publish(context.Background(), purge.Message{ID: fmt.Sprintf("missed-%d", i), Tags: []string{"story"}}); err != nil {
			_ = cmd.Process.Signal(syscall.SIGCONT)
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second) // the purges leave the stream
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gaps() != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("no gap counted 10s after SIGCONT (gaps %q)\n%s", gaps(), logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		b, x := get()
		if b == "v1" {
			break
		}
		if x == "HIT" || time.Now().After(deadline) {
			t.Fatalf("after the gap: %q %s, want the stale copy refreshed to v1, never a fresh HIT of v0", b, x)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs(), "purge bus gap") {
		t.Errorf("the gap was not logged:\n%s", logs())
	}
	stopBinary(t, cmd, logs)
}

// TestUpgradeHandsOverTheBus: an edge on the purge bus upgraded with
// SIGUSR2 stops consuming before the new process starts (they must never
// read one durable consumer at once); the new process takes the node id
// over, and applies every purge published after.
func TestUpgradeHandsOverTheBus(t *testing.T) {
	ns := natstest.Start(t)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") }))
	defer o.Close()
	_, cmd, logs, readPID := startUpgradable(t, strings.TrimPrefix(o.URL, "http://"), "--purge-bus", ns.URL(), "--node-id", "up1")
	eventuallyCLI(t, "up1 ready", func() bool {
		_, out, _ := runCLI(t, "fleet", "--bus", ns.URL())
		return strings.Contains(out, "1 live edges") && strings.Contains(out, " ready ")
	})
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Process.Wait(); err != nil {
		t.Fatal(err)
	}
	newPID := readPID()
	t.Cleanup(func() {
		_ = syscall.Kill(newPID, syscall.SIGTERM)
		waitGone(t, newPID)
	})
	if newPID == cmd.Process.Pid || newPID == 0 {
		t.Fatalf("pid file %d after the upgrade\n%s", newPID, logs())
	}
	pub := (&busFleet{t: t, ns: ns}).publisher()
	var last bus.Published
	for i := range 20 {
		var err error
		if last, err = pub.Publish(context.Background(), purge.Message{ID: fmt.Sprintf("after-%d", i), Tags: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	eventuallyCLI(t, "the new process applied every purge", func() bool {
		ms, err := pub.Members(context.Background())
		return err == nil && len(ms) == 1 && ms[0].Applied == last.Seq && ms[0].Ready
	})
	if strings.Contains(logs(), "in use") || !strings.Contains(logs(), "purge bus: paused for a hand-over") {
		t.Errorf("hand-over logs:\n%s", logs())
	}
}

func eventuallyCLI(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
