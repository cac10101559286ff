package edge

import (
	"sync"
	"sync/atomic"
)

// identityPool bounds the decoded copies of gzip-stored bodies kept for
// clients that do not accept gzip, so that a repeated identity client costs
// what a gzip hit costs, not a gunzip per request (Varnish gunzips on every
// such hit).
//
// It has its own byte budget beside the store's (an eighth of
// cache.size_bytes, see New): a decoded copy never takes room from stored
// objects, and the two together stay within the cache size. Within the
// budget the pool is a CLOCK list: copies are appended when made; to make
// room the oldest is dropped unless an identity client used it since the
// pool last looked, in which case it gets a second chance at the back. So
// only bodies identity clients keep asking for stay decoded, and a hit
// marks its copy with one atomic load (a store only when the bit is clear).
//
// Invariants, under mu: an entry is in the list iff its ident is set, and
// used is the sum of the listed copies' lengths. An entry that left the
// store (exited) is never left holding a copy: keep and drop order their
// atomic writes so that at least one of them sees the other (see keep).
type identityPool struct {
	budget int64
	m      *metrics

	mu         sync.Mutex // guards used, n, head, tail, every Entry.ident transition and the copies' links
	used       int64
	n          int
	head, tail *Entry // head is the oldest copy
}

// identCopy is a decoded body kept in the identity pool, with its place in
// the pool's list. Only copies cost memory per entry: an entry without one
// carries a nil pointer.
type identCopy struct {
	body []byte
	// ref says an identity client used the copy since the pool last
	// looked (the CLOCK bit); set without the lock.
	ref atomic.Bool
	// prev and next link the entries holding copies (guarded by the
	// pool's mu).
	prev, next *Entry
}

func newIdentityPool(budget int64, m *metrics) *identityPool {
	return &identityPool{budget: budget, m: m}
}

// maxCopy is the largest decoded body the pool keeps; larger ones are
// decoded while they are sent.
func (p *identityPool) maxCopy() int64 { return p.budget / 4 }

// keep records body as e's decoded copy, dropping copies not used lately
// to stay within budget. It reports whether the copy was kept (false: too
// large, already there, or e left the store meanwhile); the caller may
// serve body either way.
func (p *identityPool) keep(e *Entry, body []byte) bool {
	n := int64(len(body))
	if n > p.maxCopy() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.ident.Load() != nil || e.exited.Load() {
		return false
	}
	p.makeRoom(n)
	c := &identCopy{body: body}
	// Dekker with store.onExit: it sets exited, then calls drop, which
	// looks at ident. We set ident, then look at exited. Either drop sees
	// the copy (and unlinks it once we release mu) or we see exited.
	e.ident.Store(c)
	p.link(e, c)
	kept := true
	if e.exited.Load() {
		p.unlink(e)
		kept = false
	}
	p.m.identityBytes.Set(float64(p.used))
	return kept
}

// makeRoom drops copies until n more bytes fit, giving recently used ones
// a second chance. Every copy is looked at most twice, so it ends even when
// clients keep using every copy.
func (p *identityPool) makeRoom(n int64) {
	for looks := 2 * p.n; p.used+n > p.budget && p.head != nil; looks-- {
		old := p.head
		if looks > 0 && old.ident.Load().ref.Swap(false) {
			p.moveToBack(old)
			continue
		}
		p.unlink(old)
		p.m.identityDropped.Inc()
	}
}

// drop forgets e's decoded copy: e left the store (store.onExit).
func (p *identityPool) drop(e *Entry) {
	if e.ident.Load() == nil {
		return
	}
	p.mu.Lock()
	if e.ident.Load() != nil {
		p.unlink(e)
		p.m.identityBytes.Set(float64(p.used))
	}
	p.mu.Unlock()
}

// link appends e, holding c, at the back. Caller holds mu.
func (p *identityPool) link(e *Entry, c *identCopy) {
	c.prev, c.next = p.tail, nil
	if p.tail != nil {
		p.tail.ident.Load().next = e
	} else {
		p.head = e
	}
	p.tail = e
	p.used += int64(len(c.body))
	p.n++
}

// detach takes e out of the list, keeping its copy. Caller holds mu.
func (p *identityPool) detach(e *Entry, c *identCopy) {
	if c.prev != nil {
		c.prev.ident.Load().next = c.next
	} else {
		p.head = c.next
	}
	if c.next != nil {
		c.next.ident.Load().prev = c.prev
	} else {
		p.tail = c.prev
	}
	c.prev, c.next = nil, nil
	p.used -= int64(len(c.body))
	p.n--
}

// unlink removes e and its copy. Caller holds mu.
func (p *identityPool) unlink(e *Entry) {
	p.detach(e, e.ident.Load())
	e.ident.Store(nil)
}

// moveToBack moves a listed e to the back, keeping its copy in place (a
// concurrent hit must not see it vanish). Caller holds mu.
func (p *identityPool) moveToBack(e *Entry) {
	if p.tail == e {
		return
	}
	c := e.ident.Load()
	p.detach(e, c)
	p.link(e, c)
}

// stats returns the bytes and number of copies kept (tests, metrics).
func (p *identityPool) stats() (used int64, copies int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.n
}
