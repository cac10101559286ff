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
	// mu guards stopped against the sends: once stopAndWait has set it,
	// no job is queued any more, so the ones it drops are all there are.
	mu      sync.RWMutex
	stopped bool
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

// stopAndWait stops the workers, waits for the jobs they run, and drops
// the jobs still queued (drop undoes what queueing them took: references,
// flights).
func (r *refresher) stopAndWait(drop func(job)) {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	for {
		select {
		case j := <-r.queue:
			drop(j)
		default:
			return
		}
	}
}

// enqueue schedules a refresh of e unless one is queued or running, or the
// last one failed less than refreshRetry ago. It never blocks: with the
// queue full, the object is refreshed by a later reader.
//
// The caller holds e (store.Entry.Acquire); the job takes a reference of
// its own, which the refresh releases.
func (r *refresher) enqueue(e *store.Entry, now time.Time) {
	if !e.BeginRefresh(now) {
		return
	}
	e.Acquire()
	if !r.send(job{e: e}) {
		r.dropped.Inc()
		e.EndRefresh(time.Time{})
		e.Release()
	}
}

// send queues j unless the queue is full or the refresher stopped.
func (r *refresher) send(j job) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stopped {
		return false
	}
	select {
	case r.queue <- j:
		return true
	default:
		return false
	}
}

// enqueueFetch hands bg to a worker; it reports false, without blocking,
// when the queue is full (or the edge is stopping).
func (r *refresher) enqueueFetch(bg *bgFetch) bool { return r.send(job{bg: bg}) }

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
