// Package rules is the edge's policy language: ordered rules in three
// phases (request, response, deliver, as VCL's vcl_recv,
// vcl_backend_response and vcl_deliver), compiled once from the
// configuration (Compile) and evaluated against a request (Set.Request),
// an origin response (Set.Response) or an answer (Set.Deliver).
//
// Conditions read the request as the client sent it; actions say what is
// forwarded, keyed, stored and answered. Evaluation allocates nothing
// unless a matching rule expands a template with regular expression
// captures: the caller hands in a Result it reuses.
package rules

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// Phase is when a rule runs.
type Phase uint8

const (
	// PhaseRequest runs before the lookup.
	PhaseRequest Phase = iota
	// PhaseResponse runs on an origin response before it is stored.
	PhaseResponse
	// PhaseDeliver runs on every answer to a client.
	PhaseDeliver
	numPhases
)

var phaseNames = [numPhases]string{"request", "response", "deliver"}

func (p Phase) String() string { return phaseNames[p] }

// Request is what conditions read of a request, as the client sent it.
type Request interface {
	// Host is the host without port, lower-case; Path the path and query
	// (normalised: what path conditions match); URI the target as the
	// client sent it (for ${path}, and query conditions, which see the
	// parameters the key strips); Method the method.
	Host() []byte
	Path() []byte
	URI() []byte
	Method() []byte
	// Header, Cookie and Query return a value and whether it is there.
	Header(name string) ([]byte, bool)
	Cookie(name string) ([]byte, bool)
	Query(name string) ([]byte, bool)
	// Client is the client address after trusted proxies.
	Client() netip.Addr
	// Bucket is the reader's sticky bucket, 0-99.
	Bucket() int
	// Node is the edge's name (${node}).
	Node() string
}

// Response is what response conditions read: the origin's response
// (response phase) or the answer (deliver phase).
type Response interface {
	Status() int
	Header(name string) ([]byte, bool)
}

// Set is a compiled rule list. It is read-only: requests share it.
type Set struct {
	rules  []*rule
	phases [numPhases]phaseIndex
	// UsesBucket says a rule reads the sticky bucket: the edge then gives
	// readers without the cookie one.
	UsesBucket bool
}

// phaseIndex finds the rules of a phase that may match a host without
// looking at the others: most rules name hosts or none.
type phaseIndex struct {
	all      []int            // every rule of the phase, in order
	anyHost  []int            // rules without a host list
	byHost   map[string][]int // exact host → rules naming it
	suffixes []suffixRules    // "*.example.com" → rules
}

type suffixRules struct {
	suffix string // ".example.com"
	rules  []int
}

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Name returns rule i's name.
func (s *Set) Name(i int) string { return s.rules[i].name }

// RulePhase returns rule i's phase.
func (s *Set) RulePhase(i int) Phase { return s.rules[i].phase }

// Pools returns the pools the rules name, for the edge to check.
func (s *Set) Pools() []string {
	var out []string
	for _, r := range s.rules {
		if r.do.Pool != "" && !containsStr(out, r.do.Pool) {
			out = append(out, r.do.Pool)
		}
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// rule is one compiled rule.
type rule struct {
	name  string
	phase Phase
	final bool
	when  cond
	do    actions
}

// cond is a compiled Condition.
type cond struct {
	hosts      map[string]struct{}
	suffixes   []string
	hostRegex  *memoRegexp
	paths      []string
	prefixes   []string
	pathRegex  *memoRegexp
	methods    []string
	query      []match
	header     []match
	cookie     []match
	client     []netip.Prefix
	percent    int // -1: none
	status     []int
	respHeader []match
	not        *cond
}

// match is a compiled Match.
type match struct {
	name    string
	present bool // false: must be absent
	equals  *string
	regex   *regexp.Regexp
}

// actions are compiled Actions; templates are parsed.
type actions struct {
	answer         *answer
	Pass           bool
	Pool           string
	SameContent    bool
	TTL            *time.Duration
	Grace          *time.Duration
	Keep           *time.Duration
	keepCookies    []string
	dropCookies    []string
	dropAllCookies bool
	key            []string
	classify       *classify
	headers        []headerOp
	rewrite        *rewrite
	setCookie      *template
}

// answer is a synthetic answer, a redirect or a refusal.
type answer struct {
	status  int
	headers []headerOp // set
	body    *template
}

type classify struct {
	header  string
	into    string
	intoKey []byte
	classes []class
	def     string
	// cache remembers the class of recent values: a device class is read
	// from a User-Agent on every request, and a few hundred User-Agents
	// make most of a site's traffic, while the regular expressions cost
	// microseconds each.
	cache classCache
}

// classCache is a fixed-size, lock-free cache of values' classes: a slot
// per hash of the value, replaced on collision. A hit compares the value
// and allocates nothing; a miss allocates the slot it fills.
type classCache struct {
	seed  maphash.Seed
	slots [classCacheSlots]atomic.Pointer[classSlot]
}

// memoRegexp is a regular expression condition with a cache of its
// results: the same paths (a hot page's) and hosts come again and again,
// and Go's regular expressions cost hundreds of nanoseconds each.
type memoRegexp struct {
	re    *regexp.Regexp
	cache classCache
}

// match reports whether re matches v.
func (m *memoRegexp) match(v []byte) bool {
	if len(v) > 512 {
		return m.re.Match(v)
	}
	i := maphash.Bytes(m.cache.seed, v) % classCacheSlots
	if s := m.cache.slots[i].Load(); s != nil && s.value == string(v) {
		return s.class == 1
	}
	ok := m.re.Match(v)
	c := 0
	if ok {
		c = 1
	}
	m.cache.slots[i].Store(&classSlot{value: string(v), class: c})
	return ok
}

func newMemo(re *regexp.Regexp) *memoRegexp {
	if re == nil {
		return nil
	}
	return &memoRegexp{re: re, cache: classCache{seed: maphash.MakeSeed()}}
}

const classCacheSlots = 1024

type classSlot struct {
	value string
	class int // index into classes, or -1: the default
}

// of returns the class of v: its index in classes, or -1.
func (cl *classify) of(v []byte) int {
	if len(v) > 512 {
		return cl.match(v) // not worth a slot
	}
	i := maphash.Bytes(cl.cache.seed, v) % classCacheSlots
	if s := cl.cache.slots[i].Load(); s != nil && s.value == string(v) {
		return s.class
	}
	c := cl.match(v)
	cl.cache.slots[i].Store(&classSlot{value: string(v), class: c})
	return c
}

func (cl *classify) match(v []byte) int {
	for i, k := range cl.classes {
		if k.re.Match(v) {
			return i
		}
	}
	return -1
}

type class struct {
	name string
	re   *regexp.Regexp
}

type rewrite struct {
	re      *regexp.Regexp
	replace *template
}

// HeaderOpKind is what a header action does.
type HeaderOpKind uint8

const (
	HeaderSet HeaderOpKind = iota
	HeaderAppend
	HeaderRemove
)

type headerOp struct {
	kind  HeaderOpKind
	name  string
	key   []byte // name, canonical
	value *template
}

// canonicalKey returns a header name as HTTP/1 servers write it: the
// first letter and each after '-' upper-case, the rest lower-case.
func canonicalKey(name string) []byte {
	b := []byte(name)
	up := true
	for i, c := range b {
		switch {
		case up && 'a' <= c && c <= 'z':
			b[i] = c - 32
		case !up && 'A' <= c && c <= 'Z':
			b[i] = c + 32
		}
		up = c == '-'
	}
	return b
}

// Options are what rules are compiled against.
type Options struct {
	// Pools lists the backend pools that exist: a rule naming another is
	// an error. Nil skips the check.
	Pools []string
	// Node is the edge's name, ${node} in templates.
	Node string
}

// Compile compiles rules; errors name the rule (index and name) and the
// field, as config.Validate does for other keys.
func Compile(rs []config.Rule, opt Options) (*Set, error) {
	s := &Set{}
	var errs []error
	names := map[string]int{}
	pools := opt.Pools
	for i, r := range rs {
		c := &compiler{key: fmt.Sprintf("rules[%d]", i), node: opt.Node}
		if r.Name != "" {
			c.key = fmt.Sprintf("rules[%d] (%s)", i, r.Name)
		}
		cr := c.rule(r, pools)
		if j, dup := names[r.Name]; dup && r.Name != "" {
			c.errorf("name", "%q is also the name of rules[%d]: names must be unique (they label metrics)", r.Name, j)
		}
		names[r.Name] = i
		errs = append(errs, c.errs...)
		if cr != nil {
			s.rules = append(s.rules, cr)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	for i, r := range s.rules {
		px := &s.phases[r.phase]
		px.all = append(px.all, i)
		for c := &r.when; c != nil; c = c.not {
			if c.percent >= 0 {
				s.UsesBucket = true
			}
		}
		if len(r.when.hosts) == 0 && len(r.when.suffixes) == 0 {
			px.anyHost = append(px.anyHost, i)
			continue
		}
		for h := range r.when.hosts {
			if px.byHost == nil {
				px.byHost = map[string][]int{}
			}
			px.byHost[h] = append(px.byHost[h], i)
		}
		for _, suf := range r.when.suffixes {
			k := -1
			for j := range px.suffixes {
				if px.suffixes[j].suffix == suf {
					k = j
				}
			}
			if k < 0 {
				px.suffixes = append(px.suffixes, suffixRules{suffix: suf})
				k = len(px.suffixes) - 1
			}
			px.suffixes[k].rules = append(px.suffixes[k].rules, i)
		}
	}
	return s, nil
}

// joinErrors joins errors one per line.
func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "\n"))
}

type compiler struct {
	key  string
	node string
	errs []error
}

func (c *compiler) errorf(field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s.%s: %s", c.key, field, fmt.Sprintf(format, args...)))
}

// ruleName is the shape of a rule name: it labels a metric.
var ruleName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *compiler) rule(r config.Rule, pools []string) *rule {
	out := &rule{name: r.Name, final: r.Final}
	if !ruleName.MatchString(r.Name) {
		c.errorf("name", "must be 1-64 letters, digits, '-' or '_' (it labels the rule's metric), got %q", r.Name)
	}
	switch r.Phase {
	case "", "request":
		out.phase = PhaseRequest
	case "response":
		out.phase = PhaseResponse
	case "deliver":
		out.phase = PhaseDeliver
	default:
		c.errorf("phase", "must be request, response or deliver, got %q", r.Phase)
	}
	out.when = c.cond("when", r.When, out.phase)
	out.do = c.actions(r.Do, out.phase, pools)
	// Captures: ${N} of a template must exist in the rule's path_regex
	// (rewrite_path's replacement: in its own regex).
	groups := -1
	if out.when.pathRegex != nil {
		groups = out.when.pathRegex.re.NumSubexp()
	}
	for _, t := range out.do.templates() {
		if t.tmpl != nil && t.tmpl.maxCapture > groups {
			if groups < 0 {
				c.errorf(t.field, "uses ${%d}, but the rule has no when.path_regex to capture it", t.tmpl.maxCapture)
			} else {
				c.errorf(t.field, "uses ${%d}, but when.path_regex has %d capture groups", t.tmpl.maxCapture, groups)
			}
		}
	}
	if rw := out.do.rewrite; rw != nil && rw.re != nil && rw.replace != nil && rw.replace.maxCapture > rw.re.NumSubexp() {
		c.errorf("do.rewrite_path.replace", "uses ${%d}, but rewrite_path.regex has %d capture groups", rw.replace.maxCapture, rw.re.NumSubexp())
	}
	if out.do.answer != nil {
		out.final = true
	}
	return out
}

func (c *compiler) regex(field, expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		c.errorf(field, "%v", err)
		return nil
	}
	return re
}

func (c *compiler) cond(key string, w config.Condition, ph Phase) cond {
	out := cond{percent: -1}
	for i, h := range w.Host {
		hl := strings.ToLower(h)
		switch {
		case strings.HasPrefix(hl, "*.") && len(hl) > 2 && !strings.ContainsAny(hl[2:], "*/: "):
			out.suffixes = append(out.suffixes, hl[1:])
		case hl != "" && !strings.ContainsAny(hl, "*/: "):
			if out.hosts == nil {
				out.hosts = map[string]struct{}{}
			}
			out.hosts[hl] = struct{}{}
		default:
			c.errorf(fmt.Sprintf("%s.host[%d]", key, i), "must be a host name or \"*.\" and a domain, got %q", h)
		}
	}
	out.hostRegex = newMemo(c.regex(key+".host_regex", w.HostRegex))
	for i, p := range w.Path {
		if !strings.HasPrefix(p, "/") {
			c.errorf(fmt.Sprintf("%s.path[%d]", key, i), "must start with /, got %q", p)
		}
	}
	out.paths = w.Path
	for i, p := range w.PathPrefix {
		if !strings.HasPrefix(p, "/") {
			c.errorf(fmt.Sprintf("%s.path_prefix[%d]", key, i), "must start with /, got %q", p)
		}
	}
	out.prefixes = w.PathPrefix
	out.pathRegex = newMemo(c.regex(key+".path_regex", w.PathRegex))
	for i, m := range w.Method {
		if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t") {
			c.errorf(fmt.Sprintf("%s.method[%d]", key, i), "must be an upper-case method name, got %q", m)
		}
	}
	out.methods = w.Method
	out.query = c.matches(key+".query", w.Query)
	out.header = c.matches(key+".header", w.Header)
	out.cookie = c.matches(key+".cookie", w.Cookie)
	for i, n := range w.Client {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			if a, aerr := netip.ParseAddr(n); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				c.errorf(fmt.Sprintf("%s.client[%d]", key, i), "must be a network (10.20.0.0/16) or an address, got %q", n)
				continue
			}
		}
		out.client = append(out.client, p.Masked())
	}
	if w.Percent != nil {
		if *w.Percent < 0 || *w.Percent > 100 {
			c.errorf(key+".percent", "must be 0-100, got %d", *w.Percent)
		}
		out.percent = *w.Percent
	}
	if len(w.Status) > 0 && ph == PhaseRequest {
		c.errorf(key+".status", "is a condition of the response and deliver phases, not of the request phase (set phase:)")
	}
	if len(w.ResponseHeader) > 0 && ph == PhaseRequest {
		c.errorf(key+".response_header", "is a condition of the response and deliver phases, not of the request phase (set phase:)")
	}
	for i, st := range w.Status {
		if st < 100 || st > 599 {
			c.errorf(fmt.Sprintf("%s.status[%d]", key, i), "must be an HTTP status 100-599, got %d", st)
		}
	}
	out.status = w.Status
	out.respHeader = c.matches(key+".response_header", w.ResponseHeader)
	if w.Not != nil {
		n := c.cond(key+".not", *w.Not, ph)
		out.not = &n
	}
	return out
}

func (c *compiler) matches(key string, ms []config.Match) []match {
	var out []match
	for i, m := range ms {
		k := fmt.Sprintf("%s[%d]", key, i)
		if m.Name == "" {
			c.errorf(k+".name", "is required")
		}
		set := 0
		if m.Present != nil {
			set++
		}
		if m.Equals != nil {
			set++
		}
		if m.Regex != "" {
			set++
		}
		if set > 1 {
			c.errorf(k, "one of present, equals and regex")
		}
		cm := match{name: m.Name, present: m.Present == nil || *m.Present, equals: m.Equals, regex: c.regex(k+".regex", m.Regex)}
		out = append(out, cm)
	}
	return out
}

func (c *compiler) duration(field string, d *time.Duration) *time.Duration {
	if d != nil && *d < 0 {
		c.errorf(field, "must not be negative, got %s", *d)
	}
	return d
}

func (c *compiler) actions(a config.Actions, ph Phase, pools []string) actions {
	var out actions
	answering := 0
	only := func(field string, phases ...Phase) {
		for _, p := range phases {
			if p == ph {
				return
			}
		}
		names := make([]string, len(phases))
		for i, p := range phases {
			names[i] = p.String()
		}
		c.errorf("do."+field, "is an action of the %s phase, not of the %s phase", strings.Join(names, " or "), ph)
	}
	if s := a.Synthetic; s != nil {
		answering++
		only("synthetic", PhaseRequest)
		status := s.Status
		if status == 0 {
			status = 200
		}
		if status < 200 || status > 599 {
			c.errorf("do.synthetic.status", "must be 200-599, got %d", s.Status)
		}
		an := &answer{status: status, body: c.template("do.synthetic.body", s.Body)}
		for _, k := range sortedKeys(s.Headers) {
			an.headers = append(an.headers, headerOp{kind: HeaderSet, name: c.headerName("do.synthetic.headers", k), value: c.template("do.synthetic.headers."+k, s.Headers[k])})
		}
		out.answer = an
	}
	if r := a.Redirect; r != nil {
		answering++
		only("redirect", PhaseRequest)
		switch r.Status {
		case 0, 301, 302, 303, 307, 308:
		default:
			c.errorf("do.redirect.status", "must be 301, 302, 303, 307 or 308, got %d", r.Status)
		}
		if r.Location == "" {
			c.errorf("do.redirect.location", "is required")
		}
		status := r.Status
		if status == 0 {
			status = 302
		}
		out.answer = &answer{status: status, headers: []headerOp{{kind: HeaderSet, name: "Location", value: c.template("do.redirect.location", r.Location)}}}
	}
	if a.Deny != 0 {
		answering++
		only("deny", PhaseRequest)
		if a.Deny < 400 || a.Deny > 599 {
			c.errorf("do.deny", "must be a 4xx or 5xx status, got %d", a.Deny)
		}
		out.answer = &answer{status: a.Deny}
	}
	if answering > 1 {
		c.errorf("do", "one of synthetic, redirect and deny")
	}
	if a.Pass {
		only("pass", PhaseRequest)
		out.Pass = true
	}
	if a.Pool != "" {
		only("pool", PhaseRequest)
		if pools != nil && !containsStr(pools, a.Pool) {
			c.errorf("do.pool", "no pool %q (pools: %s)", a.Pool, strings.Join(pools, ", "))
		}
		out.Pool, out.SameContent = a.Pool, a.SameContent
	} else if a.SameContent {
		c.errorf("do.same_content", "goes with pool:")
	}
	if a.TTL != nil || a.Grace != nil || a.Keep != nil {
		if ph == PhaseDeliver {
			c.errorf("do.ttl", "ttl, grace and keep are actions of the request and response phases, not of the deliver phase")
		}
	}
	out.TTL = c.duration("do.ttl", a.TTL)
	out.Grace = c.duration("do.grace", a.Grace)
	out.Keep = c.duration("do.keep", a.Keep)
	if len(a.KeepCookies)+len(a.DropCookies) > 0 || a.DropAllCookies {
		only("keep_cookies", PhaseRequest)
	}
	for _, list := range []struct {
		field string
		globs []string
	}{{"keep_cookies", a.KeepCookies}, {"drop_cookies", a.DropCookies}} {
		for i, g := range list.globs {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				c.errorf(fmt.Sprintf("do.%s[%d]", list.field, i), "bad cookie name glob %q", g)
			}
		}
	}
	out.keepCookies, out.dropCookies, out.dropAllCookies = a.KeepCookies, a.DropCookies, a.DropAllCookies
	if len(a.Key) > 0 {
		only("key", PhaseRequest)
		for i, k := range a.Key {
			field := fmt.Sprintf("do.key[%d]", i)
			if name, ok := strings.CutPrefix(k, "cookie:"); ok {
				// A cookie's value, as the client sent it.
				if name == "" || strings.ContainsAny(name, "=; ,\t") {
					c.errorf(field, "%q is not a cookie name", name)
				}
				out.key = append(out.key, "cookie:"+name)
				continue
			}
			out.key = append(out.key, strings.ToLower(c.headerName(field, k)))
		}
	}
	if cl := a.Classify; cl != nil {
		only("classify", PhaseRequest)
		cc := &classify{header: c.headerName("do.classify.header", cl.Header), into: c.headerName("do.classify.into", cl.Into), def: cl.Default}
		cc.cache.seed = maphash.MakeSeed()
		cc.intoKey = canonicalKey(cc.into)
		for i, k := range cl.Classes {
			if k.Name == "" {
				c.errorf(fmt.Sprintf("do.classify.classes[%d].name", i), "is required")
			}
			re := c.regex(fmt.Sprintf("do.classify.classes[%d].regex", i), k.Regex)
			if re == nil && k.Regex == "" {
				c.errorf(fmt.Sprintf("do.classify.classes[%d].regex", i), "is required")
			}
			cc.classes = append(cc.classes, class{name: k.Name, re: re})
		}
		out.classify = cc
	}
	for _, k := range sortedKeys(a.SetHeaders) {
		out.headers = append(out.headers, headerOp{kind: HeaderSet, name: c.headerName("do.set_headers", k), key: canonicalKey(k), value: c.template("do.set_headers."+k, a.SetHeaders[k])})
	}
	for _, k := range sortedKeys(a.AppendHeaders) {
		out.headers = append(out.headers, headerOp{kind: HeaderAppend, name: c.headerName("do.append_headers", k), key: canonicalKey(k), value: c.template("do.append_headers."+k, a.AppendHeaders[k])})
	}
	for i, k := range a.RemoveHeaders {
		out.headers = append(out.headers, headerOp{kind: HeaderRemove, name: c.headerName(fmt.Sprintf("do.remove_headers[%d]", i), k), key: canonicalKey(k)})
	}
	if rw := a.RewritePath; rw != nil {
		only("rewrite_path", PhaseRequest)
		re := c.regex("do.rewrite_path.regex", rw.Regex)
		if rw.Regex == "" {
			c.errorf("do.rewrite_path.regex", "is required")
		}
		if !strings.HasPrefix(rw.Replace, "/") {
			c.errorf("do.rewrite_path.replace", "must start with / (it makes the path), got %q", rw.Replace)
		}
		out.rewrite = &rewrite{re: re, replace: c.template("do.rewrite_path.replace", rw.Replace)}
	}
	if a.SetCookie != "" {
		only("set_cookie", PhaseDeliver)
		out.setCookie = c.template("do.set_cookie", a.SetCookie)
	}
	return out
}

// namedTemplate is a template and the field it came from.
type namedTemplate struct {
	field string
	tmpl  *template
}

// templates returns the action's templates whose captures come from the
// rule's path_regex (not rewrite_path's replacement).
func (a *actions) templates() []namedTemplate {
	var out []namedTemplate
	if an := a.answer; an != nil {
		out = append(out, namedTemplate{"do.synthetic.body", an.body})
		for _, h := range an.headers {
			field := "do.synthetic.headers." + h.name
			if h.name == "Location" {
				field = "do.redirect.location"
			}
			out = append(out, namedTemplate{field, h.value})
		}
	}
	for _, h := range a.headers {
		out = append(out, namedTemplate{"do.headers." + h.name, h.value})
	}
	return append(out, namedTemplate{"do.set_cookie", a.setCookie})
}

// headerName checks a header name (RFC 9110 token).
func (c *compiler) headerName(field, n string) string {
	if n == "" {
		c.errorf(field, "a header name is required")
		return n
	}
	for i := 0; i < len(n); i++ {
		if !isTokenChar(n[i]) {
			c.errorf(field, "%q is not a header name", n)
			break
		}
	}
	return n
}

func isTokenChar(b byte) bool {
	return b > ' ' && b < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", rune(b))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Insertion sort: a few keys, and the order must not depend on the
	// map's.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
