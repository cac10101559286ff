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
	// entry is the fetched object (nil on error or when uncacheable). It
	// may be served to the waiters even when a purge raced the fetch and
	// it was not stored (RELIABILITY promise 7 allows that).
	entry *Entry
	// stored says entry went to the store.
	stored bool
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
