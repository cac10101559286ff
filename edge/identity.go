package edge

import (
	"sync"
)

// identityPool bounds the decoded copies of gzip-stored bodies kept for
// clients that do not accept gzip, so that a repeated identity client costs
// a memory copy, not a gunzip per request (Varnish gunzips on every such
// hit).
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
// Invariants, under mu: an entry is linked iff its identity pointer is
// set, and used is the sum of the linked copies' lengths. An entry that
// left the store (exited) is never left linked: keep and drop order their
// atomic writes so that at least one of them sees the other (see keep).
type identityPool struct {
	budget int64
	m      *metrics

	mu         sync.Mutex // guards used, n, head, tail and the entries' links and identity copies
	used       int64
	n          int
	head, tail *Entry // head is the oldest copy
}

func newIdentityPool(budget int64, m *metrics) *identityPool {
	return &identityPool{budget: budget, m: m}
}

// maxCopy is the largest decoded body the pool keeps; larger ones are
// decoded while they are sent.
func (p *identityPool) maxCopy() int64 { return p.budget / 4 }

// keep records that e now holds body, its decoded copy, dropping copies
// not used lately to stay within budget. It reports whether the copy was
// kept (false: too large, already there, or e left the store meanwhile);
// the caller may serve body either way.
func (p *identityPool) keep(e *Entry, body []byte) bool {
	n := int64(len(body))
	if n > p.maxCopy() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.identLinked || e.exited.Load() {
		return false
	}
	p.makeRoom(n)
	e.identity.Store(&body)
	// Dekker with store.onExit: it sets exited, then calls drop, which
	// looks at identity. We set identity, then look at exited. Either drop
	// sees the copy (and unlinks it once we release mu) or we see exited.
	p.link(e)
	e.identRef.Store(false)
	p.used += n
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
		if looks > 0 && old.identRef.Swap(false) {
			p.moveToBack(old)
			continue
		}
		p.unlink(old)
		p.m.identityDropped.Inc()
	}
}

// drop forgets e's decoded copy: e left the store (store.onExit).
func (p *identityPool) drop(e *Entry) {
	if e.identity.Load() == nil {
		return
	}
	p.mu.Lock()
	if e.identLinked {
		p.unlink(e)
		p.m.identityBytes.Set(float64(p.used))
	}
	p.mu.Unlock()
}

// link appends e at the back. Caller holds mu.
func (p *identityPool) link(e *Entry) {
	e.identPrev, e.identNext = p.tail, nil
	if p.tail != nil {
		p.tail.identNext = e
	} else {
		p.head = e
	}
	p.tail = e
	e.identLinked = true
	p.n++
}

// unlink removes e and its copy. Caller holds mu.
func (p *identityPool) unlink(e *Entry) {
	if e.identPrev != nil {
		e.identPrev.identNext = e.identNext
	} else {
		p.head = e.identNext
	}
	if e.identNext != nil {
		e.identNext.identPrev = e.identPrev
	} else {
		p.tail = e.identPrev
	}
	e.identPrev, e.identNext, e.identLinked = nil, nil, false
	if b := e.identity.Swap(nil); b != nil {
		p.used -= int64(len(*b))
	}
	p.n--
}

// moveToBack moves a linked e to the back, keeping its copy in place (a
// concurrent hit must not see it vanish). Caller holds mu.
func (p *identityPool) moveToBack(e *Entry) {
	if p.tail == e {
		return
	}
	if e.identPrev != nil {
		e.identPrev.identNext = e.identNext
	} else {
		p.head = e.identNext
	}
	e.identNext.identPrev = e.identPrev // e is not the tail
	e.identPrev, e.identNext = p.tail, nil
	p.tail.identNext = e
	p.tail = e
}

// stats returns the bytes and number of copies kept (tests, metrics).
func (p *identityPool) stats() (used int64, copies int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.n
}
