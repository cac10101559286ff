package edge

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// recorder is an origin that remembers every request it saw, with its
// raw target, headers and body.
type recorder struct {
	*origin
	mu   sync.Mutex // guards seen
	seen []seenRequest
}

type seenRequest struct {
	method, host, target string
	header               http.Header
	body                 string
}

func startRecorder(t testing.TB, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.origin = startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.seen = append(rec.seen, seenRequest{r.Method, r.Host, r.RequestURI, r.Header.Clone(), string(b)})
		rec.mu.Unlock()
		h(w, r)
	})
	return rec
}

func (rec *recorder) requests() []seenRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seenRequest(nil), rec.seen...)
}

func (rec *recorder) lastSeen(t testing.TB) seenRequest {
	t.Helper()
	s := rec.requests()
	if len(s) == 0 {
		t.Fatal("the origin saw no request")
	}
	return s[len(s)-1]
}

// spoofableNames are request headers an origin may use to build a page
// (links, redirects, the method) that are not in the cache key.
var spoofableNames = []string{
	"X-Forwarded-Host", "X-Forwarded-Server", "X-Forwarded-Port", "X-Forwarded-Scheme",
	"X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Original-URL", "X-Rewrite-URL",
	"X-Original-Host", "X-Host", "X-HTTP-Method-Override", "X-HTTP-Method",
	"X-Method-Override", "Forwarded", "Front-End-Https", "X-Real-IP", "Surrogate-Capability",
}

// canonicalCGI is how CGI, PHP and many frameworks name a header: '_' and
// '-' are the same, case does not matter.
func canonicalCGI(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// TestUnkeyedHeadersNotForwarded sends every spoofable header, in several
// spellings, through each way a request reaches the origin (cache fetch,
// credentialed fetch, pass): none arrives (docs/RELIABILITY.md, promise 3).
func TestUnkeyedHeadersNotForwarded(t *testing.T) {
	o := startRecorder(t, fixed("page", "Cache-Control", "max-age=60"))
	e := startEdge(t, testConfig(o.addr()))
	spelled := func(name string) []string {
		return []string{
			name,
			strings.ToLower(name),
			strings.ToUpper(name),
			strings.ReplaceAll(name, "-", "_"),
			strings.Replace(name, "-", "_", 1),
		}
	}
	f := func(mode, method string, extra ...string) {
		t.Helper()
		for _, name := range spoofableNames {
			for _, sp := range spelled(name) {
				path := fmt.Sprintf("/%s/%s", mode, sp)
				hdrs := append([]string{sp, "evil.example"}, extra...)
				if r := doURL(t, method, e.url+path, "", hdrs...); r.status != 200 {
					t.Errorf("%s %s with %s: status %d", mode, method, sp, r.status)
					continue
				}
				got := o.lastSeen(t)
				for k, v := range got.header {
					if canonicalCGI(k) == canonicalCGI(name) && !(canonicalCGI(k) == "x-forwarded-proto") {
						t.Errorf("%s: %q sent as %q reached the origin as %s: %q", mode, name, sp, k, v)
					}
				}
			}
		}
	}
	f("cache", http.MethodGet)
	f("head", http.MethodHead)
	f("credentials", http.MethodGet, "Authorization", "Bearer t")
	f("cookie", http.MethodGet, "Cookie", "session=1")
	f("post", http.MethodPost)
	// Any name with '_' could alias a varied header at a CGI origin: none
	// is forwarded when the answer may be stored; pass forwards it.
	e.get("/alias", "Accept_Language", "en", "X_Custom", "1")
	if got := o.lastSeen(t); got.header.Get("Accept_Language") != "" || got.header.Get("X_Custom") != "" {
		t.Errorf("cache fetch forwarded underscore names: %v", got.header)
	}
	doURL(t, http.MethodPost, e.url+"/alias", "", "X_Custom", "1")
	if got := o.lastSeen(t); got.header.Get("X_Custom") != "1" {
		t.Errorf("pass dropped X_Custom: %v", got.header)
	}
	// The edge's own X-Forwarded-Proto replaces the client's.
	e.get("/proto", "X-Forwarded-Proto", "https", "X_Forwarded_Proto", "https")
	got := o.lastSeen(t)
	if v := got.header.Values("X-Forwarded-Proto"); len(v) != 1 || v[0] != "http" {
		t.Errorf("X-Forwarded-Proto at the origin %q, want only the edge's \"http\"", v)
	}
	for k := range got.header {
		if k != "X-Forwarded-Proto" && canonicalCGI(k) == "x-forwarded-proto" {
			t.Errorf("client's %s reached the origin", k)
		}
	}
}

// TestTargetNormalisation checks that the key and the forwarded target are
// the same bytes (docs/RELIABILITY.md, promise 3): equivalent spellings share one
// object and reach the origin in one form; encoded delimiters are never
// decoded.
func TestTargetNormalisation(t *testing.T) {
	o := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "target=%s", r.RequestURI)
	})
	c := testConfig(o.addr())
	c.Key.StripQuery = []string{"utm_*", "fbclid"}
	c.Key.SortQuery = true
	e := startEdge(t, c)
	// Each group: raw targets that must share one key, and what the origin
	// must receive for them.
	f := func(want string, raws ...string) {
		t.Helper()
		before := len(o.requests())
		for i, raw := range raws {
			status, body := rawGet(t, e, raw, "h.example")
			if status != 200 {
				t.Errorf("%q: status %d", raw, status)
				continue
			}
			if body != "target="+want {
				t.Errorf("%q: origin saw %q, want %q", raw, strings.TrimPrefix(body, "target="), want)
			}
			if i == 0 {
				e.settle()
			}
		}
		if n := len(o.requests()) - before; n != 1 {
			t.Errorf("%q: %d origin fetches for %d equivalent targets, want 1", want, n, len(raws))
		}
	}
	f("/a%2Fb", "/a%2Fb", "/a%2fb")
	f("/a/b", "/a/b", "/a/./b", "/a/c/../b", "/x/../a/b", "/a/%2e/b", "/a/%2E%2E/a/b", "/../a/b")
	f("/a%3Fb", "/a%3Fb", "/a%3fb")
	f("/a%23b", "/a%23b")
	f("/a..%2Fsecret", "/a..%2Fsecret", "/a%2e%2e%2Fsecret")
	f("/~user/", "/%7Euser/", "/~user/", "/%7euser/")
	f("/%C3%A4", "/\xc3\xa4", "/%c3%a4", "/%C3%A4")
	f("/a%5Cb", "/a\\b", "/a%5cb")
	f("/q?a=1&b=2", "/q?b=2&a=1", "/q?a=1&b=2", "/q?utm_source=x&b=2&a=1", "/q?a=1&&b=2&fbclid=z", "/q?utm%5Fmedium=m&a=1&b=2")
	f("/q?a=1%262", "/q?a=1%262", "/q?utm_x=1&a=1%262")
	f("/q?a=%3D", "/q?a=%3d")
	f("/r", "/r?", "/r?utm_source=x", "/r?&")
	f("/s?x=1&x=2", "/s?x=1&x=2")
	f("/s?x=2&x=1", "/s?x=2&x=1")
	// Targets that differ only by an encoded delimiter are different objects.
	for _, pair := range [][2]string{{"/d/e", "/d%2Fe"}, {"/d?e", "/d%3Fe"}, {"/q?a=1&b=2", "/q?a=1%26b=2"}} {
		_, b1 := rawGet(t, e, pair[0], "h.example")
		_, b2 := rawGet(t, e, pair[1], "h.example")
		if b1 == b2 {
			t.Errorf("%q and %q share one object (%q)", pair[0], pair[1], b1)
		}
	}
}

// rawGet sends GET target with Host on a raw connection and returns the
// status and body, so that the target reaches the edge byte for byte.
func rawGet(t testing.TB, e *testEdge, target, host string, headers ...string) (int, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, host)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("Connection: close\r\n\r\n")
	resp, body := rawExchange(t, e.Addr(), b.String())
	return resp.StatusCode, body
}

// TestHostNormalisation: host case, the default port and a trailing dot
// do not split the cache, and the origin sees the normalised host.
func TestHostNormalisation(t *testing.T) {
	o := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "host=%s", r.Host)
	})
	e := startEdge(t, testConfig(o.addr()))
	for i, h := range []string{"News.Example", "news.example", "NEWS.EXAMPLE.", "news.example:80", "news.example.:80"} {
		status, body := rawGet(t, e, "/h", h)
		if status != 200 || body != "host=news.example" {
			t.Errorf("Host %q: %d %q, want host=news.example", h, status, body)
		}
		if i == 0 {
			e.settle()
		}
	}
	if n := len(o.requests()); n != 1 {
		t.Errorf("%d origin fetches, want 1", n)
	}
	for _, h := range []string{"news.example:8080", "other.example"} {
		if _, body := rawGet(t, e, "/h", h); body != "host="+strings.TrimSuffix(h, ".") {
			t.Errorf("Host %q served %q", h, body)
		}
	}
	for _, h := range []string{"news.example:", "news example", "news.example:80:80", "news.example:123456", "[::1", "a@b"} {
		if status, _ := rawGet(t, e, "/h", h); status != 400 {
			t.Errorf("Host %q: status %d, want 400", h, status)
		}
	}
}

// TestOriginErrorFromOneClientNotShared: an origin answers 431 or 400 to a
// request with an oversized header the edge forwards (its limit is higher
// than the origin's), even with explicit freshness. The next reader gets
// the page, and waiters of that fetch do not get the error either
// ("cache-poisoned denial of service").
func TestOriginErrorFromOneClientNotShared(t *testing.T) {
	for _, status := range []int{400, 413, 414, 431, 500} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			o := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=600")
				if len(r.Header.Get("X-Big")) > 1000 {
					w.WriteHeader(status)
					fmt.Fprint(w, "too big")
					return
				}
				fmt.Fprint(w, "page")
			})
			e := startEdge(t, testConfig(o.addr()))
			if r := e.get("/p", "X-Big", strings.Repeat("b", 4000)); r.status != status {
				t.Fatalf("attacker got %d, want %d", r.status, status)
			}
			e.settle()
			for i := range 3 {
				r := e.get("/p")
				if r.status != 200 || r.body != "page" {
					t.Errorf("reader %d got %d %q", i, r.status, r.body)
				}
				e.settle()
			}
			if r := e.get("/p"); r.get("X-Cache") != "HIT" {
				t.Errorf("the page is not cached after the attack: %q", r.get("X-Cache"))
			}
		})
	}
}

// TestCacheDeception: a private page reached through a public-looking
// path (/account.php/nonexistent.css, /static/..%2Faccount) is never
// stored or shared when the origin says it is private or the request
// carries credentials, even under a route that forces a TTL.
func TestCacheDeception(t *testing.T) {
	o := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		account := strings.HasPrefix(path, "/account.php") || strings.Contains(path, "account")
		c, _ := r.Cookie("session")
		switch {
		case account && c != nil:
			w.Header().Set("Cache-Control", r.Header.Get("X-Test-CC"))
			fmt.Fprintf(w, "secret of %s", c.Value)
		case account && r.Header.Get("Authorization") != "":
			w.Header().Set("Cache-Control", r.Header.Get("X-Test-CC"))
			fmt.Fprintf(w, "secret of %s", r.Header.Get("Authorization"))
		default:
			w.Header().Set("Cache-Control", "max-age=600")
			fmt.Fprint(w, "public")
		}
	})
	ttl := time.Hour
	c := testConfig(o.addr())
	c.Routes = []config.Route{
		{Name: "static", PathPrefix: "/static/", TTL: &ttl},
		{Name: "assets", PathPrefix: "/assets/", TTL: &ttl, IgnoreCookies: true},
	}
	e := startEdge(t, c)
	f := func(path string, victim ...string) {
		t.Helper()
		for _, cc := range []string{"private", "no-store", "private, max-age=600", "no-cache", ""} {
			hdrs := append([]string{"X-Test-CC", cc}, victim...)
			e.get(path, hdrs...)
			e.settle()
			for range 2 {
				if r := e.get(path); strings.Contains(r.body, "secret") {
					t.Errorf("%s (Cache-Control %q, victim %v): anonymous reader got %q (%s)", path, cc, victim, r.body, r.get("X-Cache"))
				}
			}
			e.do("PURGE", path)
		}
	}
	for _, path := range []string{"/account.php/nonexistent.css", "/account.php/x.js?v=1", "/static/..%2Faccount", "/static/account", "/assets/..%2Faccount", "/account.php;.css"} {
		f(path, "Cookie", "session=victim")
		f(path, "Authorization", "Bearer victim")
	}
	// Under an ignore_cookies route the cookie never reaches the origin.
	e.get("/assets/account.css", "Cookie", "session=victim")
	if got := o.lastSeen(t); got.header.Get("Cookie") != "" {
		t.Errorf("ignore_cookies route forwarded Cookie %q", got.header.Get("Cookie"))
	}
}

// TestConnectionCannotUnkeyHeaders: a client may name end-to-end headers
// in Connection, which makes the edge drop them before forwarding. The key
// must then not use them either, or the answer to a request without the
// header is stored as the variant for its value (hop-by-hop abuse).
func TestConnectionCannotUnkeyHeaders(t *testing.T) {
	o := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	e := startEdge(t, testConfig(o.addr()))
	r := e.get("/", "Accept-Language", "fi", "Connection", "keep-alive, Accept-Language")
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	e.settle()
	// Readers who send "fi" must get the Finnish page.
	for range 2 {
		if r := e.get("/", "Accept-Language", "fi"); r.body != "lang=fi" {
			t.Errorf("Accept-Language fi got %q (%s): the variant was poisoned", r.body, r.get("X-Cache"))
		}
	}
	// Whatever is named in Connection never reaches the origin, whichever
	// way the request is fetched.
	for _, extra := range [][]string{nil, {"Authorization", "Bearer t"}, {"Cookie", "s=1"}} {
		hdrs := append([]string{"X-Debug", "1", "Connection", "X-Debug, Cookie"}, extra...)
		e.get("/conn", hdrs...)
		got := o.lastSeen(t)
		if got.header.Get("X-Debug") != "" || got.header.Get("Cookie") != "" {
			t.Errorf("with %v: origin saw X-Debug %q Cookie %q", extra, got.header.Get("X-Debug"), got.header.Get("Cookie"))
		}
	}
}

// TestDuplicateVariedHeader: a request with a varied header on two lines
// is keyed on what the origin sees.
func TestDuplicateVariedHeader(t *testing.T) {
	o := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", strings.Join(r.Header.Values("Accept-Language"), ","))
	})
	e := startEdge(t, testConfig(o.addr()))
	// Two lines, sent raw: the origin sees them as one list, and the
	// answer is keyed on that list.
	for range 2 {
		resp, body := rawExchange(t, e.Addr(), "GET / HTTP/1.1\r\nHost: a\r\nAccept-Language: fi\r\nAccept-Language:  en\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || body != "lang=fi, en" {
			t.Errorf("two lines: %d %q, want lang=fi, en", resp.StatusCode, body)
		}
		e.settle()
	}
	if r := e.get("/", "Host", "a", "Accept-Language", "fi,en"); r.body != "lang=fi, en" || r.get("X-Cache") != "HIT" {
		t.Errorf("one line fi,en: %q %s, want the stored list variant", r.body, r.get("X-Cache"))
	}
	if r := e.get("/", "Host", "a", "Accept-Language", "fi"); r.body != "lang=fi" {
		t.Errorf("Accept-Language fi got %q (%s)", r.body, r.get("X-Cache"))
	}
	if r := e.get("/", "Host", "a", "Accept-Language", "en"); r.body != "lang=en" {
		t.Errorf("Accept-Language en got %q (%s)", r.body, r.get("X-Cache"))
	}
}

// TestFatGETBodyNotForwarded: a body on GET or HEAD never reaches the
// origin, whichever way the request is fetched, and the connection stays
// in sync.
func TestFatGETBodyNotForwarded(t *testing.T) {
	o := startRecorder(t, fixed("page", "Cache-Control", "max-age=60"))
	e := startEdge(t, testConfig(o.addr()))
	f := func(name, path string, headers ...string) {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n", path)
		for i := 0; i+1 < len(headers); i += 2 {
			fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
		}
		b.WriteString("\r\nx=evil&y=bad")
		b.WriteString("GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		resps := rawExchangeAll(t, e.Addr(), b.String(), 2)
		if len(resps) != 2 || resps[0] != 200 || resps[1] != 200 {
			t.Errorf("%s: statuses %v, want two 200s", name, resps)
		}
		for _, s := range o.requests() {
			if s.method == http.MethodPost {
				continue
			}
			if s.body != "" || s.header.Get("Content-Length") != "" {
				t.Errorf("%s: origin got a body %q for %s %s", name, s.body, s.method, s.target)
			}
		}
	}
	f("cache", "/fat")
	f("hit", "/fat")
	f("credentials", "/fat-auth", "Authorization", "Bearer t")
	f("cookie (pass)", "/fat-cookie", "Cookie", "s=1")
	// Other methods keep their body.
	doURL(t, http.MethodPost, e.url+"/post", "x=1")
	if got := o.lastSeen(t); got.body != "x=1" {
		t.Errorf("POST body at the origin %q, want x=1", got.body)
	}
}

// TestOriginErrorDoesNotDisableCoalescing: an error the origin gives one
// client (a 4xx caused by its own oversized header) must not mark the URL
// uncacheable (hit-for-miss): that would send every reader arriving next
// straight to the origin instead of coalescing them behind one fetch.
func TestOriginErrorDoesNotDisableCoalescing(t *testing.T) {
	gate := make(chan struct{})
	var readers atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if len(r.Header.Get("X-Big")) > 1000 {
			w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		readers.Add(1)
		<-gate
		fmt.Fprint(w, "page")
	})
	e := startEdge(t, testConfig(o.addr()))
	if r := e.get("/hot", "X-Big", strings.Repeat("b", 4000)); r.status != 431 {
		t.Fatalf("attacker got %d", r.status)
	}
	e.settle()
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get("/hot"); r.status != 200 || r.body != "page" {
				t.Errorf("reader got %d %q", r.status, r.body)
			}
		}()
	}
	eventually(t, "the readers to reach the edge", func() bool {
		return counter(e.m.coalesced)+float64(readers.Load()) >= n
	})
	close(gate)
	wg.Wait()
	if got := readers.Load(); got != 1 {
		t.Errorf("%d origin fetches for %d concurrent readers after the attack, want 1", got, n)
	}
}
