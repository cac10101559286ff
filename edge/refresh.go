package edge

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// refreshRetry is the least time between two background refreshes of one
// object after a failure: a failing origin gets one attempt per object per
// interval, not a storm.
const refreshRetry = time.Second

// refresher runs background refreshes of objects served stale in grace:
// a bounded queue, a fixed set of workers, at most one refresh per object.
type refresher struct {
	s       *Server
	queue   chan *Entry
	workers int
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

func newRefresher(s *Server, workers, queue int) *refresher {
	return &refresher{s: s, queue: make(chan *Entry, queue), workers: workers, stop: make(chan struct{})}
}

func (r *refresher) start() {
	for range r.workers {
		r.wg.Add(1)
		go r.run()
	}
}

func (r *refresher) stopAndWait() {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
}

// enqueue schedules a refresh of e unless one is queued or running, or the
// last one failed less than refreshRetry ago. It never blocks: with the
// queue full, the object is refreshed by a later reader.
func (r *refresher) enqueue(e *Entry, now time.Time) {
	if e.retryAt.Load() > now.UnixNano() {
		return
	}
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	select {
	case r.queue <- e:
	default:
		r.s.m.refreshes.WithLabelValues("dropped").Inc()
		e.refreshing.Store(false)
	}
}

func (r *refresher) run() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case e := <-r.queue:
			r.refreshOne(e)
		}
	}
}

// refreshOne fetches e again (conditionally when it has a validator),
// sharing the fetch with client misses of the same object.
func (r *refresher) refreshOne(e *Entry) {
	s := r.s
	var f *flight
	finished := false
	defer func() {
		if p := recover(); p != nil {
			if f != nil && !finished {
				// Client misses of the key may be waiting on this flight.
				f.status = fasthttp.StatusInternalServerError
				s.flights.finish(e.key, f)
			}
			s.logPanic(p)
			e.retryAt.Store(s.now().Add(refreshRetry).UnixNano())
			e.refreshing.Store(false)
		}
	}()
	var leader bool
	f, leader = s.flights.join(e.key)
	if !leader {
		f = nil // another fetch's flight: not ours to finish
		e.refreshing.Store(false)
		return // a client miss is fetching it already
	}
	startGen := s.store.idx.generation()
	req := fasthttp.AcquireRequest()
	s.buildRefresh(e, req)
	fr, err := s.send(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		f.status = fetchStatus(err)
		finished = true
		s.flights.finish(e.key, f)
		e.retryAt.Store(s.now().Add(refreshRetry).UnixNano())
		e.refreshing.Store(false)
		return
	}
	out := s.absorb(e.url(), fr, e, startGen, requestView{varyValues: variantValues(e)})
	fr.release()
	f.entry, f.stored = out.entry, out.stored
	if out.entry == nil {
		f.pass = out.status < 500 && out.err == nil
		if !f.pass {
			f.status = max(out.status, fasthttp.StatusBadGateway)
		}
	}
	finished = true
	s.flights.finish(e.key, f)
	switch {
	case out.notMod:
		s.m.refreshes.WithLabelValues("not-modified").Inc()
	case out.entry != nil:
		s.m.refreshes.WithLabelValues("ok").Inc()
	default:
		s.m.refreshes.WithLabelValues("error").Inc()
	}
	if out.entry == nil && !f.pass {
		// Origin error: keep serving the stale object, retry later.
		e.retryAt.Store(s.now().Add(refreshRetry).UnixNano())
	}
	e.refreshing.Store(false)
}

// buildRefresh builds the request that refetches e for the cache: GET, the
// URL, the varied request headers of its variant, gzip accepted, and the
// validators of e.
func (s *Server) buildRefresh(e *Entry, req *fasthttp.Request) {
	h := &req.Header
	h.SetMethod(fasthttp.MethodGet)
	host, target := cachepolicy.SplitKey(e.url())
	h.SetRequestURIBytes(target)
	h.SetHostBytes(host)
	for i, v := range variantValues(e) {
		if len(v) > 0 {
			h.SetBytesV(e.varyNames[i], v)
		}
	}
	h.Set(fasthttp.HeaderAcceptEncoding, "gzip")
	h.Set("X-Forwarded-Proto", s.cfg.Edge.ForwardedProto)
	h.SetBytesV(fasthttp.HeaderVia, s.via)
	addConditionals(h, e)
}
