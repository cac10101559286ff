package edge

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/store"
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
// key: they are removed before forwarding (docs/RELIABILITY.md, promise 3). The
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

// upstream fills req with the request to send to the backend for this
// client request in the given mode; stale, for a cache fetch, is the
// stored object it revalidates.
func (r *request) upstream(mode fetchMode, stale *store.Entry, req *fasthttp.Request) {
	ctx := r.ctx
	in := &ctx.Request.Header
	out := &req.Header
	if mode == modePass {
		out.SetMethodBytes(in.Method())
	} else {
		out.SetMethod(fasthttp.MethodGet)
	}
	out.SetRequestURIBytes(r.target)
	out.SetHostBytes(r.host)
	conn := in.Peek(fasthttp.HeaderConnection)
	for k, v := range in.All() {
		if r.peer != peerNone {
			// A peer's request is what its edge would have sent the
			// origin, keyed cookies included, plus the cluster's headers.
			if clusterHeader(k) {
				continue
			}
			if equalFold(k, "cookie") {
				out.AddBytesKV(k, v)
				continue
			}
		}
		if inListCGI(hopByHop, k) || inListCGI(spoofable, k) || (len(conn) > 0 && connectionTokens(conn, k)) {
			continue
		}
		if mode != modePass && inListCGI(cacheOnly, k) && !(mode == modeDirect && equalFold(k, "authorization")) {
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
	if mode != modeCache && len(r.cookie) > 0 {
		out.SetBytesKV([]byte(fasthttp.HeaderCookie), r.cookie)
	}
	r.ruleHeaders(out)
	if mode != modePass {
		out.Set(fasthttp.HeaderAcceptEncoding, "gzip")
		if stale != nil {
			addConditionals(out, stale)
		}
	}
	r.addForwarded(out)
	if mode == modePass && !bodyless(in.Method()) {
		req.SetBodyRaw(ctx.Request.Body())
	}
}

// refreshRequest fills req with the request that refetches e for the
// cache, for no client: GET, its URL, the varied request headers of its
// variant, gzip accepted, and the validators of e.
func (p *policy) refreshRequest(e *store.Entry, req *fasthttp.Request) {
	h := &req.Header
	h.SetMethod(fasthttp.MethodGet)
	host, target := cachekey.SplitURL(cachekey.RealURL(e.URL()))
	h.SetRequestURIBytes(target)
	h.SetHostBytes(host)
	// The header values rules added to the key (a device class, a dark
	// launch), as the request that stored it sent them.
	cachekey.EachExtra(e.URL(), func(name, value []byte) {
		switch {
		case string(name) == poolExtra:
		case bytes.HasPrefix(name, []byte("cookie:")):
			h.SetCookieBytesKV(name[len("cookie:"):], value)
		default:
			h.SetBytesKV(name, value)
		}
	})
	for i, v := range cachekey.Values(e.Key, len(e.VaryNames)) {
		if len(v) > 0 {
			h.SetBytesV(e.VaryNames[i], v)
		}
	}
	h.Set(fasthttp.HeaderAcceptEncoding, "gzip")
	h.Set("X-Forwarded-Proto", p.forwardedProto)
	h.SetBytesV(fasthttp.HeaderVia, p.via)
	addConditionals(h, e)
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
func addConditionals(h *fasthttp.RequestHeader, e *store.Entry) {
	if len(e.ETag()) > 0 {
		h.SetBytesV(fasthttp.HeaderIfNoneMatch, e.ETag())
	}
	if len(e.LastModified()) > 0 {
		h.SetBytesV(fasthttp.HeaderIfModifiedSince, e.LastModified())
	}
}

// addForwarded sets X-Forwarded-For (appended to only when the peer is a
// trusted proxy), X-Forwarded-Proto and Via.
func (r *request) addForwarded(h *fasthttp.RequestHeader) {
	ctx, pol := r.ctx, r.g.pol
	var ipbuf [64]byte
	ip := ctx.RemoteIP()
	xff := ipbuf[:0]
	if pol.trustedPeer(ip) || r.peer != peerNone {
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
	h.Set("X-Forwarded-Proto", pol.forwardedProto)
	h.SetBytesV(fasthttp.HeaderVia, appendVia(ctx.Request.Header.Peek(fasthttp.HeaderVia), pol.via))
}

// appendVia returns the Via to send on: prior, if any, then ours.
func appendVia(prior, via []byte) []byte {
	if len(prior) == 0 {
		return via
	}
	return append(append(append([]byte(nil), prior...), ", "...), via...)
}

// trustedPeer reports whether ip is a trusted proxy.
func (p *policy) trustedPeer(ip net.IP) bool {
	if len(p.trusted) == 0 {
		return false
	}
	a, ok := netip.AddrFromSlice(ip)
	return ok && containsAddr(p.trusted, a.Unmap())
}

// clientAddr returns the address a request comes from: the peer, or, when
// the peer is a trusted proxy, the rightmost X-Forwarded-For address that
// is not a trusted proxy (the leftmost when all are). ok is false when the
// address cannot be known (a trusted proxy sent an X-Forwarded-For that
// does not parse): callers deciding on it refuse.
func (p *policy) clientAddr(ctx *fasthttp.RequestCtx) (a netip.Addr, ok bool) {
	ip := ctx.RemoteIP()
	a, ok = netip.AddrFromSlice(ip)
	if !ok || !p.trustedPeer(ip) {
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
			if !containsAddr(p.trusted, a) {
				return a, true
			}
		}
	}
	return a, true
}

func containsAddr(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
