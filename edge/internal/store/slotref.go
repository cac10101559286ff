package store

import (
	"sync"
	"sync/atomic"

	"github.com/lakka-cache/lakka/edge/internal/slab"
)

// slotRef is bytes held in a slot of the store's pool (outside the Go
// heap) and the count of references to them: who may still read them.
// The last release frees the slot, which the pool then reuses; acquire
// never revives bytes whose count reached zero. A zero slotRef is bytes on
// the Go heap: acquire always succeeds and release does nothing.
//
// It keeps no pointer to the pool: the Slot names it (slab.Slot.Free), and
// 8 bytes less in every Entry is what kept it in a smaller size class.
type slotRef struct {
	slot slab.Slot
	refs atomic.Int32
}

// set records the slot just allocated; the caller holds the first
// reference.
func (r *slotRef) set(slot slab.Slot) {
	r.slot = slot
	r.refs.Store(1)
}

// sealed reports whether the bytes are in a slot (set was called).
func (r *slotRef) sealed() bool { return !r.slot.IsZero() }

// acquire takes a reference; false: the bytes are gone.
func (r *slotRef) acquire() bool {
	if !r.sealed() {
		return true
	}
	for {
		n := r.refs.Load()
		if n <= 0 {
			return false
		}
		if r.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// take adds a reference for a holder that already has one (it cannot
// fail).
func (r *slotRef) take() {
	if r.sealed() && r.refs.Add(1) <= 1 {
		panic("store: a reference taken on bytes already freed")
	}
}

// release gives back a reference; it reports true for the last one: the
// caller then frees the slot (after poisoning it, in tests).
func (r *slotRef) release() bool {
	if !r.sealed() {
		return false
	}
	n := r.refs.Add(-1)
	if n < 0 {
		panic("store: bytes released more often than acquired")
	}
	return n == 0
}

// free returns the slot to its pool, once release reported the last
// reference. In tests (poisonFreed) the poisoned slot waits in a short
// quarantine first: the pool hands a freed slot out again at once, and a
// read after release would then find another object's bytes, not the
// poison.
func (r *slotRef) free() {
	if !poisonFreed {
		r.slot.Free()
		return
	}
	quarantine.mu.Lock()
	defer quarantine.mu.Unlock()
	quarantine.q = append(quarantine.q, quarantined{r.slot.Pool(), r.slot, r.slot.Len()})
	quarantine.bytes += r.slot.Len()
	for len(quarantine.q) > quarantineSlots || quarantine.bytes > quarantineBytes {
		q := quarantine.q[0]
		quarantine.q = quarantine.q[1:]
		quarantine.bytes -= q.n
		q.pool.Free(q.slot)
	}
}

// The quarantine of freed slots in tests: the last frees, bounded in
// number and bytes so that small test caches still have room.
const (
	quarantineSlots = 32
	quarantineBytes = 1 << 20
)

type quarantined struct {
	pool *slab.Pool
	slot slab.Slot
	n    int
}

var quarantine struct {
	mu    sync.Mutex
	q     []quarantined
	bytes int
}

// flushQuarantine frees pool's quarantined slots (so that its counts say
// what is really in use).
func flushQuarantine(pool *slab.Pool) {
	if !poisonFreed {
		return
	}
	quarantine.mu.Lock()
	defer quarantine.mu.Unlock()
	kept := quarantine.q[:0]
	for _, q := range quarantine.q {
		if q.pool == pool {
			quarantine.bytes -= q.n
			q.pool.Free(q.slot)
			continue
		}
		kept = append(kept, q)
	}
	clear(quarantine.q[len(kept):])
	quarantine.q = kept
}

func poison(b []byte) {
	for i := range b {
		b[i] = 0xdb
	}
}

// Copy is the decoded form of a gzip-stored body, in a slot of the
// store's pool: kept for hot entries by the identity pool, or made for
// one answer. Its bytes stay valid while a reference is held, like an
// entry's.
type Copy struct {
	b   []byte
	ref slotRef
}

// NewCopy returns a copy of n bytes to decode into (Bytes), its first
// reference held by the caller; nil when the pool has no room.
func (s *Store) NewCopy(n int64) *Copy {
	slot, b, ok := s.pool.Alloc(int(n))
	if !ok {
		return nil
	}
	c := &Copy{b: b[:n:n]}
	c.ref.set(slot)
	return c
}

// HeapCopy wraps bytes on the Go heap as a Copy (references do nothing).
func HeapCopy(b []byte) *Copy { return &Copy{b: b} }

// Bytes returns the copy's bytes; read them only while holding a
// reference.
func (c *Copy) Bytes() []byte { return c.b }

// Size is what the copy costs: its slot.
func (c *Copy) Size() int64 {
	if !c.ref.sealed() {
		return int64(len(c.b))
	}
	return int64(c.ref.slot.Size())
}

// Sealed reports whether the copy is in a slot (not on the heap).
func (c *Copy) Sealed() bool { return c.ref.sealed() }

// Acquire takes a reference; false: the copy is gone (do not read it).
func (c *Copy) Acquire() bool { return c.ref.acquire() }

// Release gives back a reference; the last one frees the slot.
func (c *Copy) Release() {
	if c.ref.release() {
		if poisonFreed {
			poison(c.b)
		}
		c.ref.free()
	}
}
