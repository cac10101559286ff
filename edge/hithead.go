package edge

import (
	"bytes"
	"sync/atomic"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// headSet is what the head pool keeps for a hot entry: for each encoding
// the entry is served in, the whole head of its plain hits (status, Date,
// stored fields, Content-Type, Vary, ETag, Content-Encoding, Age, X-Cache
// and Cache-Status), as it is during one second of the entry's life. A hit
// whose encoding, result, Age and TTL left match copies it whole (one
// CopyTo: a run of memmoves, where the long way parses a head and adds
// each field through fasthttp's validating setters); the first hit of the
// next second goes the long way and makes the next one.
type headSet struct {
	forms [numForms]headForm
}

// numForms is the number of encodings an entry is served in: identity,
// gzip and zstd (the values of cachepolicy.Encoding).
const numForms = int(cachepolicy.Zstd) + 1

// headForm holds the current head of one encoding.
type headForm struct {
	cur atomic.Pointer[hitHead]
	// again spaces out the heads: its level counts the heads in a row that
	// no hit copied, so an object hit less than once a second does not
	// allocate a head on every hit, and one that turns hot gets back to
	// one head a second within 1<<maxHeadBackoff hits.
	again backoff
	// count says whether the head pool counts this form's bytes
	// (formUncounted, ...).
	count atomic.Uint32
}

// The states of headForm.count.
const (
	formUncounted = iota
	formCounting  // being counted: not yet to be kept
	formCounted   // heads may be kept
	formRefused   // the pool had no room for it, or dropped the set
)

// hitHead is one head and the second it is true for. Read-only once
// published, but for used.
type hitHead struct {
	h      fasthttp.ResponseHeader
	age    int64 // the Age it sends
	ttl    int64 // the ttl= of its Cache-Status
	result cacheResult
	// used says a hit copied it (set once, without a lock).
	used atomic.Bool
}

// hitHeadable says whether rs is a hit whose whole head is kept: a plain
// fresh hit or a grace hit (their Cache-Status has no other detail), and
// debug headers off.
func (s *Server) hitHeadable(rs *reqState) bool {
	return !s.cfg.Edge.DebugHeaders &&
		(rs.result == resHit && rs.detail == "" || rs.result == resStale && rs.detail == "grace")
}

// copyHitHead copies e's kept head for enc into h when there is one for
// this result, Age and TTL left; it reports whether it did.
func copyHitHead(h *fasthttp.ResponseHeader, e *Entry, enc cachepolicy.Encoding, result cacheResult, age, ttl int64) bool {
	item := e.head.Load()
	if item == nil {
		return false
	}
	hh := item.v.forms[enc].cur.Load()
	if hh == nil || hh.age != age || hh.ttl != ttl || hh.result != result {
		return false
	}
	// Only a copy counts as a use of the set (the pool's CLOCK bit): an
	// object whose hits never find their second's head does not hold its
	// place against those that do.
	item.use()
	if !hh.used.Load() {
		hh.used.Store(true)
	}
	hh.h.CopyTo(h)
	return true
}

// offerHitHead keeps a copy of h, the whole head of a hit on e in enc just
// built the long way, as e's head for that encoding and second. The first
// time, e gets a set in the head pool, unless it is backing off
// (Entry.headBackoff) or its heads would not fit the pool.
func (s *Server) offerHitHead(h *fasthttp.ResponseHeader, rs *reqState, e *Entry, enc cachepolicy.Encoding, age, ttl int64) {
	checked := false // h was checked with serverLoopHead
	item := e.head.Load()
	if item == nil {
		if !e.headBackoff.due() {
			return
		}
		if headSetCost+hitHeadCost(e, enc, len(s.cacheSt)) > s.store.heads.maxSize() {
			e.headBackoff.giveUp()
			return
		}
		if !s.serverLoopHead(h, rs) {
			e.headBackoff.giveUp() // and do not look again soon
			return
		}
		checked = true
		s.store.heads.keep(e, new(headSet), headSetCost)
		if item = e.head.Load(); item == nil {
			return
		}
	}
	f := &item.v.forms[enc]
	if !f.again.due() {
		return
	}
	if old := f.cur.Load(); old != nil {
		if old.used.Load() {
			f.again.reset()
		} else {
			f.again.raise()
		}
	}
	if !checked && !s.serverLoopHead(h, rs) {
		return
	}
	// The pool counts a form's bytes from its first head on (the heads
	// after it replace it); no head is kept before they are counted.
	switch f.count.Load() {
	case formUncounted:
		if !f.count.CompareAndSwap(formUncounted, formCounting) {
			return
		}
		if !s.store.heads.grow(e, item, hitHeadCost(e, enc, len(s.cacheSt))) {
			f.count.Store(formRefused)
			return
		}
		f.count.Store(formCounted)
	case formCounting, formRefused:
		return
	}
	hh := &hitHead{age: age, ttl: ttl, result: rs.result}
	h.CopyTo(&hh.h)
	f.cur.Store(hh)
	s.m.headsMade.Inc()
}

// backoff spaces out attempts that keep coming to nothing: one is due
// after 1<<level misses (level at most maxHeadBackoff). Safe for
// concurrent use; of racing callers at most one is told an attempt is due.
type backoff struct {
	misses, level atomic.Uint32
}

// maxHeadBackoff bounds backoff.level: an attempt is due at least every
// 1<<maxHeadBackoff misses.
const maxHeadBackoff = 10

// due counts a miss and reports whether an attempt is due now.
func (b *backoff) due() bool {
	n := b.misses.Add(1)
	return n >= 1<<min(b.level.Load(), maxHeadBackoff) && b.misses.CompareAndSwap(n, 0)
}

// raise doubles the misses before the next attempt.
func (b *backoff) raise() {
	if b.level.Load() < maxHeadBackoff {
		b.level.Add(1)
	}
}

// reset makes every miss an attempt again.
func (b *backoff) reset() { b.level.Store(0) }

// giveUp waits the longest before the next attempt.
func (b *backoff) giveUp() { b.level.Store(maxHeadBackoff) }

var strDateLine = []byte("\r\nDate: ")

// serverLoopHead reports whether h was made by the server loop. fasthttp
// sends the Date header a response carries only when the server loop
// marked the response NoDefaultDate; a head copied from any other would
// give every later hit fasthttp's clock instead of the stored Date.
// Without its Date, such a head still shows one.
func (s *Server) serverLoopHead(h *fasthttp.ResponseHeader, rs *reqState) bool {
	h.CopyTo(&rs.probe)
	rs.probe.Del(fasthttp.HeaderDate)
	rs.scratch = rs.probe.AppendBytes(rs.scratch[:0])
	return !bytes.Contains(rs.scratch, strDateLine)
}

// Sizes of the fields a hit adds to the stored ones, for headSetCost:
// "Age: " and up to 8 digits, "X-Cache: " and the longest result,
// "Cache-Status: " and the longest hit value, Content-Encoding's value.
const (
	hitAgeBytes    = 8
	hitXCacheBytes = len("REVALIDATED")
	hitStatusBytes = len("; hit; ttl=-2147483648; detail=grace")
	hitCEBytes     = len("gzip")
)

// headSetCost is the memory of a headSet and its place in the head pool;
// the pool counts each form's heads on top (hitHeadCost) once it has one.
// At a second's turn a new head is made before the old one is garbage,
// which the pool's 64th of the cache budget leaves room for. TestHeadCost
// checks the sum against the heap.
var headSetCost = allocSize(int(unsafe.Sizeof(headSet{}))) + allocSize(int(unsafe.Sizeof(hotItem[*headSet]{})))

// hitHeadCost is the memory of one hitHead of e in enc: a ResponseHeader
// inline, its array of argsKV (56 bytes each: stored fields, Date, Vary,
// ETag, Age, X-Cache, Cache-Status), and each name and value in an
// allocation of its own, all rounded up to the allocator's size classes
// (allocSize). name is the length of the cache's name in Cache-Status.
func hitHeadCost(e *Entry, enc cachepolicy.Encoding, name int) int64 {
	const kv = 56
	n := len(e.fields) + 4 // Date, Age, X-Cache, Cache-Status
	c := allocSize(int(unsafe.Sizeof(hitHead{}))) +
		allocSize(len(e.contentType())) +
		allocSize(len(fasthttp.StatusMessage(e.status))) +
		2*allocSize(8) // protocol, Content-Length digits
	for i := range e.fields {
		k, v := e.field(i)
		c += allocSize(len(k)) + allocSize(len(v))
	}
	c += allocSize(len("Date")) + allocSize(max(len(e.date()), 29))
	if len(e.vary) > 0 {
		n++
		c += allocSize(len("Vary")) + allocSize(len(e.vary))
	}
	if etag := e.etagFor(enc); len(etag) > 0 {
		n++
		c += allocSize(len("ETag")) + allocSize(len(etag))
	}
	if enc != cachepolicy.Identity {
		c += allocSize(hitCEBytes)
	}
	c += allocSize(len("Age")) + allocSize(hitAgeBytes) +
		allocSize(len("X-Cache")) + allocSize(hitXCacheBytes) +
		allocSize(len("Cache-Status")) + allocSize(name+hitStatusBytes)
	return c + allocSize(n*kv)
}
