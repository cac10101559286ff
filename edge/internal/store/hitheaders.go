package store

import (
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// HeaderSet is what the header pool keeps for a hot entry: for each
// encoding the entry is served in, the whole response header of its plain
// hits (status, Date, stored fields, Content-Type, Vary, ETag,
// Content-Encoding, Age, X-Cache and Cache-Status), as it is during one
// second of the entry's life. The edge makes them (on hits in the store)
// and copies them (one CopyTo, where the long way parses a header and adds
// each field through fasthttp's validating setters); the store only keeps
// them, within the pool's budget.
type HeaderSet struct {
	Forms [NumForms]HeaderForm
}

// NumForms is the number of encodings an entry is served in: identity,
// gzip and zstd (the values of cachepolicy.Encoding).
const NumForms = int(cachepolicy.Zstd) + 1

// HeaderForm holds the current hit header of one encoding.
type HeaderForm struct {
	Cur atomic.Pointer[HitHeader]
	// Again spaces out the headers: its level counts the headers in a row
	// that no hit copied, so an object hit less than once a second does
	// not allocate a header on every hit, and one that turns hot gets back
	// to one a second within 1<<MaxBackoff hits.
	Again Backoff
	// Count says whether the header pool counts this form's bytes
	// (FormUncounted, ...).
	Count atomic.Uint32
}

// The states of HeaderForm.Count.
const (
	FormUncounted = iota
	FormCounting  // being counted: not yet to be kept
	FormCounted   // headers may be kept
	FormRefused   // the pool had no room for it, or dropped the set
)

// HitHeader is one response header and the second it is true for: the
// Age it sends, the ttl= of its Cache-Status and the edge's cache result
// (X-Cache) it was made for. Read-only once published, but for Used.
type HitHeader struct {
	H      fasthttp.ResponseHeader
	Age    int64
	TTL    int64
	Result uint8
	// Used says a hit copied it (set once, without a lock).
	Used atomic.Bool
}

// Backoff spaces out attempts that keep coming to nothing: one is due
// after 1<<level misses (level at most MaxBackoff). Safe for concurrent
// use; of racing callers at most one is told an attempt is due.
//
// The level and the misses share one word (the level in its top bits):
// every stored object has one, and 4 bytes kept the Entry in a smaller
// size class.
type Backoff struct {
	w atomic.Uint32
}

const (
	backoffShift  = 28
	backoffMisses = 1<<backoffShift - 1
)

// MaxBackoff bounds Backoff's level: an attempt is due at least every
// 1<<MaxBackoff misses.
const MaxBackoff = 10

// Due counts a miss and reports whether an attempt is due now.
func (b *Backoff) Due() bool {
	// The misses cannot reach 2^28 and carry into the level: one in at
	// most 1<<MaxBackoff resets them, and losing that race means another
	// caller won it.
	w := b.w.Add(1)
	level := min(w>>backoffShift, MaxBackoff)
	return w&backoffMisses >= 1<<level && b.w.CompareAndSwap(w, w&^backoffMisses)
}

// level returns the current level.
func (b *Backoff) level() uint32 { return b.w.Load() >> backoffShift }

// setLevel sets the level, keeping the misses counted.
func (b *Backoff) setLevel(f func(level uint32) uint32) {
	for {
		w := b.w.Load()
		next := w&backoffMisses | f(w>>backoffShift)<<backoffShift
		if w == next || b.w.CompareAndSwap(w, next) {
			return
		}
	}
}

// Raise doubles the misses before the next attempt.
func (b *Backoff) Raise() {
	b.setLevel(func(l uint32) uint32 { return min(l+1, MaxBackoff) })
}

// Reset makes every miss an attempt again.
func (b *Backoff) Reset() { b.setLevel(func(uint32) uint32 { return 0 }) }

// GiveUp waits the longest before the next attempt.
func (b *Backoff) GiveUp() { b.setLevel(func(uint32) uint32 { return MaxBackoff }) }
