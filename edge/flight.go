package edge

import (
	"hash/maphash"
	"sync"
	"time"
)

// flight is one origin fetch that concurrent requests for the same object
// share. The leader fills the result fields, then closes done; waiters read
// them only after done is closed.
type flight struct {
	done chan struct{}

	// Result, written by the leader before close(done):
	// entry is the fetched object (nil on error or when uncacheable).
	entry *Entry
	// stored says entry went to the store; only then may requests that
	// arrive after the fetch use it (a purge may have raced the fetch).
	stored bool
	// pass says the answer cannot be shared: each waiter fetches on its own.
	pass bool
	// status is the error status for waiters when the fetch failed.
	status int
	// finished is when done was closed (for the janitor).
	finished time.Time
}

// flightShards spreads the flight map's lock.
const flightShards = 64

// flights coalesces concurrent misses: one fetch per key. A finished flight
// stays in the map until its entry is visible in ristretto (whose Set is
// asynchronous), so the request right after a fetch is a hit even before
// ristretto has applied the Set.
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
// it and must fetch and finish it. A finished flight is returned as is
// (the caller decides whether its entry is still usable) unless replace is
// true, in which case a new flight replaces it.
func (fs *flights) join(key []byte, replace bool) (f *flight, leader bool) {
	sh := fs.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f := sh.m[string(key)]; f != nil {
		select {
		case <-f.done:
			if !replace {
				return f, false
			}
		default:
			return f, false
		}
	}
	f = &flight{done: make(chan struct{})}
	sh.m[string(key)] = f
	return f, true
}

// peek returns a finished flight for key whose entry was stored, or nil.
func (fs *flights) peek(key []byte) *flight {
	sh := fs.shard(key)
	sh.mu.Lock()
	f := sh.m[string(key)]
	sh.mu.Unlock()
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
		if f.stored && f.entry != nil {
			return f
		}
	default:
	}
	return nil
}

// finish publishes the leader's result. Flights with nothing reusable are
// removed at once; the others when the janitor has seen their Set applied.
func (fs *flights) finish(key []byte, f *flight, now time.Time) {
	f.finished = now
	close(f.done)
	if !f.stored {
		fs.remove(key, f)
	}
}

// remove deletes f from the map if it is still the flight for key.
func (fs *flights) remove(key []byte, f *flight) {
	sh := fs.shard(key)
	sh.mu.Lock()
	if sh.m[string(key)] == f {
		delete(sh.m, string(key))
	}
	sh.mu.Unlock()
}

// sweep removes stored flights that finished before cutoff: the caller has
// waited for ristretto to apply every Set made before cutoff.
func (fs *flights) sweep(cutoff time.Time) (left int) {
	for i := range fs.shards {
		sh := &fs.shards[i]
		sh.mu.Lock()
		for k, f := range sh.m {
			select {
			case <-f.done:
				if !f.finished.After(cutoff) {
					delete(sh.m, k)
					continue
				}
			default:
			}
			left++
		}
		sh.mu.Unlock()
	}
	return left
}

// wait waits for f to finish, at most until deadline. It reports false on
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
