package edge

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// hotPool bounds per-entry extras that only hot entries should carry, in a
// byte budget of its own beside the store's (see New): an extra never
// takes room from stored objects, and all together stay within the cache
// size. The edge has two:
//
//   - the identity pool: decoded copies of gzip-stored bodies, so that a
//     repeated client that does not take gzip costs what a gzip hit costs,
//     not a gunzip per request (Varnish gunzips on every such hit);
//   - the head pool: the whole heads of a hot entry's hits, one per
//     encoding and second (headSet), copied by a hit instead of rebuilt
//     field by field.
//
// Within its budget a pool is a CLOCK list: extras are appended when made;
// to make room the oldest is dropped unless it was used since the pool
// last looked, in which case it gets a second chance at the back. So only
// extras clients keep using stay, and a use marks its extra with one
// atomic load (a store only when the bit is clear).
//
// Invariants, under mu: an entry is in the list iff its slot is set, and
// used is the sum of the listed extras' sizes. An entry that left the store
// (exited) is never left holding an extra: keep and drop order their
// atomic writes so that at least one of them sees the other (see keep).
type hotPool[T any] struct {
	budget  int64
	slot    func(*Entry) *atomic.Pointer[hotItem[T]]
	bytes   prometheus.Gauge
	dropped prometheus.Counter
	// onDrop, if set, is told of each extra dropped to make room.
	onDrop func(*Entry)

	mu         sync.Mutex // guards used, n, head, tail, every slot transition and the items' links
	used       int64
	n          int
	head, tail *Entry // head is the oldest extra
}

// hotItem is an extra kept in a pool, with its place in the pool's list.
// Only extras cost memory per entry: an entry without one carries a nil
// pointer.
type hotItem[T any] struct {
	v    T
	size int64
	// ref says a client used the extra since the pool last looked (the
	// CLOCK bit); set without the lock.
	ref atomic.Bool
	// prev and next link the entries holding extras (guarded by the
	// pool's mu).
	prev, next *Entry
}

// use marks the extra used (the CLOCK bit) and returns it.
func (c *hotItem[T]) use() T {
	if !c.ref.Load() {
		c.ref.Store(true)
	}
	return c.v
}

type (
	identityPool = hotPool[[]byte]
	identCopy    = hotItem[[]byte]
	headPool     = hotPool[*headSet]
)

func newIdentityPool(budget int64, m *metrics) *identityPool {
	return &identityPool{budget: budget, bytes: m.identityBytes, dropped: m.identityDropped,
		slot: func(e *Entry) *atomic.Pointer[identCopy] { return &e.ident }}
}

func newHeadPool(budget int64, m *metrics) *headPool {
	return &headPool{budget: budget, bytes: m.headBytes, dropped: m.headDropped,
		slot:   func(e *Entry) *atomic.Pointer[hotItem[*headSet]] { return &e.head },
		onDrop: func(e *Entry) { e.headBackoff.raise() }}
}

// maxSize is the largest extra the pool keeps (a quarter of its budget);
// the identity pool's callers decode larger bodies while sending them.
func (p *hotPool[T]) maxSize() int64 { return p.budget / 4 }

// keep records v (size bytes) as e's extra, dropping extras not used
// lately to stay within budget. It reports whether it was kept (false: too
// large, already there, or e left the store meanwhile); the caller may use
// v either way.
func (p *hotPool[T]) keep(e *Entry, v T, size int64) bool {
	if size > p.maxSize() {
		return false
	}
	slot := p.slot(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	if slot.Load() != nil || e.exited.Load() {
		return false
	}
	p.makeRoom(size)
	c := &hotItem[T]{v: v, size: size}
	// Dekker with store.onExit: it sets exited, then calls drop, which
	// looks at the slot. We set the slot, then look at exited. Either drop
	// sees the extra (and unlinks it once we release mu) or we see exited.
	slot.Store(c)
	p.link(e, c)
	kept := true
	if e.exited.Load() {
		p.unlink(e)
		kept = false
	}
	p.bytes.Set(float64(p.used))
	return kept
}

// grow counts n more bytes for c, e's extra (it grew), dropping extras not
// used lately to make room; c moves to the back. It reports false, and
// counts nothing, when e no longer holds c or c would outgrow maxSize.
func (p *hotPool[T]) grow(e *Entry, c *hotItem[T], n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slot(e).Load() != c || c.size+n > p.maxSize() {
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
func (p *hotPool[T]) makeRoom(n int64) {
	for looks := 2 * p.n; p.used+n > p.budget && p.head != nil; looks-- {
		old := p.head
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

// drop forgets e's extra: e left the store (store.onExit).
func (p *hotPool[T]) drop(e *Entry) {
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
func (p *hotPool[T]) link(e *Entry, c *hotItem[T]) {
	c.prev, c.next = p.tail, nil
	if p.tail != nil {
		p.slot(p.tail).Load().next = e
	} else {
		p.head = e
	}
	p.tail = e
	p.used += c.size
	p.n++
}

// detach takes e out of the list, keeping its extra. Caller holds mu.
func (p *hotPool[T]) detach(e *Entry, c *hotItem[T]) {
	if c.prev != nil {
		p.slot(c.prev).Load().next = c.next
	} else {
		p.head = c.next
	}
	if c.next != nil {
		p.slot(c.next).Load().prev = c.prev
	} else {
		p.tail = c.prev
	}
	c.prev, c.next = nil, nil
	p.used -= c.size
	p.n--
}

// unlink removes e and its extra. Caller holds mu.
func (p *hotPool[T]) unlink(e *Entry) {
	p.detach(e, p.slot(e).Load())
	p.slot(e).Store(nil)
}

// moveToBack moves a listed e to the back, keeping its extra in place (a
// concurrent hit must not see it vanish). Caller holds mu.
func (p *hotPool[T]) moveToBack(e *Entry) {
	if p.tail == e {
		return
	}
	c := p.slot(e).Load()
	p.detach(e, c)
	p.link(e, c)
}

// stats returns the bytes and number of extras kept (tests, metrics).
func (p *hotPool[T]) stats() (used int64, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.n
}
