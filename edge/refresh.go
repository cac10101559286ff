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

// refresher runs background refreshes of objects served stale in grace:
// a bounded queue, a fixed set of workers, at most one refresh per object.
// What a refresh does (Server.refreshOne, a miss for no client) is given to
// it; dropped counts the refreshes a full queue turned away.
type refresher struct {
	refresh func(*store.Entry)
	dropped prometheus.Counter
	queue   chan *store.Entry
	workers int
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

func newRefresher(refresh func(*store.Entry), dropped prometheus.Counter, workers, queue int) *refresher {
	return &refresher{refresh: refresh, dropped: dropped, queue: make(chan *store.Entry, queue), workers: workers, stop: make(chan struct{})}
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
	case r.queue <- e:
	default:
		r.dropped.Inc()
		e.EndRefresh(time.Time{})
	}
}

func (r *refresher) run() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case e := <-r.queue:
			r.refresh(e)
		}
	}
}
