package edge

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/coding"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

var strOnlyIfCached = []byte("only-if-cached")

// found is what a lookup found, and so what the story does next.
type found uint8

const (
	// foundNothing: fetch the object (revalidating the stale copy
	// lookup returns, if any).
	foundNothing found = iota
	// foundServed: a fresh or grace hit was served.
	foundServed
	// foundNoTransform: stored gzip with no-transform, for a client
	// without gzip: the edge may not decode it, the origin answers.
	foundNoTransform
	// foundUncacheable: the URL is remembered as uncacheable
	// (hit-for-miss): fetched for this client alone.
	foundUncacheable
	// foundOnlyIfCached: nothing usable, and the client asked for
	// only-if-cached.
	foundOnlyIfCached
)

// lookup looks the request up in the store and serves a fresh or grace
// hit. Otherwise it returns what it found: with foundNothing, the key to
// fetch under (the variant's, when the URL varies) and a stored copy past
// grace that the fetch revalidates and that is served if the origin
// fails.
func (r *request) lookup() (f found, fkey []byte, stale *store.Entry) {
	s := r.s
	now := r.now
	fkey = r.key
	// Entries from the store are acquired: their stored bytes stay valid
	// while the request holds them.
	e := s.store.Get(r.key)
	if e != nil && e.Kind == store.KindVary {
		marker := e
		r.vkey = cachekey.AppendVariant(r.vkey[:0], r.key, marker.VaryNames, &r.ctx.Request.Header)
		fkey = r.vkey
		e = s.store.Get(fkey)
		marker.Release() // nothing to give back: markers live on the heap
	}
	r.hold(e)
	if e != nil && e.Kind == store.KindHitForMiss {
		if e.Age(now) < e.TTL && !e.Dead() {
			s.m.hitForMiss.Inc()
			return foundUncacheable, nil, nil
		}
		e = nil
	}
	if e != nil {
		switch e.State(now) {
		case store.Fresh:
			r.result = resHit
			return r.served(e), nil, nil
		case store.InGrace:
			if r.peer.freshOnly() {
				stale = e // a peer's refresh: fetched again
				break
			}
			r.result, r.detail = resStale, detailGrace
			s.refresh.enqueue(e, now)
			return r.served(e), nil, nil
		case store.InKeep:
			stale = e
		}
	}
	if stale == nil && r.raw.has(r.raw.cacheControl) && bytes.Contains(r.ctx.Request.Header.Peek(fasthttp.HeaderCacheControl), strOnlyIfCached) {
		return foundOnlyIfCached, nil, nil
	}
	return foundNothing, fkey, stale
}

// served serves e and says how it went.
func (r *request) served(e *store.Entry) found {
	if !r.serveEntry(e) {
		return foundNoTransform
	}
	return foundServed
}

// chooseEncoding picks the form of e to send to this client: gzip (or
// zstd, when stored) to clients that accept it, the decoded body to the
// others. The request's spelling of Accept-Encoding never matters beyond
// this choice: it is not part of any key.
func chooseEncoding(e *store.Entry, ae cachepolicy.AcceptEncoding) cachepolicy.Encoding {
	if e.Enc != cachepolicy.Gzip {
		return cachepolicy.Identity
	}
	enc, _ := ae.Choose(true, e.Zstd() != nil)
	return enc
}

var (
	strRange   = "Range"
	strIfRange = "If-Range"
)

// serveEntry answers with a stored object: the stored status, headers and
// body in the encoding the client takes, Age, X-Cache and Cache-Status;
// 304 for matching conditional requests; 206 for a single satisfiable
// Range. A plain hit copies the object's kept hit header when there is
// one for this second. It reports false, having written nothing, when the
// client does not take gzip and the object is stored gzip with
// no-transform: the edge may not decode it (RFC 9110 §7.7), so the origin
// must answer this client.
func (r *request) serveEntry(e *store.Entry) bool {
	if r.peer != peerNone {
		r.serveToPeer(e)
		return true
	}
	ctx, now := r.ctx, r.now
	h := &ctx.Response.Header
	enc := chooseEncoding(e, r.ae)
	rangeReq := !r.isHEAD && e.Status == fasthttp.StatusOK && r.raw.has(r.raw.rangeHdr) && len(ctx.Request.Header.Peek(strRange)) > 0
	if rangeReq {
		if e.NoTransform && enc != cachepolicy.Identity {
			// Ranges come from the decoded body, which no-transform
			// forbids making: send the whole encoded body.
			rangeReq = false
		} else {
			// Ranges are served from the identity form (RFC 9110 §14:
			// ranges of a gzip body are useless to most clients).
			enc = cachepolicy.Identity
		}
	}
	if enc == cachepolicy.Identity && e.Enc != cachepolicy.Identity && e.NoTransform {
		return false
	}
	etag := e.ETagFor(enc)
	if (r.raw.has(r.raw.ifNoneMatch) || r.raw.has(r.raw.ifModifiedSince)) && notModified(&ctx.Request.Header, e, etag) {
		r.start.status(h, fasthttp.StatusNotModified, e.Date(), now)
		h.DisableNormalizing() // stored names are canonical already
		for i := range e.NumFields() {
			if k, v := e.Field(i); keepOn304(k) {
				h.AddBytesKV(k, v)
			}
		}
		if len(etag) > 0 {
			h.AddBytesKV(hdrETag, etag)
		}
		if len(e.Vary()) > 0 {
			h.AddBytesKV(hdrVary, e.Vary())
		}
		age, ttl := entryAgeTTL(e, now)
		r.cacheHeaders(true, age, ttl)
		return true
	}
	age, ttl := entryAgeTTL(e, now)
	if hot := hitHeaderable(r.g.pol, r.result, r.detail); !hot || !copyHitHeader(h, e, enc, r.result, age, ttl) {
		r.wholeHeader(e, enc, etag, age, ttl)
		if hot && e.InStore() {
			// Hits only: a miss may well be the object's only request.
			r.offerHitHeader(e, enc, age, ttl)
		}
	}
	switch enc {
	case cachepolicy.Gzip:
		r.setBody(e, e.Body)
		return true
	case cachepolicy.Zstd:
		r.setBody(e, e.Zstd().Body)
		return true
	}
	// owner holds body's bytes: the entry, or its decoded copy.
	var body []byte = e.Body
	var owner heldBytes = e
	if e.Enc == cachepolicy.Gzip {
		if r.isHEAD {
			// The decoded length is known: HEAD decodes nothing.
			h.SetContentLength(int(e.IdentityLen))
			ctx.Response.SkipBody = true
			return true
		}
		c := r.s.identityOf(e)
		if c == nil {
			// Too large to keep decoded: decode while sending, holding
			// the stored body until done.
			st, err := coding.NewGunzipStream(e.Body)
			if err != nil {
				panic("BUG: stored gzip body does not decode: " + err.Error())
			}
			r.s.m.decompressions.Inc()
			ctx.SetBodyStream(&heldStream{GunzipStream: st, e: r.keep(e)}, int(e.IdentityLen))
			return true
		}
		r.holdBytes(c)
		body, owner = c.Bytes(), c
	}
	if rangeReq {
		h.SetBytesKV(hdrAcceptRanges, valBytes)
		if r.serveRange(e, owner, body) {
			return true
		}
	}
	r.setBody(owner, body)
	return true
}

// hitHeaderable says whether an answer is a hit whose whole header is
// kept: a plain fresh hit or a grace hit (their Cache-Status has no other
// detail), and debug headers off.
func hitHeaderable(pol *policy, result cacheResult, d detail) bool {
	return !pol.debugHeaders && (result == resHit && d == detailNone || result == resStale && d == detailGrace)
}

// copyHitHeader copies e's kept header for enc into h when there is one
// for this result, Age and TTL left; it reports whether it did.
func copyHitHeader(h *fasthttp.ResponseHeader, e *store.Entry, enc cachepolicy.Encoding, result cacheResult, age, ttl int64) bool {
	item := e.Headers()
	if item == nil {
		return false
	}
	hh := item.Value().Forms[enc].Cur.Load()
	if hh == nil || hh.Age != age || hh.TTL != ttl || hh.Result != uint8(result) {
		return false
	}
	// Only a copy counts as a use of the set (the pool's CLOCK bit): an
	// object whose hits never find their second's header does not hold its
	// place against those that do.
	item.Use()
	if !hh.Used.Load() {
		hh.Used.Store(true)
	}
	hh.H.CopyTo(h)
	return true
}

// wholeHeader builds the whole response header from e in enc the long
// way: startFrom, then ETag, Age, X-Cache, Cache-Status, debug headers and
// Content-Encoding.
func (r *request) wholeHeader(e *store.Entry, enc cachepolicy.Encoding, etag []byte, age, ttl int64) {
	h := &r.ctx.Response.Header
	r.startFrom(e)
	if len(etag) > 0 {
		h.AddBytesKV(hdrETag, etag)
	}
	r.cacheHeaders(true, age, ttl)
	if r.g.pol.debugHeaders {
		debugHeaders(h, e)
	}
	switch enc {
	case cachepolicy.Gzip:
		h.SetContentEncodingBytes(valGzip)
	case cachepolicy.Zstd:
		h.SetContentEncodingBytes(valZstd)
	}
}

// startFrom starts a response from e the long way: its status, Date,
// stored fields, Content-Type and Vary.
func (r *request) startFrom(e *store.Entry) {
	h := &r.ctx.Response.Header
	r.start.status(h, int(e.Status), e.Date(), r.now)
	// Stored names are canonical already (they were parsed); the header
	// was just reset, so nothing below replaces anything: add, don't set.
	h.DisableNormalizing()
	for i := range e.NumFields() {
		h.AddBytesKV(e.Field(i))
	}
	if len(e.ContentType()) > 0 {
		h.SetContentTypeBytes(e.ContentType())
	}
	if len(e.Vary()) > 0 {
		h.AddBytesKV(hdrVary, e.Vary())
	}
}

// setBody sets a stored (immutable) body without copying it. A body in
// the slot of owner (nil: the body is on the heap) is sent through an
// entryBody, which keeps the request's reference on owner until fasthttp
// has written it: the slot is not reused under a slow client.
func (r *request) setBody(owner heldBytes, body []byte) {
	if r.isHEAD {
		r.ctx.Response.Header.SetContentLength(len(body))
		r.ctx.Response.SkipBody = true
		return
	}
	r.sent = len(body)
	if owner == nil || !owner.Sealed() || len(body) == 0 {
		r.ctx.Response.SetBodyRaw(body)
		return
	}
	if len(body) <= copyBodyBytes {
		// Copying a small body into the response's own buffer costs
		// less than holding the slot until it is written.
		r.ctx.Response.SetBody(body)
		return
	}
	eb := entryBodies.Get().(*entryBody)
	eb.e, eb.b = r.keep(owner), body
	r.ctx.Response.SetBodyStream(eb, len(body))
}

// copyBodyBytes is the largest stored body a hit copies rather than
// sends from its slot (setBody).
const copyBodyBytes = 8 << 10

// keep hands over the request's reference on e (taken when the request
// acquired it) to something that outlives the handler, a body being
// written; e stays readable until that releases it. When the request
// holds e more than once only one reference moves.
func (r *request) keep(e heldBytes) heldBytes {
	for i := range r.nheld {
		if r.held[i] == e {
			r.nheld--
			r.held[i], r.held[r.nheld] = r.held[r.nheld], nil
			return e
		}
	}
	panic("BUG: sending the body of an entry the request does not hold")
}

// entryBody is a stored body being written to a client. fasthttp writes
// it with WriteTo (no copy: the slot's bytes go to the connection's
// buffer or socket) and closes it when done or failed, which releases the
// entry's slot. Pooled: a hit allocates nothing.
type entryBody struct {
	e heldBytes
	b []byte
}

var entryBodies = sync.Pool{New: func() any { return new(entryBody) }}

func (eb *entryBody) Read(p []byte) (int, error) {
	if len(eb.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, eb.b)
	eb.b = eb.b[n:]
	return n, nil
}

// WriteTo writes what is left of the body to w.
func (eb *entryBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(eb.b)
	eb.b = eb.b[n:]
	return int64(n), err
}

// Close releases the entry and returns the reader to its pool.
func (eb *entryBody) Close() error {
	if eb.e != nil {
		eb.e.Release()
	}
	eb.e, eb.b = nil, nil
	entryBodies.Put(eb)
	return nil
}

// heldStream is a stream made from a stored body (its decoding) that
// releases the entry when fasthttp closes it.
type heldStream struct {
	*coding.GunzipStream
	e heldBytes
}

func (h *heldStream) Close() error {
	err := h.GunzipStream.Close()
	h.e.Release()
	return err
}

// identityOf returns the decoded copy of a gzip entry's body, with a
// reference the caller holds: the kept copy (a hit: no allocation), or
// decoded now (into a slot of the store's pool when there is room) and
// offered to the identity pool. It returns nil when the body is too
// large to keep decoded.
func (s *Server) identityOf(e *store.Entry) *store.Copy {
	if it := e.Identity(); it != nil {
		if c := it.Use(); c.Acquire() {
			return c
		}
	}
	if s.store.ClassSize(e.IdentityLen) > s.store.Identity.MaxSize() {
		return nil // the pool would not keep it: decoded while sent
	}
	c := s.store.NewCopy(e.IdentityLen)
	var err error
	if c != nil {
		err = coding.GunzipInto(c.Bytes(), e.Body)
	} else {
		var b []byte
		b, err = coding.GunzipExact(e.Body, e.IdentityLen)
		c = store.HeapCopy(b)
	}
	if err != nil {
		c.Release()
		panic("BUG: stored gzip body does not decode: " + err.Error())
	}
	s.m.decompressions.Inc()
	if e.InStore() && c.Sealed() {
		// Only objects in the store: one served once and never stored
		// would hold its copy (and itself) until the pool cycles.
		s.store.Identity.Keep(e, c, c.Size())
	}
	return c
}

// serveRange answers a single satisfiable byte range of body (held by
// owner) with 206, an unsatisfiable one
// with 416; it reports false to send the whole body (other ranges, or an
// If-Range that does not match).
func (r *request) serveRange(e *store.Entry, owner heldBytes, body []byte) bool {
	ctx := r.ctx
	if ir := ctx.Request.Header.Peek(strIfRange); len(ir) > 0 {
		etag := e.ETagFor(cachepolicy.Identity)
		if !cachepolicy.ETagMatchStrong(ir, etag) {
			t, ok := cachepolicy.ParseHTTPDate(ir)
			if !ok || e.LastModTime == 0 || !t.Equal(e.LastMod()) {
				return false
			}
		}
	}
	size := int64(len(body))
	start, end, ok, satisfiable := cachepolicy.ParseRange(ctx.Request.Header.Peek(strRange), size)
	if !ok {
		return false
	}
	h := &ctx.Response.Header
	r.scratch = append(r.scratch[:0], "bytes "...)
	if !satisfiable {
		r.scratch = append(r.scratch, '*', '/')
		r.scratch = strconv.AppendInt(r.scratch, size, 10)
		h.SetBytesKV(hdrContentRange, r.scratch)
		setStatus(h, fasthttp.StatusRequestedRangeNotSatisfiable)
		ctx.Response.SetBodyRaw(nil)
		return true
	}
	r.scratch = strconv.AppendInt(r.scratch, start, 10)
	r.scratch = append(r.scratch, '-')
	r.scratch = strconv.AppendInt(r.scratch, end, 10)
	r.scratch = append(r.scratch, '/')
	r.scratch = strconv.AppendInt(r.scratch, size, 10)
	h.SetBytesKV(hdrContentRange, r.scratch)
	setStatus(h, fasthttp.StatusPartialContent)
	r.setBody(owner, body[start:end+1])
	return true
}

// keepOn304 lists the stored fields a 304 repeats (RFC 9110 §15.4.5).
func keepOn304(name []byte) bool {
	return equalFold(name, "cache-control") || equalFold(name, "expires") ||
		equalFold(name, "content-location") || equalFold(name, "last-modified") ||
		equalFold(name, "via")
}

// notModified evaluates the client's conditional GET or HEAD against the
// stored object (RFC 9110 §13.2.2): If-None-Match first, If-Modified-Since
// only without it.
func notModified(h *fasthttp.RequestHeader, e *store.Entry, etag []byte) bool {
	if e.Status != fasthttp.StatusOK {
		return false
	}
	if inm := h.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 {
		return cachepolicy.ETagMatchWeak(inm, etag)
	}
	if ims := h.Peek(fasthttp.HeaderIfModifiedSince); len(ims) > 0 {
		return cachepolicy.NotModifiedSince(ims, e.ModifiedAt())
	}
	return false
}

// entryAgeTTL returns the Age a response from e sends at now, and the TTL
// left its Cache-Status sends.
func entryAgeTTL(e *store.Entry, now time.Time) (age, ttl int64) {
	return max(int64(e.Age(now)/time.Second), 0), e.TTLLeft(now)
}
