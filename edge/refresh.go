package edge

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/edge/internal/store"
)

// refreshRetry is the least time between two background refreshes of one
// object after a failure: a failing origin gets one attempt per object per
// interval, not a storm.
const refreshRetry = time.Second

// refresher runs the fetches no client waits for to the end, on a bounded
// queue and a fixed set of workers (cache.refresh_workers): refreshes of
// objects served stale in grace (at most one per object), and fetches that
// go on after their client was served a stale copy (cache.stale_wait).
// What each does (Server.refreshOne, Server.fetchInBackground) is given to
// it; dropped counts the refreshes a full queue turned away.
type refresher struct {
	refresh func(*store.Entry)
	fetch   func(*bgFetch)
	dropped prometheus.Counter
	queue   chan job
	workers int
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// job is one piece of background work: a refresh of e, or the fetch bg.
type job struct {
	e  *store.Entry
	bg *bgFetch
}

func newRefresher(refresh func(*store.Entry), fetch func(*bgFetch), dropped prometheus.Counter, workers, queue int) *refresher {
	return &refresher{refresh: refresh, fetch: fetch, dropped: dropped, queue: make(chan job, queue), workers: workers, stop: make(chan struct{})}
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
func (r *refresher) enqueue(e *store.Entry, now time.Time) {
	if !e.BeginRefresh(now) {
		return
	}
	select {
	case r.queue <- job{e: e}:
	default:
		r.dropped.Inc()
		e.EndRefresh(time.Time{})
	}
}

// enqueueFetch hands bg to a worker; it reports false, without blocking,
// when the queue is full.
func (r *refresher) enqueueFetch(bg *bgFetch) bool {
	select {
	case r.queue <- job{bg: bg}:
		return true
	default:
		return false
	}
}

func (r *refresher) run() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case j := <-r.queue:
			if j.bg != nil {
				r.fetch(j.bg)
			} else {
				r.refresh(j.e)
			}
		}
	}
}
