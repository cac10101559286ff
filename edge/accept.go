package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// handle is the fasthttp handler: it runs the request's story, recovers
// panics (fasthttp does not: docs/RELIABILITY.md, promise 1), and records metrics
// and the access log line.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	r := s.requests.Get().(*request)
	r.reset(ctx, s)
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(p)
			ctx.Response.Reset()
			r.result = resError
			r.start.status(&ctx.Response.Header, fasthttp.StatusInternalServerError, nil, time.Now())
			writeError(ctx, fasthttp.StatusInternalServerError)
			ctx.SetConnectionClose()
		}
		s.record(r)
		r.releaseHeld()
		r.ctx, r.g = nil, nil
		if cap(r.key) <= maxRetainedScratch && cap(r.vkey) <= maxRetainedScratch && cap(r.scratch) <= maxRetainedScratch {
			s.requests.Put(r)
		}
	}()
	r.serve()
	if r.g.pol.rules.Len() > 0 {
		r.ruleDeliver()
	}
}

// reset readies a pooled request for ctx.
func (r *request) reset(ctx *fasthttp.RequestCtx, s *Server) {
	r.ctx = ctx
	r.g = s.g()
	r.host, r.target, r.key, r.vkey = r.host[:0], r.target[:0], r.key[:0], r.vkey[:0]
	r.cookie, r.scratch = r.cookie[:0], r.scratch[:0]
	r.route, r.isHEAD, r.hasCookie = -1, false, false
	r.ruled, r.dir = false, nil
	r.peer, r.peerLife, r.peerHops, r.peerNode, r.peerWait = peerNone, lifetimes{}, nil, "", 0
	r.result, r.detail = resError, detailNone
	r.began = ctx.Time()
	r.now = s.clock.at(r.began)
	r.sent = -1
}

var (
	strGET  = []byte("GET")
	strHEAD = []byte("HEAD")
)

// serve is the request's story: check what was read, build its key and
// route, then answer it from the store, the origin or the edge itself.
func (r *request) serve() {
	ctx := r.ctx
	if !r.accept() || !r.buildKey() {
		return
	}
	if r.raw.has(r.raw.connection) {
		dropConnectionNamed(&ctx.Request.Header)
	}
	method := ctx.Method()
	if string(method) == "PURGE" {
		r.purgeMethod()
		return
	}
	rulePass := false
	if r.g.pol.rules.Len() > 0 {
		var answered bool
		if answered, rulePass = r.ruleRequest(); answered {
			return
		}
	}
	// The cookies that are forwarded (a pass sends them) and that make
	// the request one: the strip list's and the rules' cookie actions.
	r.prepareCookies()
	get := bytes.Equal(method, strGET)
	r.isHEAD = !get && bytes.Equal(method, strHEAD)
	if rulePass {
		r.pass(detailRule)
		return
	}
	if !get && !r.isHEAD {
		r.pass(detailMethod)
		return
	}
	if r.route >= 0 && r.g.pol.routes[r.route].pass {
		r.pass(detailRoute)
		return
	}
	if r.hasCookie {
		r.pass(detailCookie)
		return
	}
	r.ae = cachepolicy.ParseAcceptEncoding(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding))
	if r.raw.has(r.raw.authorization) && len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0 {
		// Credentials: never answered from cache; stored only if the
		// response explicitly allows sharing (RFC 9111 §3.5).
		r.fetchDirect(detailAuthorization)
		return
	}
	// A waiter whose fetch brought another variant of a varying object
	// looks up again, twice at most.
	for attempt := 0; ; attempt++ {
		found, fkey, stale := r.lookup()
		switch found {
		case foundServed:
		case foundNoTransform:
			r.pass(detailNoTransform)
		case foundUncacheable:
			r.fetchDirect(detailUncacheable)
		case foundOnlyIfCached:
			r.reject(fasthttp.StatusGatewayTimeout, detailOnlyIfCached)
		case foundNothing:
			if r.fetchShared(fkey, stale, attempt < 2) {
				// Nothing was served: what this attempt held is
				// looked up again.
				r.releaseHeld()
				continue
			}
		}
		return
	}
}

// accept checks the request as fasthttp read it (docs/RELIABILITY.md, promise 2,
// beyond what fasthttp's parser refuses) and its URI's length; it answers
// a bad one and reports false.
func (r *request) accept() bool {
	r.raw = countRaw(r.ctx.Request.Header.RawHeaders())
	if d := checkFraming(r.ctx, r.raw); d != detailNone {
		r.reject(fasthttp.StatusBadRequest, d)
		return false
	}
	if len(r.ctx.Request.Header.RequestURI()) > r.g.pol.maxURIBytes {
		r.reject(fasthttp.StatusRequestURITooLong, detailURITooLong)
		return false
	}
	return true
}

// handleParseError answers requests fasthttp could not parse: 431 for
// headers over edge.max_header_bytes, 413 for bodies over the limit, 408
// for slow clients, 400 for everything else. fasthttp closes the
// connection afterwards.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	status, reason := fasthttp.StatusBadRequest, detailParse
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		status, reason = fasthttp.StatusRequestHeaderFieldsTooLarge, detailHeaderTooLarge
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason = fasthttp.StatusRequestEntityTooLarge, detailBodyTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		status, reason = fasthttp.StatusRequestTimeout, detailReadTimeout
	}
	s.m.badRequest[reason].Inc()
	s.m.requests[resError].Inc()
	var start responseStart
	start.status(&ctx.Response.Header, status, nil, time.Now())
	writeError(ctx, status)
	ctx.Response.Header.Set("X-Cache", "ERROR")
	ctx.Response.Header.Set("Cache-Status", s.g().cfg.Edge.ViaName+"; fwd=miss; detail="+reason.String())
	ctx.SetConnectionClose()
	if status != fasthttp.StatusRequestTimeout {
		s.lingeringClose(ctx)
	}
}

// Lingering close, as nginx does it: the edge refuses a request whose
// header or body is too large (or unreadable) while the client is still
// sending it. Closing at once makes the kernel answer the unread bytes with
// a reset, which can reach the client before it reads the 431 or 413, so
// it sees a reset instead of the status. So the answer is written first,
// our side shut for writing (the client sees the end of the answer), and
// what the client still sends is read and discarded, up to lingerBytes or
// lingerTime, before fasthttp closes the connection. fasthttp's own
// writing of the answer afterwards fails harmlessly on the shut side.
const (
	lingerBytes = 1 << 20
	lingerTime  = 2 * time.Second
	// maxLingering bounds the connections lingering at once (each holds a
	// connection's goroutine); beyond it a connection closes at once.
	maxLingering = 64
)

// lingeringClose writes ctx's answer, shuts the connection for writing and
// drains what the client still sends.
func (s *Server) lingeringClose(ctx *fasthttp.RequestCtx) {
	select {
	case s.lingering <- struct{}{}:
	default:
		return
	}
	defer func() { <-s.lingering }()
	conn := ctx.Conn()
	bw := bufio.NewWriterSize(conn, 4096)
	if ctx.Response.Write(bw) != nil || bw.Flush() != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if conn.SetReadDeadline(time.Now().Add(lingerTime)) == nil {
		_, _ = io.CopyN(io.Discard, conn, lingerBytes)
	}
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
		if len(tok) == 0 || equalFold(tok, "keep-alive") || equalFold(tok, "close") ||
			equalFold(tok, "host") || equalFold(tok, "connection") ||
			equalFold(tok, "content-length") || equalFold(tok, "transfer-encoding") {
			continue
		}
		h.DelBytes(tok)
	}
}

// prepareCookies applies the cookie rules: a route may drop Cookie; the
// configured cookie globs are stripped; r.hasCookie says something is left.
func (r *request) prepareCookies() {
	h := &r.ctx.Request.Header
	if r.route >= 0 && r.g.pol.routes[r.route].ignoreCookies {
		h.Del(fasthttp.HeaderCookie)
		return
	}
	if !r.raw.has(r.raw.cookie > 0) {
		return
	}
	raw := h.Peek(fasthttp.HeaderCookie)
	if len(raw) == 0 {
		return
	}
	r.cookie = cachepolicy.StripCookies(r.cookie[:0], raw, r.g.pol.stripCookies)
	if r.ruled {
		// The rules' cookie actions and the bucket cookie.
		r.scratch = cachepolicy.FilterCookies(r.scratch[:0], r.cookie, r.keepCookie)
		r.cookie, r.scratch = r.scratch, r.cookie[:0]
	}
	if r.raw.cookie > 1 {
		// A second Cookie line: Peek saw only the first. Do not guess.
		r.hasCookie = true
		return
	}
	r.hasCookie = len(r.cookie) > 0
}

// checkFraming enforces docs/RELIABILITY.md, promise 2 beyond what fasthttp's parser
// already refuses (duplicate Content-Length, bad Transfer-Encoding, bad
// header names, bare CR): Content-Length together with Transfer-Encoding,
// a missing Host on HTTP/1.1, and Host given twice. It returns the reason,
// or detailNone when the framing is unambiguous.
func checkFraming(ctx *fasthttp.RequestCtx, c rawCounts) detail {
	h := &ctx.Request.Header
	switch {
	case c.contentLength > 0 && c.transferEncoding > 0:
		return detailCLAndTE
	case c.host > 1:
		return detailDuplicateHost
	case len(h.Host()) == 0 && !isAbsoluteForm(h.RequestURI()):
		return detailMissingHost
	}
	return detailNone
}

func isAbsoluteForm(uri []byte) bool {
	return len(uri) > 0 && uri[0] != '/'
}
