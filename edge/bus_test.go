package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/internal/natstest"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// versionedOrigin serves every path tagged "tag-PATH" and "all", with a
// body that names the path and the version, which bump raises.
func versionedOrigin(t *testing.T) (*origin, *atomic.Int64) {
	var version atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Surrogate-Key", "tag-"+strings.Trim(r.URL.Path, "/")+" all")
		fmt.Fprintf(w, "%s v%d", r.URL.Path, version.Load())
	})
	return o, &version
}

// newsHost is the Host every test request sends: the edges of a fleet
// see the same host, whatever their addresses.
const newsHost = "news.example"

func busEdge(t *testing.T, o *origin, url, node string) *testEdge {
	t.Helper()
	c := testConfig(o.addr())
	c.Purge.Bus.URL = url
	c.Edge.NodeID = node
	c.Edge.Zone = "z" + node[len(node)-1:]
	c.Admin.Token = testAdminToken
	c.Purge.Token = testToken
	return startEdge(t, c)
}

func (te *testEdge) health() int {
	te.t.Helper()
	return doURL(te.t, http.MethodGet, "http://"+te.AdminAddr()+"/healthz", "").status
}

// waitBody waits until path on te answers want.
func (te *testEdge) waitBody(path, want string, within time.Duration) time.Duration {
	te.t.Helper()
	start := time.Now()
	for {
		r := te.get(path, "Host", newsHost)
		if r.body == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			te.t.Fatalf("%s still answers %q (X-Cache %s) after %v, want %q", path, r.body, r.get("X-Cache"), within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBusPurgeReachesEveryEdge: three edges on one bus. A purge published
// on the bus, one sent to a single edge's purge API and a PURGE sent to a
// single edge all reach all three within a second; each edge announces
// itself with the last purge applied.
func TestBusPurgeReachesEveryEdge(t *testing.T) {
	ns := natstest.Start(t)
	o, version := versionedOrigin(t)
	edges := []*testEdge{busEdge(t, o, ns.URL(), "e1"), busEdge(t, o, ns.URL(), "e2"), busEdge(t, o, ns.URL(), "e3")}
	for _, e := range edges {
		eventually(t, "edge ready", func() bool { return e.health() == 200 })
	}
	pubCfg := config.Default().Purge.Bus
	pubCfg.URL = ns.URL()
	pub, err := bus.Connect(pubCfg, bus.Options{Name: "test publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	warm := func(path string) {
		t.Helper()
		for _, e := range edges {
			e.get(path, "Host", newsHost)
			if r := e.get(path, "Host", newsHost); r.get("X-Cache") != "HIT" {
				t.Fatalf("%s on %s: X-Cache %s, want HIT", path, e.Addr(), r.get("X-Cache"))
			}
		}
	}
	fresh := func(path string) {
		t.Helper()
		want := fmt.Sprintf("%s v%d", path, version.Load())
		for _, e := range edges {
			if d := e.waitBody(path, want, time.Second); d > time.Second {
				t.Errorf("%s fresh on %s after %v", path, e.Addr(), d)
			}
		}
	}

	// Published on the bus by someone else (an origin, lakka purge).
	warm("/a")
	version.Add(1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	p, err := pub.Publish(ctx, purge.Message{ID: bus.NewID("test"), Tags: []string{"tag-a"}, IssuedAt: time.Now(), Issuer: "test"})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	fresh("/a")

	// Sent to one edge's purge API: applied there, published for all.
	warm("/b")
	version.Add(1)
	r := doURL(t, http.MethodPost, "http://"+edges[0].AdminAddr()+purge.APIPath, `{"tags":["tag-b"]}`,
		"Authorization", "Bearer "+testToken, "Content-Type", "application/json")
	var res purge.Result
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || r.status != 200 || res.Bus != "published" || res.Purged != 1 {
		t.Fatalf("purge API: %d %s, want 200, purged 1, bus published", r.status, r.body)
	}
	fresh("/b")

	// PURGE on one edge: every edge purges the URL.
	warm("/c")
	version.Add(1)
	r = edges[1].do("PURGE", "/c", "Host", newsHost)
	if r.status != 200 || r.get("X-Purge-Bus") != "published" {
		t.Fatalf("PURGE: %d %s (X-Purge-Bus %q)", r.status, r.body, r.get("X-Purge-Bus"))
	}
	fresh("/c")

	// Every edge announced itself and applied at least the first purge.
	ms, err := pub.Members(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bus.Member{}
	for _, m := range ms {
		if m.Live(time.Now()) {
			live[m.NodeID] = m
		}
	}
	for i, e := range edges {
		m, ok := live[fmt.Sprintf("e%d", i+1)]
		if !ok || m.Admin != e.AdminAddr() || m.Applied < p.Seq || !m.Ready || m.Zone != fmt.Sprintf("z%d", i+1) {
			t.Errorf("member e%d: %+v (found %v), want live, ready, admin %s, applied >= %d", i+1, m, ok, e.AdminAddr(), p.Seq)
		}
	}
	if got := counter(edges[0].m.busPublishes.WithLabelValues("ok")); got != 1 {
		t.Errorf("publishes counted on e1: %v, want 1", got)
	}
	if n := testCount(t, edges[2].m.busLag); n < 3 {
		t.Errorf("lag observations on e3: %d, want at least 3", n)
	}
}

// TestBusEdgeNotReadyUntilCaughtUp: an edge that starts while the stream
// holds purges for it it has not applied (its consumer's position from
// before) answers /healthz 503 until it applied them.
func TestBusEdgeNotReadyUntilCaughtUp(t *testing.T) {
	ns := natstest.Start(t)
	o, _ := versionedOrigin(t)
	c := testConfig(o.addr())
	c.Purge.Bus.URL = ns.URL()
	c.Edge.NodeID = "e1"
	first := startEdge(t, c)
	eventually(t, "first ready", func() bool { return first.health() == 200 })
	stopEdge(t, first)

	pubCfg := c.Purge.Bus
	pub, err := bus.Connect(pubCfg, bus.Options{Name: "test publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range 3000 {
		if _, err := pub.Publish(t.Context(), purge.Message{ID: fmt.Sprintf("backlog-%d", i), Tags: []string{fmt.Sprintf("t%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// A purge API is slower than the bus: seeing 503 at least once is
	// likely, not certain; what is certain is that ready means caught up.
	second := startEdge(t, c)
	deadline := time.Now().Add(5 * time.Second)
	for second.health() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 5s after start with a backlog of 3000 purges: %+v", second.bus.consumer().Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := second.bus.consumer().Status(); st.Applied < 3000 || !st.CaughtUp {
		t.Fatalf("ready with status %+v: want every purge of the backlog applied", st)
	}
}

// TestBusDownCostsNoRequest: with nats-server killed, the edge keeps
// serving hits and misses; purges sent to it apply locally and say the bus
// failed; when the server returns, the edge catches up with what was
// published meanwhile by others.
func TestBusDownCostsNoRequest(t *testing.T) {
	ns := natstest.Start(t)
	o, version := versionedOrigin(t)
	e := busEdge(t, o, ns.URL(), "e1")
	eventually(t, "ready", func() bool { return e.health() == 200 })
	e.get("/a", "Host", newsHost)
	ns.Kill()
	for i := range 20 {
		if r := e.get(fmt.Sprintf("/x%d", i)); r.status != 200 {
			t.Fatalf("miss with the bus down: %d", r.status)
		}
		if r := e.get("/a", "Host", newsHost); r.status != 200 || r.get("X-Cache") != "HIT" {
			t.Fatalf("hit with the bus down: %d %s", r.status, r.get("X-Cache"))
		}
	}
	r := doURL(t, http.MethodPost, "http://"+e.AdminAddr()+purge.APIPath, `{"tags":["tag-x0"]}`,
		"Authorization", "Bearer "+testToken, "Content-Type", "application/json")
	if r.status != 200 || !strings.Contains(r.body, `"bus":"failed`) || !strings.Contains(r.body, `"purged":1`) {
		t.Errorf("purge API with the bus down: %d %s, want applied here and bus failed", r.status, r.body)
	}
	if e.health() != 200 {
		t.Errorf("/healthz with the bus down: %d, want 200 (the edge serves)", e.health())
	}
	ns.Restart()
	version.Add(1)
	pubCfg := e.cfg.Purge.Bus
	pub, err := bus.Connect(pubCfg, bus.Options{Name: "test publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.Publish(t.Context(), purge.Message{ID: "after", Tags: []string{"tag-a"}}); err != nil {
		t.Fatal(err)
	}
	e.waitBody("/a", fmt.Sprintf("/a v%d", version.Load()), 10*time.Second)
}

// TestBusNodeIDInUse: a second edge with the node id of a live one does
// not start (they would split one consumer's purges between them).
func TestBusNodeIDInUse(t *testing.T) {
	ns := natstest.Start(t)
	o, _ := versionedOrigin(t)
	first := busEdge(t, o, ns.URL(), "e1")
	eventually(t, "ready", func() bool { return first.health() == 200 })
	pubCfg := config.Default().Purge.Bus
	pubCfg.URL = ns.URL()
	pub, err := bus.Connect(pubCfg, bus.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	eventually(t, "e1 announced", func() bool {
		ms, _ := pub.Members(t.Context())
		return len(ms) == 1
	})
	c := testConfig(o.addr())
	c.Purge.Bus.URL = ns.URL()
	c.Edge.NodeID = "e1"
	s := mustNew(t, c, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), seams{})
	defer s.closeBackground()
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), `edge.node_id "e1" is in use`) {
		t.Fatalf("Listen with a node id in use: %v", err)
	}
}

// TestBusUnreachableAtStart: an edge that starts while the bus is down
// serves (after purge.bus.catch_up_timeout), and what it stored before
// its consumer existed is marked stale when the bus comes: purges issued
// meanwhile never reached it.
func TestBusUnreachableAtStart(t *testing.T) {
	ns := natstest.Start(t)
	ns.Kill()
	o, version := versionedOrigin(t)
	c := testConfig(o.addr())
	c.Purge.Bus.URL = ns.URL()
	c.Purge.Bus.CatchUpTimeout = 500 * time.Millisecond
	c.Edge.NodeID = "late"
	e := startEdge(t, c)
	eventually(t, "ready without the bus", func() bool { return e.health() == 200 })
	e.get("/a", "Host", newsHost)
	if r := e.get("/a", "Host", newsHost); r.get("X-Cache") != "HIT" {
		t.Fatalf("X-Cache %s, want HIT", r.get("X-Cache"))
	}
	if got := counter(e.m.busCatchUpTimeouts); got != 1 {
		t.Errorf("catch-up timeouts %v, want 1", got)
	}
	version.Add(1)
	ns.Restart()
	eventually(t, "stored objects marked stale", func() bool { return counter(e.m.busGaps) == 1 })
	e.waitBody("/a", "/a v1", 5*time.Second)
}

// TestBusRestartWhilePurgesFlow: an edge restarted (same node id) while a
// publisher keeps publishing: the new process resumes where the old one
// acknowledged, finds no gap, and applies up to the last purge.
func TestBusRestartWhilePurgesFlow(t *testing.T) {
	ns := natstest.Start(t)
	o, _ := versionedOrigin(t)
	c := testConfig(o.addr())
	c.Purge.Bus.URL = ns.URL()
	c.Edge.NodeID = "r1"
	first := startEdge(t, c)
	eventually(t, "first ready", func() bool { return first.health() == 200 })
	pub, err := bus.Connect(c.Purge.Bus, bus.Options{Name: "test publisher"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	stop := make(chan struct{})
	last := make(chan uint64, 1)
	go func() {
		var seq uint64
		defer func() { last <- seq }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p, err := pub.Publish(context.Background(), purge.Message{ID: fmt.Sprintf("flow-%d", i), Tags: []string{fmt.Sprintf("t%d", i)}})
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			seq = p.Seq
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	stopEdge(t, first)
	time.Sleep(300 * time.Millisecond)
	second := startEdge(t, c)
	eventually(t, "second ready", func() bool { return second.health() == 200 })
	time.Sleep(300 * time.Millisecond)
	close(stop)
	want := <-last
	eventually(t, "every purge applied", func() bool { return second.bus.consumer().Status().Applied == want })
	if st := second.bus.consumer().Status(); st.Gaps != 0 {
		t.Errorf("status %+v: a restart is no gap", st)
	}
	t.Logf("%d purges published; the second process applied from %d", want, first.bus.consumer().Status().Applied)
}

// TestBusUnusablePurgeIsAGap: a purge on the bus that this edge cannot
// apply (a tag it refuses) may have concerned anything: every stored
// object is marked stale, and the error counted.
func TestBusUnusablePurgeIsAGap(t *testing.T) {
	ns := natstest.Start(t)
	o, version := versionedOrigin(t)
	e := busEdge(t, o, ns.URL(), "u1")
	eventually(t, "ready", func() bool { return e.health() == 200 })
	e.get("/a", "Host", newsHost)
	version.Add(1)
	pub, err := bus.Connect(e.cfg.Purge.Bus, bus.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.Publish(t.Context(), purge.Message{ID: "bad", Tags: []string{"two words"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the error counted", func() bool { return counter(e.m.busApplyErrors) == 1 })
	e.waitBody("/a", "/a v1", 5*time.Second)
}
