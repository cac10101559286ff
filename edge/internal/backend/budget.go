package backend

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// BodyBudget bounds the bytes of origin bodies the edge holds in its heap
// at once: bodies being read to be stored (and the compressed copy made of
// them), and bodies relayed to a client after they were read. The bytes a
// fetch takes are given back when its Fetched is released, so a relayed
// body keeps its share until the client has it all.
//
// A fetch that cannot take its share within the wait does not buffer: its
// body is streamed through to the client and not stored (the caller's
// choice; the budget only says no). A body fasthttp read with the header
// (a few KiB) is not counted: it is in memory already and bounded by the
// number of connections.
type BodyBudget struct {
	sem     *semaphore.Weighted
	size    int64
	used    atomic.Int64
	refused atomic.Uint64
}

// NewBodyBudget makes a budget of size bytes (size > 0).
func NewBodyBudget(size int64) *BodyBudget {
	return &BodyBudget{sem: semaphore.NewWeighted(size), size: size}
}

// Size is the budget's bound in bytes.
func (b *BodyBudget) Size() int64 { return b.size }

// Used is the bytes taken now.
func (b *BodyBudget) Used() int64 { return b.used.Load() }

// Refused counts the takes that failed.
func (b *BodyBudget) Refused() uint64 { return b.refused.Load() }

// Take reserves n more bytes for f's body, waiting up to wait for others
// to give theirs back (0: not at all). Waiters are served in order. On
// success the bytes belong to f until f.Release. A request larger than the
// whole budget fails at once.
func (b *BodyBudget) Take(f *Fetched, n int64, wait time.Duration) bool {
	if n <= 0 {
		return true
	}
	ok := n <= b.size && b.sem.TryAcquire(n)
	if !ok && n <= b.size && wait > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		ok = b.sem.Acquire(ctx, n) == nil
		cancel()
	}
	if !ok {
		b.refused.Add(1)
		return false
	}
	b.used.Add(n)
	if f.budget != nil && f.budget != b {
		panic("BUG: a fetch holds bytes of two body budgets")
	}
	f.budget = b
	f.held += n
	return true
}

// Give returns n of the bytes f took before f is released (a buffer it
// no longer holds).
func (b *BodyBudget) Give(f *Fetched, n int64) {
	if f.budget != b || n > f.held {
		panic("BUG: a fetch gives back body bytes it did not take")
	}
	f.held -= n
	b.give(n)
}

// Held is body bytes detached from their fetch (Fetched.Detach): a
// buffered body that outlives its origin response.
type Held struct {
	b *BodyBudget
	n int64
}

// Give returns the bytes; the zero Held has none. It may be called once.
func (h Held) Give() {
	if h.n > 0 {
		h.b.give(h.n)
	}
}

// Bytes is how many bytes h holds.
func (h *Held) Bytes() int64 { return h.n }

// Take adds n bytes of b to h without waiting; false if b has no room.
func (h *Held) Take(b *BodyBudget, n int64) bool {
	if h.b != nil && h.b != b {
		panic("BUG: held body bytes of two budgets")
	}
	if n > b.size || !b.sem.TryAcquire(n) {
		b.refused.Add(1)
		return false
	}
	b.used.Add(n)
	h.b = b
	h.n += n
	return true
}

// Detach takes the body bytes f holds away from it, so that f can be
// released (its connection and fetch slot given back) while the body it
// read is still being written to a client.
func (f *Fetched) Detach() Held {
	h := Held{b: f.budget, n: f.held}
	f.held = 0
	return h
}

// give returns n bytes.
func (b *BodyBudget) give(n int64) {
	b.used.Add(-n)
	b.sem.Release(n)
}
