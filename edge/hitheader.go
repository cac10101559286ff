package edge

import (
	"bytes"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// Kept hit headers: a hot object keeps the whole response header of its
// plain hits, per encoding and second (store.HeaderSet, in the store's
// header pool), so that a hit whose second matches is one CopyTo plus the
// body. The first hit of a new second builds the header the long way
// (serveEntry) and offers it here.

// offerHitHeader keeps a copy of the response header just built the long
// way for a hit on e in enc, as e's header for that encoding and second.
// The first time, e gets a set in the header pool, unless it is backing off
// (Entry.HeaderBackoff) or its headers would not fit the pool.
func (r *request) offerHitHeader(e *store.Entry, enc cachepolicy.Encoding, age, ttl int64) {
	s := r.s
	h := &r.ctx.Response.Header
	pool := s.store.Headers
	checked := false // h was checked with fromServerLoop
	item := e.Headers()
	if item == nil {
		if !e.HeaderBackoff.Due() {
			return
		}
		if headerSetCost+hitHeaderCost(e, enc, len(r.g.pol.name)) > pool.MaxSize() {
			e.HeaderBackoff.GiveUp()
			return
		}
		var ok bool
		if r.scratch, ok = fromServerLoop(h, &r.probe, r.scratch); !ok {
			e.HeaderBackoff.GiveUp() // and do not look again soon
			return
		}
		checked = true
		pool.Keep(e, new(store.HeaderSet), headerSetCost)
		if item = e.Headers(); item == nil {
			return
		}
	}
	f := &item.Value().Forms[enc]
	if !f.Again.Due() {
		return
	}
	if old := f.Cur.Load(); old != nil {
		if old.Used.Load() {
			f.Again.Reset()
		} else {
			f.Again.Raise()
		}
	}
	if !checked {
		var ok bool
		if r.scratch, ok = fromServerLoop(h, &r.probe, r.scratch); !ok {
			return
		}
	}
	// The pool counts a form's bytes from its first header on (the ones
	// after it replace it); no header is kept before they are counted.
	switch f.Count.Load() {
	case store.FormUncounted:
		if !f.Count.CompareAndSwap(store.FormUncounted, store.FormCounting) {
			return
		}
		if !pool.Grow(e, item, hitHeaderCost(e, enc, len(r.g.pol.name))) {
			f.Count.Store(store.FormRefused)
			return
		}
		f.Count.Store(store.FormCounted)
	case store.FormCounting, store.FormRefused:
		return
	}
	hh := &store.HitHeader{Age: age, TTL: ttl, Result: uint8(r.result)}
	h.CopyTo(&hh.H)
	f.Cur.Store(hh)
	s.m.headersMade.Inc()
}

var strDateLine = []byte("\r\nDate: ")

// fromServerLoop reports whether h was made by the server loop. fasthttp
// sends the Date header a response carries only when the server loop
// marked the response NoDefaultDate; a header copied from any other would
// give every later hit fasthttp's clock instead of the stored Date.
// Without its Date, such a header still shows one. probe and buf are
// scratch space; buf is returned for reuse.
func fromServerLoop(h, probe *fasthttp.ResponseHeader, buf []byte) ([]byte, bool) {
	h.CopyTo(probe)
	probe.Del(fasthttp.HeaderDate)
	buf = probe.AppendBytes(buf[:0])
	return buf, !bytes.Contains(buf, strDateLine)
}

// Sizes of the fields a hit adds to the stored ones, for hitHeaderCost:
// "Age: " and up to 8 digits, "X-Cache: " and the longest result,
// "Cache-Status: " and the longest hit value, Content-Encoding's value.
const (
	hitAgeBytes    = 8
	hitXCacheBytes = len("REVALIDATED")
	hitStatusBytes = len("; hit; ttl=-2147483648; detail=grace")
	hitCEBytes     = len("gzip")
)

// headerSetCost is the memory of a store.HeaderSet and its place in the
// header pool; the pool counts each form's headers on top (hitHeaderCost)
// once it has one. At a second's turn a new header is made before the old
// one is garbage, which the pool's 64th of the cache budget leaves room
// for. TestHeaderCost checks the sum against the heap.
var headerSetCost = allocSize(int(unsafe.Sizeof(store.HeaderSet{}))) + allocSize(int(unsafe.Sizeof(store.Item[*store.HeaderSet]{})))

// hitHeaderCost is the memory of one store.HitHeader of e in enc: a
// ResponseHeader inline, its array of argsKV (56 bytes each: stored fields,
// Date, Vary, ETag, Age, X-Cache, Cache-Status), and each name and value in
// an allocation of its own, all rounded up to the allocator's size classes
// (allocSize). name is the length of the cache's name in Cache-Status.
func hitHeaderCost(e *store.Entry, enc cachepolicy.Encoding, name int) int64 {
	const kv = 56
	n := e.NumFields() + 4 // Date, Age, X-Cache, Cache-Status
	c := allocSize(int(unsafe.Sizeof(store.HitHeader{}))) +
		allocSize(len(e.ContentType())) +
		allocSize(len(fasthttp.StatusMessage(int(e.Status)))) +
		2*allocSize(8) // protocol, Content-Length digits
	for i := range e.NumFields() {
		k, v := e.Field(i)
		c += allocSize(len(k)) + allocSize(len(v))
	}
	c += allocSize(len("Date")) + allocSize(max(len(e.Date()), 29))
	if len(e.Vary()) > 0 {
		n++
		c += allocSize(len("Vary")) + allocSize(len(e.Vary()))
	}
	if etag := e.ETagFor(enc); len(etag) > 0 {
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

// allocSize rounds a small allocation up the way Go's allocator does
// (size classes of 8 and 16 bytes, then coarser), erring high.
func allocSize(n int) int64 {
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return 8
	case n <= 128:
		return int64(n+15) &^ 15
	default:
		return int64(n+n/8+63) &^ 63
	}
}
