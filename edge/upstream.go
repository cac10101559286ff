package edge

import (
	"bytes"
	"net"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
)

// fetchMode says how a request is forwarded.
type fetchMode uint8

const (
	// modeCache fetches the object itself for the cache: GET, gzip
	// accepted, no client conditionals or Range (the edge answers those
	// from the stored object), no cookies or credentials.
	modeCache fetchMode = iota
	// modeDirect is modeCache for one client: credentials and cookies are
	// forwarded, no coalescing; the answer is stored only if it allows it.
	modeDirect
	// modePass forwards the request as the client sent it (method, body,
	// conditionals, Accept-Encoding), minus hop-by-hop and spoofable
	// headers; nothing is stored.
	modePass
)

// hopByHop lists headers that belong to one connection (RFC 9110 §7.6.1),
// plus ones that must not cross the proxy. Lower-case.
var hopByHop = []string{
	"connection", "keep-alive", "proxy-connection", "te", "trailer",
	"transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate",
}

// spoofable lists request headers an origin might use to build a response
// (absolute links, redirects, the method) that are not part of the cache
// key: they are removed before forwarding (RELIABILITY promise 3). The
// edge sets X-Forwarded-For, X-Forwarded-Proto and Via itself.
var spoofable = []string{
	"x-forwarded-host", "x-forwarded-server", "x-forwarded-port", "x-forwarded-proto",
	"x-forwarded-scheme", "x-forwarded-prefix", "x-forwarded-ssl", "x-original-url",
	"x-rewrite-url", "x-original-host", "x-host", "x-http-method-override",
	"x-http-method", "x-method-override", "forwarded", "front-end-https", "x-real-ip",
	"x-forwarded-for", "via", "host", "content-length", "cookie",
	"surrogate-capability",
}

// cacheOnly lists request headers dropped when fetching for the cache:
// the edge answers them from the stored object.
var cacheOnly = []string{
	"accept-encoding", "if-none-match", "if-modified-since", "if-match",
	"if-unmodified-since", "if-range", "range", "authorization", "expect",
}

// inListCGI is inList where '_' in name also matches '-': CGI, PHP and
// many frameworks read "X_Forwarded_Host" as X-Forwarded-Host.
func inListCGI(list []string, name []byte) bool {
	if bytes.IndexByte(name, '_') < 0 {
		return inList(list, name)
	}
	for _, s := range list {
		if len(name) != len(s) {
			continue
		}
		same := true
		for i := range len(name) {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 32
			} else if c == '_' {
				c = '-'
			}
			if c != s[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func inList(list []string, name []byte) bool {
	for _, s := range list {
		if asciiEqualFold(name, s) {
			return true
		}
	}
	return false
}

// connectionTokens reports whether name is listed in a Connection value.
func connectionTokens(conn, name []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		tok, conn = nextListItem(conn)
		if len(tok) == len(name) && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// nextListItem splits the first item, without surrounding whitespace, off
// a comma-separated field value.
func nextListItem(list []byte) (item, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		return bytes.TrimSpace(list[:i]), list[i+1:]
	}
	return bytes.TrimSpace(list), nil
}

// buildUpstream fills req with the request to send to the backend for a
// client request in the given mode.
func (s *Server) buildUpstream(ctx *fasthttp.RequestCtx, rs *reqState, mode fetchMode, stale *Entry, req *fasthttp.Request) {
	in := &ctx.Request.Header
	out := &req.Header
	if mode == modePass {
		out.SetMethodBytes(in.Method())
	} else {
		out.SetMethod(fasthttp.MethodGet)
	}
	out.SetRequestURIBytes(rs.target)
	out.SetHostBytes(rs.host)
	conn := in.Peek(fasthttp.HeaderConnection)
	for k, v := range in.All() {
		if inListCGI(hopByHop, k) || inListCGI(spoofable, k) || (len(conn) > 0 && connectionTokens(conn, k)) {
			continue
		}
		if mode != modePass && inListCGI(cacheOnly, k) && !(mode == modeDirect && asciiEqualFold(k, "authorization")) {
			continue
		}
		if mode != modePass && bytes.IndexByte(k, '_') >= 0 {
			// An origin behind CGI conventions reads "Accept_Language" as
			// Accept-Language, which the key (Vary) does not see: a response
			// that may be stored is built without such names (like nginx's
			// underscores_in_headers off).
			continue
		}
		if prev := out.PeekBytes(k); mode != modePass && len(prev) > 0 {
			// A field on several lines is one comma-separated list: send
			// it as the one value the variant key was built from (origins
			// differ on which line they read).
			out.SetBytesKV(k, append(append(append([]byte(nil), prev...), ", "...), v...))
			continue
		}
		out.AddBytesKV(k, v)
	}
	if mode != modeCache && len(rs.cookie) > 0 {
		out.SetBytesKV([]byte(fasthttp.HeaderCookie), rs.cookie)
	}
	if mode != modePass {
		out.Set(fasthttp.HeaderAcceptEncoding, "gzip")
		if stale != nil {
			addConditionals(out, stale)
		}
	}
	s.addForwarded(ctx, out)
	if mode == modePass && !bodyless(in.Method()) {
		req.SetBodyRaw(ctx.Request.Body())
	}
}

// bodyless reports methods whose request content has no defined meaning
// (RFC 9110 §9.3.1, §9.3.2, §9.3.8). Their content is never forwarded: an
// origin that does not read it would take it for the next request on the
// connection (request smuggling), and one that does could shape a
// response on something outside the key.
func bodyless(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodTrace:
		return true
	}
	return false
}

// addConditionals makes a refresh of e conditional (RFC 9111 §4.3.1).
func addConditionals(h *fasthttp.RequestHeader, e *Entry) {
	if len(e.etag()) > 0 {
		h.SetBytesV(fasthttp.HeaderIfNoneMatch, e.etag())
	}
	if len(e.lastModified()) > 0 {
		h.SetBytesV(fasthttp.HeaderIfModifiedSince, e.lastModified())
	}
}

// addForwarded sets X-Forwarded-For (appended to only when the peer is a
// trusted proxy), X-Forwarded-Proto and Via.
func (s *Server) addForwarded(ctx *fasthttp.RequestCtx, h *fasthttp.RequestHeader) {
	var ipbuf [64]byte
	ip := ctx.RemoteIP()
	client := ip.To4()
	if client == nil {
		client = ip
	}
	xff := ipbuf[:0]
	if s.trustedPeer(ip) {
		// Every line a trusted proxy sent, in order (RFC 9110 §5.3).
		for _, prior := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
			if prior = bytes.TrimSpace(prior); len(prior) > 0 {
				xff = append(xff, prior...)
				xff = append(xff, ", "...)
			}
		}
	}
	xff = append(xff, ip.String()...)
	h.SetBytesV("X-Forwarded-For", xff)
	h.Set("X-Forwarded-Proto", s.cfg.Edge.ForwardedProto)
	if prior := ctx.Request.Header.Peek(fasthttp.HeaderVia); len(prior) > 0 {
		v := append(append(append([]byte(nil), prior...), ", "...), s.via...)
		h.SetBytesV(fasthttp.HeaderVia, v)
	} else {
		h.SetBytesV(fasthttp.HeaderVia, s.via)
	}
}

func (s *Server) trustedPeer(ip net.IP) bool {
	if len(s.trusted) == 0 {
		return false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the address a request comes from: the peer, or, when
// the peer is a trusted proxy, the rightmost X-Forwarded-For address that
// is not a trusted proxy (the leftmost when all are). ok is false when the
// address cannot be known (a trusted proxy sent an X-Forwarded-For that
// does not parse): callers deciding on it refuse.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx) (a netip.Addr, ok bool) {
	ip := ctx.RemoteIP()
	a, ok = netip.AddrFromSlice(ip)
	if !ok || !s.trustedPeer(ip) {
		return a.Unmap(), ok
	}
	a = a.Unmap()
	lines := ctx.Request.Header.PeekAll("X-Forwarded-For")
	for i := len(lines) - 1; i >= 0; i-- {
		for list := lines[i]; len(list) > 0; {
			item := list
			if j := bytes.LastIndexByte(list, ','); j >= 0 {
				item, list = list[j+1:], list[:j]
			} else {
				list = nil
			}
			if item = bytes.TrimSpace(item); len(item) == 0 {
				continue
			}
			x, err := netip.ParseAddr(string(item))
			if err != nil {
				return x, false
			}
			a = x.Unmap()
			if !containsAddr(s.trusted, a) {
				return a, true
			}
		}
	}
	return a, true
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
func (s *Server) copyResponse(ctx *fasthttp.RequestCtx, rs *reqState, src *fasthttp.ResponseHeader) {
	dst := &ctx.Response.Header
	rs.head.start(dst, src.StatusCode(), originDate(src.Peek(fasthttp.HeaderDate)), time.Now())
	conn := src.Peek(fasthttp.HeaderConnection)
	for k, v := range src.All() {
		if inList(responseSkip, k) || (len(conn) > 0 && connectionTokens(conn, k)) {
			continue
		}
		if !s.cfg.Edge.DebugHeaders && inList(edgeOnly, k) {
			continue
		}
		dst.AddBytesKV(k, v)
	}
	if prior := src.Peek(fasthttp.HeaderVia); len(prior) > 0 {
		v := append(append(append([]byte(nil), prior...), ", "...), s.via...)
		dst.SetBytesV(fasthttp.HeaderVia, v)
	} else {
		dst.SetBytesV(fasthttp.HeaderVia, s.via)
	}
}
