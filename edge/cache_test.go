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
)

// fixed answers every request with the given headers and body.
func fixed(body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Add(headers[i], headers[i+1])
		}
		if r.Method != http.MethodHead {
			fmt.Fprint(w, body)
		}
	}
}

func TestHitAndMiss(t *testing.T) {
	o := startOrigin(t, fixed("hello", "Cache-Control", "max-age=60", "Content-Type", "text/plain"))
	e := startEdge(t, testConfig(o.addr()))

	r := e.get("/a")
	if r.status != 200 || r.body != "hello" {
		t.Fatalf("miss: got %d %q", r.status, r.body)
	}
	if got := r.get("X-Cache"); got != "MISS" {
		t.Errorf("first X-Cache = %q, want MISS", got)
	}
	if got := r.get("Cache-Status"); got != "lakka; fwd=miss; stored" {
		t.Errorf("first Cache-Status = %q", got)
	}
	r = e.get("/a")
	if got := r.get("X-Cache"); got != "HIT" || r.body != "hello" {
		t.Errorf("second: X-Cache = %q body %q, want HIT hello", got, r.body)
	}
	if !strings.HasPrefix(r.get("Cache-Status"), "lakka; hit; ttl=") {
		t.Errorf("hit Cache-Status = %q", r.get("Cache-Status"))
	}
	if r.get("Age") != "0" || r.get("Date") == "" || r.get("Via") != "1.1 lakka" {
		t.Errorf("hit headers: Age %q Date %q Via %q", r.get("Age"), r.get("Date"), r.get("Via"))
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
	e.advance(10 * time.Second)
	if r := e.get("/a"); r.get("Age") != "10" || r.get("X-Cache") != "HIT" {
		t.Errorf("after 10s: Age %q X-Cache %q, want 10 HIT", r.get("Age"), r.get("X-Cache"))
	}
	// Another URL, another object.
	e.get("/b")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
}

func TestOriginDateAndAgePreserved(t *testing.T) {
	date := time.Now().Add(-30 * time.Second).UTC().Format(http.TimeFormat)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", date)
		w.Header().Set("Age", "20")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	e := startEdge(t, testConfig(o.addr()))
	r := e.get("/")
	if r.get("Date") != date {
		t.Errorf("Date = %q, want the origin's %q", r.get("Date"), date)
	}
	if r.get("Age") != "20" {
		t.Errorf("Age = %q, want 20 (the origin's)", r.get("Age"))
	}
	e.advance(30 * time.Second)
	r = e.get("/")
	if r.get("Age") != "50" || r.get("X-Cache") != "HIT" || r.get("Date") != date {
		t.Errorf("later: Age %q X-Cache %q Date %q", r.get("Age"), r.get("X-Cache"), r.get("Date"))
	}
	// 60 - 20 = 40 s of freshness were left at arrival: 45 s later it is stale.
	e.advance(15 * time.Second)
	if r := e.get("/"); r.get("X-Cache") == "HIT" {
		t.Errorf("after its max-age: X-Cache %q, want not HIT", r.get("X-Cache"))
	}
}

func TestFreshnessPrecedence(t *testing.T) {
	f := func(name string, wantTTL time.Duration, headers ...string) {
		t.Helper()
		o := startOrigin(t, fixed("x", headers...))
		e := startEdge(t, testConfig(o.addr()))
		e.get("/")
		e.advance(wantTTL - time.Second)
		if r := e.get("/"); r.get("X-Cache") != "HIT" {
			t.Errorf("%s: just before %s: X-Cache %q, want HIT", name, wantTTL, r.get("X-Cache"))
		}
		e.advance(2 * time.Second)
		if r := e.get("/"); r.get("X-Cache") == "HIT" {
			t.Errorf("%s: just after %s: X-Cache %q, want not HIT", name, wantTTL, r.get("X-Cache"))
		}
	}
	f("surrogate-control wins", 300*time.Second, "Surrogate-Control", "max-age=300", "Cache-Control", "s-maxage=100, max-age=10")
	f("s-maxage over max-age", 100*time.Second, "Cache-Control", "s-maxage=100, max-age=10")
	f("max-age over expires", 10*time.Second, "Cache-Control", "max-age=10", "Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	f("expires", 50*time.Second, "Date", time.Now().UTC().Format(http.TimeFormat), "Expires", time.Now().Add(50*time.Second).UTC().Format(http.TimeFormat))
	f("default ttl", 120*time.Second)
}

func TestSurrogateHeadersNotPassed(t *testing.T) {
	o := startOrigin(t, fixed("x", "Surrogate-Control", "max-age=60", "Surrogate-Key", "a b", "xkey", "c"))
	e := startEdge(t, testConfig(o.addr()))
	for range 2 {
		r := e.get("/")
		for _, h := range []string{"Surrogate-Control", "Surrogate-Key", "Xkey"} {
			if v := r.get(h); v != "" {
				t.Errorf("%s passed to client (%s): %q", h, r.get("X-Cache"), v)
			}
		}
	}
	c := testConfig(o.addr())
	c.Edge.DebugHeaders = true
	e = startEdge(t, c)
	for range 2 {
		r := e.get("/p")
		if r.get("Surrogate-Key") != "a b c" || r.get("Surrogate-Control") != "max-age=60" {
			t.Errorf("debug_headers (%s): Surrogate-Key %q Surrogate-Control %q", r.get("X-Cache"), r.get("Surrogate-Key"), r.get("Surrogate-Control"))
		}
	}
}

func TestNeverStored(t *testing.T) {
	f := func(name string, h http.HandlerFunc, reqHeaders ...string) {
		t.Helper()
		o := startOrigin(t, h)
		e := startEdge(t, testConfig(o.addr()))
		for i := range 3 {
			r := e.get("/x", reqHeaders...)
			if r.get("X-Cache") == "HIT" {
				t.Errorf("%s: request %d was a HIT", name, i)
			}
		}
		if n := o.hits.Load(); n != 3 {
			t.Errorf("%s: origin hits = %d, want 3", name, n)
		}
	}
	f("private", fixed("x", "Cache-Control", "private, max-age=60"))
	f("no-store", fixed("x", "Cache-Control", "no-store, max-age=60"))
	f("no-cache without validator", fixed("x", "Cache-Control", "no-cache, max-age=60"))
	f("authorization", fixed("x", "Cache-Control", "max-age=60"), "Authorization", "Bearer t")
	f("set-cookie", fixed("x", "Cache-Control", "max-age=60", "Set-Cookie", "session=1"))
	f("vary star", fixed("x", "Cache-Control", "max-age=60", "Vary", "*"))
	f("request cookie", fixed("x", "Cache-Control", "max-age=60"), "Cookie", "session=abc")
	f("surrogate no-store", fixed("x", "Cache-Control", "max-age=60", "Surrogate-Control", "no-store"))
	for _, status := range []int{500, 502, 503, 400, 403, 429} {
		f(fmt.Sprintf("status %d", status), func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.WriteHeader(status)
		})
	}
	f("302 without explicit freshness", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	f("already expired on arrival", fixed("x", "Cache-Control", "max-age=10", "Age", "20"))
	f("too large", fixed(strings.Repeat("x", 2<<20), "Cache-Control", "max-age=60", "Content-Type", "application/octet-stream"))
}

func TestStoredWhenAllowed(t *testing.T) {
	f := func(name string, h http.HandlerFunc, reqHeaders ...string) {
		t.Helper()
		o := startOrigin(t, h)
		e := startEdge(t, testConfig(o.addr()))
		e.get("/x", reqHeaders...)
		r := e.get("/x")
		if r.get("X-Cache") != "HIT" {
			t.Errorf("%s: second request X-Cache = %q, want HIT", name, r.get("X-Cache"))
		}
	}
	f("authorization with public", fixed("x", "Cache-Control", "public, max-age=60"), "Authorization", "Bearer t")
	f("authorization with s-maxage", fixed("x", "Cache-Control", "s-maxage=60"), "Authorization", "Bearer t")
	f("404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	f("301", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved", http.StatusMovedPermanently)
	})
	f("302 with max-age", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	f("analytics cookies are stripped", fixed("x", "Cache-Control", "max-age=60"), "Cookie", "_ga=GA1.2.3; _gid=x")
}

func TestAuthorizationNeverServedFromCache(t *testing.T) {
	o := startOrigin(t, fixed("x", "Cache-Control", "public, max-age=60"))
	e := startEdge(t, testConfig(o.addr()))
	e.get("/x")
	r := e.get("/x", "Authorization", "Bearer t")
	if r.get("X-Cache") == "HIT" {
		t.Errorf("request with Authorization answered from cache")
	}
	if got := o.last.Load().Header.Get("Authorization"); got != "Bearer t" {
		t.Errorf("origin saw Authorization %q, want it forwarded", got)
	}
}

func TestSetCookieStripRoute(t *testing.T) {
	o := startOrigin(t, fixed("x", "Cache-Control", "max-age=60", "Set-Cookie", "csrftoken=abc"))
	c := testConfig(o.addr())
	c.Routes = append(c.Routes, configRoute("/static/", func(r *routeCfg) { r.StripSetCookie = true }))
	e := startEdge(t, c)
	e.get("/static/a.css")
	r := e.get("/static/a.css")
	if r.get("X-Cache") != "HIT" {
		t.Fatalf("strip_set_cookie route: X-Cache %q, want HIT", r.get("X-Cache"))
	}
	if r.get("Set-Cookie") != "" {
		t.Errorf("stored response still sets a cookie: %q", r.get("Set-Cookie"))
	}
	// Outside the route, Set-Cookie keeps it out of the cache.
	e.get("/page")
	if r := e.get("/page"); r.get("X-Cache") == "HIT" {
		t.Errorf("/page with Set-Cookie was stored")
	}
}

func TestVaryVariants(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	e := startEdge(t, testConfig(o.addr()))
	for range 2 {
		for _, lang := range []string{"fi", "en", ""} {
			r := e.get("/", "Accept-Language", lang)
			if r.body != "lang="+lang {
				t.Errorf("Accept-Language %q got body %q", lang, r.body)
			}
			if !strings.Contains(r.get("Vary"), "Accept-Language") {
				t.Errorf("Vary = %q", r.get("Vary"))
			}
		}
	}
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin hits = %d, want 3 (one per variant)", n)
	}
	// Whitespace differences do not split variants.
	if r := e.get("/", "Accept-Language", "  fi "); r.get("X-Cache") != "HIT" || r.body != "lang=fi" {
		t.Errorf("normalised value: %q %q", r.get("X-Cache"), r.body)
	}
}

func TestVariantLimit(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "User-Agent")
		fmt.Fprint(w, r.Header.Get("User-Agent"))
	})
	c := testConfig(o.addr())
	c.Cache.MaxVariants = 3
	e := startEdge(t, c)
	for i := range 6 {
		e.get("/", "User-Agent", fmt.Sprint("ua", i))
		e.settle()
	}
	hits := 0
	for i := range 6 {
		r := e.get("/", "User-Agent", fmt.Sprint("ua", i))
		if r.body != fmt.Sprint("ua", i) {
			t.Errorf("variant %d served %q", i, r.body)
		}
		if r.get("X-Cache") == "HIT" {
			hits++
		}
	}
	if hits > 3 {
		t.Errorf("%d variants stored, want at most 3", hits)
	}
}

func TestConditionalFromCache(t *testing.T) {
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	o := startOrigin(t, fixed("body", "Cache-Control", "max-age=60", "ETag", `"v1"`, "Last-Modified", lm, "Content-Type", "image/png"))
	e := startEdge(t, testConfig(o.addr()))
	e.get("/")
	f := func(want int, headers ...string) {
		t.Helper()
		r := e.get("/", headers...)
		if r.status != want {
			t.Errorf("%v: status %d, want %d", headers, r.status, want)
		}
		if want == 304 && (r.body != "" || r.get("ETag") != `"v1"` || r.get("X-Cache") != "HIT") {
			t.Errorf("%v: 304 body %q ETag %q X-Cache %q", headers, r.body, r.get("ETag"), r.get("X-Cache"))
		}
	}
	f(304, "If-None-Match", `"v1"`)
	f(304, "If-None-Match", `W/"v1"`)
	f(304, "If-None-Match", `"x", "v1"`)
	f(304, "If-None-Match", `*`)
	f(200, "If-None-Match", `"v2"`)
	f(304, "If-Modified-Since", lm)
	f(304, "If-Modified-Since", time.Now().UTC().Format(http.TimeFormat))
	f(200, "If-Modified-Since", time.Now().Add(-2*time.Hour).UTC().Format(http.TimeFormat))
	f(200, "If-None-Match", `"v2"`, "If-Modified-Since", lm) // If-None-Match wins
	f(200, "If-Modified-Since", "garbage")
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1: conditionals are answered from cache", n)
	}
	if got := o.last.Load().Header.Get("If-None-Match"); got != "" {
		t.Errorf("origin saw If-None-Match %q", got)
	}
}

// TestIfModifiedSinceWithoutLastModified: a stored response without
// Last-Modified is validated against its Date (RFC 9111 §4.3.2), the
// origin's or, without one, when the edge received it.
func TestIfModifiedSinceWithoutLastModified(t *testing.T) {
	date := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/dated" {
			w.Header().Set("Date", date.Format(http.TimeFormat))
		} else {
			w.Header()["Date"] = nil // net/http adds one otherwise
		}
		_, _ = io.WriteString(w, "body")
	})
	e := startEdge(t, testConfig(o.addr()))
	e.get("/dated")
	e.get("/undated")
	received := time.Now().UTC()
	for _, tc := range []struct {
		path string
		ims  time.Time
		want int
	}{
		{"/dated", date, 304},
		{"/dated", date.Add(time.Minute), 304},
		{"/dated", date.Add(-time.Second), 200},
		{"/undated", received.Add(time.Minute), 304},
		{"/undated", date, 200},
	} {
		r := e.get(tc.path, "If-Modified-Since", tc.ims.Format(http.TimeFormat))
		if r.status != tc.want || r.get("X-Cache") != "HIT" {
			t.Errorf("%s, If-Modified-Since %s: %d %s, want %d HIT", tc.path, tc.ims.Format(http.TimeFormat), r.status, r.get("X-Cache"), tc.want)
		}
	}
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2: conditionals are answered from cache", n)
	}
}

func TestHEAD(t *testing.T) {
	o := startOrigin(t, fixed("hello world", "Cache-Control", "max-age=60", "Content-Type", "application/octet-stream"))
	e := startEdge(t, testConfig(o.addr()))
	// A HEAD miss fetches the object with GET and stores it.
	r := e.do(http.MethodHead, "/")
	if r.status != 200 || r.body != "" || r.get("Content-Length") != "11" {
		t.Errorf("HEAD miss: %d body %q Content-Length %q", r.status, r.body, r.get("Content-Length"))
	}
	if m := o.last.Load().Method; m != http.MethodGet {
		t.Errorf("origin saw %s, want GET", m)
	}
	if r := e.get("/"); r.get("X-Cache") != "HIT" || r.body != "hello world" {
		t.Errorf("GET after HEAD: %q %q", r.get("X-Cache"), r.body)
	}
	r = e.do(http.MethodHead, "/")
	if r.get("X-Cache") != "HIT" || r.get("Content-Length") != "11" || r.body != "" {
		t.Errorf("HEAD hit: %q Content-Length %q body %q", r.get("X-Cache"), r.get("Content-Length"), r.body)
	}
}

func TestUnsafeMethodsInvalidate(t *testing.T) {
	var version atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost || r.Method == http.MethodDelete {
			version.Add(1)
			w.Header().Set("Location", "/other")
			w.Header().Set("Content-Location", "http://elsewhere.example/x")
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	e := startEdge(t, testConfig(o.addr()))
	e.get("/item")
	e.get("/other")
	e.settle()
	if r := e.get("/item"); r.get("X-Cache") != "HIT" {
		t.Fatalf("not cached: %q", r.get("X-Cache"))
	}
	r := doURL(t, http.MethodPost, e.url+"/item", "data")
	if r.status != 201 || r.get("X-Cache") != "PASS" {
		t.Errorf("POST: %d %q", r.status, r.get("X-Cache"))
	}
	if r := e.get("/item"); r.body != "v1" || r.get("X-Cache") != "MISS" {
		t.Errorf("after POST: %q %q, want v1 MISS", r.body, r.get("X-Cache"))
	}
	if r := e.get("/other"); r.get("X-Cache") != "MISS" {
		t.Errorf("Location /other not invalidated: %q", r.get("X-Cache"))
	}
	// A failed unsafe request invalidates nothing.
	o2 := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "x")
	})
	e2 := startEdge(t, testConfig(o2.addr()))
	e2.get("/z")
	doURL(t, http.MethodPut, e2.url+"/z", "data")
	e2.settle()
	if r := e2.get("/z"); r.get("X-Cache") != "HIT" {
		t.Errorf("after a 403 PUT: %q, want HIT", r.get("X-Cache"))
	}
}

func TestCoalescing(t *testing.T) {
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "shared")
	})
	e := startEdge(t, testConfig(o.addr()))
	const n = 100
	var wg sync.WaitGroup
	results := make(chan response, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- e.get("/hot")
		}()
	}
	eventually(t, "99 coalesced waiters", func() bool { return counter(e.m.coalesced) >= n-1 })
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != 200 || r.body != "shared" {
			t.Errorf("got %d %q", r.status, r.body)
		}
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin fetches = %d, want 1", got)
	}
	// The request right after is a hit, even before ristretto applies Set.
	if r := e.get("/hot"); r.get("X-Cache") != "HIT" {
		t.Errorf("after the fetch: %q, want HIT", r.get("X-Cache"))
	}
}

func TestUncacheableNotSerialised(t *testing.T) {
	var inside, maxInside atomic.Int64
	gate := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n := inside.Add(1)
		for {
			m := maxInside.Load()
			if n <= m || maxInside.CompareAndSwap(m, n) {
				break
			}
		}
		if r.Header.Get("X-Wait") != "" {
			<-gate
		}
		inside.Add(-1)
		w.Header().Set("Cache-Control", "private")
		fmt.Fprint(w, "mine")
	})
	e := startEdge(t, testConfig(o.addr()))
	e.get("/u") // learns: uncacheable (hit-for-miss)
	e.settle()
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get("/u", "X-Wait", "1"); r.body != "mine" || r.get("X-Cache") != "PASS" {
				t.Errorf("got %q %q", r.body, r.get("X-Cache"))
			}
		}()
	}
	eventually(t, "all requests at the origin at once", func() bool { return inside.Load() == n })
	close(gate)
	wg.Wait()
	if m := maxInside.Load(); m != n {
		t.Errorf("max concurrent origin requests = %d, want %d (not serialised)", m, n)
	}
}

func TestOriginFailures(t *testing.T) {
	// Refused: nothing listens.
	c := testConfig("127.0.0.1:1")
	e := startEdge(t, c)
	start := time.Now()
	r := e.get("/")
	if r.status != http.StatusBadGateway || r.get("X-Cache") != "ERROR" {
		t.Errorf("refused: %d %q, want 502 ERROR", r.status, r.get("X-Cache"))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refused took %s", d)
	}
	if r.get("Cache-Control") != "no-store" {
		t.Errorf("error Cache-Control = %q", r.get("Cache-Control"))
	}
	// Timeout: the origin does not answer in time.
	block := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { <-block })
	t.Cleanup(func() { close(block) })
	c = testConfig(o.addr())
	c.Backends.FirstByteTimeout = 200 * time.Millisecond
	e = startEdge(t, c)
	if r := e.get("/slow"); r.status != http.StatusGatewayTimeout {
		t.Errorf("timeout: %d, want 504", r.status)
	}
}

func TestGracefulShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		fmt.Fprint(w, "finished")
	})
	c := testConfig(o.addr())
	reg := newTestRegistry()
	s := mustNew(t, c, discardLogger(), reg, seams{})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	got := make(chan response, 1)
	go func() { got <- doURL(t, http.MethodGet, "http://"+s.Addr()+"/slow", "") }()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(t.Context()) }()
	eventually(t, "draining", s.draining.Load)
	if r := doURL(t, http.MethodGet, "http://"+s.AdminAddr()+"/healthz", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("healthz while draining: %d, want 503", r.status)
	}
	close(release)
	if r := <-got; r.status != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %d %q", r.status, r.body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestSmallFixes(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Cookie")
		fmt.Fprintf(w, "%s %s", r.Method, r.Header.Get("Cookie"))
	})
	e := startEdge(t, testConfig(o.addr()))
	// OPTIONS * is answered by the edge.
	if status, closed := e.raw("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.HasPrefix(status, "200") || closed {
		t.Errorf("OPTIONS *: %q closed=%t", status, closed)
	}
	// Vary: Cookie does not split on analytics cookies the edge strips.
	e.get("/v", "Cookie", "_ga=1")
	e.settle()
	if r := e.get("/v", "Cookie", "_ga=2; _gid=3"); r.get("X-Cache") != "HIT" || r.body != "GET " {
		t.Errorf("Vary: Cookie with other analytics cookies: %q %q, want a HIT of the cookie-less variant", r.get("X-Cache"), r.body)
	}
	// An unknown method does not invalidate.
	e.get("/m")
	e.settle()
	doURL(t, "FOO", e.url+"/m", "")
	if r := e.get("/m"); r.get("X-Cache") != "HIT" {
		t.Errorf("after FOO /m: %q, want HIT", r.get("X-Cache"))
	}
	// Ports beyond 65535 are bad hosts.
	if status, _ := e.raw("GET / HTTP/1.1\r\nHost: a:70000\r\n\r\n"); !strings.HasPrefix(status, "400") {
		t.Errorf("Host a:70000: %q, want 400", status)
	}
}
