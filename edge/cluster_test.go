package edge

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/cluster"
	"github.com/lakka-cache/lakka/internal/natstest"
)

const testClusterToken = "cluster-secret-for-tests"

// fleet is edges on loopback in zones, with static membership, in front
// of one origin.
type fleet struct {
	t     *testing.T
	o     *origin
	edges map[string]*testEdge // by node id
	ids   []string             // in start order
	peers []config.Peer
	view  *cluster.View
}

// countingOrigin serves every path cacheable for a minute, tagged with
// its path, and counts the fetches of each path.
func countingOrigin(t *testing.T) (*origin, *sync.Map) {
	var fetches sync.Map // path -> *atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := fetches.LoadOrStore(r.URL.Path, new(atomic.Int64))
		v := n.(*atomic.Int64).Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", fmt.Sprintf(`"%s-%d"`, r.URL.Path, v))
		w.Header().Set("Surrogate-Key", "tag-"+strings.Trim(r.URL.Path, "/"))
		fmt.Fprintf(w, "%s v%d", r.URL.Path, v)
	})
	return o, &fetches
}

func fetchesOf(m *sync.Map, path string) int64 {
	n, ok := m.Load(path)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// startFleet starts an edge per id of zones ("a" -> a1, a2) with static
// peers, shield zone shield ("" for none); mutate adjusts every config.
func startFleet(t *testing.T, o *origin, zones map[string][]string, shield string, mutate func(*config.Config)) *fleet {
	t.Helper()
	t.Setenv(clusterTokenEnv, testClusterToken)
	f := &fleet{t: t, o: o, edges: map[string]*testEdge{}}
	lns := map[string]net.Listener{}
	var members []cluster.Member
	for zone, ids := range zones {
		for _, id := range ids {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns[id] = ln
			f.peers = append(f.peers, config.Peer{ID: id, Zone: zone, Address: ln.Addr().String()})
			members = append(members, cluster.Member{ID: id, Zone: zone, Addr: ln.Addr().String()})
			f.ids = append(f.ids, id)
		}
	}
	f.view = cluster.NewView(members)
	for _, p := range f.peers {
		c := testConfig(o.addr())
		c.Edge.NodeID, c.Edge.Zone = p.ID, p.Zone
		c.Cluster.Listen = p.Address
		c.Cluster.ShieldZone = shield
		for _, q := range f.peers {
			if q.ID != p.ID {
				c.Cluster.Peers = append(c.Cluster.Peers, q)
			}
		}
		c.Purge.Token = testToken
		if mutate != nil {
			mutate(&c)
		}
		if err := c.ValidateEdge(); err != nil {
			t.Fatal(err)
		}
		ln := lns[p.ID]
		f.edges[p.ID] = startEdgeWith(t, c, seams{listen: func(network, addr string) (net.Listener, error) {
			if addr == p.Address {
				return ln, nil
			}
			return net.Listen(network, addr)
		}})
	}
	return f
}

// owner is the node id that owns path (on newsHost) in zone.
func (f *fleet) owner(zone, path string) string {
	m, _ := f.view.Owner(zone, cluster.KeyHash(cachekey.AppendURL(nil, []byte(newsHost), []byte(path))))
	return m.ID
}

// pathOwnedBy returns a path that node owns in its zone.
func (f *fleet) pathOwnedBy(node, zone, prefix string) string {
	for i := range 10000 {
		p := fmt.Sprintf("/%s/%d", prefix, i)
		if f.owner(zone, p) == node {
			return p
		}
	}
	f.t.Fatalf("no path owned by %s", node)
	return ""
}

func (f *fleet) get(node, path string) response {
	f.t.Helper()
	return f.edges[node].get(path, "Host", newsHost)
}

// purge sends a purge (the purge API's JSON) to each of the edges, as
// the origin does without a bus.
func (f *fleet) purge(body string, ids ...string) {
	f.t.Helper()
	for _, id := range ids {
		if r := doURL(f.t, http.MethodPost, "http://"+f.edges[id].AdminAddr()+"/api/purge", body, "Authorization", "Bearer "+testToken); r.status != 200 {
			f.t.Fatalf("purge on %s: %d %s", id, r.status, r.body)
		}
	}
}

// spread sends n requests for path over the edges, c at a time, and
// returns the statuses that were not 200.
func (f *fleet) spread(path string, n, c int) []string {
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				te := f.edges[f.ids[int(i)%len(f.ids)]]
				r := doURL(f.t, http.MethodGet, te.url+path, "", "Host", newsHost)
				if r.status != 200 {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%d %s", r.status, r.get("Cache-Status")))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return bad
}

// One new object asked of every edge of two zones at once costs the
// origin one fetch per zone; with a shield zone, one for the fleet.
func TestClusterOneOriginFetchPerZoneOrFleet(t *testing.T) {
	for _, tc := range []struct {
		shield string
		want   int64
	}{{"", 2}, {"a", 1}} {
		t.Run("shield="+tc.shield, func(t *testing.T) {
			o, fetches := countingOrigin(t)
			f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}, "b": {"b1", "b2"}}, tc.shield, nil)
			for _, path := range []string{"/breaking/1", "/breaking/2", "/breaking/3"} {
				if bad := f.spread(path, 100, 16); len(bad) > 0 {
					t.Fatalf("%s: %d requests failed: %v", path, len(bad), bad[:min(5, len(bad))])
				}
				if got := fetchesOf(fetches, path); got != tc.want {
					t.Errorf("%s: the origin saw %d fetches, want %d", path, got, tc.want)
				}
			}
		})
	}
}

// A non-owner's answer comes from the owner with the owner's freshness:
// its Age, validators and tags (a purge by tag reaches its copy).
func TestClusterForwardedCopyKeepsFreshness(t *testing.T) {
	o, fetches := countingOrigin(t)
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}}, "", nil)
	path := f.pathOwnedBy("a1", "a", "story")
	first := f.get("a1", path)
	if first.status != 200 || first.get("X-Cache") != "MISS" {
		t.Fatalf("owner's first answer: %d %s", first.status, first.get("X-Cache"))
	}
	time.Sleep(1100 * time.Millisecond)
	r := f.get("a2", path)
	if r.status != 200 || r.body != first.body {
		t.Fatalf("non-owner: %d %q, want the owner's %q", r.status, r.body, first.body)
	}
	if cs := r.get("Cache-Status"); !strings.Contains(cs, "hit") || !strings.Contains(cs, "detail=peer-a1") {
		t.Errorf("non-owner's Cache-Status %q, want a hit from peer-a1", cs)
	}
	if r.get("Age") == "" || r.get("Age") == "0" {
		t.Errorf("non-owner's Age %q: the owner stored it over a second ago", r.get("Age"))
	}
	if r.get("ETag") != first.get("ETag") {
		t.Errorf("ETag %q through the peer, %q from the owner", r.get("ETag"), first.get("ETag"))
	}
	// Served often, the non-owner keeps its own copy (cluster.hot_after 2).
	f.get("a2", path)
	hit := f.get("a2", path)
	if hit.get("X-Cache") != "HIT" || strings.Contains(hit.get("Cache-Status"), "peer") {
		t.Errorf("third request on the non-owner: %s %q, want a local hit", hit.get("X-Cache"), hit.get("Cache-Status"))
	}
	if n := f.edges["a2"].m.forwarded(clusterResults...); n < 2 {
		t.Errorf("%v forwarded fetches counted", n)
	}
	// A purge by tag, sent to each edge as the origin does without a bus.
	f.purge(`{"tags":["tag-`+strings.Trim(path, "/")+`"]}`, f.ids...)
	after := f.get("a2", path)
	if after.body == first.body {
		t.Errorf("after the purge the non-owner still serves %q", after.body)
	}
	if got := fetchesOf(fetches, path); got != 2 {
		t.Errorf("the origin saw %d fetches, want 2 (before and after the purge)", got)
	}
}

// A stopped owner costs no client error: its zone's other edge fetches
// from the origin, under load, while the owner goes away.
func TestClusterDeadOwnerCostsNoError(t *testing.T) {
	o, _ := countingOrigin(t)
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2", "a3"}}, "", nil)
	var paths []string
	for i := range 30 {
		paths = append(paths, f.pathOwnedBy("a1", "a", fmt.Sprintf("p%d", i)))
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				te := f.edges[[]string{"a2", "a3"}[(w+i)%2]]
				r := doURL(t, http.MethodGet, te.url+paths[(w*7+i)%len(paths)]+fmt.Sprintf("?w=%d&n=%d", w, i), "", "Host", newsHost)
				if r.status != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stopEdge(t, f.edges["a1"])
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed while the owner went away", n)
	}
	faults := 0.0
	for _, id := range []string{"a2", "a3"} {
		faults += counter(f.edges[id].m.clusterFetches.WithLabelValues("owner", "fault"))
	}
	if faults == 0 {
		t.Error("no peer fault counted: the owner was never found gone")
	}
}

// A peer that accepts connections and never answers is skipped after
// cluster.peer_timeout, not waited on for the origin's timeouts.
func TestClusterStalledPeerIsSkipped(t *testing.T) {
	o, fetches := countingOrigin(t)
	stalled, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := stalled.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stalled.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	t.Setenv(clusterTokenEnv, testClusterToken)
	c := testConfig(o.addr())
	c.Edge.NodeID, c.Edge.Zone = "a1", "a"
	c.Cluster.Listen = "127.0.0.1:0"
	c.Cluster.PeerTimeout = 200 * time.Millisecond
	c.Cluster.Peers = []config.Peer{{ID: "a2", Zone: "a", Address: stalled.Addr().String()}}
	te := startEdge(t, c)
	view := cluster.NewView([]cluster.Member{{ID: "a1", Zone: "a"}, {ID: "a2", Zone: "a"}})
	path := ""
	for i := range 1000 {
		p := fmt.Sprintf("/s/%d", i)
		if m, _ := view.Owner("a", cluster.KeyHash(cachekey.AppendURL(nil, []byte(newsHost), []byte(p)))); m.ID == "a2" {
			path = p
			break
		}
	}
	start := time.Now()
	r := te.get(path, "Host", newsHost)
	took := time.Since(start)
	if r.status != 200 || fetchesOf(fetches, path) != 1 {
		t.Fatalf("%d after %s, origin fetches %d", r.status, took, fetchesOf(fetches, path))
	}
	if took > 3*time.Second {
		t.Errorf("the stalled owner held the request for %s (peer timeout 200ms)", took)
	}
	if n := counter(te.m.clusterFetches.WithLabelValues("owner", "fault")); n != 1 {
		t.Errorf("%v owner faults counted, want 1", n)
	}
}

// The peer listener serves peers only: without the token, or without a
// peer request's headers, it refuses; a request that went through this
// edge already is a loop.
func TestPeerListenerServesPeersOnly(t *testing.T) {
	o, fetches := countingOrigin(t)
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}}, "", nil)
	peer := "http://" + f.peers[0].Address
	for _, p := range f.peers {
		if p.ID == "a1" {
			peer = "http://" + p.Address
		}
	}
	key := "bmV3cy5leGFtcGxlL3g" // base64url("news.example/x")
	for _, tc := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"no token", []string{"Host", newsHost}, 401},
		{"wrong token", []string{"Host", newsHost, hdrPeerToken, "guess", hdrPeerKey, key, hdrPeerHop, "a/a2", hdrPeerMode, "fetch"}, 401},
		{"a client's request", []string{"Host", newsHost, hdrPeerToken, testClusterToken}, 400},
		{"bad key", []string{"Host", newsHost, hdrPeerToken, testClusterToken, hdrPeerKey, "!!", hdrPeerHop, "a/a2", hdrPeerMode, "fetch"}, 400},
		{"bad mode", []string{"Host", newsHost, hdrPeerToken, testClusterToken, hdrPeerKey, key, hdrPeerHop, "a/a2", hdrPeerMode, "purge"}, 400},
		{"loop", []string{"Host", newsHost, hdrPeerToken, testClusterToken, hdrPeerKey, key, hdrPeerHop, "a/a2, a/a1", hdrPeerMode, "fetch"}, 508},
	} {
		r := doURL(t, http.MethodGet, peer+"/x", "", tc.headers...)
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, r.status, tc.want)
		}
	}
	if n := fetchesOf(fetches, "/x"); n != 0 {
		t.Errorf("refused peer requests fetched /x %d times", n)
	}
	r := doURL(t, http.MethodGet, peer+"/x", "", "Host", newsHost, hdrPeerToken, testClusterToken, hdrPeerKey, key, hdrPeerHop, "a/a2", hdrPeerMode, "lookup")
	if r.status != 200 || r.get(hdrPeerResult) != "miss" {
		t.Errorf("a lookup of what a1 does not hold: %d %q", r.status, r.get(hdrPeerResult))
	}
}

// A miss the origin cannot answer is the origin's failure wherever it is
// asked from; a stale copy is served instead when there is one
// (stale-if-error through the owner).
func TestClusterOriginFailureThroughTheOwner(t *testing.T) {
	var down atomic.Bool
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=60")
		fmt.Fprint(w, "ok "+r.URL.Path)
	})
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}}, "", func(c *config.Config) { c.Cache.Grace = 0 })
	path := f.pathOwnedBy("a1", "a", "sie")
	if r := f.get("a1", path); r.status != 200 {
		t.Fatalf("warm: %d", r.status)
	}
	down.Store(true)
	time.Sleep(1500 * time.Millisecond)
	r := f.get("a2", path)
	if r.status != 200 || r.body != "ok "+path || r.get("X-Cache") != "STALE" {
		t.Errorf("non-owner with the origin down: %d %s %q, want the owner's stale copy", r.status, r.get("X-Cache"), r.body)
	}
	miss := f.pathOwnedBy("a1", "a", "never")
	if r := f.get("a2", miss); r.status != 503 && r.status != 502 {
		t.Errorf("a miss with the origin down: %d, want the origin's failure", r.status)
	}
}

// Grace and stale-if-error work through the shield: a zone that never
// stored an object is served the shield's stale copy when the origin
// fails, and the shield's grace copy while it refreshes.
func TestClusterStaleThroughTheShield(t *testing.T) {
	var down atomic.Bool
	var fetches atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=60")
		fmt.Fprint(w, "ok "+r.URL.Path)
	})
	f := startFleet(t, o, map[string][]string{"a": {"a1"}, "b": {"b1"}}, "a", func(c *config.Config) { c.Cache.Grace = 0 })
	if r := f.get("a1", "/grace"); r.status != 200 {
		t.Fatalf("warm: %d", r.status)
	}
	time.Sleep(1500 * time.Millisecond)
	r := f.get("b1", "/grace")
	if r.status != 200 || r.get("X-Cache") != "STALE" || !strings.Contains(r.get("Cache-Status"), "peer-a1") {
		t.Errorf("zone b, object in the shield's grace: %d %s %q", r.status, r.get("X-Cache"), r.get("Cache-Status"))
	}
	if r := f.get("a1", "/sie"); r.status != 200 {
		t.Fatalf("warm: %d", r.status)
	}
	down.Store(true)
	time.Sleep(1500 * time.Millisecond)
	before := fetches.Load()
	r = f.get("b1", "/sie")
	if r.status != 200 || r.body != "ok /sie" {
		t.Errorf("zone b with the origin down: %d %q, want the shield's stale copy", r.status, r.body)
	}
	if n := fetches.Load() - before; n > 1 {
		t.Errorf("the origin was asked %d times for one stale-if-error answer through the shield", n)
	}
}

// Members come from the purge bus: edges that start find each other, and
// one that joins later takes about its share of the keys, asking their
// previous owners before the origin (which sees nothing again).
func TestClusterMembersFromTheBus(t *testing.T) {
	ns := natstest.Start(t)
	o, fetches := countingOrigin(t)
	t.Setenv(clusterTokenEnv, testClusterToken)
	start := func(id string) *testEdge {
		c := testConfig(o.addr())
		c.Edge.NodeID, c.Edge.Zone = id, "a"
		c.Purge.Bus.URL = ns.URL()
		c.Cluster.Listen = "127.0.0.1:0"
		if err := c.ValidateEdge(); err != nil {
			t.Fatal(err)
		}
		return startEdge(t, c)
	}
	members := func(te *testEdge) int { return int(counter(te.m.clusterMembers.WithLabelValues("a"))) }
	a1, a2 := start("a1"), start("a2")
	eventually(t, "two members", func() bool { return members(a1) == 2 && members(a2) == 2 })
	const n = 60
	for i := range n {
		p := fmt.Sprintf("/warm/%d", i)
		if r := doURL(t, http.MethodGet, []*testEdge{a1, a2}[i%2].url+p, "", "Host", newsHost); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	forwarded := a1.m.forwarded(clusterResults...) + a2.m.forwarded(clusterResults...)
	if forwarded < n/4 {
		t.Errorf("%v of %d misses were forwarded: the edges do not share keys", forwarded, n)
	}
	a3 := start("a3")
	eventually(t, "three members", func() bool { return members(a1) == 3 && members(a2) == 3 && members(a3) == 3 })
	for i := range n {
		p := fmt.Sprintf("/warm/%d", i)
		r := doURL(t, http.MethodGet, a3.url+p, "", "Host", newsHost)
		if r.status != 200 {
			t.Fatalf("%s on a3: %d", p, r.status)
		}
		if got := fetchesOf(fetches, p); got != 1 {
			t.Errorf("%s: the origin saw %d fetches after a3 joined, want 1", p, got)
		}
		if !strings.Contains(r.get("Cache-Status"), "detail=peer-a") {
			t.Errorf("%s on a3: %q, want an answer from a peer", p, r.get("Cache-Status"))
		}
	}
	// The keys a3 owns now, it found at their previous owner.
	if moved := int(counter(a3.m.clusterFetches.WithLabelValues("previous", "hit"))); moved < n/6 || moved > n/2 {
		t.Errorf("a3 took %d of %d keys from their previous owner, want about a third", moved, n)
	}
}

// BenchmarkHitClusterTCP: hits on one edge with clustering on (a static
// cluster of two; the object is this edge's) against the same edge with
// it off, over keep-alive connections, access log on (a file) for both,
// interleaved.
func BenchmarkHitClusterTCP(b *testing.B) {
	b.Setenv(clusterTokenEnv, testClusterToken)
	logs := b.TempDir()
	clustered, _ := primedEdgeConfig(b, 2<<10, func(c *config.Config) {
		c.Log.Access = logs + "/clustered.log"
		c.Edge.NodeID, c.Edge.Zone = "a1", "a"
		c.Cluster.Listen = "127.0.0.1:0"
		// A peer that is not there: the hits measured never ask it.
		c.Cluster.Peers = []config.Peer{{ID: "a2", Zone: "a", Address: "127.0.0.1:9"}}
	})
	plain, _ := primedEdgeConfig(b, 2<<10, func(c *config.Config) { c.Log.Access = logs + "/plain.log" })
	req := []byte("GET /page HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip\r\n\r\n")
	cc, pc := tcpClient(b, clustered.Addr()), tcpClient(b, plain.Addr())
	for range 100 {
		cc.do(req)
		pc.do(req)
	}
	if cc.resp.Header.Peek("X-Cache")[0] != 'H' || pc.resp.Header.Peek("X-Cache")[0] != 'H' {
		b.Fatalf("not hits: %s, %s", cc.resp.Header.Peek("X-Cache"), pc.resp.Header.Peek("X-Cache"))
	}
	interleave(b, "plain", func() { pc.do(req) }, "cluster", func() { cc.do(req) })
}

// A purge on every edge (as the bus delivers it), soft or hard, costs the
// origin one fetch for the fleet with a shield: every edge's refresh or
// miss goes through its owner to the shield.
func TestClusterPurgeRefetchesOnce(t *testing.T) {
	for _, soft := range []string{"true", "false"} {
		t.Run("soft="+soft, func(t *testing.T) { testPurgeRefetchesOnce(t, soft) })
	}
}

func testPurgeRefetchesOnce(t *testing.T, soft string) {
	o, fetches := countingOrigin(t)
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}, "b": {"b1", "b2"}}, "a", nil)
	path := "/front"
	for range 3 {
		if bad := f.spread(path, 40, 8); len(bad) > 0 {
			t.Fatal(bad)
		}
	}
	if got := fetchesOf(fetches, path); got != 1 {
		t.Fatalf("%d origin fetches before the purge", got)
	}
	f.purge(`{"tags":["tag-front"],"soft":`+soft+`}`, f.ids...)
	for range 5 {
		if bad := f.spread(path, 40, 8); len(bad) > 0 {
			t.Fatal(bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fetchesOf(fetches, path); got != 2 {
		t.Errorf("%d origin fetches after a purge, want 2 (one before, one after)", got)
	}
}

// The cluster's headers are the edges' own: a client's X-Lakka-Life does
// not set the owner's lifetimes, and a malformed one does not make the
// owner refuse the hop.
func TestClusterClientCannotSendPeerHeaders(t *testing.T) {
	o, fetches := countingOrigin(t)
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}}, "", nil)
	path := f.pathOwnedBy("a1", "a", "life")
	if r := f.edges["a2"].get(path, "Host", newsHost, "X-Lakka-Life", "ttl=1000h,keep=1000h", "X-Lakka-Peer-Mode", "lookup"); r.status != 200 {
		t.Fatal(r.status)
	}
	if cs := f.get("a1", path).get("Cache-Status"); !strings.Contains(cs, "ttl=5") && !strings.Contains(cs, "ttl=6") {
		t.Errorf("owner's Cache-Status %q: the origin said max-age=60", cs)
	}
	other := f.pathOwnedBy("a1", "a", "malformed")
	r := f.edges["a2"].get(other, "Host", newsHost, "X-Lakka-Life", "x")
	if r.status != 200 || !strings.Contains(r.get("Cache-Status"), "peer-a1") {
		t.Errorf("a client's malformed X-Lakka-Life: %d %q, want the owner's answer", r.status, r.get("Cache-Status"))
	}
	if n := counter(f.edges["a2"].m.clusterFetches.WithLabelValues("owner", "fault")); n != 0 {
		t.Errorf("%v faults", n)
	}
	if got := fetchesOf(fetches, other); got != 1 {
		t.Errorf("%d origin fetches", got)
	}
}

// An edge that applied a purge before the owner did never serves the
// owner's older copy: it asks the origin.
func TestClusterPurgedHereIsNotServedFromAPeer(t *testing.T) {
	o, fetches := countingOrigin(t)
	f := startFleet(t, o, map[string][]string{"a": {"a1", "a2"}}, "", nil)
	path := f.pathOwnedBy("a1", "a", "purged")
	first := f.get("a1", path)
	time.Sleep(20 * time.Millisecond)
	f.purge(`{"tags":["tag-`+strings.Trim(path, "/")+`"]}`, "a2")
	for i := range 3 {
		if r := f.get("a2", path); r.body == first.body {
			t.Errorf("request %d: a2 applied the purge and serves %q", i, r.body)
		}
	}
	if n := counter(f.edges["a2"].m.clusterFetches.WithLabelValues("owner", "purged")); n == 0 {
		t.Error("no purged answer counted")
	}
	if got := fetchesOf(fetches, path); got < 2 {
		t.Errorf("%d origin fetches", got)
	}
}

// A shield that answers lookups and then stalls on fetches costs no
// client error: the owner in the other zone gives up on it within half
// its budget and asks the origin, and its peers' waiters are answered
// before their own budget ends.
func TestClusterStalledShieldFetchCostsNoError(t *testing.T) {
	o, fetches := countingOrigin(t)
	t.Setenv(clusterTokenEnv, testClusterToken)
	shield, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := r.Header.Get(hdrPeerMode); m == "lookup" || m == "fresh-lookup" {
			w.Header().Set(hdrPeerResult, "miss")
			return
		}
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(shield)
	t.Cleanup(func() { close(stop); srv.Close() })
	lns := map[string]net.Listener{}
	peers := []config.Peer{{ID: "s1", Zone: "a", Address: shield.Addr().String()}}
	var ms []cluster.Member
	for _, id := range []string{"b1", "b2"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
		peers = append(peers, config.Peer{ID: id, Zone: "b", Address: ln.Addr().String()})
		ms = append(ms, cluster.Member{ID: id, Zone: "b"})
	}
	edges := map[string]*testEdge{}
	for _, id := range []string{"b1", "b2"} {
		c := testConfig(o.addr())
		c.Edge.NodeID, c.Edge.Zone = id, "b"
		c.Cluster.Listen = lns[id].Addr().String()
		c.Cluster.ShieldZone = "a"
		c.Cluster.PeerTimeout = 200 * time.Millisecond
		c.Cache.WaitTimeout = 2 * time.Second
		for _, p := range peers {
			if p.ID != id {
				c.Cluster.Peers = append(c.Cluster.Peers, p)
			}
		}
		ln := lns[id]
		edges[id] = startEdgeWith(t, c, seams{listen: func(n, a string) (net.Listener, error) {
			if a == ln.Addr().String() {
				return ln, nil
			}
			return net.Listen(n, a)
		}})
	}
	f := &fleet{t: t, view: cluster.NewView(ms)}
	path := f.pathOwnedBy("b2", "b", "stall")
	var wg sync.WaitGroup
	statuses := make(chan int, 4)
	for i, id := range []string{"b1", "b1", "b2", "b1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 50 * time.Millisecond)
			statuses <- edges[id].get(path, "Host", newsHost).status
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 200 {
			t.Errorf("a client got %d with the origin up (origin fetches %d)", st, fetchesOf(fetches, path))
		}
	}
}
