package rules

import (
	"bytes"
	"path"
	"strings"
	"time"
)

// Header is one header action of a Result, its value expanded. Key is
// Name in the canonical form HTTP/1 servers write ("X-Served-By"), made
// once when the rules are compiled.
type Header struct {
	Kind  HeaderOpKind
	Name  string
	Key   []byte
	Value []byte
}

// Result is what the rules of a phase decided for one request. The caller
// keeps one per request and hands it to every evaluation: its slices are
// reused. Values point into the Result's own buffer or the compiled rules;
// they stay valid until the Result is used again.
type Result struct {
	// Matched are the indexes of the rules that matched, in order.
	Matched []int
	// Answer says the edge answers itself (synthetic, redirect, deny)
	// with Status, AnswerHeaders and Body.
	Answer        bool
	Status        int
	AnswerHeaders []Header
	Body          []byte
	// Pass, Pool: the request goes to the origin uncached; to this pool.
	// SameContent says the pool serves what the default one does: it is
	// not part of the key.
	Pass        bool
	Pool        string
	SameContent bool
	// TTL, Grace, Keep replace the lifetimes (nil: unchanged).
	TTL, Grace, Keep *time.Duration
	// KeepCookies, DropCookies: cookie name globs to keep only, to drop;
	// DropAllCookies removes the Cookie header.
	KeepCookies, DropCookies []string
	DropAllCookies           bool
	// Key names the request headers whose values join the cache key (as
	// forwarded: after Headers), lower-case, and the cookies whose values
	// do ("cookie:NAME", as the client sent them).
	Key []string
	// Headers are header actions, in order: towards the origin (request
	// phase), on the stored response (response phase) or on the answer
	// (deliver phase).
	Headers []Header
	// Path is the rewritten path and query (nil: unchanged).
	Path []byte
	// SetCookies are Set-Cookie values to add to the answer.
	SetCookies [][]byte

	buf  []byte
	cand []int
}

// Reset empties r for another evaluation.
func (r *Result) Reset() {
	*r = Result{Matched: r.Matched[:0], AnswerHeaders: r.AnswerHeaders[:0], Headers: r.Headers[:0],
		Key: r.Key[:0], SetCookies: r.SetCookies[:0], buf: r.buf[:0], cand: r.cand[:0],
		KeepCookies: r.KeepCookies[:0], DropCookies: r.DropCookies[:0]}
}

// Request evaluates the request phase. res is reset first.
func (s *Set) Request(req Request, res *Result) { s.eval(PhaseRequest, req, nil, res) }

// Response evaluates the response phase on an origin response.
func (s *Set) Response(req Request, resp Response, res *Result) {
	s.eval(PhaseResponse, req, resp, res)
}

// Deliver evaluates the deliver phase on an answer.
func (s *Set) Deliver(req Request, resp Response, res *Result) {
	s.eval(PhaseDeliver, req, resp, res)
}

// Empty reports whether the phase has no rules: the caller may skip it.
func (s *Set) Empty(p Phase) bool { return s == nil || len(s.phases[p].all) == 0 }

func (s *Set) eval(ph Phase, req Request, resp Response, res *Result) {
	res.Reset()
	if s == nil {
		return
	}
	px := &s.phases[ph]
	if len(px.all) == 0 {
		return
	}
	cand := px.all
	if len(px.byHost) > 0 || len(px.suffixes) > 0 {
		var built bool
		cand, built = px.candidates(req.Host(), res.cand[:0])
		if built {
			res.cand = cand // the scratch, for the next evaluation
		}
	}
	host, subject := req.Host(), req.Path()
	for _, i := range cand {
		r := s.rules[i]
		var caps []int
		if !r.when.holds(host, subject, req, resp) {
			continue
		}
		if r.when.pathRegex != nil && r.do.usesCaptures() {
			caps = r.when.pathRegex.re.FindSubmatchIndex(subject)
		}
		res.Matched = append(res.Matched, i)
		r.do.apply(req, subject, caps, res)
		if r.final {
			return
		}
	}
}

// candidates returns, in rule order, the rules that may match host: those
// without a host list and those whose list names it. built says the list
// was made in dst; otherwise it is the index's own (read-only).
func (px *phaseIndex) candidates(host []byte, dst []int) (cand []int, built bool) {
	exact := px.byHost[string(host)]
	var suf []int
	for _, sr := range px.suffixes {
		if len(host) > len(sr.suffix) && string(host[len(host)-len(sr.suffix):]) == sr.suffix {
			if suf == nil {
				suf = sr.rules // read-only: merged into dst below, never appended to
				continue
			}
			suf = mergeSorted(append([]int(nil), suf...), sr.rules)
		}
	}
	if len(exact) == 0 && len(suf) == 0 {
		return px.anyHost, false
	}
	dst = append(dst[:0], px.anyHost...)
	dst = mergeSorted(dst, exact)
	return mergeSorted(dst, suf), true
}

// mergeSorted merges sorted b into sorted a, without duplicates.
func mergeSorted(a, b []int) []int {
	for _, x := range b {
		i := len(a)
		for i > 0 && a[i-1] > x {
			i--
		}
		if i > 0 && a[i-1] == x {
			continue
		}
		a = append(a, 0)
		copy(a[i+1:], a[i:])
		a[i] = x
	}
	return a
}

// holds reports whether every condition set holds; host and p are the
// request's (read once per evaluation).
func (c *cond) holds(host, p []byte, req Request, resp Response) bool {
	if len(c.hosts) > 0 || len(c.suffixes) > 0 {
		_, ok := c.hosts[string(host)]
		for _, s := range c.suffixes {
			if ok {
				break
			}
			ok = len(host) > len(s) && string(host[len(host)-len(s):]) == s
		}
		if !ok {
			return false
		}
	}
	if c.hostRegex != nil && !c.hostRegex.match(host) {
		return false
	}
	if len(c.paths) > 0 || len(c.prefixes) > 0 {
		bare := p
		if i := bytes.IndexByte(bare, '?'); i >= 0 {
			bare = bare[:i]
		}
		ok := false
		for _, x := range c.paths {
			if string(bare) == x {
				ok = true
				break
			}
		}
		for _, x := range c.prefixes {
			if ok {
				break
			}
			ok = len(p) >= len(x) && string(p[:len(x)]) == x
		}
		if !ok {
			return false
		}
	}
	if len(c.methods) > 0 {
		m := req.Method()
		ok := false
		for _, x := range c.methods {
			if string(m) == x {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(c.client) > 0 {
		a := req.Client()
		ok := false
		for _, n := range c.client {
			if n.Contains(a.Unmap()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if c.percent >= 0 && req.Bucket() >= c.percent {
		return false
	}
	if !allMatch(c.query, req.Query) || !allMatch(c.header, req.Header) || !allMatch(c.cookie, req.Cookie) {
		return false
	}
	if len(c.status) > 0 || len(c.respHeader) > 0 {
		if resp == nil {
			return false
		}
		if len(c.status) > 0 {
			st, ok := resp.Status(), false
			for _, x := range c.status {
				if st == x {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		if !allMatch(c.respHeader, resp.Header) {
			return false
		}
	}
	if c.pathRegex != nil && !c.pathRegex.match(p) {
		return false
	}
	if c.not != nil && c.not.holds(host, p, req, resp) {
		return false
	}
	return true
}

// allMatch reports whether every match holds against get.
func allMatch(ms []match, get func(string) ([]byte, bool)) bool {
	for i := range ms {
		m := &ms[i]
		v, ok := get(m.name)
		switch {
		case m.equals != nil:
			if !ok || string(v) != *m.equals {
				return false
			}
		case m.regex != nil:
			if !ok || !m.regex.Match(v) {
				return false
			}
		case ok != m.present:
			return false
		}
	}
	return true
}

// usesCaptures reports whether an action's template needs the rule's
// path_regex captures.
func (a *actions) usesCaptures() bool {
	if a.answer != nil {
		if a.answer.body != nil && a.answer.body.captures {
			return true
		}
		for _, h := range a.answer.headers {
			if h.value != nil && h.value.captures {
				return true
			}
		}
	}
	for _, h := range a.headers {
		if h.value != nil && h.value.captures {
			return true
		}
	}
	return a.setCookie != nil && a.setCookie.captures
}

// value expands t into res's buffer and returns it.
func (res *Result) value(t *template, req Request, subject []byte, caps []int) []byte {
	if t == nil {
		return nil
	}
	if t.constant != nil {
		return t.constant
	}
	start := len(res.buf)
	res.buf = t.expand(res.buf, req, subject, caps)
	return res.buf[start:len(res.buf):len(res.buf)]
}

func (a *actions) apply(req Request, subject []byte, caps []int, res *Result) {
	if an := a.answer; an != nil {
		res.Answer, res.Status = true, an.status
		for _, h := range an.headers {
			res.AnswerHeaders = append(res.AnswerHeaders, Header{Kind: HeaderSet, Name: h.name, Value: res.value(h.value, req, subject, caps)})
		}
		res.Body = res.value(an.body, req, subject, caps)
	}
	if a.Pass {
		res.Pass = true
	}
	if a.Pool != "" {
		res.Pool, res.SameContent = a.Pool, a.SameContent
	}
	if a.TTL != nil {
		res.TTL = a.TTL
	}
	if a.Grace != nil {
		res.Grace = a.Grace
	}
	if a.Keep != nil {
		res.Keep = a.Keep
	}
	res.KeepCookies = append(res.KeepCookies, a.keepCookies...)
	res.DropCookies = append(res.DropCookies, a.dropCookies...)
	res.DropAllCookies = res.DropAllCookies || a.dropAllCookies
	if cl := a.classify; cl != nil {
		v, _ := req.Header(cl.header)
		name := cl.def
		if i := cl.of(v); i >= 0 {
			name = cl.classes[i].name
		}
		res.Headers = append(res.Headers, Header{Kind: HeaderSet, Name: cl.into, Key: cl.intoKey, Value: res.str(name)})
	}
	for _, h := range a.headers {
		res.Headers = append(res.Headers, Header{Kind: h.kind, Name: h.name, Key: h.key, Value: res.value(h.value, req, subject, caps)})
	}
	res.Key = append(res.Key, a.key...)
	if rw := a.rewrite; rw != nil {
		cur := res.Path
		if cur == nil {
			cur = req.Path()
		}
		if m := rw.re.FindSubmatchIndex(cur); m != nil {
			start := len(res.buf)
			res.buf = append(res.buf, cur[:m[0]]...)
			res.buf = rw.replace.expand(res.buf, req, cur, m)
			res.buf = append(res.buf, cur[m[1]:]...)
			res.Path = res.buf[start:len(res.buf):len(res.buf)]
		}
	}
	if a.setCookie != nil {
		res.SetCookies = append(res.SetCookies, res.value(a.setCookie, req, subject, caps))
	}
}

// str returns s as bytes in res's buffer.
func (res *Result) str(s string) []byte {
	start := len(res.buf)
	res.buf = append(res.buf, s...)
	return res.buf[start:len(res.buf):len(res.buf)]
}

// KeepCookie reports whether a cookie named name survives the cookie
// actions of res.
func (res *Result) KeepCookie(name []byte) bool {
	if res.DropAllCookies {
		return false
	}
	for _, g := range res.DropCookies {
		if globMatch(g, name) {
			return false
		}
	}
	if len(res.KeepCookies) == 0 {
		return true
	}
	for _, g := range res.KeepCookies {
		if globMatch(g, name) {
			return true
		}
	}
	return false
}

// globMatch matches a cookie name glob (path.Match's syntax); a glob
// without wildcards is compared as it is, without the matcher.
func globMatch(g string, name []byte) bool {
	if !strings.ContainsAny(g, "*?[\\") {
		return g == string(name)
	}
	ok, _ := path.Match(g, string(name))
	return ok
}

// CookieActions reports whether res changes the Cookie header.
func (res *Result) CookieActions() bool {
	return res.DropAllCookies || len(res.KeepCookies) > 0 || len(res.DropCookies) > 0
}

// Describe lists what rule i does, for explain: its phase and actions as
// configured.
func (s *Set) Describe(i int) string {
	r := s.rules[i]
	var parts []string
	a := &r.do
	if an := a.answer; an != nil {
		parts = append(parts, "answer "+itoa(an.status))
	}
	if a.Pass {
		parts = append(parts, "pass")
	}
	if a.Pool != "" {
		parts = append(parts, "pool "+a.Pool)
	}
	for _, d := range []struct {
		n string
		d *time.Duration
	}{{"ttl", a.TTL}, {"grace", a.Grace}, {"keep", a.Keep}} {
		if d.d != nil {
			parts = append(parts, d.n+" "+d.d.String())
		}
	}
	if len(a.key) > 0 {
		parts = append(parts, "key +"+strings.Join(a.key, ",+"))
	}
	if r.final {
		parts = append(parts, "final")
	}
	return strings.Join(parts, "; ")
}
