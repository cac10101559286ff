package edge

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/rules"
)

// The rules (package rules, config rules:) in the request's story:
//
//   - request phase, after the key is built: an answer made here
//     (synthetic, redirect, deny), a pass, a pool, cookie and header
//     actions towards the origin, a rewritten path, parts added to the
//     key (extras: the pool, header values), lifetimes;
//   - response phase, on an origin response before it is decided and
//     stored (absorb): header actions on what is stored, lifetimes;
//   - deliver phase, on every answer before it is written: header
//     actions, cookies, and the sticky bucket cookie of a reader who had
//     none (never stored: added per client).
//
// Conditions read the request as the client sent it (ruleView): actions
// change what is forwarded (upstream), keyed and answered, not what later
// conditions see.

// poolExtra is the key part naming a request's backend pool.
const poolExtra = "@pool"

// ruleView is a request as the rules' conditions read it.
type ruleView struct {
	r *request
	// bucket is the reader's sticky bucket; fresh says it was drawn now
	// (no valid cookie): the deliver phase sets the cookie.
	bucket int
	fresh  bool
	client netip.Addr
	// cookies is the Cookie header as the client sent it; target the
	// normalised path and query before any rewrite; uri the target as
	// the client sent it (query parameters the key strips included).
	cookies     []byte
	target, uri []byte
	// targetBuf holds the client's target once a rule rewrote
	// request.target.
	targetBuf []byte
}

func (v *ruleView) Host() []byte   { return cachepolicy.HostWithoutPort(v.r.host) }
func (v *ruleView) Path() []byte   { return v.target }
func (v *ruleView) URI() []byte    { return v.uri }
func (v *ruleView) Method() []byte { return v.r.ctx.Method() }
func (v *ruleView) Header(name string) ([]byte, bool) {
	h := &v.r.ctx.Request.Header
	var b []byte
	if name == fasthttp.HeaderUserAgent {
		b = h.UserAgent() // without normalising the name: classify reads it on every request
	} else {
		b = h.Peek(name)
	}
	return b, b != nil
}
func (v *ruleView) Cookie(name string) ([]byte, bool) {
	return cachepolicy.CookieValue(v.cookies, name)
}
func (v *ruleView) Query(name string) ([]byte, bool) { return queryValue(v.uri, name) }
func (v *ruleView) Client() netip.Addr               { return v.client }
func (v *ruleView) Bucket() int                      { return v.bucket }
func (v *ruleView) Node() string                     { return v.r.g.pol.node }

// queryValue returns the value of query parameter name in target.
func queryValue(target []byte, name string) ([]byte, bool) {
	i := bytes.IndexByte(target, '?')
	if i < 0 {
		return nil, false
	}
	q := target[i+1:]
	for len(q) > 0 {
		end := len(q)
		for j, c := range q {
			if c == '&' {
				end = j
				break
			}
		}
		kv := q[:end]
		k, v := kv, []byte(nil)
		for j, c := range kv {
			if c == '=' {
				k, v = kv[:j], kv[j+1:]
				break
			}
		}
		if string(k) == name {
			return v, true
		}
		if end == len(q) {
			break
		}
		q = q[end+1:]
	}
	return nil, false
}

// responseView is a response as response and deliver conditions read it.
type responseView struct{ h *fasthttp.ResponseHeader }

func (v responseView) Status() int { return v.h.StatusCode() }
func (v responseView) Header(name string) ([]byte, bool) {
	b := v.h.Peek(name)
	return b, b != nil
}

// initView sets the request up as the rules' conditions read it. draw
// gives a reader without a bucket cookie a random one (the request phase);
// otherwise such a reader is in no share.
func (r *request) initView(draw bool) {
	pol := r.g.pol
	v := &r.view
	v.r = r
	// A copy: a route that ignores cookies deletes the header later, and
	// the deliver phase still reads them.
	v.cookies = append(v.cookies[:0], r.ctx.Request.Header.Peek(fasthttp.HeaderCookie)...)
	v.client, _ = pol.clientAddr(r.ctx)
	v.target = r.target // copied only if a rule rewrites it (ruleRequest)
	v.uri = r.ctx.Request.Header.RequestURI()
	if len(v.uri) == 0 || v.uri[0] != '/' {
		v.uri = v.target // absolute form: the normalised target
	}
	v.fresh = false
	if b, ok := cachepolicy.CookieValue(v.cookies, pol.stickyCookie); ok && validBucket(b) {
		v.bucket = int(b[0] - '0')
		if len(b) == 2 {
			v.bucket = v.bucket*10 + int(b[1]-'0')
		}
	} else if draw {
		v.bucket, v.fresh = rand.IntN(100), true
	} else {
		v.bucket = noBucket
	}
}

// noBucket is the bucket of a reader in no share: percent conditions do
// not hold for it.
const noBucket = 100

// ruleRequest runs the request phase. It reports whether the request was
// answered (synthetic, redirect, deny) and whether a rule passes it.
func (r *request) ruleRequest() (answered, pass bool) {
	r.initView(true)
	v := &r.view
	pol := r.g.pol
	res := &r.rres
	pol.rules.Request(v, res)
	r.ruled = true
	r.countRules(res)
	if res.Answer {
		r.ruleAnswer(res)
		return true, false
	}
	if res.Path != nil {
		// What the origin is asked for and what is keyed; conditions
		// keep reading the path the client asked for (view.target).
		v.targetBuf = append(v.targetBuf[:0], r.target...)
		v.target = v.targetBuf
		if string(v.uri) == string(r.target) {
			v.uri = v.target // it was the absolute form's fallback
		}
		r.target = append(r.target[:0], res.Path...)
		r.key = cachekey.AppendURL(r.key[:0], r.host, r.target)
		r.route = cachepolicy.MatchRoute(pol.matches, cachepolicy.HostWithoutPort(r.host), r.target)
	}
	if res.Pool != "" && res.Pool != "default" {
		r.dir = r.g.pools[res.Pool]
	}
	r.key = appendRuleKey(r.key, res, r.forwardedHeader, v.Cookie)
	return false, res.Pass
}

// appendRuleKey appends to a URL key the parts the request phase adds: the
// pool (unless it serves the same content) and the key: values, a
// header's as forwarded or a cookie's as sent. Explain renders the same.
func appendRuleKey(key []byte, res *rules.Result, forwarded func(string) []byte, cookie func(string) ([]byte, bool)) []byte {
	if res.Pool != "" && res.Pool != "default" && !res.SameContent {
		key = cachekey.AppendExtra(key, poolExtra, []byte(res.Pool))
	}
	for _, name := range res.Key {
		if c, ok := strings.CutPrefix(name, "cookie:"); ok {
			val, _ := cookie(c)
			key = cachekey.AppendExtra(key, name, val)
			continue
		}
		key = cachekey.AppendExtra(key, name, forwarded(name))
	}
	return key
}

// keptCookie reports whether a cookie is forwarded with a pass and makes
// one after the request phase: not when it is keyed (sent with every
// fetch, ruleHeaders) or dropped by a cookie action.
func keptCookie(res *rules.Result, name []byte) bool {
	for _, k := range res.Key {
		if len(k) == len("cookie:")+len(name) && k[:len("cookie:")] == "cookie:" && k[len("cookie:"):] == string(name) {
			return false
		}
	}
	return res.KeepCookie(name)
}

// validBucket reports whether b is a bucket, "0" to "99".
func validBucket(b []byte) bool {
	switch len(b) {
	case 1:
		return b[0] >= '0' && b[0] <= '9'
	case 2:
		return b[0] >= '1' && b[0] <= '9' && b[1] >= '0' && b[1] <= '9'
	}
	return false
}

// forwardedHeader is the value of a request header as it is forwarded:
// the client's, changed by the request phase's header actions.
func (r *request) forwardedHeader(name string) []byte {
	return forwardedValue(r.ctx.Request.Header.Peek(name), name, r.rres.Headers)
}

// ruleHeaders applies the request phase's header actions to a request
// towards the origin.
func (r *request) ruleHeaders(out *fasthttp.RequestHeader) {
	if !r.ruled {
		return
	}
	for _, k := range r.rres.Key {
		if c, ok := strings.CutPrefix(k, "cookie:"); ok {
			// A keyed cookie goes with every fetch: the key holds its value.
			if val, ok := r.view.Cookie(c); ok {
				out.SetCookie(c, string(val))
			}
		}
	}
	for _, h := range r.rres.Headers {
		switch h.Kind {
		case rules.HeaderSet:
			out.SetBytesV(h.Name, h.Value)
		case rules.HeaderAppend:
			out.Add(h.Name, string(h.Value))
		case rules.HeaderRemove:
			out.Del(h.Name)
		}
	}
}

// keepCookie reports whether a cookie is forwarded and counts for the
// cookie pass: the rules' cookie actions, and never the bucket cookie
// (the edge's own).
func (r *request) keepCookie(name []byte) bool {
	if !r.ruled {
		return true
	}
	return keptCookie(&r.rres, name)
}

// ruleAnswer writes the answer a rule made (synthetic, redirect, deny).
func (r *request) ruleAnswer(res *rules.Result) {
	ctx := r.ctx
	r.result, r.detail = resSynth, detailRule
	h := &ctx.Response.Header
	r.start.status(h, res.Status, nil, r.now)
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	for _, ah := range res.AnswerHeaders {
		h.SetBytesV(ah.Name, ah.Value)
	}
	switch {
	case len(res.Body) > 0:
		if len(h.ContentType()) == 0 {
			h.SetContentType("text/plain; charset=utf-8")
		}
		if !r.isHEADMethod() {
			ctx.Response.SetBodyRaw(res.Body)
		} else {
			h.SetContentLength(len(res.Body))
		}
	default:
		h.SetContentLength(0)
	}
	r.cacheHeaders(false, 0, 0)
}

func (r *request) isHEADMethod() bool { return string(r.ctx.Method()) == fasthttp.MethodHead }

// ruleDeliver runs the deliver phase on the answer, and gives a reader
// without a bucket the cookie of the one drawn.
func (r *request) ruleDeliver() {
	pol := r.g.pol
	h := &r.ctx.Response.Header
	if !r.ruled {
		// Answered before the request phase (a bad request, PURGE): the
		// conditions still read this request, a reader without a bucket
		// in no share.
		r.initView(false)
	}
	if !pol.rules.Empty(rules.PhaseDeliver) {
		res := &r.dres
		pol.rules.Deliver(&r.view, responseView{h}, res)
		r.countRules(res)
		applyHeaders(h, res.Headers)
		for _, c := range res.SetCookies {
			h.AddBytesV(fasthttp.HeaderSetCookie, c)
		}
	}
	if r.ruled && r.view.fresh && pol.rules.UsesBucket {
		b := append(r.scratch[:0], pol.stickyCookie...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(r.view.bucket), 10)
		b = append(b, "; Path=/; Max-Age="...)
		b = strconv.AppendInt(b, pol.stickyMaxAge, 10)
		b = append(b, "; SameSite=Lax"...)
		r.scratch = b
		h.AddBytesV(fasthttp.HeaderSetCookie, b)
	}
}

// applyHeaders applies header actions to a response header.
func applyHeaders(h *fasthttp.ResponseHeader, ops []rules.Header) {
	for _, x := range ops {
		switch x.Kind {
		case rules.HeaderSet:
			h.SetCanonical(x.Key, x.Value) // the name was made canonical once
		case rules.HeaderAppend:
			h.AddBytesKV(x.Key, x.Value)
		case rules.HeaderRemove:
			h.DelBytes(x.Key)
		}
	}
}

// forwardedValue is the value of a request header after header actions:
// v as the client sent it, changed by each action on name in order.
func forwardedValue(v []byte, name string, ops []rules.Header) []byte {
	for _, h := range ops {
		if !strings.EqualFold(h.Name, name) {
			continue
		}
		switch h.Kind {
		case rules.HeaderSet:
			v = h.Value
		case rules.HeaderAppend:
			if len(v) == 0 {
				v = h.Value
			} else {
				v = append(append(append([]byte(nil), v...), ", "...), h.Value...)
			}
		case rules.HeaderRemove:
			v = nil
		}
	}
	return v
}

// countRules counts the rules that matched.
func (r *request) countRules(res *rules.Result) {
	for _, i := range res.Matched {
		r.g.pol.ruleMatches[i].Inc()
	}
}

// director returns the backend pool the request fetches from.
func (r *request) director() *backend.Director {
	if r.dir != nil {
		return r.dir
	}
	return r.g.dir
}

// poolOf returns the director of the pool a stored key names (a
// refresh), or the default.
func (g *generation) poolOf(key []byte) *backend.Director {
	url := cachekey.URL(key)
	if !cachekey.HasExtras(url) {
		return g.dir
	}
	d := g.dir
	cachekey.EachExtra(url, func(name, value []byte) {
		if string(name) == poolExtra {
			if p := g.pools[string(value)]; p != nil {
				d = p
			}
		}
	})
	return d
}

// keyView is a request rebuilt from a stored key, for the response phase
// of a refresh (no client): its URL and the header values its key holds.
type keyView struct {
	host, target []byte
	key          []byte
	node         string
}

func newKeyView(key []byte, node string) *keyView {
	url := cachekey.URL(key)
	host, target := cachekey.SplitURL(cachekey.RealURL(url))
	return &keyView{host: cachepolicy.HostWithoutPort(host), target: target, key: url, node: node}
}

func (k *keyView) Host() []byte   { return k.host }
func (k *keyView) Path() []byte   { return k.target }
func (k *keyView) URI() []byte    { return k.target }
func (k *keyView) Method() []byte { return []byte(fasthttp.MethodGet) }
func (k *keyView) Header(name string) (v []byte, ok bool) {
	cachekey.EachExtra(k.key, func(n, val []byte) {
		if strings.EqualFold(string(n), name) {
			v = val
		}
	})
	// The key holds a value, not whether the header was sent: an empty
	// one counts as absent.
	return v, len(v) > 0
}
func (k *keyView) Cookie(string) ([]byte, bool) { return nil, false }
func (k *keyView) Query(name string) ([]byte, bool) {
	return queryValue(k.target, name)
}
func (k *keyView) Client() netip.Addr { return netip.Addr{} }
func (k *keyView) Bucket() int        { return noBucket }
func (k *keyView) Node() string       { return k.node }

// lifetimes are the TTL, grace and keep a rule set (nil: unchanged).
type lifetimes struct{ ttl, grace, keep *time.Duration }

// apply puts the lifetimes over a route's rules: a rule's TTL replaces
// the origin's and the route's clamps.
func (l lifetimes) apply(rl cachepolicy.Rules) cachepolicy.Rules {
	if l.ttl != nil {
		rl.TTL, rl.MinTTL, rl.MaxTTL = l.ttl, nil, nil
	}
	if l.grace != nil {
		rl.RouteGrace = l.grace
	}
	if l.keep != nil {
		rl.RouteKeep = l.keep
	}
	return rl
}

// lifetimes returns the request phase's lifetimes.
func (r *request) lifetimes() lifetimes {
	if r.peer != peerNone {
		return r.peerLife // the sender's rules'
	}
	if !r.ruled {
		return lifetimes{}
	}
	return lifetimes{r.rres.TTL, r.rres.Grace, r.rres.Keep}
}

// fetchView is what absorbing this request's fetch reads of it.
func (r *request) fetchView() fetchView {
	fv := fetchView{pol: r.g.pol, h: &r.ctx.Request.Header, life: r.lifetimes()}
	if r.ruled {
		fv.rq = &r.view
	} else if !r.g.pol.rules.Empty(rules.PhaseResponse) {
		fv.rq = newKeyView(r.key, r.g.pol.node)
	}
	return fv
}

// responseRules runs the response phase on an origin response: its header
// actions change what is stored and served, its lifetimes override.
func (a *absorber) responseRules(fv fetchView, resp *fasthttp.Response, rl cachepolicy.Rules) cachepolicy.Rules {
	var res rules.Result
	fv.pol.rules.Response(fv.rq, responseView{&resp.Header}, &res)
	for _, i := range res.Matched {
		fv.pol.ruleMatches[i].Inc()
	}
	applyHeaders(&resp.Header, res.Headers)
	return lifetimes{res.TTL, res.Grace, res.Keep}.apply(rl)
}

// newPools builds the directors of the named pools: backends' settings
// with the pool's director and servers (named "POOL/ADDRESS" unless
// named).
func newPools(cfg *config.Config, m backend.Metrics, dial backend.Dialer, now func() time.Time) map[string]*backend.Director {
	if len(cfg.Pools) == 0 {
		return nil
	}
	out := make(map[string]*backend.Director, len(cfg.Pools))
	for name, p := range cfg.Pools {
		bc := cfg.Backends
		if p.Director != "" {
			bc.Director = p.Director
		}
		if p.Probe != nil {
			bc.Probe = *p.Probe
		}
		bc.Servers = nil
		for _, s := range p.Servers {
			if s.Name == "" {
				s.Name = name + "/" + s.Address
			}
			bc.Servers = append(bc.Servers, s)
		}
		out[name] = backend.New(bc, m, dial, now)
	}
	return out
}

// refreshLifetimes are the request phase's lifetimes for a refresh (no
// client): the request rebuilt from the stored key, a reader in no share.
func (p *policy) refreshLifetimes(rq *keyView) lifetimes {
	if p.rules.Empty(rules.PhaseRequest) {
		return lifetimes{}
	}
	var res rules.Result
	p.rules.Request(rq, &res)
	return lifetimes{res.TTL, res.Grace, res.Keep}
}
