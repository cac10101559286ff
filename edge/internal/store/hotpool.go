package store

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// HotPool bounds per-entry extras that only hot entries should carry, in a
// byte budget of its own beside the store's (config.Budget): an extra
// never takes room from stored objects, and all together stay within the
// cache size. The store has two:
//
//   - the identity pool: decoded copies of gzip-stored bodies, so that a
//     repeated client that does not take gzip costs what a gzip hit costs,
//     not a gunzip per request (Varnish gunzips on every such hit);
//   - the header pool: the whole response headers of a hot entry's hits,
//     one per encoding and second (HeaderSet), copied by a hit instead of
//     rebuilt field by field.
//
// Within its budget a pool is a CLOCK list: extras are appended when made;
// to make room the oldest is dropped unless it was used since the pool
// last looked, in which case it gets a second chance at the back. So only
// extras clients keep using stay, and a use marks its extra with one
// atomic load (a store only when the bit is clear).
//
// Invariants, under mu: an entry is in the list iff its slot is set, and
// used is the sum of the listed extras' sizes. An entry that left the store
// (exited) is never left holding an extra: Keep and drop order their
// atomic writes so that at least one of them sees the other (see Keep).
type HotPool[T any] struct {
	budget  int64
	slot    func(*Entry) *atomic.Pointer[Item[T]]
	bytes   prometheus.Gauge
	dropped prometheus.Counter
	// onDrop, if set, is told of each extra dropped to make room.
	onDrop func(*Entry)
	// hold and release, if set, take and give back the pool's reference
	// on an extra whose bytes are counted (a Copy in a slot): hold when it
	// is kept (false: it is gone already), release when it leaves.
	hold    func(T) bool
	release func(T)

	mu             sync.Mutex // guards used, n, oldest, newest, every slot transition and the items' links
	used           int64
	n              int
	oldest, newest *Entry // the ends of the list of extras
}

// Item is an extra kept in a pool, with its place in the pool's list.
// Only extras cost memory per entry: an entry without one carries a nil
// pointer.
type Item[T any] struct {
	v    T
	size int64
	// ref says a client used the extra since the pool last looked (the
	// CLOCK bit); set without the lock.
	ref atomic.Bool
	// prev and next link the entries holding extras (guarded by the
	// pool's mu).
	prev, next *Entry
}

// Use marks the extra used (the CLOCK bit) and returns it.
func (c *Item[T]) Use() T {
	if !c.ref.Load() {
		c.ref.Store(true)
	}
	return c.v
}

// Value returns the extra without marking it used.
func (c *Item[T]) Value() T { return c.v }

type (
	// IdentityPool keeps decoded copies of gzip-stored bodies.
	IdentityPool = HotPool[*Copy]
	// HeaderPool keeps the hit headers of hot entries.
	HeaderPool = HotPool[*HeaderSet]
)

func newIdentityPool(budget int64, m Metrics) *IdentityPool {
	return &IdentityPool{budget: budget, bytes: m.IdentityBytes, dropped: m.IdentityDropped,
		slot:    func(e *Entry) *atomic.Pointer[Item[*Copy]] { return &e.ident },
		hold:    (*Copy).Acquire,
		release: (*Copy).Release}
}

func newHeaderPool(budget int64, m Metrics) *HeaderPool {
	return &HeaderPool{budget: budget, bytes: m.HeaderBytes, dropped: m.HeadersDropped,
		slot:   func(e *Entry) *atomic.Pointer[Item[*HeaderSet]] { return &e.headers },
		onDrop: func(e *Entry) { e.HeaderBackoff.Raise() }}
}

// MaxSize is the largest extra the pool keeps (a quarter of its budget);
// the identity pool's callers decode larger bodies while sending them.
func (p *HotPool[T]) MaxSize() int64 { return p.budget / 4 }

// Keep records v (size bytes) as e's extra, dropping extras not used
// lately to stay within budget. It reports whether it was kept (false: too
// large, already there, or e left the store meanwhile); the caller may use
// v either way.
func (p *HotPool[T]) Keep(e *Entry, v T, size int64) bool {
	if size > p.MaxSize() {
		return false
	}
	slot := p.slot(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	if slot.Load() != nil || e.has(flagExited) {
		return false
	}
	if p.hold != nil && !p.hold(v) {
		return false
	}
	p.makeRoom(size)
	c := &Item[T]{v: v, size: size}
	// Dekker with Store.onExit: it sets exited, then calls drop, which
	// looks at the slot. We set the slot, then look at exited. Either drop
	// sees the extra (and unlinks it once we release mu) or we see exited.
	slot.Store(c)
	p.link(e, c)
	kept := true
	if e.has(flagExited) {
		p.unlink(e)
		kept = false
	}
	p.bytes.Set(float64(p.used))
	return kept
}

// Grow counts n more bytes for c, e's extra (it grew), dropping extras not
// used lately to make room; c moves to the back. It reports false, and
// counts nothing, when e no longer holds c or c would outgrow MaxSize.
func (p *HotPool[T]) Grow(e *Entry, c *Item[T], n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slot(e).Load() != c || c.size+n > p.MaxSize() {
		return false
	}
	// Out of the list while room is made, so that c is not dropped for it.
	p.detach(e, c)
	p.makeRoom(c.size + n)
	c.size += n
	p.link(e, c)
	p.bytes.Set(float64(p.used))
	return true
}

// makeRoom drops extras until n more bytes fit, giving recently used ones
// a second chance. Every extra is looked at most twice, so it ends even
// when clients keep using every one.
func (p *HotPool[T]) makeRoom(n int64) {
	for looks := 2 * p.n; p.used+n > p.budget && p.oldest != nil; looks-- {
		old := p.oldest
		if looks > 0 && p.slot(old).Load().ref.Swap(false) {
			p.moveToBack(old)
			continue
		}
		p.unlink(old)
		p.dropped.Inc()
		if p.onDrop != nil {
			p.onDrop(old)
		}
	}
}

// drop forgets e's extra: e left the store (Store.onExit).
func (p *HotPool[T]) drop(e *Entry) {
	slot := p.slot(e)
	if slot.Load() == nil {
		return
	}
	p.mu.Lock()
	if slot.Load() != nil {
		p.unlink(e)
		p.bytes.Set(float64(p.used))
	}
	p.mu.Unlock()
}

// link appends e, holding c, at the back. Caller holds mu.
func (p *HotPool[T]) link(e *Entry, c *Item[T]) {
	c.prev, c.next = p.newest, nil
	if p.newest != nil {
		p.slot(p.newest).Load().next = e
	} else {
		p.oldest = e
	}
	p.newest = e
	p.used += c.size
	p.n++
}

// detach takes e out of the list, keeping its extra. Caller holds mu.
func (p *HotPool[T]) detach(e *Entry, c *Item[T]) {
	if c.prev != nil {
		p.slot(c.prev).Load().next = c.next
	} else {
		p.oldest = c.next
	}
	if c.next != nil {
		p.slot(c.next).Load().prev = c.prev
	} else {
		p.newest = c.prev
	}
	c.prev, c.next = nil, nil
	p.used -= c.size
	p.n--
}

// unlink removes e and its extra, giving back the pool's reference on it.
// Caller holds mu.
func (p *HotPool[T]) unlink(e *Entry) {
	c := p.slot(e).Load()
	p.detach(e, c)
	p.slot(e).Store(nil)
	if p.release != nil {
		p.release(c.v)
	}
}

// moveToBack moves a listed e to the back, keeping its extra in place (a
// concurrent hit must not see it vanish). Caller holds mu.
func (p *HotPool[T]) moveToBack(e *Entry) {
	if p.newest == e {
		return
	}
	c := p.slot(e).Load()
	p.detach(e, c)
	p.link(e, c)
}

// Stats returns the bytes and number of extras kept.
func (p *HotPool[T]) Stats() (used int64, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.n
}
