package edge

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// buildKey normalises the request's target and host (cachepolicy), makes
// its URL key (cachekey) and finds its route. The origin later receives
// exactly these normalised bytes (docs/RELIABILITY.md, promise 3: the key and the
// forwarded request come from the same bytes). A target or host that does
// not normalise is refused; "OPTIONS *" is answered here. It reports
// whether the request goes on.
func (r *request) buildKey() bool {
	ctx := r.ctx
	raw := ctx.Request.Header.RequestURI()
	var err error
	var absHost []byte
	r.target, absHost, err = cachepolicy.NormalizeTarget(r.target[:0], raw, &r.g.pol.keyRules)
	if err != nil {
		if len(raw) == 1 && raw[0] == '*' && string(ctx.Method()) == fasthttp.MethodOptions {
			// Asks about the server itself (RFC 9110 §9.3.7): answered here.
			r.result = resPass
			r.start.status(&ctx.Response.Header, fasthttp.StatusOK, nil, time.Now())
			ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
			ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
			return false
		}
		r.reject(fasthttp.StatusBadRequest, detailTarget)
		return false
	}
	host := absHost
	if host == nil {
		host = ctx.Request.Header.Host()
	}
	if r.host, err = cachepolicy.NormalizeHost(r.host[:0], host); err != nil {
		r.reject(fasthttp.StatusBadRequest, detailHost)
		return false
	}
	r.key = cachekey.AppendURL(r.key[:0], r.host, r.target)
	r.route = cachepolicy.MatchRoute(r.g.pol.matches, cachepolicy.HostWithoutPort(r.host), r.target)
	return true
}

// selects reports whether e is the variant that a request with header h
// selects (a waiter of another request's fetch).
func selects(h *fasthttp.RequestHeader, e *store.Entry) bool {
	if len(e.VaryNames) == 0 {
		return true
	}
	var buf [256]byte
	vk := cachekey.AppendVariant(buf[:0], e.URL(), e.VaryNames, h)
	return string(vk) == string(e.Key)
}
