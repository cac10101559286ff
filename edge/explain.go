package edge

import (
	"bufio"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/rules"
)

// ExplainRequest is a request to explain (lakka config explain): what the
// edge's rules and policy would do with it, without starting an edge.
type ExplainRequest struct {
	// URL is absolute (http://host/path?query).
	URL    string
	Method string
	// Headers and Cookies as the client sends them; Client its address
	// (after trusted proxies); Bucket its sticky bucket cookie, or -1 for
	// a first visit.
	Headers [][2]string
	Cookies [][2]string
	Client  netip.Addr
	Bucket  int
	// Status and ResponseHeaders describe the origin's answer the
	// response phase is explained against (200 and none by default).
	Status          int
	ResponseHeaders [][2]string
}

// RuleMatch is a rule that matched, and what it does.
type RuleMatch struct {
	Index int
	Name  string
	Does  string
}

// Explanation is what the edge would do with an ExplainRequest.
type Explanation struct {
	Request, Response, Deliver []RuleMatch
	// Answer is the edge's own answer ("301 Location: /a/1"), if a rule
	// makes one.
	Answer string
	// Pass says the request goes to the origin uncached, and why.
	Pass string
	Pool string
	// Key is the cache key, readable (the parts rules add after " + ").
	Key string
	// Forwarded are the request headers rules change towards the origin,
	// Cookie the Cookie header forwarded (for passes), Path the path and
	// query the origin is asked for.
	Forwarded []string
	Cookie    string
	Path      string
	// Stored says whether the assumed answer would be stored, with its
	// lifetimes.
	Stored               string
	TTL, Grace, Keep     time.Duration
	StoredHeaders        []string // response phase header actions
	DeliverHeaders       []string // deliver phase header actions
	SetCookies           []string
	BucketCookie         string // the cookie a first visit is given
	Bucket               int
	FirstVisit, UsesPool bool
}

// explainView is an ExplainRequest as conditions read it.
type explainView struct {
	x                 *ExplainRequest
	host, target, uri []byte
	cookie            []byte
	node              string
}

func (v *explainView) Host() []byte   { return cachepolicy.HostWithoutPort(v.host) }
func (v *explainView) Path() []byte   { return v.target }
func (v *explainView) URI() []byte    { return v.uri }
func (v *explainView) Method() []byte { return []byte(v.x.Method) }
func (v *explainView) Header(name string) ([]byte, bool) {
	for _, h := range v.x.Headers {
		if strings.EqualFold(h[0], name) {
			return []byte(h[1]), true
		}
	}
	return nil, false
}
func (v *explainView) Cookie(name string) ([]byte, bool) {
	return cachepolicy.CookieValue(v.cookie, name)
}
func (v *explainView) Query(name string) ([]byte, bool) { return queryValue(v.uri, name) }
func (v *explainView) Client() netip.Addr               { return v.x.Client }
func (v *explainView) Bucket() int                      { return v.x.Bucket }
func (v *explainView) Node() string                     { return v.node }

type explainResponse struct {
	status  int
	headers [][2]string
}

func (r *explainResponse) Status() int { return r.status }
func (r *explainResponse) Header(name string) ([]byte, bool) {
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			return []byte(h[1]), true
		}
	}
	return nil, false
}

// Explain says what an edge with cfg would do with x: the rules that
// match in each phase, its key, pool, forwarded request, and whether (and
// for how long) the assumed answer is stored.
func Explain(cfg config.Config, x ExplainRequest) (*Explanation, error) {
	pol, err := newPolicy(&cfg, nil)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(x.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want an absolute URL (http://host/path)", x.URL)
	}
	if x.Method == "" {
		x.Method = fasthttp.MethodGet
	}
	if x.Status == 0 {
		x.Status = fasthttp.StatusOK
	}
	target, _, err := cachepolicy.NormalizeTarget(nil, []byte(u.RequestURI()), &pol.keyRules)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %v", x.URL, err)
	}
	host, err := cachepolicy.NormalizeHost(nil, []byte(u.Host))
	if err != nil {
		return nil, fmt.Errorf("--url %q: host: %v", x.URL, err)
	}
	var cookies []string
	for _, c := range x.Cookies {
		cookies = append(cookies, c[0]+"="+c[1])
	}
	if b, ok := cachepolicy.CookieValue([]byte(strings.Join(cookies, "; ")), pol.stickyCookie); ok && validBucket(b) {
		x.Bucket, _ = strconv.Atoi(string(b))
	} else if x.Bucket < 0 || x.Bucket > 99 {
		x.Bucket = 99 // a first visit draws 0-99: shown in no share
	}
	v := &explainView{x: &x, host: host, target: target, uri: []byte(u.RequestURI()), cookie: []byte(strings.Join(cookies, "; ")), node: pol.node}
	ex := &Explanation{Bucket: x.Bucket}
	list := func(res *rules.Result) []RuleMatch {
		var out []RuleMatch
		for _, i := range res.Matched {
			out = append(out, RuleMatch{Index: i, Name: pol.rules.Name(i), Does: pol.rules.Describe(i)})
		}
		return out
	}
	var res rules.Result
	pol.rules.Request(v, &res)
	ex.Request = list(&res)
	key := cachekey.AppendURL(nil, host, target)
	ex.Path = string(target)
	if res.Answer {
		ex.Answer = strconv.Itoa(res.Status)
		for _, h := range res.AnswerHeaders {
			ex.Answer += fmt.Sprintf(", %s: %s", h.Name, h.Value)
		}
		if len(res.Body) > 0 {
			ex.Answer += fmt.Sprintf(", body %q", res.Body)
		}
	}
	if res.Path != nil {
		ex.Path = string(res.Path)
		key = cachekey.AppendURL(nil, host, res.Path)
	}
	ex.Pool = "default"
	if res.Pool != "" {
		ex.Pool = res.Pool
	}
	forwarded := func(name string) []byte {
		val, _ := v.Header(name)
		return forwardedValue(val, name, res.Headers)
	}
	// The key as the edge builds it, its extras shown as "+ name=value".
	full := appendRuleKey(append([]byte(nil), key...), &res, forwarded, v.Cookie)
	ex.Key = string(cachekey.RealURL(full))
	cachekey.EachExtra(full, func(name, value []byte) {
		n := string(name)
		if n == poolExtra {
			n = "pool"
		}
		ex.Key += fmt.Sprintf(" + %s=%s", n, value)
	})
	for _, h := range res.Headers {
		ex.Forwarded = append(ex.Forwarded, headerAction(h))
	}
	// The cookies the edge forwards: the policy's strip list, the rules'
	// cookie actions, never the bucket cookie.
	stripped := cachepolicy.StripCookies(nil, v.cookie, pol.stripCookies)
	kept := cachepolicy.FilterCookies(nil, stripped, func(name []byte) bool { return keptCookie(&res, name) })
	ex.Cookie = string(kept)
	route := cachepolicy.MatchRoute(pol.matches, cachepolicy.HostWithoutPort(host), target)
	switch {
	case res.Answer:
	case res.Pass:
		ex.Pass = "a rule"
	case x.Method != fasthttp.MethodGet && x.Method != fasthttp.MethodHead:
		ex.Pass = "the method"
	case route >= 0 && pol.routes[route].pass:
		ex.Pass = "route " + pol.routes[route].name
	case len(kept) > 0:
		ex.Pass = "a cookie (" + string(kept) + ")"
	}
	reqLife := lifetimes{res.TTL, res.Grace, res.Keep}
	// The response phase, on the assumed answer.
	resp := &explainResponse{status: x.Status, headers: x.ResponseHeaders}
	var rres rules.Result
	pol.rules.Response(v, resp, &rres)
	ex.Response = list(&rres)
	for _, h := range rres.Headers {
		ex.StoredHeaders = append(ex.StoredHeaders, headerAction(h))
	}
	if ex.Answer == "" && ex.Pass == "" {
		var fr fasthttp.Response
		raw := "HTTP/1.1 " + strconv.Itoa(x.Status) + " X\r\n"
		for _, h := range x.ResponseHeaders {
			raw += h[0] + ": " + h[1] + "\r\n"
		}
		if err := fr.Header.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
			return nil, fmt.Errorf("--response-header: %v", err)
		}
		applyHeaders(&fr.Header, rres.Headers)
		rl := lifetimes{rres.TTL, rres.Grace, rres.Keep}.apply(reqLife.apply(pol.routeRules(host, target)))
		m := (&absorber{}).responseMeta(&fr, pol) // reads only the response

		now := time.Now()
		dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, now, now, rl)
		if dec.Store {
			ex.Stored = "yes"
			ex.TTL, ex.Grace, ex.Keep = dec.TTL, dec.Grace, dec.Keep
		} else {
			ex.Stored = "no: " + dec.Reason.String()
		}
	}
	// The deliver phase, on the answer.
	var dres rules.Result
	pol.rules.Deliver(v, resp, &dres)
	ex.Deliver = list(&dres)
	for _, h := range dres.Headers {
		ex.DeliverHeaders = append(ex.DeliverHeaders, headerAction(h))
	}
	for _, c := range dres.SetCookies {
		ex.SetCookies = append(ex.SetCookies, string(c))
	}
	if _, ok := v.Cookie(pol.stickyCookie); !ok && pol.rules.UsesBucket {
		ex.FirstVisit = true
		ex.BucketCookie = fmt.Sprintf("%s=%d; Path=/; Max-Age=%d; SameSite=Lax", pol.stickyCookie, x.Bucket, pol.stickyMaxAge)
	}
	return ex, nil
}

// routeRules returns the caching rules of the route matching host and
// target.
func (p *policy) routeRules(host, target []byte) cachepolicy.Rules {
	if i := cachepolicy.MatchRoute(p.matches, cachepolicy.HostWithoutPort(host), target); i >= 0 {
		return p.routes[i].rules
	}
	return p.defaults
}

func headerAction(h rules.Header) string {
	switch h.Kind {
	case rules.HeaderAppend:
		return fmt.Sprintf("append %s: %s", h.Name, h.Value)
	case rules.HeaderRemove:
		return "remove " + h.Name
	}
	return fmt.Sprintf("set %s: %s", h.Name, h.Value)
}
