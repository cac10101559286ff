package edge

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// handlePeer serves a request of another edge of the cluster on the peer
// listener: the object of a key this edge owns (or, in the shield zone,
// owns for the fleet), from its cache or fetched coalesced with every
// other miss of the key. It serves nothing else.
func (s *Server) handlePeer(ctx *fasthttp.RequestCtx) {
	c := s.cluster
	h := &ctx.Request.Header
	if subtle.ConstantTimeCompare(h.Peek(hdrPeerToken), c.token) != 1 {
		s.m.peerRequests.WithLabelValues("", "refused").Inc()
		ctx.Error("401 the cluster token (LAKKA_CLUSTER_TOKEN) is missing or wrong\n", fasthttp.StatusUnauthorized)
		ctx.SetConnectionClose()
		return
	}
	mode := parsePeerMode(h.Peek(hdrPeerMode))
	key, kerr := base64.RawURLEncoding.DecodeString(string(h.Peek(hdrPeerKey)))
	life, lerr := parseLifetimes(h.Peek(hdrPeerLife))
	hops := h.Peek(hdrPeerHop)
	wait := s.cfg.Cache.WaitTimeout
	if w := h.Peek(hdrPeerWait); len(w) > 0 {
		ms, err := strconv.ParseInt(string(w), 10, 64)
		if err != nil || ms <= 0 {
			lerr = fmt.Errorf("bad %s %q", hdrPeerWait, w)
		}
		wait = min(wait, time.Duration(ms)*time.Millisecond)
	}
	if mode == peerNone || kerr != nil || len(key) == 0 || lerr != nil || len(hops) == 0 || !bytes.Equal(ctx.Method(), strGET) {
		s.m.peerRequests.WithLabelValues("", "bad").Inc()
		ctx.Error("400 not a peer request\n", fasthttp.StatusBadRequest)
		return
	}
	if hopsHave(hops, c.self.ID) {
		s.m.peerRequests.WithLabelValues(mode.String(), "loop").Inc()
		ctx.Error("508 this edge is on the request's hop list already\n", fasthttp.StatusLoopDetected)
		return
	}
	r := s.requests.Get().(*request)
	r.reset(ctx, s)
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(p)
			ctx.Response.Reset()
			ctx.Error("500 internal error\n", fasthttp.StatusInternalServerError)
			ctx.SetConnectionClose()
		}
		s.m.peerRequests.WithLabelValues(mode.String(), string(ctx.Response.Header.Peek(hdrPeerResult))).Inc()
		r.releaseHeld()
		r.ctx, r.g = nil, nil
		s.requests.Put(r)
	}()
	r.raw = countRaw(h.RawHeaders())
	r.peer, r.peerLife, r.peerHops, r.peerWait = mode, life, hops, wait
	r.key = append(r.key[:0], key...)
	r.host = append(r.host[:0], h.Host()...)
	r.target = append(r.target[:0], h.RequestURI()...)
	r.route = cachepolicy.MatchRoute(r.g.pol.matches, cachepolicy.HostWithoutPort(r.host), r.target)
	if d := r.g.poolOf(key); d != r.g.dir {
		r.dir = d
	}
	r.ae = cachepolicy.ParseAcceptEncoding(strGzip)
	r.peerServe()
}

var strGzip = []byte("gzip")

// peerServe is a peer request's story: the lookup, then (unless it only
// looks up) the coalesced fetch.
func (r *request) peerServe() {
	for attempt := 0; ; attempt++ {
		found, fkey, stale := r.lookup()
		switch found {
		case foundServed:
		case foundUncacheable, foundNoTransform:
			r.peerAnswer("pass", fasthttp.StatusOK)
		case foundOnlyIfCached:
			r.peerAnswer("miss", fasthttp.StatusOK)
		case foundNothing:
			if r.peer.lookupOnly() {
				r.peerAnswer("miss", fasthttp.StatusOK)
				return
			}
			if r.fetchShared(fkey, stale, attempt < 2) {
				r.releaseHeld()
				continue
			}
		}
		return
	}
}

// serveToPeer answers a peer with a stored object: its record and bytes.
func (r *request) serveToPeer(e *store.Entry) {
	result := "hit"
	switch r.result {
	case resStale:
		result = "stale"
	case resMiss, resRevalidated:
		result = "fetched"
	}
	resp := &r.ctx.Response
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.Header.Set(hdrPeerResult, result)
	resp.Header.Set(hdrPeerNode, r.s.cluster.self.ID)
	resp.Header.SetContentType("application/x-lakka-object")
	resp.SetBodyRaw(store.AppendObject(nil, e, r.s.now()))
}

// peerAnswer answers a peer without an object: miss, pass, or error (with
// the status the failure maps to).
func (r *request) peerAnswer(result string, status int) {
	resp := &r.ctx.Response
	resp.ResetBody()
	resp.SetStatusCode(status)
	resp.Header.Set(hdrPeerResult, result)
	resp.Header.Set(hdrPeerNode, r.s.cluster.self.ID)
}

// askCluster asks the cluster for this request's miss (the leader of its
// flight).
func (r *request) askCluster() peerResult {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	r.upstream(modeCache, nil, req)
	// Half of what this request may wait: the rest is the origin's, should
	// the peer fail.
	budget := r.g.cfg.Cache.WaitTimeout / 2
	if r.peer != peerNone {
		budget = r.peerWait / 2
	}
	return r.s.cluster.ask(peerAsk{key: r.key, req: req, vary: &r.ctx.Request.Header, life: r.lifetimes(), hops: r.peerHops, fresh: r.peer.freshOnly(), budget: budget})
}

// servePeer answers the client (or the peer) with what the cluster
// answered: the object, or the origin's failure (a stale copy if there is
// one).
func (r *request) servePeer(res peerResult, stale *store.Entry) {
	if res.e == nil {
		if !r.serveStale(stale, detailOriginError) {
			r.reject(res.status, detailOriginError)
		}
		return
	}
	switch {
	case res.stale:
		r.result = resStale
	case res.hit:
		r.result = resHit
	default:
		r.result = resMiss
	}
	r.detail, r.peerNode = detailPeer, res.node
	r.serveOrPass(res.e)
}
