package backend

import (
	"container/list"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errBusy means a fetch found no slot: the queue was full, or it waited
// its whole queue_timeout. Status maps it to 503 (or a stale copy).
var errBusy = errors.New("edge: backend fetch limit reached")

// limiter bounds one backend's concurrent fetches adaptively (AIMD, as
// Netflix's concurrency-limits library and TCP's congestion control do,
// with a latency check as TCP Vegas has): the limit rises for each fetch
// answered promptly (within twice the backend's recent best time to
// headers, plus 10 ms) while at least half of it was in use and no
// connection to the backend is being made, by one until
// the first sign of overload and by one per round of fetches after it
// (slow start, then congestion avoidance); it stays for fetches answered
// later than that (the origin is queueing them: more concurrency would not
// help); and it falls by a tenth for each fetch that shows overload (a
// timeout of any phase, an answer later than the overload latency, a 503
// or 429 from the origin), between a floor and a ceiling. A struggling
// origin so gets the concurrency it can answer, not more, and a slow one is
// not declared dead (that takes evidence it is down: docs/RELIABILITY.md,
// promise 11).
//
// Fetches beyond the limit wait in a FIFO queue bounded in length and in
// time; a waiter is granted a slot as soon as one is free.
type limiter struct {
	floor, ceiling float64
	maxQueue       int
	gauges         limiterGauges
	// dialing counts the backend's connections being made: while one is,
	// the limit does not rise (a connection that does not come yet may be
	// one the backend has no room for).
	dialing atomic.Int32

	mu    sync.Mutex // guards everything below
	limit float64
	// rise is the limit up to which it rises by one per prompt answer (as
	// TCP's slow start does); above it, by one per limit's worth of them
	// (one per round of fetches). Every overload sets it to the new limit.
	rise     float64
	inflight int
	queue    list.List // of *waiter, oldest first
	// best is the shortest time to headers of the last two windows of
	// rttWindow answers (the current one in cur, counted by samples), the
	// backend's time when it does not queue.
	best, cur time.Duration
	samples   int
}

// rttWindow is the number of answers after which the best time to headers
// starts over from the current window's (so that it follows a backend
// that got slower for good).
const rttWindow = 256

// promptSlack is added to twice the best time to headers for an answer to
// count as prompt.
const promptSlack = 10 * time.Millisecond

// limiterGauges are the limiter's metric children.
type limiterGauges struct {
	limit, inflight, queued interface{ Set(float64) }
}

// waiter is a fetch waiting for a slot; granted (under the limiter's mu)
// says it got one, and ready is closed then.
type waiter struct {
	ready   chan struct{}
	granted bool
}

func newLimiter(initial, floor, ceiling, maxQueue int, g limiterGauges) *limiter {
	l := &limiter{floor: float64(floor), ceiling: float64(ceiling), maxQueue: maxQueue, gauges: g}
	l.limit = min(max(float64(initial), l.floor), l.ceiling)
	l.rise = l.ceiling
	l.publish()
	return l
}

// acquire takes a slot, waiting at most wait in the queue. It returns
// errBusy when the queue is full or the wait ran out; errQueueFull says
// which, for the metrics.
func (l *limiter) acquire(wait time.Duration) error {
	l.mu.Lock()
	if l.inflight < int(l.limit) && l.queue.Len() == 0 {
		l.inflight++
		l.publish()
		l.mu.Unlock()
		return nil
	}
	if wait <= 0 || l.queue.Len() >= l.maxQueue {
		l.mu.Unlock()
		return errQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	el := l.queue.PushBack(w)
	l.publish()
	l.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-t.C:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted {
		return nil // granted as the timer fired: the slot is ours
	}
	l.queue.Remove(el)
	l.publish()
	return errBusy
}

// errQueueFull is errBusy for a fetch that found the queue full.
var errQueueFull = errors.Join(errBusy, errors.New("queue full"))

// outcome is what a finished fetch says about the backend's load.
type outcome uint8

const (
	outcomeNeutral  outcome = iota // says nothing (refused, bad framing, ...)
	outcomeOK                      // answered in time
	outcomeOverload                // timed out, answered late, or said 503/429
)

// release gives back a slot and adjusts the limit by what the fetch saw
// (for an answer, latency is its time to headers), then grants freed slots
// to waiters in order.
func (l *limiter) release(o outcome, latency time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch o {
	case outcomeOK:
		if l.samples == 0 || latency < l.cur {
			l.cur = latency
		}
		if l.best == 0 || latency < l.best {
			l.best = latency
		}
		if l.samples++; l.samples >= rttWindow {
			l.best, l.samples = l.cur, 0
		}
		if latency <= 2*l.best+promptSlack && float64(l.inflight)*2 >= l.limit && l.dialing.Load() == 0 {
			step := 1.0
			if l.limit >= l.rise {
				step = 1 / l.limit
			}
			l.limit = min(l.limit+step, l.ceiling)
		}
	case outcomeOverload:
		l.limit = max(l.limit*0.9, l.floor)
		l.rise = l.limit
	}
	l.inflight--
	for l.inflight < int(l.limit) && l.queue.Len() > 0 {
		w := l.queue.Remove(l.queue.Front()).(*waiter)
		w.granted = true
		l.inflight++
		close(w.ready)
	}
	l.publish()
}

// publish updates the gauges. Caller holds mu.
func (l *limiter) publish() {
	l.gauges.limit.Set(l.limit)
	l.gauges.inflight.Set(float64(l.inflight))
	l.gauges.queued.Set(float64(l.queue.Len()))
}

// state returns the limit, the fetches in flight and those queued.
func (l *limiter) state() (limit float64, inflight, queued int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.inflight, l.queue.Len()
}
