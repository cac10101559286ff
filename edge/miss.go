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
	finished := false
	defer func() {
		if !finished {
			// Panicking between join and finish: publish an error, or
			// every request for the key would wait on this flight forever.
			f.status = fasthttp.StatusInternalServerError
			s.flights.finish(fkey, f)
		}
	}()
	startGen := s.store.Generation()
	req := fasthttp.AcquireRequest()
	r.upstream(modeCache, stale, req)
	fr, err := s.dir.Fetch(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		f.status = backend.Status(err)
		finished = true
		s.flights.finish(fkey, f)
		r.s.logFetchError(r.key, err)
		if !r.serveStale(stale, detailOriginDown) {
			r.reject(f.status, fetchDetail(backend.Reason(err)))
		}
		return false
	}
	out := s.abs.absorb(r.key, fr, stale, startGen, fetchView{ctx: r.ctx})
	f.entry = out.entry
	if out.entry == nil {
		if out.status >= 500 || out.err != nil {
			f.status = out.status
			if f.status == 0 {
				f.status = fasthttp.StatusBadGateway
			}
		} else {
			f.pass = true
		}
	}
	finished = true
	s.flights.finish(fkey, f)
	r.deliver(fr, out, stale)
	return false
}

// wait waits on another request's fetch f and answers with its result;
// it reports true when f fetched another variant and, mayRetry, this
// request should look up again.
func (r *request) wait(f *flight, stale *store.Entry, mayRetry bool) (retry bool) {
	s := r.s
	s.m.coalesced.Inc()
	if !f.wait(s.cfg.Cache.WaitTimeout) {
		s.m.waitTimeouts.Inc()
		if !r.serveStale(stale, detailWaitTimeout) {
			r.reject(fasthttp.StatusGatewayTimeout, detailWaitTimeout)
		}
		return false
	}
	switch {
	case f.entry != nil && selects(&r.ctx.Request.Header, f.entry):
		r.result, r.detail = resMiss, detailCollapsed
		r.serveOrPass(f.entry)
	case f.entry != nil && mayRetry:
		// The object varies and this request wants another variant.
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
	s := r.s
	r.detail = why
	startGen := s.store.Generation()
	fr := r.forward(modeDirect)
	if fr == nil {
		return
	}
	out := s.abs.absorb(r.key, fr, nil, startGen, fetchView{
		ctx:           r.ctx,
		authorization: len(r.ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0,
	})
	if out.entry == nil || !out.stored {
		r.result = resPass
	}
	r.deliver(fr, out, nil)
}

// pass forwards the request as the client sent it and relays the answer; a
// successful unsafe request invalidates what is stored for its URL.
func (r *request) pass(why detail) {
	r.result, r.detail = resPass, why
	fr := r.forward(modePass)
	if fr == nil {
		return
	}
	if fr.Resp.StatusCode() < 400 && isUnsafe(r.ctx.Method()) {
		r.invalidateAfterUnsafe(&fr.Resp.Header)
	}
	r.copyResponse(&fr.Resp.Header)
	r.cacheHeaders(false, 0, 0)
	r.relayBody(fr)
}

// forward sends this client's request to a backend in mode; on failure it
// answers the client with the mapped error status and returns nil.
func (r *request) forward(mode fetchMode) *backend.Fetched {
	req := fasthttp.AcquireRequest()
	r.upstream(mode, nil, req)
	fr, err := r.s.dir.Fetch(req)
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
func (s *Server) refreshOne(e *store.Entry) {
	var f *flight
	finished := false
	defer func() {
		if p := recover(); p != nil {
			if f != nil && !finished {
				// Client misses of the key may be waiting on this flight.
				f.status = fasthttp.StatusInternalServerError
				s.flights.finish(e.Key, f)
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
	s.pol.refreshRequest(e, req)
	fr, err := s.dir.Fetch(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		f.status = backend.Status(err)
		finished = true
		s.flights.finish(e.Key, f)
		e.EndRefresh(s.now().Add(refreshRetry))
		return
	}
	out := s.abs.absorb(e.URL(), fr, e, startGen, fetchView{varyValues: cachekey.Values(e.Key, len(e.VaryNames))})
	fr.Release()
	f.entry = out.entry
	if out.entry == nil {
		f.pass = out.status < 500 && out.err == nil
		if !f.pass {
			f.status = max(out.status, fasthttp.StatusBadGateway)
		}
	}
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
	// entry is the fetched object (nil on error or when uncacheable). It
	// may be served to the waiters even when a purge raced the fetch and
	// it was not stored (docs/RELIABILITY.md, promise 7 allows that).
	entry *store.Entry
	// pass says the answer cannot be shared: each waiter fetches on its own.
	pass bool
	// status is the error status for waiters when the fetch failed.
	status int
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
