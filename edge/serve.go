package edge

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// Pre-built header names and values: the hit path appends nothing it has
// to allocate.
var (
	hdrAge          = []byte("Age")
	hdrXCache       = []byte("X-Cache")
	hdrCacheStatus  = []byte("Cache-Status")
	hdrETag         = []byte("ETag")
	hdrVary         = []byte("Vary")
	hdrContentRange = []byte("Content-Range")
	hdrAcceptRanges = []byte("Accept-Ranges")
	valGzip         = []byte("gzip")
	valZstd         = []byte("zstd")
	valBytes        = []byte("bytes")
	strRange        = "Range"
	strIfRange      = "If-Range"
	xcacheValues    [numResults][]byte
)

func init() {
	for r := range numResults {
		xcacheValues[r] = []byte(r.String())
	}
}

// chooseEncoding picks the form of e to send to this client: gzip (or
// zstd, when stored) to clients that accept it, the decoded body to the
// others. The request's spelling of Accept-Encoding never matters beyond
// this choice: it is not part of any key.
func chooseEncoding(e *Entry, ae cachepolicy.AcceptEncoding) cachepolicy.Encoding {
	if e.enc != cachepolicy.Gzip {
		return cachepolicy.Identity
	}
	enc, _ := ae.Choose(true, e.zstd != nil)
	return enc
}

// serveEntry writes a stored object to the client: the stored status,
// headers and body in the encoding the client takes, Age, X-Cache and
// Cache-Status; 304 for matching conditional requests; 206 for a single
// satisfiable Range.
func (s *Server) serveEntry(ctx *fasthttp.RequestCtx, rs *reqState, e *Entry, now time.Time) {
	h := &ctx.Response.Header
	enc := chooseEncoding(e, rs.ae)
	rangeReq := !rs.isHead && e.status == fasthttp.StatusOK && rs.raw.has(rs.raw.rangeHdr) && len(ctx.Request.Header.Peek(strRange)) > 0
	if rangeReq {
		if e.noTransform && enc != cachepolicy.Identity {
			// Ranges come from the decoded body, which no-transform
			// forbids making: send the whole encoded body.
			rangeReq = false
		} else {
			// Ranges are served from the identity form (RFC 9110 §14:
			// ranges of a gzip body are useless to most clients).
			enc = cachepolicy.Identity
		}
	}
	if enc == cachepolicy.Identity && e.enc != cachepolicy.Identity && e.noTransform {
		// The origin sent gzip with no-transform: the edge may not decode
		// it (RFC 9110 §7.7). Let the origin answer this client.
		s.pass(ctx, rs, "no-transform")
		return
	}
	etag := e.etagFor(enc)
	if (rs.raw.has(rs.raw.ifNoneMatch) || rs.raw.has(rs.raw.ifModifiedSince)) && s.notModified(ctx, e, etag) {
		rs.head.start(h, fasthttp.StatusNotModified, e.date(), now)
		h.DisableNormalizing() // stored names are canonical already
		for i := range e.fields {
			if k, v := e.field(i); keepOn304(k) {
				h.AddBytesKV(k, v)
			}
		}
		if len(etag) > 0 {
			h.AddBytesKV(hdrETag, etag)
		}
		if len(e.vary) > 0 {
			h.AddBytesKV(hdrVary, e.vary)
		}
		s.setCacheHeaders(ctx, rs, e, now)
		return
	}
	age, ttl := entryAgeTTL(e, now)
	if hot := s.hitHeadable(rs); !hot || !copyHitHead(h, e, enc, rs.result, age, ttl) {
		s.wholeHead(h, rs, e, enc, etag, age, ttl, now)
		if hot && e.inStore.Load() {
			// Hits only: a miss may well be the object's only request.
			s.offerHitHead(h, rs, e, enc, age, ttl)
		}
	}
	switch enc {
	case cachepolicy.Gzip:
		s.setResponseBody(ctx, rs, e.body)
		return
	case cachepolicy.Zstd:
		s.setResponseBody(ctx, rs, e.zstd.body)
		return
	}
	body := e.body
	if e.enc == cachepolicy.Gzip {
		if rs.isHead {
			// The decoded length is known: HEAD decodes nothing.
			h.SetContentLength(int(e.identityLen))
			ctx.Response.SkipBody = true
			return
		}
		body = s.identityOf(e)
		if body == nil {
			// Too large to keep decoded: decode while sending.
			st, err := newGunzipStream(e.body)
			if err != nil {
				panic("BUG: stored gzip body does not decode: " + err.Error())
			}
			s.m.decompressions.Inc()
			ctx.SetBodyStream(st, int(e.identityLen))
			return
		}
	}
	if rangeReq {
		h.SetBytesKV(hdrAcceptRanges, valBytes)
		if s.serveRange(ctx, rs, e, body) {
			return
		}
	}
	s.setResponseBody(ctx, rs, body)
}

// wholeHead builds the whole head of a response from e in enc the long
// way: startHead, then ETag, Age, X-Cache, Cache-Status, debug headers and
// Content-Encoding.
func (s *Server) wholeHead(h *fasthttp.ResponseHeader, rs *reqState, e *Entry, enc cachepolicy.Encoding, etag []byte, age, ttl int64, now time.Time) {
	s.startHead(h, rs, e, now)
	if len(etag) > 0 {
		h.AddBytesKV(hdrETag, etag)
	}
	s.addCacheHeaders(h, rs, true, age, ttl)
	if s.cfg.Edge.DebugHeaders {
		s.debugHeaders(h, e)
	}
	switch enc {
	case cachepolicy.Gzip:
		h.SetContentEncodingBytes(valGzip)
	case cachepolicy.Zstd:
		h.SetContentEncodingBytes(valZstd)
	}
}

// startHead starts a response from e the long way: its status, Date,
// stored fields, Content-Type and Vary.
func (s *Server) startHead(h *fasthttp.ResponseHeader, rs *reqState, e *Entry, now time.Time) {
	rs.head.start(h, e.status, e.date(), now)
	// Stored names are canonical already (they were parsed); the head was
	// just reset, so nothing below replaces anything: add, don't set.
	h.DisableNormalizing()
	for i := range e.fields {
		h.AddBytesKV(e.field(i))
	}
	if len(e.contentType()) > 0 {
		h.SetContentTypeBytes(e.contentType())
	}
	if len(e.vary) > 0 {
		h.AddBytesKV(hdrVary, e.vary)
	}
}

// setResponseBody sets a stored (immutable) body without copying it.
func (s *Server) setResponseBody(ctx *fasthttp.RequestCtx, rs *reqState, body []byte) {
	if rs.isHead {
		ctx.Response.Header.SetContentLength(len(body))
		ctx.Response.SkipBody = true
		return
	}
	ctx.Response.SetBodyRaw(body)
}

// identityOf returns the decoded body of a gzip entry: the kept copy (a
// hit: one atomic load, no allocation), or decoded now and offered to the
// identity pool. It returns nil when the body is too large to keep
// decoded.
func (s *Server) identityOf(e *Entry) []byte {
	if c := e.ident.Load(); c != nil {
		return c.use()
	}
	if e.identityLen > s.store.ident.maxSize() {
		return nil
	}
	b, err := gunzipExact(e.body, e.identityLen)
	if err != nil {
		panic("BUG: stored gzip body does not decode: " + err.Error())
	}
	s.m.decompressions.Inc()
	if e.inStore.Load() {
		// Only objects in the store: one served once and never stored
		// would hold its copy (and itself) until the pool cycles.
		s.store.ident.keep(e, b, int64(len(b)))
	}
	return b
}

// serveRange answers a single satisfiable byte range with 206, an
// unsatisfiable one with 416; it reports false to send the whole body
// (other ranges, or an If-Range that does not match).
func (s *Server) serveRange(ctx *fasthttp.RequestCtx, rs *reqState, e *Entry, body []byte) bool {
	if ir := ctx.Request.Header.Peek(strIfRange); len(ir) > 0 {
		etag := e.etagFor(cachepolicy.Identity)
		if !cachepolicy.ETagMatchStrong(ir, etag) {
			t, ok := cachepolicy.ParseHTTPDate(ir)
			if !ok || e.lastModTime == 0 || !t.Equal(e.lastMod()) {
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
	rs.scratch = append(rs.scratch[:0], "bytes "...)
	if !satisfiable {
		rs.scratch = append(rs.scratch, '*', '/')
		rs.scratch = strconv.AppendInt(rs.scratch, size, 10)
		h.SetBytesKV(hdrContentRange, rs.scratch)
		setStatus(h, fasthttp.StatusRequestedRangeNotSatisfiable)
		ctx.Response.SetBodyRaw(nil)
		return true
	}
	rs.scratch = strconv.AppendInt(rs.scratch, start, 10)
	rs.scratch = append(rs.scratch, '-')
	rs.scratch = strconv.AppendInt(rs.scratch, end, 10)
	rs.scratch = append(rs.scratch, '/')
	rs.scratch = strconv.AppendInt(rs.scratch, size, 10)
	h.SetBytesKV(hdrContentRange, rs.scratch)
	setStatus(h, fasthttp.StatusPartialContent)
	ctx.Response.SetBodyRaw(body[start : end+1])
	return true
}

// setStatus changes a started response's status. The head was parsed with
// its status line, and fasthttp keeps a parsed reason phrase across
// SetStatusCode ("206 OK"): it is cleared so that the code's own is sent.
func setStatus(h *fasthttp.ResponseHeader, status int) {
	h.SetStatusCode(status)
	h.SetStatusMessage(nil)
}

// keepOn304 lists the stored fields a 304 repeats (RFC 9110 §15.4.5).
func keepOn304(name []byte) bool {
	return asciiEqualFold(name, "cache-control") || asciiEqualFold(name, "expires") ||
		asciiEqualFold(name, "content-location") || asciiEqualFold(name, "last-modified") ||
		asciiEqualFold(name, "via")
}

// notModified evaluates the client's conditional GET or HEAD against the
// stored object (RFC 9110 §13.2.2): If-None-Match first, If-Modified-Since
// only without it.
func (s *Server) notModified(ctx *fasthttp.RequestCtx, e *Entry, etag []byte) bool {
	if e.status != fasthttp.StatusOK {
		return false
	}
	h := &ctx.Request.Header
	if inm := h.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 {
		return cachepolicy.ETagMatchWeak(inm, etag)
	}
	if ims := h.Peek(fasthttp.HeaderIfModifiedSince); len(ims) > 0 {
		return cachepolicy.NotModifiedSince(ims, e.modifiedAt())
	}
	return false
}

// setCacheHeaders adds Age (for stored objects), X-Cache and Cache-Status.
func (s *Server) setCacheHeaders(ctx *fasthttp.RequestCtx, rs *reqState, e *Entry, now time.Time) {
	var age, ttl int64
	if e != nil {
		age, ttl = entryAgeTTL(e, now)
	}
	s.addCacheHeaders(&ctx.Response.Header, rs, e != nil, age, ttl)
}

// entryAgeTTL returns the Age a response from e sends at now, and the TTL
// left its Cache-Status sends.
func entryAgeTTL(e *Entry, now time.Time) (age, ttl int64) {
	return max(int64(e.age(now)/time.Second), 0), e.ttlLeft(now)
}

// addCacheHeaders adds Age (when stored is set), X-Cache and Cache-Status
// (with ttl on hits of a stored object).
func (s *Server) addCacheHeaders(h *fasthttp.ResponseHeader, rs *reqState, stored bool, age, ttl int64) {
	var buf [128]byte
	if stored {
		h.AddBytesKV(hdrAge, strconv.AppendInt(buf[:0], age, 10))
	}
	// Age and X-Cache never come from the origin (responseSkip); an
	// upstream Cache-Status stays and ours follows it, as RFC 9211 lists.
	h.AddBytesKV(hdrXCache, xcacheValues[rs.result])
	cs := append(buf[:0], s.cacheSt...)
	switch rs.result {
	case resHit, resStale:
		cs = append(cs, "; hit"...)
		if stored {
			cs = append(cs, "; ttl="...)
			cs = strconv.AppendInt(cs, ttl, 10)
		}
	case resMiss:
		cs = append(cs, "; fwd=miss"...)
		if rs.detail == "stored" {
			cs = append(cs, "; stored"...)
		} else if rs.detail == "collapsed" {
			cs = append(cs, "; collapsed"...)
		}
	case resRevalidated:
		cs = append(cs, "; fwd=stale; fwd-status=304"...)
		if rs.detail == "stored" {
			cs = append(cs, "; stored"...)
		}
	case resPass:
		cs = append(cs, "; fwd=bypass"...)
	case resPurge:
		// Answered by the cache itself: nothing was forwarded.
		cs = append(cs, "; detail=purge"...)
	default:
		cs = append(cs, "; fwd=miss"...)
	}
	if rs.detail != "" && rs.detail != "stored" && rs.detail != "collapsed" {
		cs = append(cs, "; detail="...)
		cs = append(cs, rs.detail...)
	}
	h.AddBytesKV(hdrCacheStatus, cs)
}

// serveStaleOnError serves a stored object that is past its freshness
// because the origin failed (stale-if-error, keep). It reports false when
// the object may not be served stale.
func (s *Server) serveStaleOnError(ctx *fasthttp.RequestCtx, rs *reqState, e *Entry, why string) bool {
	if e == nil || e.dead.Load() || e.state(rs.now) == gone {
		return false
	}
	rs.result = resStale
	rs.detail = why
	s.m.staleServes.Inc()
	s.serveEntry(ctx, rs, e, rs.now)
	return true
}

// reject answers with an edge-generated error.
func (s *Server) reject(ctx *fasthttp.RequestCtx, rs *reqState, status int, reason string) {
	if reason != "" {
		s.m.badRequest.WithLabelValues(reason).Inc()
		rs.detail = reason
	}
	rs.result = resError
	ctx.Response.Reset()
	rs.head.start(&ctx.Response.Header, status, nil, time.Now())
	writeError(ctx, status)
	s.setCacheHeaders(ctx, rs, nil, rs.now)
	if status == fasthttp.StatusBadRequest || status == fasthttp.StatusRequestURITooLong ||
		status == fasthttp.StatusRequestHeaderFieldsTooLarge || status == fasthttp.StatusRequestEntityTooLarge {
		// The request itself is suspect: do not read another from this
		// connection (RELIABILITY promise 2).
		ctx.SetConnectionClose()
	}
}

// writeError writes a short plain-text error that must never be cached.
// (Callers that can start the head with a Date do so first.)
func writeError(ctx *fasthttp.RequestCtx, status int) {
	h := &ctx.Response.Header
	setStatus(h, status)
	h.SetContentType("text/plain; charset=utf-8")
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.SetBodyString(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) + "\n")
}

// relayBuffered sends a fully read origin body the edge did not store. A
// gzip body, which the edge asked for on the client's behalf, is checked to
// decode (502 otherwise) and decoded for clients without gzip; either way
// the response then depends on Accept-Encoding.
func (s *Server) relayBuffered(ctx *fasthttp.RequestCtx, fr *fetched, body []byte, rs *reqState) {
	gz := isGzip(&fr.resp.Header) && len(body) > 0
	noTransform := gz && hasNoTransform(&fr.resp.Header)
	fr.release()
	if gz {
		h := &ctx.Response.Header
		addVaryAcceptEncoding(h)
		takesGzip := s.clientTakesGzip(ctx, rs)
		if !takesGzip && noTransform {
			s.pass(ctx, rs, "no-transform")
			return
		}
		limit := int64(s.cfg.Cache.MaxObjectBytes) * maxInflation
		n, err := gunzipLen(body, limit)
		if errors.Is(err, errInflation) && takesGzip {
			// Valid as far as the edge decodes, and the client decodes it
			// itself: pass the origin's bytes, checking the rest on the
			// way (a corrupt tail cuts the response short).
			if rs.isHead {
				ctx.Response.Header.SetContentLength(len(body))
				ctx.Response.SkipBody = true
				return
			}
			ctx.SetBodyStream(newGzipCheck(bytes.NewReader(body), s.corruptStream(rs.key)), len(body))
			return
		}
		if err != nil {
			s.corruptGzip(rs.key, err)
			s.reject(ctx, rs, fasthttp.StatusBadGateway, "")
			return
		}
		if !takesGzip {
			if body, err = gunzipExact(body, n); err != nil {
				panic("BUG: checked gzip body does not decode: " + err.Error())
			}
			h.Del(fasthttp.HeaderContentEncoding)
			if etag := h.Peek(fasthttp.HeaderETag); len(etag) > 0 {
				h.SetBytesV(fasthttp.HeaderETag, suffixETag(etag, cachepolicy.Identity))
			}
		}
	}
	if rs.isHead {
		ctx.Response.Header.SetContentLength(len(body))
		ctx.Response.SkipBody = true
		return
	}
	ctx.Response.SetBodyRaw(body)
}

// relayStream streams an origin body too large to store: what was read
// first, then the rest, with bounded memory. A gzip body goes to gzip
// clients through a gzipCheck (a corrupt one is cut short, never delivered
// whole) and is decoded for the others. The response and the fetch slot
// are released when the client has it all (or goes away).
func (s *Server) relayStream(ctx *fasthttp.RequestCtx, fr *fetched, prefix []byte, rs *reqState) {
	if rs.isHead {
		headLength(&ctx.Response.Header, fr.resp.Header.ContentLength())
		fr.release()
		ctx.Response.SkipBody = true
		return
	}
	size := fr.resp.Header.ContentLength()
	var r io.Reader = io.MultiReader(bytes.NewReader(prefix), fr.resp.BodyStream())
	if isGzip(&fr.resp.Header) {
		h := &ctx.Response.Header
		addVaryAcceptEncoding(h)
		onCorrupt := s.corruptStream(rs.key)
		switch {
		case s.clientTakesGzip(ctx, rs):
			r = newGzipCheck(r, onCorrupt)
		case hasNoTransform(&fr.resp.Header):
			fr.release()
			s.pass(ctx, rs, "no-transform")
			return
		default:
			src := &srcTap{r: r}
			zr, err := gzip.NewReader(src)
			if err != nil {
				fr.release()
				if src.err == nil {
					s.corruptGzip(rs.key, err)
				}
				s.reject(ctx, rs, fasthttp.StatusBadGateway, "")
				return
			}
			h.Del(fasthttp.HeaderContentEncoding)
			if etag := h.Peek(fasthttp.HeaderETag); len(etag) > 0 {
				h.SetBytesV(fasthttp.HeaderETag, suffixETag(etag, cachepolicy.Identity))
			}
			s.m.decompressions.Inc()
			r, size = &gunzipRelay{zr: zr, src: src, onCorrupt: onCorrupt}, -1
		}
	}
	if size < 0 {
		size = -1
	}
	ctx.SetBodyStream(&relayReader{r: r, fr: fr}, size)
}

// corruptGzip counts and logs a gzip body from the origin that does not
// decode.
func (s *Server) corruptGzip(url []byte, err error) {
	s.m.gzipErrors.Inc()
	s.log.Warn("origin sent a gzip body that does not decode", "url", string(url), "err", err)
}

// corruptStream returns the hook that reports a streamed gzip body found
// corrupt while it was being sent.
func (s *Server) corruptStream(url []byte) func(error) {
	u := append([]byte(nil), url...)
	return func(err error) { s.corruptGzip(u, err) }
}

// relayBody relays a pass response: buffered if small and already read,
// streamed otherwise.
func (s *Server) relayBody(ctx *fasthttp.RequestCtx, fr *fetched, head bool) {
	if head || !fr.resp.IsBodyStream() {
		if head {
			headLength(&ctx.Response.Header, fr.resp.Header.ContentLength())
			fr.release()
			ctx.Response.SkipBody = true
			return
		}
		body := append([]byte(nil), fr.resp.Body()...)
		fr.release()
		ctx.Response.SetBodyRaw(body)
		return
	}
	size := fr.resp.Header.ContentLength()
	if size < 0 {
		size = -1
	}
	ctx.SetBodyStream(&relayReader{r: fr.resp.BodyStream(), fr: fr}, size)
}

// headLength sets the length a relayed HEAD answer announces: the
// origin's Content-Length when it sent one, otherwise none (chunked, like
// the GET would be). The head starts at Content-Length: 0, which RFC 9110
// §8.6 forbids unless the GET's body is empty.
func headLength(h *fasthttp.ResponseHeader, originLength int) {
	if originLength >= 0 {
		h.SetContentLength(originLength)
		return
	}
	h.SetContentLength(-1)
}

// relayReader streams an origin body to a client and releases the origin
// response when fasthttp closes it.
type relayReader struct {
	r  io.Reader
	fr *fetched
}

func (r *relayReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *relayReader) Close() error {
	r.fr.release()
	return nil
}

func isGzip(h *fasthttp.ResponseHeader) bool {
	ce := bytes.TrimSpace(h.ContentEncoding())
	return asciiEqualFold(ce, "gzip") || asciiEqualFold(ce, "x-gzip")
}

func (s *Server) clientTakesGzip(ctx *fasthttp.RequestCtx, rs *reqState) bool {
	ae := cachepolicy.ParseAcceptEncoding(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding))
	enc, _ := ae.Choose(true, false)
	return enc == cachepolicy.Gzip
}

// hasNoTransform reports whether a response's Cache-Control says
// no-transform.
func hasNoTransform(h *fasthttp.ResponseHeader) bool {
	d := cachepolicy.NewDirectives()
	for k, v := range h.All() {
		if asciiEqualFold(k, "cache-control") {
			d.Parse(v)
		}
	}
	return d.NoTransform
}

// addVaryAcceptEncoding makes sure Vary lists Accept-Encoding.
func addVaryAcceptEncoding(h *fasthttp.ResponseHeader) {
	v := h.Peek(fasthttp.HeaderVary)
	names, star := cachepolicy.ParseVary(nil, v)
	if star {
		return
	}
	for _, n := range names {
		if n == "accept-encoding" {
			return
		}
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		h.Set(fasthttp.HeaderVary, "Accept-Encoding")
		return
	}
	h.SetBytesV(fasthttp.HeaderVary, append(append(append([]byte(nil), v...), ", "...), "Accept-Encoding"...))
}

// debugHeaders shows what the edge consumed (edge.debug_headers).
func (s *Server) debugHeaders(h *fasthttp.ResponseHeader, e *Entry) {
	if len(e.tags) > 0 {
		h.Set("Surrogate-Key", strings.Join(e.tags, " "))
	}
	if len(e.surrogateControl()) > 0 {
		h.SetBytesV("Surrogate-Control", e.surrogateControl())
	}
}
