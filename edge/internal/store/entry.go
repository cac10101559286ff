package store

import (
	"encoding/binary"
	"iter"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/slab"
)

// Kind says what a stored value is.
type Kind uint8

const (
	// KindObject is a cached response.
	KindObject Kind = iota
	// KindVary marks a URL whose responses vary: its variants are stored
	// under their variant keys (cachekey.AppendVariant on VaryNames).
	KindVary
	// KindHitForMiss remembers that a URL's answer was uncacheable, so that
	// requests for it skip coalescing until it expires (Varnish's
	// hit-for-miss).
	KindHitForMiss
)

// Span locates a stored header value in an entry's Hdr buffer.
type Span struct{ Start, End uint32 }

// SpanID names one of an entry's spans into its Hdr (Entry.Span).
type SpanID uint8

const (
	SpanCT   SpanID = iota // Content-Type
	SpanDate               // Date (the origin's, or when the edge received the response)
	SpanETag               // the origin's ETag
	SpanLM                 // Last-Modified
	SpanSC                 // Surrogate-Control, to compute freshness again after a 304
	// SpanFields locates the table of stored fields in Hdr: FieldSpan
	// records of fieldSpanSize bytes (NumFields, Field). They are the
	// end-to-end headers served as they are (not Content-Length,
	// Content-Encoding, Content-Type, Date, ETag, Vary, Age or hop-by-hop
	// ones, which are handled separately).
	SpanFields
	// SpanVary locates the Vary value sent to clients (the origin's, with
	// Accept-Encoding added when the encoding depends on the request).
	SpanVary
	// SpanETagOther locates the ETag served for the one of identity and
	// gzip that is not ETagEnc.
	SpanETagOther
	numSpans
)

// SpanTableSize is the size of the table of spans at the end of an
// entry's Hdr: numSpans records of two little-endian uint32s.
const SpanTableSize = int(numSpans) * 8

// FieldSpan locates one stored header field in an entry's Hdr buffer: its
// name is Hdr[K0:K1], its value Hdr[K1:V1]. Offsets, not slices: 12 bytes a
// field instead of 48, paid once per stored object, and kept in Hdr itself
// (AppendFields), so in the entry's slot, not on the Go heap.
type FieldSpan struct{ K0, K1, V1 uint32 }

// Entry is one stored value: a cached response, a Vary marker or a
// hit-for-miss marker. Its exported fields are set before the entry is
// published (stored, or handed to waiters) and never written again; the
// state that changes later (soft purge, removal, the pools' extras, the
// refresh in progress) is atomic and reached through methods.
type Entry struct {
	// Key is the full storage key (cachekey's format); a hit compares it
	// with the lookup key (ristretto compares only 128-bit hashes). Once
	// the entry is sealed it lives in the entry's slot, like Hdr: read it
	// while the entry is in the store or under a reference (Acquire);
	// after that, its bytes may be another object's (Store.Peek).
	Key []byte
	// ID is unique per entry (Store.NextID): the tag index and the pools
	// use it to tell a replaced entry from its replacement.
	ID uint64

	// Hdr holds the stored header fields and values, the Vary value, the
	// derived ETag, the table of field spans and, in its last SpanTableSize
	// bytes, the table of the entry's spans (SpanID), in one buffer that
	// Seal moves into the entry's slot: the spans are offsets into it
	// (read them with Field and the methods of the spans' names), and they
	// live in the slot, not in the Entry, because every byte of the Entry
	// is paid on the Go heap, twice (GOGC), per stored object. Add to it
	// only before the entry is sealed (InitHdr, AppendHdr, SetSpan).
	Hdr []byte
	// Body is stored in encoding Enc (cachepolicy.Identity or Gzip).
	Body []byte

	// IdentityLen is the length of the decoded body (len(Body) when Enc is
	// Identity).
	IdentityLen int64
	// LastModTime is Last-Modified in Unix seconds (0: none, or not a date;
	// an origin's 1 January 1970 counts as none too, which costs its
	// conditional requests a full answer), for If-Range and
	// If-Modified-Since.
	LastModTime int64

	// ident is the decoded copy of a gzip body while identity clients ask
	// for it (IdentityPool); nil otherwise. Set and cleared only under the
	// pool's lock.
	ident atomic.Pointer[Item[*Copy]]
	// headers holds the whole response headers of this entry's hits, one
	// per encoding and second (HeaderSet), made on hits in the store and
	// copied by the later ones while they come (HeaderPool); nil
	// otherwise. Set and cleared only under the header pool's lock.
	headers atomic.Pointer[Item[*HeaderSet]]

	// Freshness, measured on the monotonic clock from when the entry was
	// stored: stored is that time as an offset from clockBase (StoredAt,
	// SetStoredAt), 8 bytes instead of a time.Time's 24.
	stored     time.Duration
	InitialAge time.Duration
	TTL        time.Duration
	Grace      time.Duration
	Keep       time.Duration

	// VaryNames are the request headers the entry (or a KindVary marker)
	// varies on, lower-case, in the order of the variant key.
	VaryNames []string
	// tags are the Surrogate-Key tags of the response, separated by
	// spaces (which no tag holds): one string, where a []string would
	// cost a slice header and a string header per tag on the heap (Tags,
	// SetTags). Like Key, it moves into the entry's slot when the entry
	// is sealed: read it under the same conditions (the tag index does,
	// while the entry is indexed, which ends before the store lets go).
	tags string
	// Cost is what the entry counts against the store's byte budget.
	Cost int64

	// purgedAt is 0, or the age (ns) at which a soft purge made the entry
	// stale.
	purgedAt atomic.Int64
	// ref is the slot holding Hdr, Body, the zstd body, Key and tags once
	// the entry is sealed (Store.Seal), and who may read them: the builder, the
	// store while the entry is in it, requests serving it, bodies being
	// written to clients, background jobs.
	ref slotRef
	// HeaderBackoff spaces out the header sets offered to the pool: its
	// level counts the times the pool dropped this entry's set for room,
	// so objects that keep losing theirs (more hot objects than the pool
	// holds) back off instead of allocating a set on every hit.
	HeaderBackoff Backoff
	// extra holds what few entries need (entryExtra), so that the others
	// do not pay for it.
	extra atomic.Pointer[entryExtra]
	// flags holds the entry's changing yes/no states (flagDead and the
	// others), in one word: every byte of the entry is paid once per
	// stored object.
	flags atomic.Uint32

	// The small fields, together, for the same reason.
	Status     uint16
	Kind       Kind
	Revalidate bool
	Enc        cachepolicy.Encoding
	// ETagEnc is the encoding the origin's ETag belongs to; when serving
	// another encoding, the ETag gets a suffix.
	ETagEnc cachepolicy.Encoding
	// NoTransform says the origin sent a gzip body with Cache-Control:
	// no-transform: the edge must not decode it (RFC 9110 §7.7), so clients
	// without gzip are passed to the origin.
	NoTransform bool
}

// entryExtra is the part of an entry that few entries need: it is made
// for a zstd form or a Vary marker before the entry is published, or for
// a failed refresh's hold-off after (Entry.more).
type entryExtra struct {
	// zstd is the zstd form of a gzip-stored body, made once at store
	// time when compression.zstd is on; nil otherwise, or when it did not
	// pay. Set before the entry is published.
	zstd *ZstdForm
	// retryAt (UnixNano) holds off the next background refresh after a
	// failure.
	retryAt atomic.Int64
	// variants counts the variants admitted under a KindVary marker, and
	// variantList holds them (copy on write), for URL purges.
	variants    atomic.Int32
	variantList atomic.Pointer[[]*Entry]
}

// more returns the entry's extra part, made if it has none.
func (e *Entry) more() *entryExtra {
	for {
		if x := e.extra.Load(); x != nil {
			return x
		}
		if x := new(entryExtra); e.extra.CompareAndSwap(nil, x) {
			return x
		}
	}
}

// variantList returns the variants recorded under a Vary marker (nil for
// none, or another entry).
func (e *Entry) variantList() []*Entry {
	if x := e.extra.Load(); x != nil {
		if vs := x.variantList.Load(); vs != nil {
			return *vs
		}
	}
	return nil
}

// Zstd returns the zstd form of a gzip-stored body (made once at store
// time when compression.zstd is on), or nil: none, or it did not pay.
func (e *Entry) Zstd() *ZstdForm {
	if x := e.extra.Load(); x != nil {
		return x.zstd
	}
	return nil
}

// SetZstd records the zstd form; only before the entry is published.
func (e *Entry) SetZstd(z *ZstdForm) {
	if z == nil && e.extra.Load() == nil {
		return
	}
	e.more().zstd = z
}

// The bits of Entry.flags.
const (
	// flagDead: the entry was hard-purged or removed; it is never served.
	flagDead uint32 = 1 << iota
	// flagExited: the store has accounted for the entry leaving.
	flagExited
	// flagInStore: the entry was handed to the store (it may have exited
	// since); only such entries keep a decoded copy in the identity pool.
	flagInStore
	// flagRefreshing: a background refresh is queued or running.
	flagRefreshing
	// flagCopy: a copy of an object another edge of the cluster owns
	// (Store.PutCopy); it counts in the store's copy bytes.
	flagCopy
)

// has reports whether flag f is set.
func (e *Entry) has(f uint32) bool { return e.flags.Load()&f != 0 }

// set sets flag f; it reports whether it was not set before (this caller
// set it).
func (e *Entry) set(f uint32) bool { return e.flags.Or(f)&f == 0 }

// fieldSpanSize is the size of a FieldSpan record in Hdr's table.
const fieldSpanSize = 12

// ZstdForm is the zstd form of an entry's body and its ETag.
type ZstdForm struct {
	Body []byte
	ETag []byte
}

// at returns the stored value span id locates.
func (e *Entry) at(id SpanID) []byte {
	sp := e.Span(id)
	return e.Hdr[sp.Start:sp.End:sp.End]
}

// Span returns where span id is in Hdr (zero: the value is empty, or the
// entry has no header buffer, as markers).
func (e *Entry) Span(id SpanID) Span {
	h := e.Hdr
	if len(h) < SpanTableSize {
		return Span{}
	}
	r := h[len(h)-SpanTableSize+int(id)*8:][:8]
	return Span{Start: binary.LittleEndian.Uint32(r), End: binary.LittleEndian.Uint32(r[4:])}
}

// SetSpan records where span id is; only before the entry is sealed.
func (e *Entry) SetSpan(id SpanID, sp Span) {
	e.ensureTable()
	r := e.Hdr[len(e.Hdr)-SpanTableSize+int(id)*8:][:8]
	binary.LittleEndian.PutUint32(r, sp.Start)
	binary.LittleEndian.PutUint32(r[4:], sp.End)
}

// HdrData returns the header buffer without its table of spans: the bytes
// the spans locate, as a snapshot or a peer sends them.
func (e *Entry) HdrData() []byte {
	if len(e.Hdr) < SpanTableSize {
		return nil
	}
	return e.Hdr[: len(e.Hdr)-SpanTableSize : len(e.Hdr)-SpanTableSize]
}

// InitHdr starts the header buffer with buf (the spans may then locate
// bytes in it), with room for room more bytes before the entry is sealed.
func (e *Entry) InitHdr(buf []byte, room int) {
	h := make([]byte, 0, len(buf)+room+SpanTableSize)
	h = append(h, buf...)
	e.Hdr = append(h, zeroSpans[:]...)
}

var zeroSpans [SpanTableSize]byte

// ensureTable gives an entry without a header buffer its table of spans.
// A header buffer is started by InitHdr (or a snapshot's layOut), never by
// appending to Hdr: the last SpanTableSize bytes of a non-empty one are
// the table.
func (e *Entry) ensureTable() {
	switch {
	case len(e.Hdr) == 0:
		e.InitHdr(nil, 0)
	case len(e.Hdr) < SpanTableSize:
		panic("store: a header buffer without its table of spans (start it with InitHdr)")
	}
}

// NumFields returns the number of stored fields.
func (e *Entry) NumFields() int {
	sp := e.Span(SpanFields)
	return int(sp.End-sp.Start) / fieldSpanSize
}

// Field returns the name and value of stored field i.
func (e *Entry) Field(i int) (key, value []byte) {
	r := e.Hdr[int(e.Span(SpanFields).Start)+i*fieldSpanSize:][:fieldSpanSize]
	k0 := binary.LittleEndian.Uint32(r)
	k1 := binary.LittleEndian.Uint32(r[4:])
	v1 := binary.LittleEndian.Uint32(r[8:])
	return e.Hdr[k0:k1:k1], e.Hdr[k1:v1:v1]
}

// AppendHdr adds b to the entry's header buffer (before its table of
// spans) and returns where it is; only before the entry is sealed.
func (e *Entry) AppendHdr(b []byte) Span {
	tab := e.openHdr()
	start := len(e.Hdr)
	e.Hdr = append(e.Hdr, b...)
	end := len(e.Hdr)
	e.Hdr = append(e.Hdr, tab[:]...)
	return Span{Start: uint32(start), End: uint32(end)}
}

// openHdr takes the table of spans off the end of Hdr, for appending to
// the bytes before it; the caller appends the table back.
func (e *Entry) openHdr() [SpanTableSize]byte {
	e.ensureTable()
	var tab [SpanTableSize]byte
	d := len(e.Hdr) - SpanTableSize
	copy(tab[:], e.Hdr[d:])
	e.Hdr = e.Hdr[:d]
	return tab
}

// AppendFields adds the table of stored fields to the header buffer
// (SpanFields); only before the entry is sealed.
func (e *Entry) AppendFields(fields []FieldSpan) {
	tab := e.openHdr()
	start := len(e.Hdr)
	for _, f := range fields {
		e.Hdr = binary.LittleEndian.AppendUint32(e.Hdr, f.K0)
		e.Hdr = binary.LittleEndian.AppendUint32(e.Hdr, f.K1)
		e.Hdr = binary.LittleEndian.AppendUint32(e.Hdr, f.V1)
	}
	end := len(e.Hdr)
	e.Hdr = append(e.Hdr, tab[:]...)
	e.SetSpan(SpanFields, Span{Start: uint32(start), End: uint32(end)})
}

// Vary returns the Vary value sent to clients (empty: none).
func (e *Entry) Vary() []byte { return e.at(SpanVary) }

// ETagOther returns the ETag served for the one of identity and gzip that
// is not ETagEnc (empty: none).
func (e *Entry) ETagOther() []byte { return e.at(SpanETagOther) }

// ContentType, Date, ETag, LastModified and SurrogateControl return the
// stored values (empty when absent; Date is always there).
func (e *Entry) ContentType() []byte      { return e.at(SpanCT) }
func (e *Entry) Date() []byte             { return e.at(SpanDate) }
func (e *Entry) ETag() []byte             { return e.at(SpanETag) }
func (e *Entry) LastModified() []byte     { return e.at(SpanLM) }
func (e *Entry) SurrogateControl() []byte { return e.at(SpanSC) }

// LastMod returns Last-Modified as a time (zero when there is none).
func (e *Entry) LastMod() time.Time {
	if e.LastModTime == 0 {
		return time.Time{}
	}
	return time.Unix(e.LastModTime, 0)
}

// ModifiedAt is what a client's If-Modified-Since is compared with (RFC
// 9111 §4.3.2): Last-Modified, or without one, the stored Date (the
// origin's, or when the edge received the response).
func (e *Entry) ModifiedAt() time.Time {
	if t := e.LastMod(); !t.IsZero() {
		return t
	}
	t, _ := cachepolicy.ParseHTTPDate(e.Date())
	return t
}

// Tags returns the entry's Surrogate-Key tags (as parsed: sorted, without
// repeats).
func (e *Entry) Tags() iter.Seq[string] { return strings.FieldsSeq(e.tags) }

// TagList returns the entry's tags separated by spaces, as a
// Surrogate-Key header would send them.
func (e *Entry) TagList() string { return e.tags }

// HasTag reports whether t is one of the entry's tags.
func (e *Entry) HasTag(t string) bool {
	for u := range e.Tags() {
		if u == t {
			return true
		}
	}
	return false
}

// TagsCost is what the entry's tags cost before it is sealed: their
// string, and the tag index's share (tagIndexCost).
func (e *Entry) TagsCost() int64 { return int64(len(e.tags)) + e.tagIndexCost() }

// tagIndexCost is what the entry's tags cost the index: a slot of its map
// for each (or its share of a big tag's set).
func (e *Entry) tagIndexCost() int64 { return int64(48 * e.numTags()) }

// keyMoves reports whether the key and tags join the entry's other n
// bytes in its slot: only in a slot of a size class, which stays mapped
// when freed; a larger slot is unmapped, and an object that large keeps
// them on the heap.
func (e *Entry) keyMoves(n int) bool { return n+len(e.Key)+len(e.tags) <= slab.MaxClassSize }

// moveKey copies the key and then the tags into b, the slot's room for
// them (len(Key)+len(tags) bytes), and points the entry at them there.
func (e *Entry) moveKey(b []byte) {
	k := copy(b, e.Key)
	e.Key = b[:k:k]
	if len(e.tags) > 0 {
		t := copy(b[k:], e.tags)
		e.tags = unsafe.String(&b[k], t)
	}
}

// numTags returns the number of the entry's tags.
func (e *Entry) numTags() int {
	n := 0
	for range e.Tags() {
		n++
	}
	return n
}

// SetTags records the entry's tags (none may hold a space, as none of
// cachepolicy.ParseSurrogateKeys's do); only before the entry is
// published.
func (e *Entry) SetTags(tags []string) { e.tags = strings.Join(tags, " ") }

// SetTagList records the entry's tags, separated by single spaces
// (TagList's form); only before the entry is published.
func (e *Entry) SetTagList(tags string) { e.tags = tags }

// URL returns the URL key of the entry's key.
func (e *Entry) URL() []byte { return cachekey.URL(e.Key) }

// ETagFor returns the ETag to send with the body in encoding enc.
func (e *Entry) ETagFor(enc cachepolicy.Encoding) []byte {
	switch {
	case len(e.ETag()) == 0 || enc == e.ETagEnc:
		return e.ETag()
	case enc == cachepolicy.Zstd:
		if e.Zstd() == nil {
			return nil
		}
		return e.Zstd().ETag
	}
	return e.ETagOther()
}

// Freshness is where an entry stands at some moment.
type Freshness uint8

const (
	Fresh   Freshness = iota // serve it
	InGrace                  // serve stale at once, refresh in the background
	InKeep                   // only for revalidation, or to serve when the origin fails
	Gone                     // unusable
)

// clockBase is the moment entries' stored times are counted from. Times
// taken from time.Now carry the monotonic clock, and so does the
// difference; a wall-clock time (one read back from a file) is compared on
// the wall clock.
var clockBase = time.Now()

// StoredAt returns when the entry was stored.
func (e *Entry) StoredAt() time.Time { return clockBase.Add(e.stored) }

// SetStoredAt records when the entry was stored; only before it is
// published.
func (e *Entry) SetStoredAt(t time.Time) { e.stored = t.Sub(clockBase) }

// Age returns the entry's current age (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	return e.InitialAge + max(now.Sub(clockBase)-e.stored, 0)
}

// expiresAt returns the age at which the entry stops being fresh: its TTL,
// or earlier if it was soft-purged.
func (e *Entry) expiresAt() time.Duration {
	if p := e.purgedAt.Load(); p != 0 && time.Duration(p) < e.TTL {
		return time.Duration(p)
	}
	return e.TTL
}

// State returns where the entry stands at now.
func (e *Entry) State(now time.Time) Freshness {
	if e.has(flagDead) {
		return Gone
	}
	a := e.Age(now)
	exp := e.expiresAt()
	switch {
	case a < exp && !e.Revalidate:
		return Fresh
	case a < exp+e.Grace && !e.Revalidate:
		return InGrace
	case a < exp+e.Grace+e.Keep || (e.Revalidate && a < e.TTL+e.Grace+e.Keep):
		return InKeep
	}
	return Gone
}

// TTLLeft returns the freshness left in whole seconds (negative when
// stale), for Cache-Status.
func (e *Entry) TTLLeft(now time.Time) int64 {
	d := e.expiresAt() - e.Age(now)
	if d < 0 {
		return -int64((-d + time.Second - 1) / time.Second)
	}
	return int64(d / time.Second)
}

// lifetime is how long after storage the entry stays usable at all.
func (e *Entry) lifetime() time.Duration {
	return max(e.TTL+e.Grace+e.Keep-e.InitialAge, time.Second)
}

// softPurge marks the entry stale from now on; it reports whether it was
// fresh before.
func (e *Entry) softPurge(now time.Time) bool {
	a := max(e.Age(now), 1)
	for {
		old := e.purgedAt.Load()
		if old != 0 && old <= int64(a) {
			return false
		}
		if e.purgedAt.CompareAndSwap(old, int64(a)) {
			return a < e.TTL
		}
	}
}

// invalidate applies a purge's effect to the entry.
func (e *Entry) invalidate(soft bool, now time.Time) {
	if soft {
		e.softPurge(now)
	} else {
		e.set(flagDead)
	}
}

// Dead reports whether the entry was hard-purged or removed: it is never
// served again.
func (e *Entry) Dead() bool { return e.has(flagDead) }

// InStore reports whether the entry was handed to the store (it may have
// left it since).
func (e *Entry) InStore() bool { return e.has(flagInStore) }

// Identity returns the decoded copy the identity pool keeps, or nil.
func (e *Entry) Identity() *Item[*Copy] { return e.ident.Load() }

// Headers returns the hit headers the header pool keeps, or nil.
func (e *Entry) Headers() *Item[*HeaderSet] { return e.headers.Load() }

// BeginRefresh reports whether a background refresh of the entry may start
// now: none queued or running, and no failure asking to wait. The caller
// that is told yes calls EndRefresh when done.
func (e *Entry) BeginRefresh(now time.Time) bool {
	if x := e.extra.Load(); x != nil && x.retryAt.Load() > now.UnixNano() {
		return false
	}
	return e.set(flagRefreshing)
}

// EndRefresh ends the refresh BeginRefresh allowed; a non-zero retry holds
// off the next until then (the refresh failed).
func (e *Entry) EndRefresh(retry time.Time) {
	if !retry.IsZero() {
		e.more().retryAt.Store(retry.UnixNano())
	}
	e.flags.And(^flagRefreshing)
}

// addVariant records v under the Vary marker m, replacing an older entry
// for the same variant key; the list is bounded by limit.
func (m *Entry) addVariant(v *Entry, limit int) {
	for {
		old := m.more().variantList.Load()
		var next []*Entry
		if old != nil {
			for _, o := range *old {
				// Its key is read under a reference (it is in its slot);
				// one that left the store is dropped.
				if o.has(flagDead|flagExited) || !o.Acquire() {
					continue
				}
				same := string(o.Key) == string(v.Key)
				o.Release()
				if !same {
					next = append(next, o)
				}
			}
		}
		if len(next) >= limit {
			next = next[len(next)-limit+1:]
		}
		next = append(next, v)
		if m.more().variantList.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Acquire takes a reference on the entry's stored bytes (Hdr, Body, the
// zstd body): they stay valid until the matching Release. It reports
// false when the entry's last reference is already gone (it left the
// store and nobody is serving it): the caller must not read them, and
// treats the entry as not found. Markers and entries kept on the heap
// (not sealed) are always acquired.
func (e *Entry) Acquire() bool { return e.ref.acquire() }

// Release gives back a reference taken by Acquire (or the builder's, or
// the store's); the last one returns the entry's slot to its pool.
func (e *Entry) Release() {
	if !e.ref.release() {
		return
	}
	if poisonFreed {
		poison(e.Hdr)
		poison(e.Body)
		poison(e.Key)
		if len(e.tags) > 0 {
			poison(unsafe.Slice(unsafe.StringData(e.tags), len(e.tags)))
		}
		if e.Zstd() != nil {
			poison(e.Zstd().Body)
		}
	}
	e.ref.free()
}

// Sealed reports whether the entry's bytes live in a slot of the store's
// pool: only sealed objects are stored.
func (e *Entry) Sealed() bool { return e.ref.sealed() }
