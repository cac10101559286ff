package edge

import (
	"sync/atomic"
	"time"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// entryKind says what a stored value is.
type entryKind uint8

const (
	// kindObject is a cached response.
	kindObject entryKind = iota
	// kindVary marks a URL whose responses vary: its variants are stored
	// under variantKey(key, request values of varyNames).
	kindVary
	// kindHitForMiss remembers that a URL's answer was uncacheable, so that
	// requests for it skip coalescing until it expires (Varnish's
	// hit-for-miss).
	kindHitForMiss
)

// span locates a stored header value in the entry's header buffer.
type span struct{ start, end uint32 }

// fieldSpan locates one stored header field in the entry's header buffer:
// its name is hdr[k0:k1], its value hdr[k1:v1]. Offsets, not slices: 12
// bytes a field instead of 48, paid once per stored object.
type fieldSpan struct{ k0, k1, v1 uint32 }

// Entry is one stored value: a cached response, a Vary marker or a
// hit-for-miss marker. Every field is set before the entry is published
// (stored or handed to waiters) and never written again; the state that
// changes later (soft purge, removal, the identity copy) is atomic.
type Entry struct {
	// key is the full storage key; a hit compares it with the lookup key
	// (ristretto compares only 128-bit hashes).
	key []byte
	// urlLen is the length of the URL part of key (host+target); variants
	// append their variant suffix after it.
	urlLen int
	// id is unique per entry: the tag index and the identity pool use it to
	// tell a replaced entry from its replacement.
	id uint64

	status int
	// fields are the end-to-end headers served as-is (not Content-Length,
	// Content-Encoding, Content-Type, Date, ETag, Vary, Age or hop-by-hop
	// ones, which are handled separately).
	fields []fieldSpan
	// hdr holds the stored header fields and values, in one allocation;
	// the spans below and fields point into it (read them with the methods
	// of the same names).
	hdr                                []byte
	ctSpan, dateSpan, etagSpan, lmSpan span
	// scSpan is Surrogate-Control, kept to compute freshness again after a
	// 304.
	scSpan span
	// vary is the Vary value sent to clients (the origin's, with
	// Accept-Encoding added when the encoding depends on the request).
	vary []byte

	// body is stored in encoding enc (cachepolicy.Identity or Gzip).
	body []byte
	// identityLen is the length of the decoded body (len(body) when enc is
	// Identity).
	identityLen int64
	// zstd is the zstd form of a gzip-stored body, made once at store time
	// when compression.zstd is on; nil otherwise, or when it did not pay.
	zstd *zstdForm
	// etagOther is the ETag served for the one of identity and gzip that is
	// not etagEnc.
	etagOther []byte
	// lastModTime is Last-Modified in Unix seconds (0: none, or not a
	// date; an origin's 1 January 1970 counts as none too, which costs its
	// conditional requests a full answer), for If-Range and
	// If-Modified-Since.
	lastModTime int64

	// The small fields, together (the entry is one allocation, and every
	// byte of padding is paid once per stored object).
	kind       entryKind
	revalidate bool
	enc        cachepolicy.Encoding
	// etagEnc is the encoding the origin's ETag belongs to; when serving
	// another encoding, the ETag gets a suffix.
	etagEnc cachepolicy.Encoding
	// noTransform says the origin sent a gzip body with Cache-Control:
	// no-transform: the edge must not decode it (RFC 9110 §7.7), so clients
	// without gzip are passed to the origin.
	noTransform bool
	// ident is the decoded copy of a gzip body while identity clients ask
	// for it (see identityPool); nil otherwise. Set and cleared only under
	// the pool's lock.
	ident atomic.Pointer[identCopy]

	// head holds the whole heads of this entry's hits, one per encoding
	// and second (headSet), made on hits in the store and copied by the
	// later ones while they come (see hotPool); nil otherwise. Set and
	// cleared only under the head pool's lock.
	head atomic.Pointer[hotItem[*headSet]]
	// headBackoff spaces out the head sets offered to the pool: its level
	// counts the times the pool dropped this entry's set for room, so
	// objects that keep losing theirs (more hot objects than the pool
	// holds) back off instead of allocating a set on every hit.
	headBackoff backoff

	// Freshness, measured on the monotonic clock from storedAt.
	storedAt   time.Time
	initialAge time.Duration
	ttl        time.Duration
	grace      time.Duration
	keep       time.Duration

	// varyNames are the request headers a kindVary marker varies on.
	varyNames []string
	// tags are the Surrogate-Key tags of the response.
	tags []string
	// cost is what the entry counts against the store's byte budget.
	cost int64

	// purgedAt is 0, or the age (ns) at which a soft purge made the entry
	// stale.
	purgedAt atomic.Int64
	// dead says the entry was hard-purged or removed: it is never served.
	dead atomic.Bool
	// exited says the store has accounted for the entry leaving.
	exited atomic.Bool
	// variants counts the variants stored under a kindVary marker, and
	// variantList holds them (copy on write), for URL purges.
	variants    atomic.Int32
	variantList atomic.Pointer[[]*Entry]
	// inStore says the entry was handed to the store (it may have exited
	// since): only such entries keep a decoded copy in the identity pool.
	inStore atomic.Bool
	// refreshing says a background refresh is queued or running; retryAt
	// (UnixNano) holds off the next one after a failure.
	refreshing atomic.Bool
	retryAt    atomic.Int64
	// wprev and wnext link the entry into the store's admission window
	// (guarded by the window's mutex).
	wprev, wnext *Entry
}

// at returns the stored value sp locates.
func (e *Entry) at(sp span) []byte { return e.hdr[sp.start:sp.end:sp.end] }

// field returns the name and value of stored field i.
func (e *Entry) field(i int) (key, value []byte) {
	f := e.fields[i]
	return e.hdr[f.k0:f.k1:f.k1], e.hdr[f.k1:f.v1:f.v1]
}

func (e *Entry) contentType() []byte      { return e.at(e.ctSpan) }
func (e *Entry) date() []byte             { return e.at(e.dateSpan) }
func (e *Entry) etag() []byte             { return e.at(e.etagSpan) }
func (e *Entry) lastModified() []byte     { return e.at(e.lmSpan) }
func (e *Entry) surrogateControl() []byte { return e.at(e.scSpan) }

// lastMod returns Last-Modified as a time (zero when there is none).
func (e *Entry) lastMod() time.Time {
	if e.lastModTime == 0 {
		return time.Time{}
	}
	return time.Unix(e.lastModTime, 0)
}

// modifiedAt is what a client's If-Modified-Since is compared with (RFC
// 9111 §4.3.2): Last-Modified, or without one, the stored Date (the
// origin's, or when the edge received the response).
func (e *Entry) modifiedAt() time.Time {
	if t := e.lastMod(); !t.IsZero() {
		return t
	}
	t, _ := cachepolicy.ParseHTTPDate(e.date())
	return t
}

// url returns the URL part of the entry's key (host+target).
func (e *Entry) url() []byte { return e.key[:e.urlLen] }

// freshness is where an entry stands at some moment.
type freshness uint8

const (
	fresh   freshness = iota // serve it
	inGrace                  // serve stale at once, refresh in the background
	inKeep                   // only for revalidation, or to serve when the origin fails
	gone                     // unusable
)

// age returns the entry's current age (RFC 9111 §4.2.3).
func (e *Entry) age(now time.Time) time.Duration {
	return e.initialAge + max(now.Sub(e.storedAt), 0)
}

// expiresAt returns the age at which the entry stops being fresh: its TTL,
// or earlier if it was soft-purged.
func (e *Entry) expiresAt() time.Duration {
	if p := e.purgedAt.Load(); p != 0 && time.Duration(p) < e.ttl {
		return time.Duration(p)
	}
	return e.ttl
}

// state returns where the entry stands at now.
func (e *Entry) state(now time.Time) freshness {
	if e.dead.Load() {
		return gone
	}
	a := e.age(now)
	exp := e.expiresAt()
	switch {
	case a < exp && !e.revalidate:
		return fresh
	case a < exp+e.grace && !e.revalidate:
		return inGrace
	case a < exp+e.grace+e.keep || (e.revalidate && a < e.ttl+e.grace+e.keep):
		return inKeep
	}
	return gone
}

// ttlLeft returns the freshness left in whole seconds (negative when
// stale), for Cache-Status.
func (e *Entry) ttlLeft(now time.Time) int64 {
	d := e.expiresAt() - e.age(now)
	if d < 0 {
		return -int64((-d + time.Second - 1) / time.Second)
	}
	return int64(d / time.Second)
}

// softPurge marks the entry stale from now on; it reports whether it was
// fresh before.
func (e *Entry) softPurge(now time.Time) bool {
	a := max(e.age(now), 1)
	for {
		old := e.purgedAt.Load()
		if old != 0 && old <= int64(a) {
			return false
		}
		if e.purgedAt.CompareAndSwap(old, int64(a)) {
			return a < e.ttl
		}
	}
}

// etagFor returns the ETag to send with the body in encoding enc.
func (e *Entry) etagFor(enc cachepolicy.Encoding) []byte {
	switch {
	case len(e.etag()) == 0 || enc == e.etagEnc:
		return e.etag()
	case enc == cachepolicy.Zstd:
		if e.zstd == nil {
			return nil
		}
		return e.zstd.etag
	}
	return e.etagOther
}

// addVariant records v under the Vary marker m, replacing an older entry
// for the same variant key; the list is bounded by limit.
func (m *Entry) addVariant(v *Entry, limit int) {
	for {
		old := m.variantList.Load()
		var next []*Entry
		if old != nil {
			for _, o := range *old {
				if string(o.key) != string(v.key) && !o.dead.Load() {
					next = append(next, o)
				}
			}
		}
		if len(next) >= limit {
			next = next[len(next)-limit+1:]
		}
		next = append(next, v)
		if m.variantList.CompareAndSwap(old, &next) {
			return
		}
	}
}

// zstdForm is the zstd form of an entry's body and its ETag.
type zstdForm struct {
	body []byte
	etag []byte
}

// zbody returns the zstd form of the body, or nil.
func (e *Entry) zbody() []byte {
	if e.zstd == nil {
		return nil
	}
	return e.zstd.body
}
