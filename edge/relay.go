package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/coding"
	"github.com/lakka-cache/lakka/edge/internal/store"
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
)

// relayBuffered sends a fully read origin body the edge did not store. A
// gzip body, which the edge asked for on the client's behalf, is checked to
// decode (502 otherwise) and decoded for clients without gzip; either way
// the response then depends on Accept-Encoding. It reports false when the
// body is gzip with no-transform and the client does not take gzip: the
// client needs a request of its own.
func (r *request) relayBuffered(fr *backend.Fetched, body []byte) bool {
	ctx := r.ctx
	gz := isGzip(&fr.Resp.Header) && len(body) > 0
	noTransform := gz && hasNoTransform(&fr.Resp.Header)
	// The origin's connection and fetch slot go back now; the body's
	// budget bytes stay counted until the client has the body.
	held := fr.Detach()
	fr.Release()
	handed := false
	defer func() {
		if !handed {
			held.Give()
		}
	}()
	if gz {
		h := &ctx.Response.Header
		addVaryAcceptEncoding(h)
		takesGzip := clientTakesGzip(ctx)
		if !takesGzip && noTransform {
			return false
		}
		n, err := coding.GunzipLen(body, r.s.abs.maxObjectBytes*coding.MaxInflation)
		if errors.Is(err, coding.ErrInflation) && takesGzip {
			// Valid as far as the edge decodes, and the client decodes it
			// itself: pass the origin's bytes, checking the rest on the
			// way (a corrupt tail cuts the response short).
			if r.isHEAD {
				ctx.Response.Header.SetContentLength(len(body))
				ctx.Response.SkipBody = true
				return true
			}
			ctx.SetBodyStream(&heldReader{r: coding.NewGzipCheck(bytes.NewReader(body), r.s.abs.corruptHook(r.key)), held: held}, len(body))
			handed = true
			return true
		}
		if err != nil {
			r.s.abs.corruptGzip(r.key, err)
			r.reject(fasthttp.StatusBadGateway, detailNone)
			return true
		}
		if !takesGzip {
			h.Del(fasthttp.HeaderContentEncoding)
			if etag := h.Peek(fasthttp.HeaderETag); len(etag) > 0 {
				h.SetBytesV(fasthttp.HeaderETag, suffixETag(etag, cachepolicy.Identity))
			}
			if r.isHEAD {
				ctx.Response.Header.SetContentLength(int(n))
				ctx.Response.SkipBody = true
				return true
			}
			if !held.Take(r.s.abs.bodies, bodyBufSize(int(n))) {
				// No room for the decoded form: decode on the way out.
				zr, err := coding.NewGunzipRelay(bytes.NewReader(body), r.s.abs.corruptHook(r.key))
				if err != nil {
					panic("BUG: checked gzip body does not decode: " + err.Error())
				}
				r.s.m.decompressions.Inc()
				ctx.SetBodyStream(&heldReader{r: zr, held: held}, int(n))
				handed = true
				return true
			}
			if body, err = coding.GunzipExact(body, n); err != nil {
				panic("BUG: checked gzip body does not decode: " + err.Error())
			}
		}
	}
	if r.isHEAD {
		ctx.Response.Header.SetContentLength(len(body))
		ctx.Response.SkipBody = true
		return true
	}
	if held.Bytes() == 0 {
		ctx.Response.SetBodyRaw(body)
		return true
	}
	ctx.SetBodyStream(&heldReader{r: bytes.NewReader(body), held: held}, len(body))
	handed = true
	return true
}

// heldReader sends a buffered body whose bytes count in the body budget,
// and gives them back when fasthttp closes it (written, or the client gone).
type heldReader struct {
	r    io.Reader
	held backend.Held
}

func (h *heldReader) Read(p []byte) (int, error) { return h.r.Read(p) }

func (h *heldReader) Close() error {
	h.held.Give()
	h.held = backend.Held{}
	return nil
}

// relayStream streams an origin body too large to store: what was read
// first, then the rest, with bounded memory. A gzip body goes to gzip
// clients through a coding.GzipCheck (a corrupt one is cut short, never
// delivered whole) and is decoded for the others. The response and the
// fetch slot are released when the client has it all (or goes away). It
// reports false as relayBuffered does.
func (r *request) relayStream(fr *backend.Fetched, prefix []byte) bool {
	ctx := r.ctx
	if r.isHEAD {
		headLength(&ctx.Response.Header, fr.Resp.Header.ContentLength())
		fr.Release()
		ctx.Response.SkipBody = true
		return true
	}
	size := fr.Resp.Header.ContentLength()
	var rd io.Reader = io.MultiReader(bytes.NewReader(prefix), fr.Resp.BodyStream())
	if isGzip(&fr.Resp.Header) {
		h := &ctx.Response.Header
		addVaryAcceptEncoding(h)
		onCorrupt := r.s.abs.corruptHook(r.key)
		switch {
		case clientTakesGzip(ctx):
			rd = coding.NewGzipCheck(rd, onCorrupt)
		case hasNoTransform(&fr.Resp.Header):
			fr.Release()
			return false
		default:
			zr, err := coding.NewGunzipRelay(rd, onCorrupt)
			if err != nil {
				fr.Release()
				r.reject(fasthttp.StatusBadGateway, detailNone)
				return true
			}
			h.Del(fasthttp.HeaderContentEncoding)
			if etag := h.Peek(fasthttp.HeaderETag); len(etag) > 0 {
				h.SetBytesV(fasthttp.HeaderETag, suffixETag(etag, cachepolicy.Identity))
			}
			r.s.m.decompressions.Inc()
			rd, size = zr, -1
		}
	}
	if size < 0 {
		size = -1
	}
	ctx.SetBodyStream(&relayReader{r: rd, fr: fr}, size)
	return true
}

// relayBody relays a pass response: buffered if small and already read,
// streamed otherwise.
func (r *request) relayBody(fr *backend.Fetched) {
	ctx := r.ctx
	if r.isHEAD {
		headLength(&ctx.Response.Header, fr.Resp.Header.ContentLength())
		fr.Release()
		ctx.Response.SkipBody = true
		return
	}
	if !fr.Resp.IsBodyStream() {
		body := append([]byte(nil), fr.Resp.Body()...)
		fr.Release()
		ctx.Response.SetBodyRaw(body)
		return
	}
	size := fr.Resp.Header.ContentLength()
	if size < 0 {
		size = -1
	}
	ctx.SetBodyStream(&relayReader{r: fr.Resp.BodyStream(), fr: fr}, size)
}

// headLength sets the length a relayed HEAD answer announces: the
// origin's Content-Length when it sent one, otherwise none (chunked, like
// the GET would be). The header starts at Content-Length: 0, which RFC 9110
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
	fr *backend.Fetched
}

func (r *relayReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *relayReader) Close() error {
	r.fr.Release()
	return nil
}

func isGzip(h *fasthttp.ResponseHeader) bool {
	ce := bytes.TrimSpace(h.ContentEncoding())
	return equalFold(ce, "gzip") || equalFold(ce, "x-gzip")
}

func clientTakesGzip(ctx *fasthttp.RequestCtx) bool {
	ae := cachepolicy.ParseAcceptEncoding(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding))
	enc, _ := ae.Choose(true, false)
	return enc == cachepolicy.Gzip
}

// hasNoTransform reports whether a response's Cache-Control says
// no-transform.
func hasNoTransform(h *fasthttp.ResponseHeader) bool {
	d := cachepolicy.NewDirectives()
	for k, v := range h.All() {
		if equalFold(k, "cache-control") {
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
func debugHeaders(h *fasthttp.ResponseHeader, e *store.Entry) {
	if e.TagList() != "" {
		h.Set("Surrogate-Key", e.TagList())
	}
	if len(e.SurrogateControl()) > 0 {
		h.SetBytesV("Surrogate-Control", e.SurrogateControl())
	}
}

// responseSkip lists origin response headers not passed to clients as-is:
// framing (fasthttp sets it), hop-by-hop, and what the edge rewrites.
var responseSkip = []string{
	"content-length", "transfer-encoding", "connection", "keep-alive",
	"proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
	"age", "via", "x-cache", "date",
}

// edgeOnly lists origin response headers meant for the edge only.
var edgeOnly = []string{"surrogate-key", "surrogate-control", "xkey"}

// copyResponse starts a client response from an origin response that is
// relayed without storing: status, the origin's Date, end-to-end headers.
func (r *request) copyResponse(src *fasthttp.ResponseHeader) {
	dst := &r.ctx.Response.Header
	r.start.status(dst, src.StatusCode(), originDate(src.Peek(fasthttp.HeaderDate)), time.Now())
	conn := src.Peek(fasthttp.HeaderConnection)
	for k, v := range src.All() {
		if inList(responseSkip, k) || (len(conn) > 0 && connectionTokens(conn, k)) {
			continue
		}
		if !r.g.pol.debugHeaders && inList(edgeOnly, k) {
			continue
		}
		dst.AddBytesKV(k, v)
	}
	dst.SetBytesV(fasthttp.HeaderVia, appendVia(src.Peek(fasthttp.HeaderVia), r.g.pol.via))
}

// cacheHeaders adds Age (when stored is set: an answer from a stored
// object), X-Cache and Cache-Status (with ttl, the freshness left, on hits
// of a stored object).
func (r *request) cacheHeaders(stored bool, age, ttl int64) {
	h := &r.ctx.Response.Header
	var buf [128]byte
	if stored {
		h.AddBytesKV(hdrAge, strconv.AppendInt(buf[:0], age, 10))
	}
	// Age and X-Cache never come from the origin (responseSkip); an
	// upstream Cache-Status stays and ours follows it, as RFC 9211 lists.
	h.AddBytesKV(hdrXCache, xcacheValues[r.result])
	cs := append(buf[:0], r.g.pol.name...)
	switch r.result {
	case resHit, resStale:
		cs = append(cs, "; hit"...)
		if stored {
			cs = append(cs, "; ttl="...)
			cs = strconv.AppendInt(cs, ttl, 10)
		}
	case resMiss:
		cs = append(cs, "; fwd=miss"...)
	case resRevalidated:
		cs = append(cs, "; fwd=stale; fwd-status=304"...)
	case resPass:
		cs = append(cs, "; fwd=bypass"...)
	case resPurge:
		// Answered by the cache itself: nothing was forwarded.
	default:
		cs = append(cs, "; fwd=miss"...)
	}
	switch {
	case r.detail == detailStored && (r.result == resMiss || r.result == resRevalidated):
		cs = append(cs, "; stored"...)
	case r.detail == detailCollapsed && r.result == resMiss:
		cs = append(cs, "; collapsed"...)
	case r.detail == detailStored || r.detail == detailCollapsed || r.detail == detailNone:
	case r.detail == detailPeer:
		cs = append(cs, "; detail=peer-"...)
		cs = append(cs, r.peerNode...)
	default:
		cs = append(cs, "; detail="...)
		cs = append(cs, detailNames[r.detail]...)
	}
	h.AddBytesKV(hdrCacheStatus, cs)
}

// reject answers with an edge-generated error; d becomes the request's
// detail (when set) and, for a bad request, is counted and the connection
// closed.
func (r *request) reject(status int, d detail) {
	ctx := r.ctx
	if d != detailNone {
		r.detail = d
		if d.badRequest() {
			r.s.m.badRequest[d].Inc()
		}
	}
	r.result = resError
	ctx.Response.Reset()
	if r.peer != peerNone {
		r.peerAnswer("error", status)
		return
	}
	r.start.status(&ctx.Response.Header, status, nil, time.Now())
	writeError(ctx, status)
	r.cacheHeaders(false, 0, 0)
	if status == fasthttp.StatusBadRequest || status == fasthttp.StatusRequestURITooLong ||
		status == fasthttp.StatusRequestHeaderFieldsTooLarge || status == fasthttp.StatusRequestEntityTooLarge {
		// The request itself is suspect: do not read another from this
		// connection (docs/RELIABILITY.md, promise 2).
		ctx.SetConnectionClose()
	}
}

// writeError writes a short plain-text error that must never be cached.
// (Callers that can start the header with a Date do so first.)
func writeError(ctx *fasthttp.RequestCtx, status int) {
	h := &ctx.Response.Header
	setStatus(h, status)
	h.SetContentType("text/plain; charset=utf-8")
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.SetBodyString(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) + "\n")
}

// setStatus changes a started response's status. The header was parsed
// with its status line, and fasthttp keeps a parsed reason phrase across
// SetStatusCode ("206 OK"): it is cleared so that the code's own is sent.
func setStatus(h *fasthttp.ResponseHeader, status int) {
	h.SetStatusCode(status)
	h.SetStatusMessage(nil)
}

// responseStart starts every response the edge writes: its status line and
// Date.
//
// fasthttp manages Date itself: setting it through the header API is
// ignored, and with Server.NoDefaultDate it sends none. The only way to
// send the origin's Date (docs/RELIABILITY.md, promise 9) is for it to arrive the
// way parsed headers do, so every response starts by parsing
// "HTTP/1.1 <status>\r\nDate: <date>\r\n\r\n" into the response header
// (which keeps the server's NoDefaultDate); the other fields are added
// after. The buffers are per request and reused.
type responseStart struct {
	block []byte
	rd    bytes.Reader
	br    *bufio.Reader
}

// status resets h to status and date (an HTTP date; now's when empty).
func (rs *responseStart) status(h *fasthttp.ResponseHeader, status int, date []byte, now time.Time) {
	b := append(rs.block[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(status)...)
	// No Content-Length line: fasthttp sends the body's length, and a
	// parsed "Content-Length: 0" would go out as is on a 304 (where it
	// must be the 200's length or absent, RFC 9110 §8.6). Parsing a header
	// without one marks the connection for closing; that is undone below.
	b = append(b, "\r\nDate: "...)
	if len(date) > 0 && validDate(date) {
		b = append(b, date...)
	} else {
		b = cachepolicy.AppendHTTPDate(b, now)
	}
	b = append(b, "\r\n\r\n"...)
	rs.block = b
	rs.rd.Reset(b)
	if rs.br == nil {
		rs.br = bufio.NewReaderSize(&rs.rd, 256)
	} else {
		rs.br.Reset(&rs.rd)
	}
	if err := h.Read(rs.br); err != nil {
		// Only our own bytes are parsed here.
		panic("BUG: edge: parse response start " + strconv.Quote(string(b)) + ": " + err.Error())
	}
	h.ResetConnectionClose()
	if status != fasthttp.StatusNotModified && status != fasthttp.StatusNoContent && status >= 200 {
		h.SetContentLength(0)
	}
}

// validDate reports whether a Date value is safe to place in a header
// line: printable ASCII only, not blank at either end (fasthttp would trim
// it to nothing, and the response would go out without a Date).
func validDate(b []byte) bool {
	if len(b) > 64 || len(b) == 0 || b[0] == ' ' || b[len(b)-1] == ' ' {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// originDate returns an origin's Date value when it is an HTTP-date the
// edge can send on (docs/RELIABILITY.md, promise 9 keeps the origin's Date), nil
// otherwise: then the edge sends its own (RFC 9110 §6.6.1: a recipient
// that forwards a response without a usable Date adds one).
func originDate(b []byte) []byte {
	if !validDate(b) {
		return nil
	}
	if _, ok := cachepolicy.ParseHTTPDate(b); !ok {
		return nil
	}
	return b
}
