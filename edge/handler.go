package edge

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// reqState is the per-request scratch memory, pooled so that a hit does
// not allocate. Nothing in it outlives the request.
type reqState struct {
	host    []byte // normalised host
	target  []byte // normalised target
	key     []byte // host+target: the URL key
	vkey    []byte // variant key, when the URL varies
	cookie  []byte // Cookie after stripping ignorable cookies
	scratch []byte
	head    headReader
	// probe is scratch for checking a head before it is kept
	// (serverLoopHead).
	probe fasthttp.ResponseHeader

	raw       rawCounts
	route     int // index into Server.routes, or -1
	isHead    bool
	hasCookie bool
	ae        cachepolicy.AcceptEncoding
	result    cacheResult
	// detail is the Cache-Status detail for non-hits (a closed set).
	detail string
	start  time.Time
	// now is the request's time on the server's freshness clock.
	now time.Time
}

func (rs *reqState) reset() {
	rs.host = rs.host[:0]
	rs.target = rs.target[:0]
	rs.key = rs.key[:0]
	rs.vkey = rs.vkey[:0]
	rs.cookie = rs.cookie[:0]
	rs.scratch = rs.scratch[:0]
	rs.route = -1
	rs.isHead = false
	rs.hasCookie = false
	rs.result = resError
	rs.detail = ""
}

// maxRetainedScratch bounds buffers kept in the pool.
const maxRetainedScratch = 64 << 10

func (s *Server) acquireState() *reqState {
	rs := s.states.Get().(*reqState)
	rs.reset()
	return rs
}

func (s *Server) releaseState(rs *reqState) {
	if cap(rs.key) > maxRetainedScratch || cap(rs.vkey) > maxRetainedScratch || cap(rs.scratch) > maxRetainedScratch {
		return
	}
	s.states.Put(rs)
}

// handle is the fasthttp handler: it recovers panics (fasthttp does not),
// records metrics and the access log line.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	rs := s.acquireState()
	rs.start = ctx.Time()
	rs.now = s.clock.at(rs.start)
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(p)
			ctx.Response.Reset()
			rs.result = resError
			rs.head.start(&ctx.Response.Header, fasthttp.StatusInternalServerError, nil, time.Now())
			writeError(ctx, fasthttp.StatusInternalServerError)
			ctx.SetConnectionClose()
		}
		s.record(ctx, rs)
		s.releaseState(rs)
	}()
	s.serve(ctx, rs)
}

// record updates metrics and queues the access log line.
func (s *Server) record(ctx *fasthttp.RequestCtx, rs *reqState) {
	status := ctx.Response.StatusCode()
	if c := status / 100; c >= 1 && c <= 5 {
		s.m.statuses[c].Inc()
	}
	s.m.requests[rs.result].Inc()
	elapsed := time.Since(rs.start)
	s.m.durations[rs.result].Observe(elapsed.Seconds())
	// Body on a streamed response would read the whole stream into memory
	// before it is sent (and turn a read error into the body): a stream
	// counts its announced length, if any.
	var n int
	if ctx.Response.IsBodyStream() {
		n = max(ctx.Response.Header.ContentLength(), 0)
	} else {
		n = len(ctx.Response.Body())
		s.m.countSent(&ctx.Response.Header, n)
	}
	s.access.log(ctx, rs, status, n, elapsed)
}

var (
	strOnlyIfCached = []byte("only-if-cached")
	strGET          = []byte("GET")
	strHEAD         = []byte("HEAD")
)

// serve routes one request.
func (s *Server) serve(ctx *fasthttp.RequestCtx, rs *reqState) {
	rs.raw = countRaw(ctx.Request.Header.RawHeaders())
	if reason := checkFraming(ctx, rs.raw); reason != "" {
		s.reject(ctx, rs, fasthttp.StatusBadRequest, reason)
		return
	}
	raw := ctx.Request.Header.RequestURI()
	if len(raw) > int(s.cfg.Edge.MaxURIBytes) {
		s.reject(ctx, rs, fasthttp.StatusRequestURITooLong, "uri-too-long")
		return
	}
	method := ctx.Method()
	var err error
	var absHost []byte
	rs.target, absHost, err = cachepolicy.NormalizeTarget(rs.target[:0], raw, &s.keyRules)
	if err != nil {
		if len(raw) == 1 && raw[0] == '*' && string(method) == fasthttp.MethodOptions {
			// Asks about the server itself (RFC 9110 §9.3.7): answered here.
			rs.result = resPass
			rs.head.start(&ctx.Response.Header, fasthttp.StatusOK, nil, time.Now())
			ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
			ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
			return
		}
		s.reject(ctx, rs, fasthttp.StatusBadRequest, "target")
		return
	}
	host := absHost
	if host == nil {
		host = ctx.Request.Header.Host()
	}
	rs.host, err = cachepolicy.NormalizeHost(rs.host[:0], host)
	if err != nil {
		s.reject(ctx, rs, fasthttp.StatusBadRequest, "host")
		return
	}
	rs.key = cachepolicy.AppendKey(rs.key[:0], rs.host, rs.target)
	rs.route = cachepolicy.MatchRoute(s.matches, cachepolicy.HostWithoutPort(rs.host), rs.target)
	if rs.raw.has(rs.raw.connection) {
		dropConnectionNamed(&ctx.Request.Header)
	}

	if string(method) == "PURGE" {
		s.handlePurgeMethod(ctx, rs)
		return
	}
	get := bytes.Equal(method, strGET)
	rs.isHead = !get && bytes.Equal(method, strHEAD)
	if !get && !rs.isHead {
		s.pass(ctx, rs, "method")
		return
	}
	if rs.route >= 0 && s.routes[rs.route].pass {
		s.pass(ctx, rs, "route")
		return
	}
	s.prepareCookies(ctx, rs)
	if rs.hasCookie {
		s.pass(ctx, rs, "cookie")
		return
	}
	rs.ae = cachepolicy.ParseAcceptEncoding(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding))
	if rs.raw.has(rs.raw.authorization) && len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0 {
		// Credentials: never answered from cache; stored only if the
		// response explicitly allows sharing (RFC 9111 §3.5).
		s.fetchDirect(ctx, rs, "authorization")
		return
	}
	s.lookup(ctx, rs, 0)
}

// dropConnectionNamed removes the request headers the client named in
// Connection (RFC 9110 §7.6.1). They are never forwarded, so nothing may be
// decided on them either: a client naming Accept-Language in Connection
// would otherwise have the page built without it stored as the variant for
// its value (hop-by-hop abuse). Framing headers and Host, already used, are
// left alone.
func dropConnectionNamed(h *fasthttp.RequestHeader) {
	conn := h.Peek(fasthttp.HeaderConnection)
	for len(conn) > 0 {
		var tok []byte
		tok, conn = nextListItem(conn)
		if len(tok) == 0 || asciiEqualFold(tok, "keep-alive") || asciiEqualFold(tok, "close") ||
			asciiEqualFold(tok, "host") || asciiEqualFold(tok, "connection") ||
			asciiEqualFold(tok, "content-length") || asciiEqualFold(tok, "transfer-encoding") {
			continue
		}
		h.DelBytes(tok)
	}
}

// prepareCookies applies the cookie rules: a route may drop Cookie; the
// configured cookie globs are stripped; rs.hasCookie says something is left.
func (s *Server) prepareCookies(ctx *fasthttp.RequestCtx, rs *reqState) {
	h := &ctx.Request.Header
	if rs.route >= 0 && s.routes[rs.route].ignoreCookies {
		h.Del(fasthttp.HeaderCookie)
		return
	}
	if !rs.raw.has(rs.raw.cookie > 0) {
		return
	}
	raw := h.Peek(fasthttp.HeaderCookie)
	if len(raw) == 0 {
		return
	}
	rs.cookie = cachepolicy.StripCookies(rs.cookie[:0], raw, s.cfg.Cache.StripCookies)
	if rs.raw.cookie > 1 {
		// A second Cookie line: Peek saw only the first. Do not guess.
		rs.hasCookie = true
		return
	}
	rs.hasCookie = len(rs.cookie) > 0
}

// lookup serves GET and HEAD from the store, or fetches.
func (s *Server) lookup(ctx *fasthttp.RequestCtx, rs *reqState, attempt int) {
	now := rs.now
	fkey := rs.key
	e := s.store.get(rs.key)
	if e != nil && e.kind == kindVary {
		rs.vkey = appendVariantKey(rs.vkey[:0], rs.key, e.varyNames, &ctx.Request.Header)
		fkey = rs.vkey
		e = s.store.get(rs.vkey)
	}
	if e != nil && e.kind == kindHitForMiss {
		if e.age(now) < e.ttl && !e.dead.Load() {
			s.m.hitForMiss.Inc()
			s.fetchDirect(ctx, rs, "uncacheable")
			return
		}
		e = nil
	}
	var stale *Entry
	if e != nil {
		switch e.state(now) {
		case fresh:
			rs.result = resHit
			s.serveEntry(ctx, rs, e, now)
			return
		case inGrace:
			rs.result = resStale
			rs.detail = "grace"
			s.refresh.enqueue(e, now)
			s.serveEntry(ctx, rs, e, now)
			return
		case inKeep:
			stale = e
		}
	}
	if stale == nil && rs.raw.has(rs.raw.cacheControl) && bytes.Contains(ctx.Request.Header.Peek(fasthttp.HeaderCacheControl), strOnlyIfCached) {
		rs.detail = "only-if-cached"
		s.reject(ctx, rs, fasthttp.StatusGatewayTimeout, "")
		return
	}
	s.fetchShared(ctx, rs, fkey, stale, attempt)
}

// appendVariantKey appends the storage key of a variant: the URL key, a
// NUL, then for each varied header its normalised value and a NUL. A field
// sent on several lines counts as one comma-separated list (RFC 9110 §5.3),
// which is how buildUpstream forwards it.
func appendVariantKey(dst, url []byte, names []string, h *fasthttp.RequestHeader) []byte {
	dst = append(dst, url...)
	dst = append(dst, 0)
	for _, n := range names {
		if n == "cookie" {
			// Requests that reach the cache carry no cookie the origin
			// sees (the rest are passed; ignorable ones are stripped), so
			// the variant is the cookie-less one, whatever analytics
			// cookies the client sent.
			dst = append(dst, 0)
			continue
		}
		for i, v := range h.PeekAll(n) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = cachepolicy.AppendVaryValue(dst, v)
		}
		dst = append(dst, 0)
	}
	return dst
}

// rawCounts counts the header lines the edge must see more than once of,
// from the raw header bytes (fasthttp's parsed view merges or drops
// repeats).
type rawCounts struct {
	contentLength, transferEncoding, host, cookie int
	// Presence of headers the hit path would otherwise Peek for: a Peek
	// normalises the name and scans every header, so looking only for
	// what is there saves most of them.
	authorization, cacheControl, rangeHdr, ifRange, ifNoneMatch, ifModifiedSince, connection bool
	// complete says the raw headers were available; without them every
	// header counts as present (never as absent).
	complete bool
}

// has reports whether a header may be present.
func (c *rawCounts) has(flag bool) bool { return flag || !c.complete }

func countRaw(raw []byte) (c rawCounts) {
	c.complete = len(raw) > 0
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		line := raw
		if end >= 0 {
			line, raw = raw[:end], raw[end+1:]
		} else {
			raw = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := line[:colon]
		switch name[0] | 0x20 {
		case 'c':
			switch {
			case asciiEqualFold(name, "content-length"):
				c.contentLength++
			case asciiEqualFold(name, "cookie"):
				c.cookie++
			case asciiEqualFold(name, "cache-control"):
				c.cacheControl = true
			case asciiEqualFold(name, "connection"):
				c.connection = true
			}
		case 't':
			if asciiEqualFold(name, "transfer-encoding") {
				c.transferEncoding++
			}
		case 'h':
			if asciiEqualFold(name, "host") {
				c.host++
			}
		case 'a':
			if asciiEqualFold(name, "authorization") {
				c.authorization = true
			}
		case 'r':
			if asciiEqualFold(name, "range") {
				c.rangeHdr = true
			}
		case 'i':
			switch {
			case asciiEqualFold(name, "if-none-match"):
				c.ifNoneMatch = true
			case asciiEqualFold(name, "if-modified-since"):
				c.ifModifiedSince = true
			case asciiEqualFold(name, "if-range"):
				c.ifRange = true
			}
		default:
			// fasthttp folds continuation lines into the header before;
			// a name-less line changes nothing here.
		}
	}
	return c
}

// checkFraming enforces RELIABILITY promise 2 beyond what fasthttp's parser
// already refuses (duplicate Content-Length, bad Transfer-Encoding, bad
// header names, bare CR): Content-Length together with Transfer-Encoding,
// a missing Host on HTTP/1.1, and Host given twice. It returns the reason,
// or "" when the framing is unambiguous.
func checkFraming(ctx *fasthttp.RequestCtx, c rawCounts) string {
	h := &ctx.Request.Header
	switch {
	case c.contentLength > 0 && c.transferEncoding > 0:
		return "cl-and-te"
	case c.host > 1:
		return "duplicate-host"
	case len(h.Host()) == 0 && !isAbsoluteForm(h.RequestURI()):
		return "missing-host"
	}
	return ""
}

func isAbsoluteForm(uri []byte) bool {
	return len(uri) > 0 && uri[0] != '/'
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 32
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
