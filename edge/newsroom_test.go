package edge

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// newsroomOrigin is one of the newsroom's origins: it answers by path,
// says which pool it is, and remembers what the edge forwarded.
type newsroomOrigin struct {
	*origin
	mu   sync.Mutex
	seen map[string][]http.Header // path → forwarded headers
}

func startNewsroomOrigin(t *testing.T, pool string) *newsroomOrigin {
	no := &newsroomOrigin{seen: map[string][]http.Header{}}
	no.origin = startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		no.mu.Lock()
		no.seen[r.URL.Path] = append(no.seen[r.URL.Path], r.Header.Clone())
		no.mu.Unlock()
		h := w.Header()
		h.Set("X-Powered-By", "PHP/8")
		h.Set("Server", "Apache")
		p := r.URL.Path
		body := fmt.Sprintf("%s pool=%s device=%s dark=%s cookie=%s", p, pool, r.Header.Get("X-Device"), r.Header.Get("X-Dark-Launch"), r.Header.Get("Cookie"))
		switch {
		case strings.HasSuffix(p, ".js") && strings.Contains(p, "--"):
			h.Set("Cache-Control", "no-cache") // the rule stores it for a year
			h.Set("Set-Cookie", "tracker=1")
			h.Set("Content-Type", "text/javascript")
		case strings.HasSuffix(p, ".png"):
			h.Set("Set-Cookie", "tracker=1") // no Cache-Control: a week, rule
			h.Set("Content-Type", "image/png")
		case p == "/missing":
			h.Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
		default:
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "max-age=60")
		}
		fmt.Fprint(w, body)
	})
	return no
}

// forwarded returns the headers of the requests for path the origin saw.
func (no *newsroomOrigin) forwarded(path string) []http.Header {
	no.mu.Lock()
	defer no.mu.Unlock()
	return append([]http.Header(nil), no.seen[path]...)
}

// newsroomEdge starts an edge with config/examples/newsroom.yaml, its two
// pools on the test's origins (as --pool does), and 127.0.0.1 trusted to
// say the client address (X-Forwarded-For), to stand in for the
// newsroom's network.
func newsroomEdge(t *testing.T) (*testEdge, *newsroomOrigin, *newsroomOrigin) {
	def, canary := startNewsroomOrigin(t, "default"), startNewsroomOrigin(t, "canary")
	c, err := config.LoadFile("../config/examples/newsroom.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tc := testConfig(def.addr())
	c.Edge.Listen, c.Edge.Admin, c.Edge.DrainDelay, c.Log.Access = tc.Edge.Listen, tc.Edge.Admin, 0, "off"
	c.Cache.SizeBytes, c.Cache.MaxObjectBytes = tc.Cache.SizeBytes, tc.Cache.MaxObjectBytes
	c.Backends.Servers = tc.Backends.Servers
	c.Pools["canary"] = config.Pool{Servers: []config.Backend{{Address: canary.addr()}}}
	c.Edge.TrustedProxies = []string{"127.0.0.1/32"}
	c.Purge.Token = testToken
	if err := c.ValidateEdge(); err != nil {
		t.Fatal(err)
	}
	return startEdge(t, c), def, canary
}

// TestNewsroomRecv: vcl_recv, behaviour by behaviour, through the edge.
func TestNewsroomRecv(t *testing.T) {
	te, def, canary := newsroomEdge(t)
	reader := []string{"Host", "example.fi", "Cookie", "lakka_bucket=50"} // in no share

	// Answered by the edge itself.
	if r := te.get("/lb-health", reader...); r.status != 200 || r.body != "ok\n" || r.get("X-Cache") != "SYNTH" || r.get("Content-Type") != "text/plain" {
		t.Errorf("/lb-health: %d %q X-Cache %q Content-Type %q", r.status, r.body, r.get("X-Cache"), r.get("Content-Type"))
	}
	// One canonical host.
	if r := te.get("/a/1?x=2", "Host", "www.example.fi"); r.status != 301 || r.get("Location") != "https://example.fi/a/1?x=2" {
		t.Errorf("www: %d Location %q", r.status, r.get("Location"))
	}
	// Probes refused.
	for _, p := range []string{"/wp-admin/x", "/wp-login.php", "/.env"} {
		if r := te.get(p, reader...); r.status != 403 {
			t.Errorf("%s: %d, want 403", p, r.status)
		}
	}
	// Old article URLs.
	if r := te.get("/uutiset/12345.cfm?ref=rss", reader...); r.status != 301 || r.get("Location") != "/a/12345" {
		t.Errorf("old article: %d Location %q", r.status, r.get("Location"))
	}
	if n := def.hits.Load() + canary.hits.Load(); n != 0 {
		t.Errorf("the origins saw %d requests for answers the edge makes", n)
	}
	// Dynamic paths and logged-in readers pass.
	for range 2 {
		if r := te.get("/api/v1/items", reader...); r.get("X-Cache") != "PASS" {
			t.Errorf("/api: X-Cache %q", r.get("X-Cache"))
		}
		if r := te.get("/a/2", "Host", "example.fi", "Cookie", "sessionid=abc; lakka_bucket=50"); r.get("X-Cache") != "PASS" {
			t.Errorf("logged in: X-Cache %q", r.get("X-Cache"))
		}
	}
	if n := len(def.forwarded("/api/v1/items")); n != 2 {
		t.Errorf("/api reached the origin %d times, want 2", n)
	}
	// Cookies: only csrftoken survives (and then passes, as Varnish's
	// builtin vcl_recv passes any Cookie); noise alone is stripped and the
	// page is cached; the bucket cookie is never forwarded.
	if r := te.get("/a/3", "Host", "example.fi", "Cookie", "csrftoken=t; _ga=1; lakka_bucket=50"); r.get("X-Cache") != "PASS" {
		t.Errorf("csrftoken: X-Cache %q", r.get("X-Cache"))
	}
	if got := def.forwarded("/a/3"); len(got) != 1 || got[0].Get("Cookie") != "csrftoken=t" {
		t.Errorf("/a/3 forwarded with Cookie %q, want csrftoken=t", got[0].Get("Cookie"))
	}
	te.get("/a/4", "Host", "example.fi", "Cookie", "_ga=1; theme=dark; lakka_bucket=50")
	te.settle()
	if r := te.get("/a/4", "Host", "example.fi", "Cookie", "other=2; lakka_bucket=50"); r.get("X-Cache") != "HIT" {
		t.Errorf("noise cookies: X-Cache %q on the second request, want HIT", r.get("X-Cache"))
	}
	if got := def.forwarded("/a/4"); len(got) != 1 || got[0].Get("Cookie") != "" {
		t.Errorf("/a/4 forwarded %d times, Cookie %q", len(got), got[0].Get("Cookie"))
	}
	// Static files lose every cookie, csrftoken too, and are cached.
	te.get("/s/site.css?v=3", "Host", "example.fi", "Cookie", "csrftoken=t; lakka_bucket=50")
	te.settle()
	if r := te.get("/s/site.css?v=3", "Host", "example.fi", "Cookie", "csrftoken=u"); r.get("X-Cache") != "HIT" {
		t.Errorf("static with csrftoken: X-Cache %q", r.get("X-Cache"))
	}
	// The device class: in the key and forwarded.
	mobile := []string{"Host", "example.fi", "Cookie", "lakka_bucket=50", "User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)"}
	desktop := []string{"Host", "example.fi", "Cookie", "lakka_bucket=50", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"}
	m1 := te.get("/a/5", mobile...)
	d1 := te.get("/a/5", desktop...)
	te.settle()
	m2, d2 := te.get("/a/5", mobile...), te.get("/a/5", desktop...)
	if !strings.Contains(m1.body, "device=mobile") || !strings.Contains(d1.body, "device=desktop") || m2.body != m1.body || d2.body != d1.body ||
		m2.get("X-Cache") != "HIT" || d2.get("X-Cache") != "HIT" {
		t.Errorf("device classes: mobile %q/%q (%s), desktop %q/%q (%s)", m1.body, m2.body, m2.get("X-Cache"), d1.body, d2.body, d2.get("X-Cache"))
	}
	// A URL purge reaches every device's copy.
	r := doURL(t, http.MethodPost, "http://"+te.AdminAddr()+"/api/purge", `{"urls":["http://example.fi/a/5"]}`, "Authorization", "Bearer "+testToken)
	if r.status != 200 || !strings.Contains(r.body, `"purged":2`) {
		t.Errorf("URL purge of a keyed page: %d %s", r.status, r.body)
	}
	// Canary: the newsroom's network and 5% of readers, kept apart in the
	// cache from what the default pool serves.
	newsroom := []string{"Host", "example.fi", "Cookie", "lakka_bucket=50", "X-Forwarded-For", "10.20.7.8"}
	share := []string{"Host", "example.fi", "Cookie", "lakka_bucket=3"}
	for range 2 {
		for _, c := range []struct {
			name string
			h    []string
			pool string
		}{{"reader", reader, "default"}, {"newsroom", newsroom, "canary"}, {"share", share, "canary"}} {
			if r := te.get("/a/6", c.h...); !strings.Contains(r.body, "pool="+c.pool) {
				t.Errorf("%s: %q, want pool=%s", c.name, r.body, c.pool)
			}
		}
		te.settle()
	}
	if n, m := len(def.forwarded("/a/6")), len(canary.forwarded("/a/6")); n != 1 || m != 1 {
		t.Errorf("/a/6 fetched %d times from default and %d from canary, want once each", n, m)
	}
	// Dark launch on the front page for 10%: forwarded and keyed.
	dark := []string{"Host", "example.fi", "Cookie", "lakka_bucket=7"}
	for range 2 {
		if r := te.get("/", dark...); !strings.Contains(r.body, "dark=live-widget") {
			t.Errorf("front page, bucket 7: %q", r.body)
		}
		if r := te.get("/", reader...); strings.Contains(r.body, "dark=live-widget") {
			t.Errorf("front page, bucket 50: %q", r.body)
		}
		te.settle()
	}
	if r := te.get("/a/1", dark...); !strings.Contains(r.body, "dark= cookie=") {
		t.Errorf("dark launch beyond the front page: %q", r.body)
	}
}

// TestNewsroomBucket: a first visit gets its bucket in a cookie at
// delivery, per client; a cached answer never carries another reader's.
func TestNewsroomBucket(t *testing.T) {
	te, _, _ := newsroomEdge(t)
	first := te.get("/a/7", "Host", "example.fi")
	te.settle()
	c := first.get("Set-Cookie")
	if !strings.HasPrefix(c, "lakka_bucket=") || !strings.Contains(c, "; Path=/; Max-Age=2592000") {
		t.Fatalf("first visit: Set-Cookie %q", c)
	}
	seen := map[string]bool{}
	for range 40 {
		r := te.get("/a/7", "Host", "example.fi")
		if r.get("X-Cache") == "MISS" {
			continue // a canary reader's first fetch
		}
		seen[r.get("Set-Cookie")] = true
	}
	if len(seen) < 5 {
		t.Errorf("40 first visits got %d distinct bucket cookies: %v", len(seen), seen)
	}
	if r := te.get("/a/7", "Host", "example.fi", "Cookie", "lakka_bucket=42"); r.get("Set-Cookie") != "" {
		t.Errorf("a reader with a bucket got Set-Cookie %q", r.get("Set-Cookie"))
	}
}

// TestNewsroomBackendResponse: vcl_backend_response through the edge.
func TestNewsroomBackendResponse(t *testing.T) {
	te, def, _ := newsroomEdge(t)
	h := []string{"Host", "example.fi", "Cookie", "lakka_bucket=50"}
	get2 := func(path string) (first, second response) {
		first = te.get(path, h...)
		te.settle()
		return first, te.get(path, h...)
	}
	// Hashed static files: a year, immutable, no Set-Cookie.
	_, r := get2("/s/app--abcdef12.js")
	if r.get("X-Cache") != "HIT" || r.get("Cache-Control") != "public, max-age=31536000, immutable" || r.get("Set-Cookie") != "" {
		t.Errorf("hashed js: X-Cache %q Cache-Control %q Set-Cookie %q", r.get("X-Cache"), r.get("Cache-Control"), r.get("Set-Cookie"))
	}
	if e := te.stored(te.keyFor("example.fi", "/s/app--abcdef12.js", "desktop")); e == nil || e.TTL != 8760*time.Hour {
		t.Errorf("hashed js stored with TTL %v, want 8760h", ttlOf(e))
	}
	// Other static files without Cache-Control: a week, no Set-Cookie.
	_, r = get2("/s/logo.png")
	if r.get("X-Cache") != "HIT" || r.get("Set-Cookie") != "" {
		t.Errorf("png: X-Cache %q Set-Cookie %q", r.get("X-Cache"), r.get("Set-Cookie"))
	}
	if e := te.stored(te.keyFor("example.fi", "/s/logo.png", "desktop")); e == nil || e.TTL != 168*time.Hour {
		t.Errorf("png stored with TTL %v, want 168h", ttlOf(e))
	}
	// HTML: six hours of grace.
	get2("/a/8")
	if e := te.stored(te.keyFor("example.fi", "/a/8", "desktop")); e == nil || e.Grace != 6*time.Hour || e.TTL != time.Minute {
		t.Errorf("html stored with TTL %v grace %v, want 1m and 6h", ttlOf(e), graceOf(e))
	}
	// 404: a minute.
	first, r := get2("/missing")
	if first.status != 404 || r.get("X-Cache") != "HIT" {
		t.Errorf("404: %d, then X-Cache %q", first.status, r.get("X-Cache"))
	}
	if e := te.stored(te.keyFor("example.fi", "/missing", "desktop")); e == nil || e.TTL != time.Minute {
		t.Errorf("404 stored with TTL %v, want 1m", ttlOf(e))
	}
	if n := len(def.forwarded("/s/app--abcdef12.js")); n != 1 {
		t.Errorf("hashed js fetched %d times", n)
	}
}

// TestNewsroomDeliver: vcl_deliver on every answer: misses, hits, passes
// and the edge's own answers.
func TestNewsroomDeliver(t *testing.T) {
	te, _, _ := newsroomEdge(t)
	h := []string{"Host", "example.fi", "Cookie", "lakka_bucket=50"}
	te.get("/a/9", h...)
	te.settle()
	for _, path := range []string{"/a/9", "/a/9", "/api/x", "/lb-health"} {
		r := te.get(path, h...)
		if r.get("X-Powered-By") != "" || r.get("Server") != "" || r.get("X-Served-By") != "edge-1" || r.get("Strict-Transport-Security") != "max-age=31536000" {
			t.Errorf("%s (%s): X-Powered-By %q Server %q X-Served-By %q HSTS %q", path, r.get("X-Cache"),
				r.get("X-Powered-By"), r.get("Server"), r.get("X-Served-By"), r.get("Strict-Transport-Security"))
		}
	}
	var matched float64
	for _, n := range []string{"deliver-headers"} {
		matched = counter(te.m.ruleMatches.WithLabelValues(n))
	}
	if matched < 5 {
		t.Errorf("deliver-headers matched %v times", matched)
	}
}

func ttlOf(e *store.Entry) time.Duration {
	if e == nil {
		return -1
	}
	return e.TTL
}

func graceOf(e *store.Entry) time.Duration {
	if e == nil {
		return -1
	}
	return e.Grace
}

// keyFor is the key the newsroom rules give a page for a device class
// (default pool, no dark launch).
func (te *testEdge) keyFor(host, path, device string) []byte {
	return cachekey.AppendExtra(cachekey.AppendURL(nil, []byte(host), []byte(path)), "x-device", []byte(device))
}

// TestRuleCookieKey: a cookie in the key is forwarded with every fetch,
// does not make the request a pass, and keeps one copy per value.
func TestRuleCookieKey(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("theme")
		w.Header().Set("Cache-Control", "max-age=60")
		if c != nil {
			fmt.Fprint(w, "theme=", c.Value, " cookies=", r.Header.Get("Cookie"))
		}
	})
	c := testConfig(o.addr())
	c.Rules = []config.Rule{{Name: "theme", Do: config.Actions{Key: []string{"cookie:theme"}}}}
	te := startEdge(t, c)
	for range 2 {
		for _, theme := range []string{"dark", "light"} {
			r := te.get("/p", "Cookie", "theme="+theme+"; _ga=1")
			if r.body != "theme="+theme+" cookies=theme="+theme {
				t.Errorf("theme %s: %q (X-Cache %s)", theme, r.body, r.get("X-Cache"))
			}
		}
		te.settle()
	}
	if n := o.hits.Load(); n != 2 {
		t.Errorf("the origin was asked %d times, want once per theme", n)
	}
}

// TestRuleLifetimesSurviveRefresh: a request phase ttl applies to what a
// grace refresh stores too.
func TestRuleLifetimesSurviveRefresh(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300, stale-while-revalidate=60")
		fmt.Fprint(w, "page")
	})
	c := testConfig(o.addr())
	ttl := 2 * time.Second
	c.Rules = []config.Rule{{Name: "short", When: config.Condition{PathPrefix: []string{"/p"}}, Do: config.Actions{TTL: &ttl}}}
	te := startEdge(t, c)
	te.get("/p", "Host", "example.com")
	te.settle()
	if e := te.stored([]byte("example.com/p")); e == nil || e.TTL != ttl {
		t.Fatalf("stored with TTL %v, want 2s", ttlOf(e))
	}
	te.advance(3 * time.Second)
	if r := te.get("/p", "Host", "example.com"); r.get("X-Cache") != "STALE" {
		t.Fatalf("after 3s: X-Cache %q, want STALE (grace refresh)", r.get("X-Cache"))
	}
	eventually(t, "the refresh stored", func() bool {
		e := te.store.Peek([]byte("example.com/p"))
		return e != nil && e.Age(te.now()) < time.Second
	})
	if e := te.stored([]byte("example.com/p")); e == nil || e.TTL != ttl {
		t.Errorf("refreshed with TTL %v, want the rule's 2s", ttlOf(e))
	}
}

// TestRulePassForwardsCookies: a rule's pass (and a method pass) sends
// the client's cookies, after the strip list and the rules' cookie
// actions; the bucket cookie never.
func TestRulePassForwardsCookies(t *testing.T) {
	te, def, _ := newsroomEdge(t)
	te.get("/a/10", "Host", "example.fi", "Cookie", "sessionid=abc; _ga=1; lakka_bucket=50")
	if got := def.forwarded("/a/10"); len(got) != 1 || got[0].Get("Cookie") != "sessionid=abc" {
		t.Errorf("logged-in pass forwarded Cookie %q, want sessionid=abc", got[0].Get("Cookie"))
	}
	te.do(http.MethodPost, "/a/11", "Host", "example.fi", "Cookie", "csrftoken=t; lakka_bucket=50")
	if got := def.forwarded("/a/11"); len(got) != 1 || got[0].Get("Cookie") != "csrftoken=t" {
		t.Errorf("POST forwarded Cookie %q, want csrftoken=t", got[0].Get("Cookie"))
	}
}

// TestBucketCookieNeverPasses: with no rule reading it, the bucket cookie
// a past canary left still makes no pass and is not forwarded.
func TestBucketCookieNeverPasses(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "cookie=", r.Header.Get("Cookie"))
	})
	te := startEdge(t, testConfig(o.addr()))
	te.get("/p", "Cookie", "lakka_bucket=5")
	te.settle()
	if r := te.get("/p", "Cookie", "lakka_bucket=5"); r.get("X-Cache") != "HIT" || r.body != "cookie=" {
		t.Errorf("bucket cookie without rules: X-Cache %q, body %q", r.get("X-Cache"), r.body)
	}
}

// TestRewriteKeepsConditionsOnTheClientPath: after rewrite_path the
// response and deliver phases still read the path the client asked for,
// and ${path} keeps the query parameters the key strips.
func TestRewriteKeepsConditionsOnTheClientPath(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	c := testConfig(o.addr())
	c.Rules = []config.Rule{
		{Name: "rw", When: config.Condition{PathPrefix: []string{"/old/"}}, Do: config.Actions{RewritePath: &config.Rewrite{Regex: "^/old/", Replace: "/new/"}}},
		{Name: "seen", Phase: "deliver", When: config.Condition{PathPrefix: []string{"/old/"}}, Do: config.Actions{SetHeaders: map[string]string{"X-Saw": "old"}}},
		{Name: "go", When: config.Condition{Path: []string{"/go"}}, Do: config.Actions{Redirect: &config.Redirect{Location: "https://example.net${path}"}}},
	}
	te := startEdge(t, c)
	if r := te.get("/old/x"); r.body != "/new/x" || r.get("X-Saw") != "old" {
		t.Errorf("rewritten: body %q, X-Saw %q", r.body, r.get("X-Saw"))
	}
	if r := te.get("/go?utm_source=news&b=1"); r.get("Location") != "https://example.net/go?utm_source=news&b=1" {
		t.Errorf("${path}: Location %q", r.get("Location"))
	}
}

// TestPoolWeightsAndSameContent: a round-robin pool sends each server its
// weight's share; a pool marked same_content is cached with the default
// pool's objects.
func TestPoolWeightsAndSameContent(t *testing.T) {
	heavy := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "heavy") })
	light := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "light") })
	other := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "other")
	})
	c := testConfig(heavy.addr())
	c.Backends.Servers = []config.Backend{{Address: heavy.addr(), Weight: 3}, {Address: light.addr()}}
	c.Pools = map[string]config.Pool{"mirror": {Servers: []config.Backend{{Address: other.addr()}}}}
	c.Rules = []config.Rule{{Name: "mirror", When: config.Condition{PathPrefix: []string{"/m/"}}, Do: config.Actions{Pool: "mirror", SameContent: true}}}
	te := startEdge(t, c)
	for range 40 {
		te.do(http.MethodPost, "/w", "Host", "example.com")
	}
	if h, l := heavy.hits.Load(), light.hits.Load(); h != 30 || l != 10 {
		t.Errorf("weights 3:1: %d and %d fetches of 40", h, l)
	}
	te.get("/m/1", "Host", "example.com")
	te.settle()
	if e := te.stored([]byte("example.com/m/1")); e == nil {
		t.Error("a same_content pool's object is not under the plain key")
	}
}
