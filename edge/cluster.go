package edge

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/cluster"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// The edge cluster (docs/CLUSTER.md). Within a zone each URL key has one
// owner, picked by rendezvous hashing over the zone's live members (a
// static list, or the purge bus's members bucket). An edge that misses a
// key it does not own asks the owner over the peer listener; the owner
// answers from its cache, or fetches from the origin coalesced with every
// other miss of the key, so the origin sees one fetch per object per
// zone. With a shield zone, owners in the other zones ask the shield
// zone's owner instead of the origin: one fetch per object for the fleet.
//
// A peer request is a GET of the object's target on the peer listener
// with these headers besides the ones the origin would receive:
//
//	X-Lakka-Cluster-Token  the shared secret (LAKKA_CLUSTER_TOKEN)
//	X-Lakka-Key            the URL key, base64url
//	X-Lakka-Hop            "zone/node" of each edge the request went through
//	X-Lakka-Peer-Mode      lookup (answer from the cache or say miss), fetch
//	                       (fetch on a miss), fresh (a refresh: only a fresh
//	                       copy will do, else fetch)
//	X-Lakka-Life           lifetimes the request phase's rules set
//	X-Lakka-Wait           how long the asker waits for a fetch (ms)
//
// and the answer says X-Lakka-Peer-Result: hit, stale or fetched (the body
// is the object, store.AppendObject), miss (lookup only), pass (not
// cacheable: fetch it yourself), busy (its fetch did not finish within
// X-Lakka-Wait: ask the origin), or error (the status the origin's failure
// maps to).
const (
	hdrPeerToken  = "X-Lakka-Cluster-Token"
	hdrPeerKey    = "X-Lakka-Key"
	hdrPeerHop    = "X-Lakka-Hop"
	hdrPeerMode   = "X-Lakka-Peer-Mode"
	hdrPeerLife   = "X-Lakka-Life"
	hdrPeerResult = "X-Lakka-Peer-Result"
	hdrPeerStatus = "X-Lakka-Peer-Status"
	hdrPeerNode   = "X-Lakka-Peer-Node"
	hdrPeerWait   = "X-Lakka-Wait"
)

// peerMode is how a peer request asks (none: a client's request).
type peerMode uint8

const (
	peerNone peerMode = iota
	// peerLookup answers from the cache (fresh, grace or kept stale) or
	// says miss; peerFreshLookup only with a fresh copy.
	peerLookup
	peerFreshLookup
	// peerFetch answers from the cache or fetches; peerFresh (a refresh)
	// fetches unless the copy is fresh.
	peerFetch
	peerFresh
	numPeerModes
)

var peerModeNames = [numPeerModes]string{"", "lookup", "fresh-lookup", "fetch", "fresh"}

func (m peerMode) String() string { return peerModeNames[m] }

// lookupOnly reports modes that never fetch.
func (m peerMode) lookupOnly() bool { return m == peerLookup || m == peerFreshLookup }

// freshOnly reports modes for which a copy in grace will not do.
func (m peerMode) freshOnly() bool { return m == peerFreshLookup || m == peerFresh }

func parsePeerMode(b []byte) peerMode {
	for m := peerLookup; m < numPeerModes; m++ {
		if string(b) == peerModeNames[m] {
			return m
		}
	}
	return peerNone
}

// clusterHeader reports the cluster's own header names (X-Lakka-*): a
// client's are never passed on, a peer's never reach the origin.
func clusterHeader(name []byte) bool { return len(name) > 8 && equalFold(name[:8], "x-lakka-") }

// clusterTokenEnv names the environment variable holding the shared secret
// of the peer listener.
const clusterTokenEnv = "LAKKA_CLUSTER_TOKEN"

// edgeCluster is an edge's side of the cluster.
type edgeCluster struct {
	s      *Server
	self   cluster.Member
	shield string
	token  []byte
	cfg    config.Cluster
	// view is the current member list; prev the one before the last
	// change, asked until prevUntil (UnixNano).
	view      atomic.Pointer[cluster.View]
	prev      atomic.Pointer[cluster.View]
	prevUntil atomic.Int64
	hot       *cluster.Hot
	hotLimit  int64

	clientsMu sync.Mutex
	clients   map[string]*fasthttp.HostClient

	server *fasthttp.Server
	ln     net.Listener
	done   chan struct{}
	served sync.WaitGroup
}

// newCluster prepares the cluster of cfg.Cluster.Listen (set); the
// listener opens in Listen.
func newCluster(s *Server, cfg *config.Config) (*edgeCluster, error) {
	token := os.Getenv(clusterTokenEnv)
	if token == "" {
		return nil, fmt.Errorf("cluster.listen is set, and %s is empty: the peer listener needs the shared secret every edge of the cluster is given", clusterTokenEnv)
	}
	c := &edgeCluster{
		s:        s,
		self:     cluster.Member{ID: cfg.Edge.NodeID, Zone: cfg.Edge.Zone, Addr: cfg.Cluster.Listen},
		shield:   cfg.Cluster.ShieldZone,
		token:    []byte(token),
		cfg:      cfg.Cluster,
		hot:      cluster.NewHot(time.Minute),
		hotLimit: int64(cfg.Cache.SizeBytes) * int64(cfg.Cluster.HotShare) / 100,
		clients:  make(map[string]*fasthttp.HostClient),
		done:     make(chan struct{}),
	}
	c.server = &fasthttp.Server{
		Handler:                      s.handlePeer,
		Name:                         "",
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		ReadBufferSize:               int(cfg.Edge.MaxHeaderBytes) + 4096,
		ReadTimeout:                  cfg.Edge.ReadTimeout,
		WriteTimeout:                 cfg.Edge.WriteTimeout,
		IdleTimeout:                  cfg.Edge.IdleTimeout,
		MaxRequestBodySize:           1, // peer fetches are GETs
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{s.log},
	}
	return c, nil // the member list comes with the listener's address (Listen)
}

// stats describes the cluster for /api/stats.
func (c *edgeCluster) stats() *ClusterStats {
	st := &ClusterStats{Listen: c.self.Addr, ShieldZone: c.shield, Static: len(c.cfg.Peers) > 0}
	v := c.view.Load()
	for _, z := range v.Zones() {
		for _, m := range v.Zone(z) {
			st.Members = append(st.Members, ClusterMember{ID: m.ID, Zone: m.Zone, Addr: m.Addr, Self: m.ID == c.self.ID})
		}
	}
	st.HotCopies, st.HotCopyBytes = c.s.store.Copies()
	st.Forwarded = c.s.m.forwarded(clusterResults...)
	st.PeerFaults = c.s.m.forwarded("fault")
	st.PeerServed = c.s.m.servedToPeers()
	return st
}

// The label values of the cluster's counters: every series exists from
// the start (initClusterSeries), and stats sums them.
var (
	clusterRoles   = []string{"owner", "previous", "shield"}
	clusterResults = []string{"hit", "fetched", "miss", "pass", "error", "purged", "fault"}
	peerResults    = []string{"hit", "stale", "fetched", "miss", "pass", "busy", "error"}
)

// initClusterSeries creates every cluster series at zero, on every edge:
// dashboards list them on an edge without a cluster too, and a rate over a
// counter that appears with its first increase misses that increase.
func initClusterSeries(m *metrics, zone string, clustered bool) {
	for _, role := range clusterRoles {
		for _, result := range clusterResults {
			m.clusterFetches.WithLabelValues(role, result)
		}
	}
	for mode := peerLookup; mode < numPeerModes; mode++ {
		m.peerSeconds.WithLabelValues(mode.String())
		for _, result := range peerResults {
			m.peerRequests.WithLabelValues(mode.String(), result)
		}
	}
	if !clustered {
		m.clusterMembers.WithLabelValues(zone).Set(0)
	}
}

// forwarded sums lakka_edge_cluster_fetches_total over the roles, for the
// given results.
func (m *metrics) forwarded(results ...string) float64 {
	total := 0.0
	for _, role := range clusterRoles {
		for _, result := range results {
			total += value(m.clusterFetches.WithLabelValues(role, result))
		}
	}
	return total
}

// servedToPeers sums lakka_edge_cluster_peer_requests_total over the
// modes and the answers with a result.
func (m *metrics) servedToPeers() float64 {
	total := 0.0
	for mode := peerLookup; mode < numPeerModes; mode++ {
		for _, result := range peerResults {
			total += value(m.peerRequests.WithLabelValues(mode.String(), result))
		}
	}
	return total
}

// stop ends the member watch and closes the peer connections.
func (c *edgeCluster) stop() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	for _, hc := range c.clients {
		hc.CloseIdleConnections()
	}
}

// staticMembers is this edge and the configured peers.
func (c *edgeCluster) staticMembers() []cluster.Member {
	ms := []cluster.Member{c.self}
	for _, p := range c.cfg.Peers {
		ms = append(ms, cluster.Member{ID: p.ID, Zone: p.Zone, Addr: p.Address})
	}
	return ms
}

// setView makes ms the member list; the one it replaces is the previous
// owners' list for cluster.previous_owner_for.
func (c *edgeCluster) setView(ms []cluster.Member) {
	v := cluster.NewView(ms)
	old := c.view.Load()
	if old != nil && old.Equal(v) {
		return
	}
	c.view.Store(v)
	until := time.Now().Add(c.cfg.PreviousOwnerFor).UnixNano()
	switch {
	case old == nil || old.Len() <= 1:
		// The first member list of an edge that just started: what it
		// owns now, the others owned without it (and may hold).
		c.prev.Store(v.Without(c.self.ID))
		c.prevUntil.Store(until)
	default:
		c.prev.Store(old)
		c.prevUntil.Store(until)
		c.s.log.Info("cluster: members changed", "members", v.Len(), "zone", c.self.Zone, "in_zone", len(v.Zone(c.self.Zone)))
	}
	for _, z := range v.Zones() {
		c.s.m.clusterMembers.WithLabelValues(z).Set(float64(len(v.Zone(z))))
	}
	if old != nil {
		for _, z := range old.Zones() {
			if len(v.Zone(z)) == 0 {
				c.s.m.clusterMembers.WithLabelValues(z).Set(0)
			}
		}
	}
}

// previous returns the member list before the last change while its
// owners are still asked, or nil.
func (c *edgeCluster) previous() *cluster.View {
	if time.Now().UnixNano() >= c.prevUntil.Load() {
		return nil
	}
	return c.prev.Load()
}

// watchMembers follows the purge bus's members bucket: the live edges
// that announce a peer address, and this edge whatever the bus says.
func (c *edgeCluster) watchMembers(pb *purgeBus) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if pb.b.Connected() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ms, err := pb.b.Members(ctx)
			cancel()
			if err == nil {
				// Liveness on the bucket's clock: the newest entry's time
				// stands for "now" there (this edge refreshes its own
				// every second).
				var newest time.Time
				for _, m := range ms {
					if m.Updated.After(newest) {
						newest = m.Updated
					}
				}
				out := []cluster.Member{c.self}
				for _, m := range ms {
					if m.Cluster == "" || m.NodeID == c.self.ID || !m.Live(newest) {
						continue
					}
					out = append(out, cluster.Member{ID: m.NodeID, Zone: m.Zone, Addr: m.Cluster})
				}
				c.setView(out)
			}
		}
		select {
		case <-t.C:
		case <-c.done:
			return
		}
	}
}

// candidate is a peer to ask for a key, and how.
type candidate struct {
	m    cluster.Member
	mode peerMode
	role string // owner, previous or shield: the metrics' label
}

// candidates lists the peers to ask, in order, before the origin, for
// the key with hash kh: the zone's owner (unless this edge is, or the
// request came from a peer), the key's previous owner after a membership
// change (lookup only), the shield zone's owner (unless this edge is in
// the shield zone, or the request came from another zone). fresh asks
// for a fresh copy (a refresh). A peer request never goes to another
// edge of its zone in fetch mode, and the shield never forwards: no loop.
func (c *edgeCluster) candidates(kh uint64, hops []byte, fresh bool) []candidate {
	v := c.view.Load()
	fetch := peerFetch
	if fresh {
		fetch = peerFresh
	}
	out := make([]candidate, 0, 3)
	owner, _ := v.Owner(c.self.Zone, kh)
	fromZone := len(hops) > 0 && hopZone(hops) == c.self.Zone
	fromOther := len(hops) > 0 && !fromZone
	if len(hops) == 0 && owner.ID != c.self.ID && owner.ID != "" {
		out = append(out, candidate{owner, fetch, "owner"})
	}
	if p := c.previous(); p != nil {
		if po, ok := p.Owner(c.self.Zone, kh); ok && po.ID != c.self.ID && po.ID != owner.ID && !hopsHave(hops, po.ID) {
			out = append(out, candidate{po, peerLookupFor(fetch), "previous"})
		}
	}
	if c.shield != "" && c.shield != c.self.Zone && !fromOther {
		if so, ok := v.Owner(c.shield, kh); ok {
			out = append(out, candidate{so, fetch, "shield"})
		}
	}
	return out
}

// hopZone returns the zone of the last hop of a hop list.
func hopZone(hops []byte) string {
	last := hops
	if i := bytes.LastIndexByte(hops, ','); i >= 0 {
		last = hops[i+1:]
	}
	zone, _, _ := bytes.Cut(bytes.TrimSpace(last), []byte("/"))
	return string(zone)
}

// hopsHave reports whether node is in a hop list.
func hopsHave(hops []byte, node string) bool {
	for _, h := range bytes.Split(hops, []byte(",")) {
		if _, n, ok := bytes.Cut(bytes.TrimSpace(h), []byte("/")); ok && string(n) == node {
			return true
		}
	}
	return false
}

// client returns the pooled keep-alive client of a peer address.
func (c *edgeCluster) client(addr string) *fasthttp.HostClient {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	hc := c.clients[addr]
	if hc == nil {
		timeout := c.cfg.PeerTimeout
		hc = &fasthttp.HostClient{
			Addr:                      addr,
			Dial:                      func(a string) (net.Conn, error) { return fasthttp.DialTimeout(a, timeout) },
			MaxConns:                  512,
			MaxIdleConnDuration:       30 * time.Second,
			MaxIdemponentCallAttempts: 2,
			MaxResponseBodySize:       int(c.s.cfg.Cache.MaxObjectBytes)*2 + 1<<20,
			ReadBufferSize:            64 << 10,
			NoDefaultUserAgentHeader:  true,
			DisablePathNormalizing:    true,
		}
		c.clients[addr] = hc
	}
	return hc
}

// peerAsk is a miss to ask the cluster about.
type peerAsk struct {
	key []byte // the URL key
	// req is the request the origin would receive for the cache (its
	// conditionals, for this edge's stale copy, are not sent).
	req *fasthttp.Request
	// vary is the header the object's variant is keyed on here.
	vary *fasthttp.RequestHeader
	life lifetimes
	// hops are the hops of the peer request being served (nil for a
	// client's miss).
	hops  []byte
	fresh bool
	// budget bounds a peer's fetch (its lookup has cluster.peer_timeout):
	// half of what the asker itself may wait, so that the origin can
	// still be asked in time when the peer fails.
	budget time.Duration
}

// peerResult is what the cluster answered.
type peerResult struct {
	// e is the object (an unsealed entry, keyed here), or nil.
	e    *store.Entry
	node string
	hit  bool // the peer had it stored
	// stale says the peer served it stale (grace, or its origin failed).
	stale bool
	// pass says it is not cacheable: fetch it from the origin alone.
	pass bool
	// status is the origin's failure, as the peer mapped it.
	status int
	// owner says this edge owns the key in its zone (a copy from the
	// shield or the previous owner is its own to store).
	owner bool
}

// ask asks the cluster's candidates for a key in order; a zero result
// (no entry, no pass, no status) means fetch from the origin.
func (c *edgeCluster) ask(a peerAsk) peerResult {
	kh := cluster.KeyHash(a.key)
	owner, _ := c.view.Load().Owner(c.self.Zone, kh)
	res := peerResult{owner: owner.ID == c.self.ID || len(a.hops) > 0}
	if a.budget <= 0 {
		a.budget = c.cfg.PeerTimeout
	}
	for _, cand := range c.candidates(kh, a.hops, a.fresh) {
		r, fetching, err := c.askOne(cand, a)
		if err != nil {
			c.s.m.clusterFetches.WithLabelValues(cand.role, "fault").Inc()
			c.s.log.Warn("cluster: peer skipped", "peer", cand.m.ID, "addr", cand.m.Addr, "role", cand.role, "url", string(cachekey.RealURL(a.key)), "err", err)
			if fetching {
				// Alive, but not done within the budget: it was asking
				// the next candidates itself (the shield, the origin).
				// The origin now, while this edge's waiters still wait.
				return res
			}
			continue
		}
		if r.e != nil && c.s.store.PurgedSince(r.e, r.e.StoredAt()) {
			// The peer stored it before a purge this edge has applied
			// and it has not yet: not to be served here.
			c.s.m.clusterFetches.WithLabelValues(cand.role, "purged").Inc()
			continue
		}
		switch {
		case r.e != nil && r.hit:
			c.s.m.clusterFetches.WithLabelValues(cand.role, "hit").Inc()
		case r.e != nil:
			c.s.m.clusterFetches.WithLabelValues(cand.role, "fetched").Inc()
		case r.pass:
			c.s.m.clusterFetches.WithLabelValues(cand.role, "pass").Inc()
		case r.status != 0:
			c.s.m.clusterFetches.WithLabelValues(cand.role, "error").Inc()
		default:
			c.s.m.clusterFetches.WithLabelValues(cand.role, "miss").Inc()
			continue // a previous owner without it: the next one
		}
		if cand.role == "shield" {
			c.s.m.shieldFetches.Inc()
		}
		r.owner = res.owner
		return r
	}
	return res
}

// askOne asks one peer. An error means the peer could not be used (it
// refused, timed out, or answered nonsense): the caller goes on; fetching
// says it failed in fetch mode, after answering a lookup.
func (c *edgeCluster) askOne(cand candidate, a peerAsk) (r peerResult, fetching bool, err error) {
	mode := cand.mode
	if !mode.lookupOnly() {
		// A lookup first, within the short timeout: a peer that does not
		// answer from its cache at once is skipped; one that answers
		// "miss" is then given the budget of a fetch.
		r, err := c.roundTrip(cand, a, peerLookupFor(mode))
		if err != nil || r.e != nil || r.pass || r.status != 0 {
			return r, false, err
		}
	}
	r, err = c.roundTrip(cand, a, mode)
	return r, !mode.lookupOnly(), err
}

// peerLookupFor is the lookup that goes before a fetch in mode (and that
// asks a previous owner): a refresh takes only a fresh copy.
func peerLookupFor(mode peerMode) peerMode {
	if mode.freshOnly() {
		return peerFreshLookup
	}
	return peerLookup
}

// errPeerAnswer is a peer answer that makes no sense.
var errPeerAnswer = errors.New("cluster: unusable peer answer")

// errPeerBusy is a peer that could not answer within the asker's budget
// (its own fetch goes on).
var errPeerBusy = errors.New("cluster: the peer's fetch did not finish within the budget")

// roundTrip sends one peer request in mode and reads the answer.
func (c *edgeCluster) roundTrip(cand candidate, a peerAsk, mode peerMode) (peerResult, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	a.req.CopyTo(req)
	h := &req.Header
	h.Del(fasthttp.HeaderIfNoneMatch)
	h.Del(fasthttp.HeaderIfModifiedSince)
	// The cluster's headers are this edge's alone: a client's never pass.
	var theirs []string
	for k := range h.All() {
		if clusterHeader(k) {
			theirs = append(theirs, string(k))
		}
	}
	for _, k := range theirs {
		h.Del(k)
	}
	h.SetBytesV(hdrPeerToken, c.token)
	h.Set(hdrPeerKey, base64.RawURLEncoding.EncodeToString(a.key))
	hop := c.self.Zone + "/" + c.self.ID
	if len(a.hops) > 0 {
		hop = string(a.hops) + ", " + hop
	}
	h.Set(hdrPeerHop, hop)
	h.Set(hdrPeerMode, mode.String())
	if l := a.life.encode(); l != "" {
		h.Set(hdrPeerLife, l)
	}
	timeout := c.cfg.PeerTimeout
	if !mode.lookupOnly() {
		timeout = max(a.budget, c.cfg.PeerTimeout)
		h.Set(hdrPeerWait, strconv.FormatInt(timeout.Milliseconds(), 10))
	}
	start := time.Now()
	err := c.client(cand.m.Addr).DoTimeout(req, resp, timeout)
	c.s.m.peerSeconds.WithLabelValues(mode.String()).Observe(time.Since(start).Seconds())
	if err != nil {
		return peerResult{}, err
	}
	res := peerResult{node: cand.m.ID}
	switch result := string(resp.Header.Peek(hdrPeerResult)); result {
	case "hit", "stale", "fetched":
		if resp.StatusCode() != fasthttp.StatusOK {
			return peerResult{}, errPeerAnswer
		}
		e, err := c.s.store.DecodeObject(resp.Body(), c.s.now())
		if err != nil {
			return peerResult{}, fmt.Errorf("%w: %v", errPeerAnswer, err)
		}
		rekey(e, a.key, a.vary)
		res.e, res.hit, res.stale = e, result != "fetched", result == "stale"
	case "miss":
	case "busy":
		return peerResult{}, errPeerBusy
	case "pass":
		res.pass = true
	case "error":
		res.status = resp.StatusCode()
		if res.status < 500 || res.status > 599 {
			res.status = fasthttp.StatusBadGateway
		}
	default:
		return peerResult{}, fmt.Errorf("%w: status %d, result %q", errPeerAnswer, resp.StatusCode(), result)
	}
	return res, nil
}

// rekey gives an object from a peer this edge's key: its URL key, and for
// a varying object the variant the header here selects.
func rekey(e *store.Entry, url []byte, vary *fasthttp.RequestHeader) {
	if len(e.VaryNames) > 0 && vary != nil {
		e.Key = cachekey.AppendVariant(nil, url, e.VaryNames, vary)
		return
	}
	e.Key = append([]byte(nil), url...)
}

// adopt stores an object a peer sent, when this edge keeps it: as its
// own when it owns the key, as a hot copy when it fetched it often enough
// (or refreshes a copy it keeps: again), within cluster.hot_share. The
// entry stays servable either way.
func (c *edgeCluster) adopt(res peerResult, startGen uint64, again bool) (stored bool) {
	e := res.e
	s := c.s
	if !res.owner && !again {
		if c.cfg.HotAfter == 0 || c.hot.Touch(cluster.KeyHash(e.URL()), time.Now()) < uint32(c.cfg.HotAfter) {
			return false
		}
	}
	if len(e.VaryNames) > 0 && !s.store.AdmitVariant(e.URL(), e.Key) {
		return false
	}
	// A purge this edge applied after the peer stored the object (the
	// peer had not applied it yet) concerns it too.
	startGen = min(startGen, s.store.GenerationBefore(e.StoredAt()))
	if !s.store.Seal(e) {
		return false
	}
	if res.owner {
		return s.store.Put(e, startGen)
	}
	return s.store.PutCopy(e, startGen, c.hotLimit)
}

// keep is what a flight publishes of a cluster answer, the object stored
// when this edge keeps it (adopt).
func (c *edgeCluster) keep(res peerResult, startGen uint64, again bool) absorbed {
	if res.e == nil {
		return absorbed{status: res.status}
	}
	return absorbed{entry: res.e, stored: c.adopt(res, startGen, again)}
}

// encode writes lifetimes for X-Lakka-Life ("ttl=1m0s,grace=10s"), ""
// when none is set.
func (l lifetimes) encode() string {
	var parts []string
	for _, p := range []struct {
		name string
		d    *time.Duration
	}{{"ttl", l.ttl}, {"grace", l.grace}, {"keep", l.keep}} {
		if p.d != nil {
			parts = append(parts, p.name+"="+p.d.String())
		}
	}
	return strings.Join(parts, ",")
}

// parseLifetimes reads X-Lakka-Life.
func parseLifetimes(b []byte) (lifetimes, error) {
	var l lifetimes
	if len(b) == 0 {
		return l, nil
	}
	for _, part := range strings.Split(string(b), ",") {
		name, val, ok := strings.Cut(part, "=")
		d, err := time.ParseDuration(val)
		if !ok || err != nil || d < 0 {
			return l, fmt.Errorf("bad lifetime %q", part)
		}
		switch name {
		case "ttl":
			l.ttl = &d
		case "grace":
			l.grace = &d
		case "keep":
			l.keep = &d
		default:
			return l, fmt.Errorf("unknown lifetime %q", name)
		}
	}
	return l, nil
}
