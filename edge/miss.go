package edge

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/coding"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// fetchShared fetches an object for the cache with request coalescing:
// the first request for fkey fetches, the others wait for its result.
// stale, when set, is a stored object past grace that the fetch
// revalidates and that is served if the origin fails. It reports true when
// this request waited on a fetch of another variant and should look up
// again (only when mayRetry).
func (r *request) fetchShared(fkey []byte, stale *store.Entry, mayRetry bool) (retry bool) {
	s := r.s
	f, leader := s.flights.join(fkey)
	if !leader {
		return r.wait(f, stale, mayRetry)
	}
	if stale != nil && r.g.cfg.Cache.StaleWait > 0 && r.peer == peerNone && r.fetchOrStale(f, fkey, stale) {
		return false
	}
	var fr *backend.Fetched
	var err error
	finished, delivered := false, false
	defer func() {
		if !finished {
			// Panicking between join and finish: publish an error, or
			// every request for the key would wait on this flight forever.
			f.status = fasthttp.StatusInternalServerError
			s.flights.finish(fkey, f)
		}
		if !delivered && fr != nil {
			fr.Release() // panicking: the fetch slot must not be lost
		}
	}()
	startGen := s.store.Generation()
	if s.cluster != nil {
		// The key's owner, the shield, or a previous owner may have it.
		if res := r.askCluster(); res.e != nil || res.status != 0 {
			out := s.cluster.keep(res, startGen, false)
			r.hold(out.entry)
			f.publish(out)
			finished = true
			s.flights.finish(fkey, f)
			r.servePeer(res, stale)
			return false
		}
	}
	req := fasthttp.AcquireRequest()
	r.upstream(modeCache, stale, req)
	fr, err = r.director().Fetch(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		f.status, f.noAnswer = backend.Status(err), true
		finished = true
		s.flights.finish(fkey, f)
		r.s.logFetchError(r.key, err)
		if !r.serveStale(stale, detailOriginDown) {
			r.reject(f.status, fetchDetail(backend.Reason(err)))
		}
		return false
	}
	out := s.abs.absorb(r.key, fr, stale, startGen, r.fetchView())
	r.hold(out.entry) // the builder's reference
	f.publish(out)
	finished = true
	s.flights.finish(fkey, f)
	r.deliver(fr, out, stale)
	delivered = true
	return false
}

// wait waits on another request's fetch f and answers with its result;
// it reports true when f fetched another variant and, mayRetry, this
// request should look up again. With a stale copy it waits at most
// cache.stale_wait, then serves the copy (the fetch goes on).
func (r *request) wait(f *flight, stale *store.Entry, mayRetry bool) (retry bool) {
	s := r.s
	s.m.coalesced.Inc()
	timeout, why := r.g.cfg.Cache.WaitTimeout, detailWaitTimeout
	if stale != nil && r.g.cfg.Cache.StaleWait > 0 {
		timeout, why = r.g.cfg.Cache.StaleWait, detailSlowOrigin
	}
	if r.peer != peerNone {
		// A peer gives up after its budget: answer before it does, so
		// that it asks the origin rather than counting a fault.
		timeout = min(timeout, max(r.peerWait-r.g.cfg.Cluster.PeerTimeout, r.peerWait/2))
	}
	if !f.wait(timeout) {
		if r.peer != peerNone {
			r.peerAnswer("busy", fasthttp.StatusOK)
			return false
		}
		if why == detailWaitTimeout {
			s.m.waitTimeouts.Inc()
		}
		if r.serveStale(stale, why) {
			return false
		}
		if why == detailSlowOrigin && f.wait(r.g.cfg.Cache.WaitTimeout-timeout) {
			// The copy went (purged meanwhile): the fetch's result after all.
			return r.fetched(f, nil, mayRetry)
		}
		r.reject(fasthttp.StatusGatewayTimeout, detailWaitTimeout)
		return false
	}
	return r.fetched(f, stale, mayRetry)
}

// fetched answers a waiter with what the finished fetch f brought.
func (r *request) fetched(f *flight, stale *store.Entry, mayRetry bool) (retry bool) {
	// The entry's key is read under a reference only: it lives in the
	// entry's slot, which holds another object once the last one went.
	if f.entry != nil && !f.entry.Acquire() {
		// Its last reference went before this waiter woke (not stored,
		// or evicted at once): look up again, or fetch alone.
		if mayRetry {
			return true
		}
		r.fetchDirect(detailNotStored)
		return false
	}
	selected := f.entry != nil && selects(&r.ctx.Request.Header, f.entry)
	if selected {
		r.hold(f.entry)
	} else if f.entry != nil {
		f.entry.Release()
	}
	switch {
	case selected:
		r.result, r.detail = resMiss, detailCollapsed
		r.serveOrPass(f.entry)
	case f.entry != nil && mayRetry:
		// The object varies and this request wants another variant.
		return true
	case f.noAnswer && stale == nil && mayRetry:
		// The fetch got no answer (it could not connect, or timed out):
		// the waiters try again, coalesced anew, rather than all share
		// one failure. The story bounds the retries.
		return true
	case f.status != 0:
		if !r.serveStale(stale, detailOriginError) {
			r.reject(f.status, detailOriginError)
		}
	default:
		r.fetchDirect(detailUncacheable)
	}
	return false
}

// bgFetch is a cache fetch handed to a background worker so that its
// client can be served a stale copy if the origin is slow (cache.stale_wait)
// while the fetch goes on and stores its result. It owns copies of what it
// needs of the client's request, never the RequestCtx.
type bgFetch struct {
	f        *flight
	fkey     []byte // the flight's key
	url      []byte // the URL key
	stale    *store.Entry
	req      *fasthttp.Request // the request for the origin
	g        *generation       // the client request's
	dir      *backend.Director // the pool it fetches from
	life     lifetimes         // the request phase's
	h        fasthttp.RequestHeader
	startGen uint64
	// result takes the outcome to the client while it still waits.
	result chan bgResult
	mu     sync.Mutex // guards waiting, handed
	// waiting says the client still waits (it gave up once false);
	// handed says the outcome was put in result.
	waiting, handed bool
}

// bgResult is a background fetch's outcome, for its client: the response
// (the client releases it) and what absorb made of it, or the error.
type bgResult struct {
	fr  *backend.Fetched
	out absorbed
	err error
	// peer is set when the cluster answered (fr is nil then).
	peer *peerResult
}

// fetchOrStale leads the fetch of flight f for the cache from a background
// worker, waits for it at most cache.stale_wait and answers with its
// result, or with the stale copy if it is not there in time. It reports
// false, having done nothing, when no worker can take the fetch: the
// caller fetches itself.
func (r *request) fetchOrStale(f *flight, fkey []byte, stale *store.Entry) bool {
	s := r.s
	bg := &bgFetch{
		f:        f,
		fkey:     append([]byte(nil), fkey...),
		url:      append([]byte(nil), r.key...),
		stale:    stale,
		req:      fasthttp.AcquireRequest(),
		g:        r.g,
		dir:      r.director(),
		life:     r.lifetimes(),
		startGen: s.store.Generation(),
		result:   make(chan bgResult, 1),
		waiting:  true,
	}
	r.upstream(modeCache, stale, bg.req)
	r.ctx.Request.Header.CopyTo(&bg.h)
	// The background fetch revalidates stale after this request may have
	// ended: a reference of its own (the request holds one, so this one
	// cannot fail).
	stale.Acquire()
	if !s.refresh.enqueueFetch(bg) {
		stale.Release()
		fasthttp.ReleaseRequest(bg.req)
		return false
	}
	t := time.NewTimer(r.g.cfg.Cache.StaleWait)
	defer t.Stop()
	select {
	case res := <-bg.result:
		r.answer(res, stale)
		return true
	case <-t.C:
	}
	bg.mu.Lock()
	if bg.handed {
		bg.mu.Unlock()
		r.answer(<-bg.result, stale)
		return true
	}
	bg.waiting = false
	bg.mu.Unlock()
	if !r.serveStale(stale, detailSlowOrigin) {
		// The copy went meanwhile (purged): wait for the fetch after all.
		r.wait(f, nil, false)
	}
	return true
}

// answer answers a client with the outcome of the background fetch it led.
func (r *request) answer(res bgResult, stale *store.Entry) {
	r.hold(res.out.entry) // the builder's reference, handed over
	if res.peer != nil {
		r.servePeer(*res.peer, stale)
		return
	}
	if res.err != nil {
		r.s.logFetchError(r.key, res.err)
		if !r.serveStale(stale, detailOriginDown) {
			r.reject(backend.Status(res.err), fetchDetail(backend.Reason(res.err)))
		}
		return
	}
	r.deliver(res.fr, res.out, stale)
}

// fetchInBackground runs a bgFetch on a background worker: it fetches,
// stores what may be stored, finishes the flight for every waiter, and
// hands the response to the client if it still waits (else releases it).
func (s *Server) fetchInBackground(bg *bgFetch) {
	f := bg.f
	var fr *backend.Fetched
	var built *store.Entry // absorb's, until handed to the client
	finished := false
	defer bg.stale.Release()
	defer func() {
		if p := recover(); p != nil {
			if !finished {
				f.status = fasthttp.StatusInternalServerError
				s.flights.finish(bg.fkey, f)
			}
			if fr != nil {
				fr.Release()
			}
			if built != nil {
				built.Release()
			}
			s.logPanic(p)
			bg.hand(bgResult{err: errBackgroundPanic})
		}
	}()
	if s.cluster != nil {
		res := s.cluster.ask(peerAsk{key: bg.url, req: bg.req, vary: &bg.h, life: bg.life, budget: bg.g.cfg.Cache.WaitTimeout / 2})
		if res.e != nil || res.status != 0 {
			fasthttp.ReleaseRequest(bg.req)
			bg.req = nil
			out := s.cluster.keep(res, bg.startGen, false)
			built = out.entry
			f.publish(out)
			finished = true
			s.flights.finish(bg.fkey, f)
			if !bg.hand(bgResult{out: out, peer: &res}) && out.entry != nil {
				out.entry.Release() // the builder's: nobody took it
			}
			built = nil
			return
		}
	}
	var err error
	fr, err = bg.dir.Fetch(bg.req)
	fasthttp.ReleaseRequest(bg.req)
	bg.req = nil
	if err != nil {
		f.status, f.noAnswer = backend.Status(err), true
		finished = true
		s.flights.finish(bg.fkey, f)
		bg.hand(bgResult{err: err})
		return
	}
	out := s.abs.absorb(bg.url, fr, bg.stale, bg.startGen, fetchView{pol: bg.g.pol, h: &bg.h, rq: newKeyView(bg.url, bg.g.pol.node), life: bg.life})
	built = out.entry
	f.publish(out)
	finished = true
	s.flights.finish(bg.fkey, f)
	if !bg.hand(bgResult{fr: fr, out: out}) {
		fr.Release()
		if out.entry != nil {
			out.entry.Release() // the builder's: nobody took it
		}
	}
	fr, built = nil, nil // released, or the client's
}

// dropJob undoes a background job that will not run (the edge is
// stopping): a refresh gives back its entry, a fetch fails its flight and
// its client and gives back its stale copy.
func (s *Server) dropJob(j job) {
	if j.e != nil {
		j.e.EndRefresh(time.Time{})
		j.e.Release()
		return
	}
	bg := j.bg
	bg.f.status, bg.f.noAnswer = fasthttp.StatusServiceUnavailable, true
	s.flights.finish(bg.fkey, bg.f)
	fasthttp.ReleaseRequest(bg.req)
	bg.req = nil
	bg.stale.Release()
	bg.hand(bgResult{err: errStopping})
}

// errStopping is what a client hears of a background fetch dropped
// because the edge is stopping.
var errStopping = errors.New("edge: stopping")

// errBackgroundPanic is what a client hears of a background fetch that
// panicked.
var errBackgroundPanic = errors.New("edge: background fetch panicked")

// hand gives res to the waiting client; it reports false when the client
// no longer waits.
func (bg *bgFetch) hand(res bgResult) bool {
	bg.mu.Lock()
	defer bg.mu.Unlock()
	if !bg.waiting || bg.handed {
		return false
	}
	bg.handed = true
	bg.result <- res
	return true
}

// serveStale serves a stored object that is past its freshness because the
// origin failed (stale-if-error, keep), with why as its detail. It reports
// false when the object may not be served stale.
func (r *request) serveStale(e *store.Entry, why detail) bool {
	if e == nil || e.Dead() || e.State(r.now) == store.Gone {
		return false
	}
	r.result, r.detail = resStale, why
	r.s.m.staleServes.Inc()
	r.serveOrPass(e)
	return true
}

// serveOrPass serves e, or passes a client without gzip that e, stored
// gzip with no-transform, cannot be served to.
func (r *request) serveOrPass(e *store.Entry) {
	if !r.serveEntry(e) {
		r.pass(detailNoTransform)
	}
}

// deliver answers the client whose request caused a fetch, with what
// absorb made of the origin's response: the stored (or storable) object,
// stale content when the origin failed, an error, or the origin's answer
// relayed as it is.
//
// The request takes over the builder's reference on out.entry (from a
// background fetch, answer has already).
func (r *request) deliver(fr *backend.Fetched, out absorbed, stale *store.Entry) {
	switch {
	case out.entry != nil:
		fr.Release()
		if r.result != resPass {
			r.result = resMiss
			if out.notMod {
				r.result = resRevalidated
			}
		}
		if out.stored {
			r.detail = detailStored
		} else if r.detail == detailNone {
			r.detail = detailNotStored
		}
		if !selects(&r.ctx.Request.Header, out.entry) {
			// A background refresh's variant: cannot happen for a client
			// fetch, which builds the variant from its own headers.
			r.reject(fasthttp.StatusBadGateway, detailVariant)
			return
		}
		r.serveOrPass(out.entry)
	case out.err != nil:
		fr.Release()
		if !errors.Is(out.err, coding.ErrCorrupt) { // logged already
			r.s.log.Warn("origin response unusable", "url", string(r.key), "err", out.err)
		}
		if !r.serveStale(stale, detailOriginError) {
			r.reject(fasthttp.StatusBadGateway, detailOriginError)
		}
	case out.status >= 500 && r.serveStale(stale, detailOriginError):
		fr.Release()
	case r.peer != peerNone:
		// Not cacheable, or too large to store: the sender fetches it.
		fr.Release()
		r.peerAnswer("pass", fasthttp.StatusOK)
	default:
		if r.result != resPass {
			r.result = resMiss
		}
		if r.detail == detailNone {
			r.detail = out.detail
		}
		r.copyResponse(&fr.Resp.Header)
		r.cacheHeaders(false, 0, 0)
		relayed := false
		if out.tooLarge {
			relayed = r.relayStream(fr, out.body)
		} else {
			relayed = r.relayBuffered(fr, out.body)
		}
		if !relayed {
			// A gzip body with no-transform, for a client without gzip:
			// its own request to the origin.
			r.pass(detailNoTransform)
		}
	}
}

// fetchDirect fetches for this request alone (no coalescing): credentials,
// remembered-uncacheable objects, waiters of an uncacheable answer. The
// answer is stored if it may be.
func (r *request) fetchDirect(why detail) {
	if r.peer != peerNone {
		r.peerAnswer("pass", fasthttp.StatusOK) // the sender fetches alone
		return
	}
	s := r.s
	r.detail = why
	startGen := s.store.Generation()
	fr := r.forward(modeDirect)
	if fr == nil {
		return
	}
	defer releaseOnPanic(fr)()
	fv := r.fetchView()
	fv.authorization = len(r.ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0
	out := s.abs.absorb(r.key, fr, nil, startGen, fv)
	r.hold(out.entry) // the builder's reference
	if out.entry == nil || !out.stored {
		r.result = resPass
	}
	r.deliver(fr, out, nil)
}

// pass forwards the request as the client sent it and relays the answer; a
// successful unsafe request invalidates what is stored for its URL.
func (r *request) pass(why detail) {
	if r.peer != peerNone {
		r.peerAnswer("pass", fasthttp.StatusOK)
		return
	}
	r.result, r.detail = resPass, why
	fr := r.forward(modePass)
	if fr == nil {
		return
	}
	defer releaseOnPanic(fr)()
	if fr.Resp.StatusCode() < 400 && isUnsafe(r.ctx.Method()) {
		r.invalidateAfterUnsafe(&fr.Resp.Header)
	}
	r.copyResponse(&fr.Resp.Header)
	r.cacheHeaders(false, 0, 0)
	r.relayBody(fr)
}

// releaseOnPanic returns what a deferred call runs to release fr if the
// function that got it panics (its fetch slot must not be lost); once the
// function returns, fr is someone else's (a streamed body's reader).
// Fetched.Release may run twice: the second does nothing.
func releaseOnPanic(fr *backend.Fetched) func() {
	return func() {
		if p := recover(); p != nil {
			fr.Release()
			panic(p) // the root handler logs and counts it
		}
	}
}

// forward sends this client's request to a backend in mode; on failure it
// answers the client with the mapped error status and returns nil.
func (r *request) forward(mode fetchMode) *backend.Fetched {
	req := fasthttp.AcquireRequest()
	r.upstream(mode, nil, req)
	fr, err := r.director().Fetch(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		r.s.logFetchError(r.key, err)
		r.reject(backend.Status(err), fetchDetail(backend.Reason(err)))
		return nil
	}
	return fr
}

// isUnsafe reports the methods whose success invalidates the stored URL
// (RFC 9111 §4.4). Only the standard unsafe methods count: an origin that
// answers 200 to any method would otherwise let anyone evict the front
// page with "FOO /".
func isUnsafe(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodPatch, fasthttp.MethodDelete:
		return true
	}
	return false
}

// logFetchError logs a failed fetch of url.
func (s *Server) logFetchError(url []byte, err error) {
	if s.log.Enabled(context.Background(), slog.LevelWarn) {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "origin fetch failed",
			slog.String("url", string(url)), slog.String("reason", backend.Reason(err).String()), slog.String("err", err.Error()))
	}
}

// refreshOne fetches e again for the cache, for no client (a background
// refresh: refresh.go), conditionally when it has a validator, sharing the
// fetch with client misses of the same object.
//
// It releases e's reference, taken when the refresh was queued.
func (s *Server) refreshOne(e *store.Entry) {
	defer e.Release()
	var f *flight
	var fr *backend.Fetched
	finished := false
	defer func() {
		if p := recover(); p != nil {
			if f != nil && !finished {
				// Client misses of the key may be waiting on this flight.
				f.status = fasthttp.StatusInternalServerError
				s.flights.finish(e.Key, f)
			}
			if fr != nil {
				fr.Release() // the fetch slot must not be lost
			}
			s.logPanic(p)
			e.EndRefresh(s.now().Add(refreshRetry))
		}
	}()
	var leader bool
	f, leader = s.flights.join(e.Key)
	if !leader {
		f = nil // another fetch's flight: not ours to finish
		e.EndRefresh(time.Time{})
		return // a client miss is fetching it already
	}
	startGen := s.store.Generation()
	req := fasthttp.AcquireRequest()
	g := s.g()
	g.pol.refreshRequest(e, req)
	if s.cluster != nil {
		rq := newKeyView(e.Key, g.pol.node)
		res := s.cluster.ask(peerAsk{key: e.URL(), req: req, vary: &req.Header, life: g.pol.refreshLifetimes(rq), fresh: true, budget: g.cfg.Cache.WaitTimeout / 2})
		if res.e != nil || res.status != 0 {
			fasthttp.ReleaseRequest(req)
			out := s.cluster.keep(res, startGen, true)
			if out.entry != nil {
				defer out.entry.Release() // the builder's: waiters take their own
			}
			f.publish(out)
			finished = true
			s.flights.finish(e.Key, f)
			var retry time.Time
			if out.entry == nil {
				s.m.refreshes.WithLabelValues("error").Inc()
				retry = s.now().Add(refreshRetry)
			} else {
				s.m.refreshes.WithLabelValues("ok").Inc()
			}
			e.EndRefresh(retry)
			return
		}
	}
	var err error
	fr, err = g.poolOf(e.Key).Fetch(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		f.status, f.noAnswer = backend.Status(err), true
		finished = true
		s.flights.finish(e.Key, f)
		e.EndRefresh(s.now().Add(refreshRetry))
		return
	}
	rq := newKeyView(e.Key, g.pol.node)
	out := s.abs.absorb(e.URL(), fr, e, startGen, fetchView{pol: g.pol, varyValues: cachekey.Values(e.Key, len(e.VaryNames)), rq: rq, life: g.pol.refreshLifetimes(rq)})
	fr.Release()
	if out.entry != nil {
		defer out.entry.Release() // the builder's: waiters take their own
	}
	f.publish(out)
	finished = true
	s.flights.finish(e.Key, f)
	switch {
	case out.notMod:
		s.m.refreshes.WithLabelValues("not-modified").Inc()
	case out.entry != nil:
		s.m.refreshes.WithLabelValues("ok").Inc()
	default:
		s.m.refreshes.WithLabelValues("error").Inc()
	}
	var retry time.Time
	if out.entry == nil && !f.pass {
		// Origin error: keep serving the stale object, retry later.
		retry = s.now().Add(refreshRetry)
	}
	e.EndRefresh(retry)
}

// flight is one origin fetch that concurrent requests for the same object
// share. The leader fills the result fields, then closes done; waiters read
// them only after done is closed.
type flight struct {
	done chan struct{}

	// Result, written by the leader before close(done):
	// entry is the fetched object (nil on error or when uncacheable).
	// Waiters acquire it; when it was not stored (a purge raced the
	// fetch: docs/RELIABILITY.md, promise 7 would allow serving it) its
	// last reference may be gone by then, and they look up again or fetch
	// alone.
	entry *store.Entry
	// pass says the answer cannot be shared: each waiter fetches on its own.
	pass bool
	// status is the error status for waiters when the fetch failed, and
	// noAnswer says the origin gave none (no connection, a timeout).
	status   int
	noAnswer bool
}

// publish sets the result of a leader's fetch from what absorb made of it:
// the entry, or the error status, or a pass.
func (f *flight) publish(out absorbed) {
	f.entry = out.entry
	if out.entry != nil {
		return
	}
	if out.status >= 500 || out.err != nil {
		f.status = out.status
		if f.status == 0 {
			f.status = fasthttp.StatusBadGateway
		}
		return
	}
	f.pass = true
}

// flightShards spreads the flight map's lock.
const flightShards = 64

// flights coalesces concurrent misses: one fetch per key. A flight leaves
// the map when it finishes; by then its entry is in the store (the store's
// admission window makes a put visible at once), so later requests hit.
type flights struct {
	seed   maphash.Seed
	shards [flightShards]flightShard
}

type flightShard struct {
	mu sync.Mutex // guards m
	m  map[string]*flight
}

func newFlights() *flights {
	f := &flights{seed: maphash.MakeSeed()}
	for i := range f.shards {
		f.shards[i].m = make(map[string]*flight)
	}
	return f
}

func (fs *flights) shard(key []byte) *flightShard {
	return &fs.shards[maphash.Bytes(fs.seed, key)%flightShards]
}

// join returns the flight for key. leader is true when the caller created
// it and must fetch and finish it.
func (fs *flights) join(key []byte) (f *flight, leader bool) {
	sh := fs.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f := sh.m[string(key)]; f != nil {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	sh.m[string(key)] = f
	return f, true
}

// finish publishes the leader's result and removes the flight.
func (fs *flights) finish(key []byte, f *flight) {
	sh := fs.shard(key)
	sh.mu.Lock()
	if sh.m[string(key)] == f {
		delete(sh.m, string(key))
	}
	sh.mu.Unlock()
	close(f.done)
}

// wait waits for f to finish, at most timeout. It reports false on
// timeout.
func (f *flight) wait(timeout time.Duration) bool {
	select {
	case <-f.done:
		return true
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
		return false
	}
}
