//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakka-cache/lakka/internal/natstest"
	"github.com/lakka-cache/lakka/origin/pgtest"
)

// The fleet lab: three zones in network namespaces, two edges per zone,
// a NATS cluster of three (one node per zone) for the purge bus and
// membership, the bundled origin on PostgreSQL in zone a; then the
// scenarios of docs/CLUSTER.md's promises, each with its figures.
//
// Layout (10.77.Z.0/24 per zone, Z = 1, 2, 3 for a, b, c):
//
//	core namespace: a bridge per zone (10.77.Z.1), routing between them
//	a1 10.77.1.11  a2 10.77.1.12  (a3 10.77.1.13 joins later)  nats 10.77.1.30  origin 10.77.1.20
//	b1 10.77.2.11  b2 10.77.2.12                                nats 10.77.2.30
//	c1 10.77.3.11  c2 10.77.3.12                                nats 10.77.3.30
//
// With tc netem (when the kernel has it) every host adds 0.25 ms on the
// way out and the core 5 ms on the way into another zone: about 0.5 ms
// round trips within a zone, 10 ms between zones. Every namespace is the
// lab's own and goes at the end; nothing leaves them but the origin's
// connections to PostgreSQL on the host's loopback, which the test relays.
//
// LAKKA_FLEET_LAB=short runs the scenarios with small loads (CI);
// LAKKA_FLEET_LAB=full runs them longer (make test-fleet). Unset, the lab
// is skipped.
func TestFleetLab(t *testing.T) {
	mode := os.Getenv("LAKKA_FLEET_LAB")
	if mode != "short" && mode != "full" {
		t.Skip("the fleet lab runs with LAKKA_FLEET_LAB=short or full (make test-fleet): it needs root and network namespaces")
	}
	full := mode == "full"
	l := newLab(t)
	pgURL := pgtest.URL(t)
	l.build()
	l.relayPostgres("origin")

	// The NATS cluster, one node per zone.
	var natsURLs []string
	for _, z := range labZones {
		natsURLs = append(natsURLs, "nats://"+l.ips["n"+z]+":4222")
	}
	for _, z := range labZones {
		l.startNATS(z)
	}
	l.waitMetaLeader()
	busURL := strings.Join(natsURLs, ",")

	l.start("origin", "origin", "origin", "--listen", l.ips["origin"]+":8000", "--database-url", pgURL, "--seed", "300", "--purge-bus", busURL)
	l.waitHTTP("origin", "http://"+l.ips["origin"]+":8000/healthz")

	edges := []string{"a1", "a2", "b1", "b2", "c1", "c2"}
	report := &labReport{}
	defer func() { t.Log("\n" + report.String()) }()

	// 1. One new URL, 100 requests over all six edges: one origin fetch
	// with a shield, one per zone without.
	for _, shield := range []string{"", "a"} {
		l.startEdges(edges, busURL, shield, true)
		before := l.originFetches(edges)
		path := fmt.Sprintf("/?lab=new-%s-%d", shield, time.Now().UnixNano())
		errs := l.spread(edges, path, 100)
		got := l.originFetches(edges) - before
		want := 3.0
		if shield != "" {
			want = 1
		}
		report.add("100 requests for one new URL over six edges, shield %q: origin fetches %.0f (want %.0f), client errors %d", shield, got, want, errs)
		if got != want || errs != 0 {
			t.Errorf("shield %q: %.0f origin fetches (want %.0f), %d client errors", shield, got, want, errs)
		}
		l.stopEdges(edges)
	}

	// 2. A spike over the six edges, clustered (shield a) and not, without
	// session cookies.
	dur := "8s"
	if full {
		dur = "30s"
	}
	for _, clustered := range []bool{false, true} {
		l.startEdges(edges, busURL, "a", clustered)
		before := l.originFetches(edges)
		frontBefore := l.originFront()
		// Without logged-in readers: every origin fetch is then the
		// cache's (a session cookie is passed to the origin anyway).
		rep := l.spike(edges, dur, "--session-cookies 0")
		fetched := l.originFetches(edges) - before
		front := l.originFront() - frontBefore
		d, _ := time.ParseDuration(dur)
		report.add("spike %s over six edges (no session cookies), clustered %t: origin fetches %.0f (the front page, max-age 10s: %.0f, %.1f per 10 s), requests %d, hit ratio %.3f, p99 %.1f ms, freshness lag p50 %s, errors %d",
			dur, clustered, fetched, front, front/(d.Seconds()/10), rep.Requests, rep.hitRatio(), rep.p99ms(), rep.freshness(), rep.Errors.Total)
		if rep.Errors.Total != 0 {
			t.Errorf("spike, clustered %t: %d client errors", clustered, rep.Errors.Total)
		}
		if clustered {
			report.clusteredFetches = fetched
		} else {
			report.plainFetches = fetched
		}
		if !clustered {
			l.stopEdges(edges)
		}
	}
	if report.clusteredFetches >= report.plainFetches {
		t.Errorf("clustered, the origin saw %.0f fetches; not clustered %.0f", report.clusteredFetches, report.plainFetches)
	}

	// 3. Kill an owner mid-spike: the load balancer's targets are the
	// other five; no client error.
	go func() {
		time.Sleep(3 * time.Second)
		l.kill("a1")
	}()
	rep := l.spike(edges[1:], "6s", "")
	report.add("a1 killed 3 s into a 6 s spike over the other five edges: %d requests, %d client errors", rep.Requests, rep.Errors.Total)
	if rep.Errors.Total != 0 {
		t.Errorf("owner killed mid-spike: %d client errors", rep.Errors.Total)
	}
	l.startEdge("a1", busURL, "a", true)

	// 4. Partition zone b: its readers are still served what it holds;
	// a purge issued meanwhile reaches it after the partition heals.
	warm := make([]string, 20)
	for i := range warm {
		warm[i] = fmt.Sprintf("/?lab=part-%d", i)
		l.spread(edges, warm[i], 6)
	}
	l.partition("b", true)
	served, failed := 0, 0
	for _, p := range warm {
		for _, e := range []string{"b1", "b2"} {
			if st := l.getFrom("b2", e, p); st == 200 {
				served++
			} else {
				failed++
			}
		}
	}
	// Published on the majority side, once the stream has a leader there.
	seq, _, _ := l.publishPurge(busURL, "a1")
	time.Sleep(2 * time.Second)
	if applied := l.appliedBy("b1"); applied >= seq {
		t.Errorf("b1 applied purge %d during the partition: the partition does not hold", seq)
	}
	l.partition("b", false)
	healed := time.Now()
	l.waitApplied([]string{"b1", "b2"}, seq, 120*time.Second) // NATS recovery: 2-40 s seen
	report.add("zone b partitioned: %d of %d reads of stored objects served (%d failed); a purge issued meanwhile applied in zone b %s after healing",
		served, served+failed, failed, time.Since(healed).Round(10*time.Millisecond))
	if failed != 0 {
		t.Errorf("partitioned zone b failed %d reads of objects it stored", failed)
	}

	// 5. Kill one NATS node: nothing lost. A purge published just before,
	// and one published after (retried, as the origin's outbox does,
	// while the stream elects a new leader), reach every edge.
	l.purgeAll(busURL, "a2")
	l.kill("nc")
	seq, took, tries := l.publishPurge(strings.Join(natsURLs[:2], ","), "a2")
	published := time.Now()
	l.waitApplied(edges, seq, 120*time.Second) // NATS recovery: 8-23 s seen
	report.add("NATS node of zone c killed: the purges published before and after it (the latter accepted %s after the kill, attempt %d) reached all six edges, the last %s after it was published",
		took.Round(10*time.Millisecond), tries, time.Since(published).Round(10*time.Millisecond))

	// 7 (figures). The latency a hop adds: a hit on the owner, the same
	// object through a non-owner (forwarded), then once it keeps a hot
	// copy, from a reader in the zone.
	n := 100
	if full {
		n = 400
	}
	var onOwner, forwarded, hotCopy []time.Duration
	for i := range n {
		p := fmt.Sprintf("/?lab=hop-%d", i)
		owner, other := l.ownerOf(p)
		l.timedGet("a2", owner, p) // the owner fetches it
		onOwner = append(onOwner, l.timedGet("a2", owner, p))
		forwarded = append(forwarded, l.timedGet("a2", other, p))
		l.timedGet("a2", other, p) // the second: kept
		hotCopy = append(hotCopy, l.timedGet("a2", other, p))
	}
	report.add("latency from a reader in zone a (gzip accepted), median of %d (no added delay): hit on the owner %s, forwarded hit through a non-owner %s, hot-copy hit %s",
		n, median(onOwner), median(forwarded), median(hotCopy))

	// 6. A seventh edge: about a seventh of the keys move to it, and
	// the origin does not see them again (asked of their previous owner).
	keys := 70
	if full {
		keys = 300
	}
	// A section page (max-age 30 s): the measure ends well within it, so
	// no refresh of an expired copy counts as a fetch again.
	warmed := time.Now()
	paths := make([]string, keys)
	for i := range paths {
		paths[i] = fmt.Sprintf("/news/?lab=seventh-%d", i)
		l.get(edges[i%len(edges)], paths[i])
	}
	l.host("a3", "a", 13)
	l.startEdge("a3", busURL, "a", true)
	l.waitMembers(append(edges, "a3"), 7)
	before := l.originFetches(append(edges, "a3"))
	for i, p := range paths {
		l.get([]string{"a3", "a1", "a2"}[i%3], p)
	}
	moved := l.metric("a3", `lakka_edge_cluster_fetches_total{result="hit",role="previous"}`)
	refetched := l.originFetches(append(edges, "a3")) - before
	if took := time.Since(warmed); took > 25*time.Second {
		t.Errorf("warming and asking again took %s, near the pages' max-age of 30 s: the count would include refreshes", took)
	}
	report.add("a seventh edge joined zone a (two edges to three: it owns about a third of the zone's keys): it took %.0f of the %d warm keys from their previous owner; the origin fetched %.0f again", moved, keys, refetched)
	if refetched > float64(keys)/20 {
		t.Errorf("after a3 joined the origin fetched %.0f of %d warm keys again", refetched, keys)
	}
}

var labZones = []string{"a", "b", "c"}

func zoneNet(z string) int { return strings.Index("abc", z) + 1 }

// lab is the namespaces, addresses and processes of one run.
type lab struct {
	t      *testing.T
	prefix string
	dir    string
	bin    string
	netem  bool
	mu     sync.Mutex
	nss    []string
	ips    map[string]string // host -> address
	procs  map[string]*exec.Cmd
	client *http.Client // from the core namespace
	// readers are clients in host namespaces (timedGet).
	readers map[string]*http.Client
}

func newLab(t *testing.T) *lab {
	if os.Geteuid() != 0 {
		t.Fatal("the fleet lab needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the fleet lab needs iproute2's ip")
	}
	l := &lab{t: t, prefix: fmt.Sprintf("lk%d", os.Getpid()%100000), dir: t.TempDir(), ips: map[string]string{}, procs: map[string]*exec.Cmd{}, readers: map[string]*http.Client{}}
	t.Cleanup(l.teardown)
	core := l.addNS("core")
	l.nsRun(core, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.netem = true
	for _, z := range labZones {
		br := "br-" + z
		l.nsRun(core, "ip", "link", "add", br, "type", "bridge")
		l.nsRun(core, "ip", "addr", "add", fmt.Sprintf("10.77.%d.1/24", zoneNet(z)), "dev", br)
		l.nsRun(core, "ip", "link", "set", br, "up")
		if err := l.nsTry(core, "tc", "qdisc", "add", "dev", br, "root", "netem", "delay", "5ms"); err != nil {
			l.netem = false
		}
	}
	if !l.netem {
		t.Log("tc netem is not available on this kernel (no sch_netem): the lab runs without added delays")
	}
	for _, z := range labZones {
		for i, h := range []string{z + "1", z + "2"} {
			l.host(h, z, 11+i)
		}
		l.host("n"+z, z, 30)
	}
	l.host("origin", "a", 20)
	l.client = &http.Client{
		Transport: &http.Transport{DialContext: nsDialer(l.nsPath("core")), MaxIdleConnsPerHost: 64, DisableCompression: true},
		Timeout:   20 * time.Second,
	}
	return l
}

// addNS creates a namespace of the lab and returns its name.
func (l *lab) addNS(name string) string {
	ns := l.prefix + "-" + name
	l.run("ip", "netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.nsRun(ns, "ip", "link", "set", "lo", "up")
	return ns
}

func (l *lab) nsPath(name string) string { return "/var/run/netns/" + l.prefix + "-" + name }

// host adds a host namespace on zone z's bridge at 10.77.Z.octet.
func (l *lab) host(name, z string, octet int) {
	ns := l.addNS(name)
	core := l.prefix + "-core"
	veth := "v" + l.prefix + name
	if len(veth) > 15 {
		veth = veth[len(veth)-15:]
	}
	ip := fmt.Sprintf("10.77.%d.%d", zoneNet(z), octet)
	l.nsRun(core, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.nsRun(core, "ip", "link", "set", veth, "master", "br-"+z, "up")
	l.nsRun(ns, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	l.nsRun(ns, "ip", "link", "set", "eth0", "up")
	l.nsRun(ns, "ip", "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", zoneNet(z)))
	if l.netem {
		_ = l.nsTry(ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "250us")
	}
	l.mu.Lock()
	l.ips[name] = ip
	l.mu.Unlock()
}

// partition cuts zone z off the other zones, both ways (policy rules in
// the core namespace that routes between them), or heals it. The zone's
// hosts still reach each other over its bridge.
func (l *lab) partition(z string, cut bool) {
	core := l.prefix + "-core"
	subnet := fmt.Sprintf("10.77.%d.0/24", zoneNet(z))
	op := "add"
	if !cut {
		op = "del"
	}
	l.nsRun(core, "ip", "rule", op, "from", subnet, "blackhole", "priority", "100")
	l.nsRun(core, "ip", "rule", op, "to", subnet, "blackhole", "priority", "101")
}

// getFrom requests path of edge from host's namespace (a reader there).
func (l *lab) getFrom(host, edge, path string) int {
	req, _ := http.NewRequest(http.MethodGet, "http://"+l.ips[edge]+":8080"+path, nil)
	req.Host = "news.lab"
	resp, err := l.reader(host).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (l *lab) teardown() {
	l.mu.Lock()
	procs := l.procs
	l.procs = map[string]*exec.Cmd{}
	nss := l.nss
	l.mu.Unlock()
	for _, c := range procs {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", nss[i]).Run()
	}
}

func (l *lab) run(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func (l *lab) nsRun(ns string, args ...string) {
	l.t.Helper()
	l.run("ip", append([]string{"netns", "exec", ns}, args...)...)
}

func (l *lab) nsTry(ns string, args ...string) error {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).Run()
}

// build copies the test binary's lakka (built once) for the lab.
func (l *lab) build() { l.bin = lakkaBinary(l.t) }

// start runs bin with args in host name's namespace, as process id.
func (l *lab) startProc(id, host, bin string, env []string, args ...string) {
	l.t.Helper()
	logf, err := os.Create(filepath.Join(l.dir, id+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.prefix + "-" + host, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.procs[id] = cmd
	l.mu.Unlock()
}

func (l *lab) start(id, host string, args ...string) {
	l.startProc(id, host, l.bin, []string{"LAKKA_CLUSTER_TOKEN=lab-cluster-secret", "LAKKA_ORIGIN_TOKEN=lab-origin-token"}, args...)
}

// take removes process id from the lab's (nil when it is not running).
func (l *lab) take(id string) *exec.Cmd {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.procs[id]
	delete(l.procs, id)
	return c
}

// kill kills a process at once (SIGKILL: no drain, no goodbye).
func (l *lab) kill(id string) {
	if c := l.take(id); c != nil {
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
	}
}

// stop stops a process gracefully (SIGTERM) and waits.
func (l *lab) stop(id string) {
	if c := l.take(id); c != nil {
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
}

func (l *lab) logs(id string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, id+".log"))
	return string(b)
}

func (l *lab) startNATS(z string) {
	var routes []string
	for _, o := range labZones {
		routes = append(routes, "nats://"+l.ips["n"+o]+":6222")
	}
	ip := l.ips["n"+z]
	l.startProc("n"+z, "n"+z, natstest.Binary(l.t), nil, "-js", "-a", ip, "-p", "4222", "-sd", filepath.Join(l.dir, "nats-"+z),
		"--server_name", "lab-"+z, "--cluster_name", "lab", "--cluster", "nats://"+ip+":6222", "--routes", strings.Join(routes, ","))
}

func (l *lab) waitMetaLeader() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, z := range labZones {
			s := l.logs("n" + z)
			if strings.Contains(s, "JetStream cluster new metadata leader") || strings.Contains(s, "Self is new JetStream cluster metadata leader") {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("NATS cluster: no JetStream meta leader after 60s\n%s", l.logs("na"))
}

// startEdge starts edge name (in its namespace, zone from its name).
func (l *lab) startEdge(name, busURL, shield string, clustered bool) {
	ip := l.ips[name]
	cfg := fmt.Sprintf(`edge:
  node_id: %s
  zone: %s
  listen: %s:8080
  admin: %s:8081
  drain_delay: 0s
backends:
  servers: [{address: %s:8000}]
purge:
  bus: {url: "%s", replicas: 3}
admin:
  allow_networks: [10.77.0.0/16]
cache:
  size_bytes: 64MiB
`, name, name[:1], ip, ip, l.ips["origin"], busURL)
	if clustered {
		cfg += fmt.Sprintf("cluster:\n  listen: %s:7001\n", ip)
		if shield != "" {
			cfg += "  shield_zone: " + shield + "\n"
		}
	}
	file := filepath.Join(l.dir, name+".yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.start(name, name, "edge", "--config", file)
	l.waitHTTP(name, "http://"+ip+":8081/healthz")
}

func (l *lab) startEdges(names []string, busURL, shield string, clustered bool) {
	for _, n := range names {
		l.startEdge(n, busURL, shield, clustered)
	}
	if clustered {
		l.waitMembers(names, len(names))
	}
}

func (l *lab) stopEdges(names []string) {
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); l.stop(n) }()
	}
	wg.Wait()
}

func (l *lab) waitHTTP(id, url string) {
	l.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := l.client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("%s not ready after 60s; its log:\n%s", url, l.logs(id))
}

// waitMembers waits until every edge sees n members.
func (l *lab) waitMembers(names []string, n int) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, e := range names {
			total := 0.0
			for _, z := range labZones {
				total += l.metric(e, `lakka_edge_cluster_members{zone="`+z+`"}`)
			}
			if int(total) != n {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.t.Fatalf("the edges do not all see %d members after 30s", n)
}

// metric sums the samples of an edge's /metrics whose name and labels
// start like prefix (labels in the exposition's order).
func (l *lab) metric(edge, prefix string) float64 {
	resp, err := l.client.Get("http://" + l.ips[edge] + ":8081/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	name, labels, _ := strings.Cut(prefix, "{")
	labels = strings.TrimSuffix(labels, "}")
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		sample, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		sname, slabels, _ := strings.Cut(sample, "{")
		if sname != name {
			continue
		}
		match := true
		for _, lv := range strings.Split(labels, ",") {
			if lv != "" && !strings.Contains(slabels, lv) {
				match = false
			}
		}
		if match {
			v, _ := strconv.ParseFloat(value, 64)
			total += v
		}
	}
	return total
}

// originFront is how often the origin rendered its front page so far.
func (l *lab) originFront() float64 {
	resp, err := l.client.Get("http://" + l.ips["origin"] + ":8000/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `lakka_origin_http_requests_total{kind="front"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// originFetches is what the edges fetched from the origin so far.
func (l *lab) originFetches(edges []string) float64 {
	total := 0.0
	for _, e := range edges {
		total += l.metric(e, "lakka_edge_origin_fetches_total")
	}
	return total
}

func (l *lab) get(edge, path string) (int, http.Header) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+l.ips[edge]+":8080"+path, nil)
	req.Host = "news.lab"
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// spread sends n requests for path over the edges at once and returns
// how many failed.
func (l *lab) spread(edges []string, path string, n int) int {
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, _ := l.get(edges[i%len(edges)], path); st != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(failed.Load())
}

// purgeAll publishes a soft purge of everything and returns its stream
// sequence.
func (l *lab) purgeAll(busURL, fromHost string) uint64 {
	l.t.Helper()
	seq, err := l.tryPurgeAll(busURL, fromHost)
	if err != nil {
		l.t.Fatal(err)
	}
	return seq
}

// publishPurge publishes a soft purge of everything, retrying (as the
// origin's outbox does) while the stream has no leader (a NATS node just
// died or was cut off); it returns the sequence, how long until it was
// accepted, and the attempts.
func (l *lab) publishPurge(busURL, fromHost string) (uint64, time.Duration, int) {
	l.t.Helper()
	start := time.Now()
	for tries := 1; ; tries++ {
		seq, err := l.tryPurgeAll(busURL, fromHost)
		if err == nil {
			return seq, time.Since(start), tries
		}
		if time.Since(start) > 60*time.Second {
			l.t.Fatalf("no purge could be published for 60s: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (l *lab) tryPurgeAll(busURL, fromHost string) (uint64, error) {
	out, err := exec.Command("ip", "netns", "exec", l.prefix+"-"+fromHost, l.bin, "purge", "--bus", busURL, "--all", "--soft").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("lakka purge: %v: %s", err, out)
	}
	var seq uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "published seq %d", &seq); err != nil {
		return 0, fmt.Errorf("lakka purge said %q", out)
	}
	return seq, nil
}

// appliedBy is the last purge an edge applied, as its /api/stats says (0
// when it cannot be asked).
func (l *lab) appliedBy(edge string) uint64 {
	var st struct {
		Bus *struct {
			Applied uint64 `json:"applied"`
		} `json:"bus"`
	}
	resp, err := l.reader(edge).Get("http://" + l.ips[edge] + ":8081/api/stats")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Bus == nil {
		return 0
	}
	return st.Bus.Applied
}

// waitApplied waits until every edge applied the purge at seq.
func (l *lab) waitApplied(edges []string, seq uint64, within time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ok := true
		for _, e := range edges {
			var st struct {
				Bus *struct {
					Applied uint64 `json:"applied"`
				} `json:"bus"`
			}
			resp, err := l.client.Get("http://" + l.ips[e] + ":8081/api/stats")
			if err != nil {
				ok = false
				continue
			}
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.Bus == nil || st.Bus.Applied < seq {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	var state []string
	for _, e := range edges {
		log := l.logs(e)
		if len(log) > 1500 {
			log = log[len(log)-1500:]
		}
		state = append(state, fmt.Sprintf("%s applied %d; log ends:\n%s", e, l.appliedBy(e), log))
	}
	l.t.Fatalf("purge %d not applied on every edge of %v within %s:\n%s", seq, edges, within, strings.Join(state, "\n"))
}

// labBenchReport is what the lab reads of a bench report.
type labBenchReport struct {
	Requests int64    `json:"requests"`
	HitRatio *float64 `json:"hit_ratio"`
	Errors   struct {
		Total int64 `json:"total"`
	} `json:"errors"`
	Latency struct {
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	Freshness struct {
		Edits int      `json:"edits"`
		Seen  int      `json:"seen"`
		P50   *float64 `json:"p50"`
	} `json:"freshness_lag_ms"`
}

func (r labBenchReport) hitRatio() float64 {
	if r.HitRatio == nil {
		return 0
	}
	return *r.HitRatio
}
func (r labBenchReport) p99ms() float64 { return r.Latency.P99 }
func (r labBenchReport) freshness() string {
	if r.Freshness.P50 == nil {
		return fmt.Sprintf("- (%d edits, none seen)", r.Freshness.Edits)
	}
	return fmt.Sprintf("%.0f ms (%d of %d edits seen)", *r.Freshness.P50, r.Freshness.Seen, r.Freshness.Edits)
}

// spike runs lakka bench spike from the core namespace over edges.
func (l *lab) spike(edges []string, dur, extra string) labBenchReport {
	l.t.Helper()
	out := filepath.Join(l.dir, fmt.Sprintf("spike-%d", time.Now().UnixNano()))
	args := []string{"netns", "exec", l.prefix + "-core", l.bin, "bench", "spike", "--host", "news.lab",
		"--origin", "http://" + l.ips["origin"] + ":8000", "--allow-remote", "--duration", dur,
		"--rate", "150", "--spike-at", "2s", "--spike-x", "4", "--ramp", "1s", "--edit-every", "2s",
		"--connections", "32", "--out", out}
	for _, e := range edges {
		args = append(args, "--target", "http://"+l.ips[e]+":8080")
	}
	if extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "LAKKA_ORIGIN_TOKEN=lab-origin-token")
	b, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			l.t.Fatalf("bench spike: %v", err)
		}
	}
	var rep labBenchReport
	raw, rerr := os.ReadFile(filepath.Join(out, "report.json"))
	if rerr != nil || json.Unmarshal(raw, &rep) != nil {
		l.t.Fatalf("bench spike wrote no report (%v): %s", rerr, b)
	}
	return rep
}

// relayPostgres makes 127.0.0.1:5432 in host's namespace reach the
// host's PostgreSQL (on the root namespace's loopback).
func (l *lab) relayPostgres(host string) {
	ln, err := listenIn(l.nsPath(host), "127.0.0.1:5432")
	if err != nil {
		l.t.Fatalf("relay: %v", err)
	}
	l.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", "127.0.0.1:5432")
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
}

// inNetns runs f on an OS thread that joined the namespace at path; the
// thread is discarded afterwards (its goroutine ends locked), so no other
// goroutine ever runs in the namespace. Sockets made in f stay in it.
func inNetns(path string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

func listenIn(path, addr string) (net.Listener, error) {
	var ln net.Listener
	var lerr error
	if err := inNetns(path, func() { ln, lerr = net.Listen("tcp", addr) }); err != nil {
		return nil, err
	}
	return ln, lerr
}

// nsDialer dials from the namespace at path.
func nsDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var derr error
		if err := inNetns(path, func() { c, derr = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr) }); err != nil {
			return nil, err
		}
		return c, derr
	}
}

// reader is a keep-alive client in host's namespace (a reader there).
func (l *lab) reader(host string) *http.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.readers[host]
	if c == nil {
		c = &http.Client{Transport: &http.Transport{DialContext: nsDialer(l.nsPath(host)), DisableCompression: true}, Timeout: 10 * time.Second}
		l.readers[host] = c
	}
	return c
}

// ownerOf returns which of a1, a2 owns path (from the answer's
// Cache-Status on the other), and the other.
func (l *lab) ownerOf(path string) (owner, other string) {
	_, h := l.get("a1", path)
	if strings.Contains(h.Get("Cache-Status"), "detail=peer-a2") {
		return "a2", "a1"
	}
	return "a1", "a2"
}

// timedGet times one request of a reader in host's namespace to edge.
func (l *lab) timedGet(host, edge, path string) time.Duration {
	c := l.reader(host)
	req, _ := http.NewRequest(http.MethodGet, "http://"+l.ips[edge]+":8080"+path, nil)
	req.Host = "news.lab"
	req.Header.Set("Accept-Encoding", "gzip") // as browsers do
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		l.t.Errorf("%s from %s: %v", path, edge, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2].Round(time.Microsecond)
}

// labReport collects the lab's figures.
type labReport struct {
	lines                          []string
	clusteredFetches, plainFetches float64
}

func (r *labReport) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *labReport) String() string {
	return "fleet lab:\n  " + strings.Join(r.lines, "\n  ")
}
