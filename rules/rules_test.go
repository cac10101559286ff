package rules

import (
	"net/netip"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/lakka-cache/lakka/config"
)

// fakeReq is a request for evaluation tests.
type fakeReq struct {
	host, path, method string
	headers, cookies   map[string]string
	client             string
	bucket             int
}

func (f *fakeReq) Host() []byte   { return []byte(f.host) }
func (f *fakeReq) Path() []byte   { return []byte(f.path) }
func (f *fakeReq) URI() []byte    { return []byte(f.path) }
func (f *fakeReq) Method() []byte { return []byte(f.method) }
func (f *fakeReq) Header(n string) ([]byte, bool) {
	for k, v := range f.headers {
		if strings.EqualFold(k, n) {
			return []byte(v), true
		}
	}
	return nil, false
}
func (f *fakeReq) Cookie(n string) ([]byte, bool) {
	v, ok := f.cookies[n]
	return []byte(v), ok
}
func (f *fakeReq) Query(n string) ([]byte, bool) {
	_, q, _ := strings.Cut(f.path, "?")
	for _, kv := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == n {
			return []byte(v), true
		}
	}
	return nil, false
}
func (f *fakeReq) Client() netip.Addr { return netip.MustParseAddr(f.client) }
func (f *fakeReq) Bucket() int        { return f.bucket }
func (f *fakeReq) Node() string       { return "e1" }

type fakeResp struct {
	status  int
	headers map[string]string
}

func (f *fakeResp) Status() int { return f.status }
func (f *fakeResp) Header(n string) ([]byte, bool) {
	v, ok := f.headers[n]
	return []byte(v), ok
}

func compileYAML(t *testing.T, src string, pools ...string) (*Set, error) {
	t.Helper()
	var rs []config.Rule
	if err := yaml.Unmarshal([]byte(src), &rs); err != nil {
		t.Fatal(err)
	}
	if pools == nil {
		pools = []string{"default", "canary"}
	}
	return Compile(rs, Options{Pools: pools, Node: "e1"})
}

func mustCompile(t *testing.T, src string) *Set {
	t.Helper()
	s, err := compileYAML(t, src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(path string) *fakeReq {
	return &fakeReq{host: "example.fi", path: path, method: "GET", client: "192.0.2.1", bucket: 50,
		headers: map[string]string{}, cookies: map[string]string{}}
}

// TestCompileErrors: every error names the rule by index and name and the
// field.
func TestCompileErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`[{name: a, when: {path_regex: "(["}}]`, "rules[0] (a).when.path_regex: error parsing regexp"},
		{`[{name: a, do: {pool: blue}}]`, `rules[0] (a).do.pool: no pool "blue"`},
		{`[{name: a, phase: deliver, do: {pass: true}}]`, "rules[0] (a).do.pass: is an action of the request phase, not of the deliver phase"},
		{`[{name: a, phase: response, do: {redirect: {location: /x}}}]`, "rules[0] (a).do.redirect: is an action of the request phase"},
		{`[{name: a, when: {status: [404]}}]`, "rules[0] (a).when.status: is a condition of the response and deliver phases, not of the request phase"},
		{`[{name: a, when: {response_header: [{name: X}]}}]`, "rules[0] (a).when.response_header: is a condition of the response and deliver phases"},
		{`[{name: a, do: {keep_cookies: [ok, "[x"], drop_cookies: ["[y"]}}]`, `rules[0] (a).do.keep_cookies[1]: bad cookie name glob "[x"`},
		{`[{name: a, do: {keep_cookies: [ok], drop_cookies: ["[y"]}}]`, `rules[0] (a).do.drop_cookies[0]: bad cookie name glob "[y"`},
		{`[{name: a, when: {path_regex: '^/(a)'}, do: {redirect: {location: "/${2}"}}}]`, "rules[0] (a).do.redirect.location: uses ${2}, but when.path_regex has 1 capture groups"},
		{`[{name: a, do: {set_headers: {X: "${1}"}}}]`, "rules[0] (a).do.headers.X: uses ${1}, but the rule has no when.path_regex"},
		{`[{name: a, do: {rewrite_path: {regex: '^/a', replace: "/${1}"}}}]`, "rules[0] (a).do.rewrite_path.replace: uses ${1}, but rewrite_path.regex has 0 capture groups"},
		{`[{name: a}, {name: a}]`, `rules[1] (a).name: "a" is also the name of rules[0]`},
		{`[{name: "a b"}]`, "rules[0] (a b).name: must be 1-64 letters"},
		{`[{do: {pass: true}}]`, "rules[0].name: must be 1-64 letters"},
		{`[{name: a, phase: later}]`, "rules[0] (a).phase: must be request, response or deliver"},
		{`[{name: a, when: {client: [10.0.0.0/33]}}]`, "rules[0] (a).when.client[0]: must be a network"},
		{`[{name: a, when: {percent: 101}}]`, "rules[0] (a).when.percent: must be 0-100"},
		{`[{name: a, do: {redirect: {status: 200, location: /x}}}]`, "rules[0] (a).do.redirect.status: must be 301"},
		{`[{name: a, do: {deny: 200}}]`, "rules[0] (a).do.deny: must be a 4xx or 5xx"},
		{`[{name: a, do: {deny: 403, synthetic: {status: 200}}}]`, "rules[0] (a).do: one of synthetic, redirect and deny"},
		{`[{name: a, do: {set_headers: {"Bad Name": x}}}]`, `rules[0] (a).do.set_headers: "Bad Name" is not a header name`},
		{`[{name: a, do: {set_headers: {X: "${nope}"}}}]`, "rules[0] (a).do.set_headers.X: unknown variable ${nope}"},
		{`[{name: a, do: {set_headers: {X: "${1"}}}]`, "rules[0] (a).do.set_headers.X: an unclosed ${"},
		{`[{name: a, when: {header: [{name: X, equals: a, regex: b}]}}]`, "rules[0] (a).when.header[0]: one of present, equals and regex"},
		{`[{name: a, when: {header: [{regex: "("}]}}]`, "rules[0] (a).when.header[0].name: is required"},
		{`[{name: a, when: {not: {path_regex: "("}}}]`, "rules[0] (a).when.not.path_regex"},
		{`[{name: a, do: {classify: {header: User-Agent, into: X-Device, classes: [{name: m, regex: "("}]}}}]`, "rules[0] (a).do.classify.classes[0].regex"},
		{`[{name: a, do: {rewrite_path: {regex: "^/a", replace: "b"}}}]`, "rules[0] (a).do.rewrite_path.replace: must start with /"},
		{`[{name: a, phase: response, do: {set_cookie: "x=1"}}]`, "rules[0] (a).do.set_cookie: is an action of the deliver phase"},
		{`[{name: a, phase: deliver, do: {ttl: 1m}}]`, "rules[0] (a).do.ttl: ttl, grace and keep are actions of the request and response phases"},
		{`[{name: a, when: {host: ["*"]}}]`, `rules[0] (a).when.host[0]: must be a host name`},
	} {
		_, err := compileYAML(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.src, err, c.want)
		}
	}
}

// TestRequestPhase: conditions and actions of the request phase.
func TestRequestPhase(t *testing.T) {
	s := mustCompile(t, `
- name: health
  when: {path: [/lb-health]}
  do: {synthetic: {status: 200, body: "ok\n", headers: {Content-Type: text/plain}}}
- name: canonical
  when: {host: [www.example.fi]}
  do: {redirect: {status: 301, location: "https://example.fi${path}"}}
- name: block
  when: {path_regex: '^/(wp-admin|wp-login\.php|\.env)'}
  do: {deny: 403}
- name: old-articles
  when: {path_regex: '^/uutiset/([0-9]+)\.cfm'}
  do: {redirect: {status: 301, location: "/a/${1}"}}
- name: dynamic
  when: {path_prefix: [/admin, /api, /comments]}
  do: {pass: true}
- name: logged-in
  when: {cookie: [{name: sessionid}]}
  do: {pass: true}
  final: true
- name: cookies
  do: {keep_cookies: [csrftoken]}
- name: static
  when: {path_regex: '\.(css|js|png)(\?.*)?$'}
  do: {drop_all_cookies: true}
- name: device
  do:
    classify: {header: User-Agent, into: X-Device, default: desktop, classes: [{name: mobile, regex: '(?i)mobile|iphone'}]}
    key: [X-Device]
- name: canary
  when: {client: [10.20.0.0/16]}
  do: {pool: canary}
- name: canary-share
  when: {percent: 5}
  do: {pool: canary}
- name: dark
  when: {path: [/], percent: 10}
  do: {set_headers: {X-Dark-Launch: live-widget}, key: [X-Dark-Launch]}
- name: rewrite
  when: {path_prefix: [/old/]}
  do: {rewrite_path: {regex: '^/old/(.*)', replace: '/new/${1}'}}
`)
	var res Result
	check := func(name string, r *fakeReq, want func(*Result) bool) {
		t.Helper()
		s.Request(r, &res)
		if !want(&res) {
			var matched []string
			for _, i := range res.Matched {
				matched = append(matched, s.Name(i))
			}
			t.Errorf("%s: unexpected result %+v (matched %v)", name, res, matched)
		}
	}
	check("health", req("/lb-health"), func(r *Result) bool {
		return r.Answer && r.Status == 200 && string(r.Body) == "ok\n" && len(r.AnswerHeaders) == 1 && len(r.Matched) == 1
	})
	www := req("/a/1?x=2")
	www.host = "www.example.fi"
	check("canonical", www, func(r *Result) bool {
		return r.Answer && r.Status == 301 && string(r.AnswerHeaders[0].Value) == "https://example.fi/a/1?x=2"
	})
	check("block", req("/wp-login.php"), func(r *Result) bool { return r.Answer && r.Status == 403 })
	check("old", req("/uutiset/12345.cfm?ref=x"), func(r *Result) bool {
		return r.Answer && r.Status == 301 && string(r.AnswerHeaders[0].Value) == "/a/12345"
	})
	check("pass", req("/api/v1"), func(r *Result) bool { return !r.Answer && r.Pass })
	logged := req("/a/1")
	logged.cookies["sessionid"] = "s"
	check("logged in: final", logged, func(r *Result) bool { return r.Pass && len(r.KeepCookies) == 0 && len(r.Key) == 0 })
	mobile := req("/a/1")
	mobile.headers["User-Agent"] = "Mozilla (iPhone)"
	check("device", mobile, func(r *Result) bool {
		return !r.Pass && r.KeepCookie([]byte("csrftoken")) && !r.KeepCookie([]byte("_ga")) &&
			len(r.Headers) == 1 && r.Headers[0].Name == "X-Device" && string(r.Headers[0].Value) == "mobile" &&
			len(r.Key) == 1 && r.Key[0] == "x-device" && r.Pool == ""
	})
	check("static drops cookies", req("/s/site.css?v=1"), func(r *Result) bool { return !r.KeepCookie([]byte("csrftoken")) })
	office := req("/a/1")
	office.client = "10.20.3.4"
	check("canary by network", office, func(r *Result) bool { return r.Pool == "canary" })
	share := req("/a/1")
	share.bucket = 4
	check("canary by share", share, func(r *Result) bool { return r.Pool == "canary" })
	share.bucket = 5
	check("not in the share", share, func(r *Result) bool { return r.Pool == "" })
	front := req("/")
	front.bucket = 9
	check("dark launch", front, func(r *Result) bool {
		return len(r.Key) == 2 && r.Key[1] == "x-dark-launch" && string(r.Headers[len(r.Headers)-1].Value) == "live-widget"
	})
	front.bucket = 10
	check("no dark launch", front, func(r *Result) bool { return len(r.Key) == 1 })
	check("rewrite", req("/old/x/y?z=1"), func(r *Result) bool { return string(r.Path) == "/new/x/y?z=1" })
	if !s.UsesBucket {
		t.Error("UsesBucket false with percent conditions")
	}
}

// TestResponseAndDeliverPhases: status and response header conditions,
// lifetimes, header actions, cookies set at delivery.
func TestResponseAndDeliverPhases(t *testing.T) {
	s := mustCompile(t, `
- name: hashed
  phase: response
  when: {path_regex: '--[0-9a-f]{6,}\.(css|js)$'}
  do: {ttl: 8760h, set_headers: {Cache-Control: "public, max-age=31536000, immutable"}, remove_headers: [Set-Cookie]}
  final: true
- name: static
  phase: response
  when: {path_regex: '\.(css|js|png)$', response_header: [{name: Cache-Control, present: false}]}
  do: {ttl: 168h, remove_headers: [Set-Cookie]}
- name: html
  phase: response
  when: {response_header: [{name: Content-Type, regex: 'text/html'}]}
  do: {grace: 6h}
- name: not-found
  phase: response
  when: {status: [404]}
  do: {ttl: 60s}
- name: strip
  phase: deliver
  do: {remove_headers: [X-Powered-By, Server], set_headers: {X-Served-By: "${node}", Strict-Transport-Security: max-age=31536000}}
- name: bucket
  phase: deliver
  when: {cookie: [{name: lakka_bucket, present: false}]}
  do: {set_cookie: "lakka_bucket=${bucket}; Path=/; Max-Age=2592000"}
`)
	var res Result
	s.Response(req("/s/app--abcdef12.js"), &fakeResp{status: 200, headers: map[string]string{}}, &res)
	if res.TTL == nil || res.TTL.Hours() != 8760 || len(res.Headers) != 2 || len(res.Matched) != 1 {
		t.Errorf("hashed: %+v", res)
	}
	s.Response(req("/s/app.js"), &fakeResp{status: 200, headers: map[string]string{"Cache-Control": "max-age=60"}}, &res)
	if res.TTL != nil {
		t.Errorf("static with Cache-Control: ttl %v", res.TTL)
	}
	s.Response(req("/a/1"), &fakeResp{status: 404, headers: map[string]string{"Content-Type": "text/html; charset=utf-8"}}, &res)
	if res.TTL == nil || res.TTL.Seconds() != 60 || res.Grace == nil || res.Grace.Hours() != 6 {
		t.Errorf("404 html: %+v", res)
	}
	r := req("/a/1")
	r.bucket = 42
	s.Deliver(r, &fakeResp{status: 200}, &res)
	if len(res.SetCookies) != 1 || string(res.SetCookies[0]) != "lakka_bucket=42; Path=/; Max-Age=2592000" {
		t.Errorf("bucket cookie: %q", res.SetCookies)
	}
	var served string
	for _, h := range res.Headers {
		if h.Name == "X-Served-By" {
			served = string(h.Value)
		}
	}
	if served != "e1" {
		t.Errorf("X-Served-By %q, want the node", served)
	}
	r.cookies["lakka_bucket"] = "42"
	s.Deliver(r, &fakeResp{status: 200}, &res)
	if len(res.SetCookies) != 0 {
		t.Errorf("bucket cookie set again: %q", res.SetCookies)
	}
}

// TestHostIndex: rules naming hosts are only tried for their hosts, in
// config order with the rest.
func TestHostIndex(t *testing.T) {
	s := mustCompile(t, `
- {name: any1, do: {set_headers: {X-1: a}}}
- {name: fi, when: {host: [example.fi]}, do: {set_headers: {X-2: b}}}
- {name: sub, when: {host: ["*.example.se"]}, do: {set_headers: {X-3: c}}}
- {name: any2, do: {set_headers: {X-4: d}}}
`)
	var res Result
	names := func(r *fakeReq) string {
		s.Request(r, &res)
		var out []string
		for _, i := range res.Matched {
			out = append(out, s.Name(i))
		}
		return strings.Join(out, ",")
	}
	r := req("/")
	if got := names(r); got != "any1,fi,any2" {
		t.Errorf("example.fi: %s", got)
	}
	r.host = "news.example.se"
	if got := names(r); got != "any1,sub,any2" {
		t.Errorf("news.example.se: %s", got)
	}
	r.host = "example.se"
	if got := names(r); got != "any1,any2" {
		t.Errorf("example.se: %s", got)
	}
}

// TestEvaluationAllocatesNothing: a request that matches rules without
// captures (the common case on a hit) allocates nothing.
func TestEvaluationAllocatesNothing(t *testing.T) {
	s := mustCompile(t, `
- {name: block, when: {path_regex: '^/(wp-admin|\.env)'}, do: {deny: 403}}
- {name: dyn, when: {path_prefix: [/api]}, do: {pass: true}}
- {name: cookies, do: {keep_cookies: [csrftoken]}}
- {name: device, do: {classify: {header: User-Agent, into: X-Device, default: desktop, classes: [{name: mobile, regex: '(?i)mobile'}]}, key: [X-Device]}}
- {name: strip, phase: deliver, do: {remove_headers: [Server], set_headers: {X-Served-By: "${node}"}}}
`)
	r := &bytesReq{host: []byte("example.fi"), path: []byte("/a/1"), method: []byte("GET"), ua: []byte("Mozilla"), client: netip.MustParseAddr("192.0.2.1")}
	resp := &fakeResp{status: 200}
	var res Result
	s.Request(r, &res)
	s.Deliver(r, resp, &res)
	if n := testing.AllocsPerRun(100, func() {
		s.Request(r, &res)
		s.Deliver(r, resp, &res)
	}); n > 0 {
		t.Errorf("%v allocations per evaluation", n)
	}
}

// bytesReq is a request whose methods allocate nothing (the edge's view
// does not either).
type bytesReq struct {
	host, path, method, ua []byte
	client                 netip.Addr
}

func (b *bytesReq) Host() []byte   { return b.host }
func (b *bytesReq) Path() []byte   { return b.path }
func (b *bytesReq) URI() []byte    { return b.path }
func (b *bytesReq) Method() []byte { return b.method }
func (b *bytesReq) Header(n string) ([]byte, bool) {
	if n == "User-Agent" {
		return b.ua, true
	}
	return nil, false
}
func (b *bytesReq) Cookie(string) ([]byte, bool) { return nil, false }
func (b *bytesReq) Query(string) ([]byte, bool)  { return nil, false }
func (b *bytesReq) Client() netip.Addr           { return b.client }
func (b *bytesReq) Bucket() int                  { return 50 }
func (b *bytesReq) Node() string                 { return "e1" }
