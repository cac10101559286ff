package edge

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is an origin whose answer per path the test sets: headers,
// status and body, with conditional requests answered 304 when the ETag
// matches.
type scripted struct {
	*recorder
	mu      sync.Mutex // guards answers
	answers map[string]answer
}

type answer struct {
	status  int
	headers []string // name, value pairs
	body    string
	// notModified, when set, is the head of the 304 sent to a matching
	// conditional request.
	notModified []string
}

func startScripted(t testing.TB) *scripted {
	t.Helper()
	s := &scripted{answers: map[string]answer{}}
	s.recorder = startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		a, ok := s.answers[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		etag := ""
		for i := 0; i+1 < len(a.headers); i += 2 {
			w.Header().Add(a.headers[i], a.headers[i+1])
			if a.headers[i] == "ETag" {
				etag = a.headers[i+1]
			}
		}
		if inm := r.Header.Get("If-None-Match"); etag != "" && inm == etag {
			h := w.Header()
			clear(h)
			for i := 0; i+1 < len(a.notModified); i += 2 {
				h.Add(a.notModified[i], a.notModified[i+1])
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if a.status != 0 {
			w.WriteHeader(a.status)
		}
		if r.Method != http.MethodHead {
			fmt.Fprint(w, a.body)
		}
	})
	return s
}

func (s *scripted) set(path string, a answer) {
	s.mu.Lock()
	s.answers[path] = a
	s.mu.Unlock()
}

// cacheStatusTTL reads "ttl=N" from a Cache-Status value.
func cacheStatusTTL(cs string) (int, bool) {
	_, after, ok := strings.Cut(cs, "ttl=")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(after, ';'); i >= 0 {
		after = after[:i]
	}
	n, err := strconv.Atoi(strings.TrimSpace(after))
	return n, err == nil
}

// TestCacheControlMatrix checks what is stored, for how long, and what is
// served after expiry, for combinations of Cache-Control, Expires, Date and
// Age (RFC 9111 §4.2, §5.2.2), with the edge's defaults (default TTL 120 s,
// grace 10 s, keep 0). Every case runs on one edge: its own path, primed at
// time 0, read again at 0 and after 61 s.
func TestCacheControlMatrix(t *testing.T) {
	now := time.Now().UTC()
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	type tc struct {
		name    string
		headers []string
		status  int
		// at0 is X-Cache of the second request at time 0 ("" = not HIT nor
		// STALE, i.e. fetched again); ttl the Cache-Status ttl on a HIT
		// (-1: do not check).
		at0 string
		ttl int
		// at61 is X-Cache 61 s later.
		at61 string
	}
	cases := []tc{
		{"max-age", []string{"Cache-Control", "max-age=60"}, 0, "HIT", 60, "STALE"},
		{"public max-age", []string{"Cache-Control", "public, max-age=60"}, 0, "HIT", 60, "STALE"},
		{"upper-case directive", []string{"Cache-Control", "MAX-AGE=60"}, 0, "HIT", 60, "STALE"},
		{"s-maxage wins", []string{"Cache-Control", "max-age=600, s-maxage=30"}, 0, "HIT", 30, "MISS"},
		{"s-maxage=0 wins over max-age", []string{"Cache-Control", "max-age=600, s-maxage=0"}, 0, "", -1, ""},
		{"max-age=0: grace", []string{"Cache-Control", "max-age=0"}, 0, "STALE", -1, "MISS"},
		{"conflicting max-age is stale", []string{"Cache-Control", "max-age=60, max-age=120"}, 0, "STALE", -1, "MISS"},
		{"conflicting max-age on two lines", []string{"Cache-Control", "max-age=60", "Cache-Control", "max-age=120"}, 0, "STALE", -1, "MISS"},
		{"bad max-age is stale", []string{"Cache-Control", "max-age=abc"}, 0, "STALE", -1, "MISS"},
		{"negative max-age is stale", []string{"Cache-Control", "max-age=-5"}, 0, "STALE", -1, "MISS"},
		{"huge max-age is capped, not overflowed", []string{"Cache-Control", "max-age=99999999999999999999"}, 0, "HIT", 1 << 31, "HIT"},
		{"must-revalidate: no grace", []string{"Cache-Control", "max-age=60, must-revalidate"}, 0, "HIT", 60, "MISS"},
		{"proxy-revalidate: no grace", []string{"Cache-Control", "max-age=60, proxy-revalidate"}, 0, "HIT", 60, "MISS"},
		{"stale-while-revalidate", []string{"Cache-Control", "max-age=30, stale-while-revalidate=60"}, 0, "HIT", 30, "STALE"},
		{"private", []string{"Cache-Control", "private, max-age=60"}, 0, "", -1, ""},
		{"qualified private", []string{"Cache-Control", `private="X-User", max-age=60`}, 0, "", -1, ""},
		{"private on a second line", []string{"Cache-Control", "max-age=60", "Cache-Control", "private"}, 0, "", -1, ""},
		{"no-store", []string{"Cache-Control", "no-store, max-age=60"}, 0, "", -1, ""},
		{"no-cache without validator", []string{"Cache-Control", "no-cache, max-age=60"}, 0, "", -1, ""},
		{"qualified no-cache without validator", []string{"Cache-Control", `no-cache="Set-Cookie", max-age=60`}, 0, "", -1, ""},
		{"no-cache with validator", []string{"Cache-Control", "no-cache, max-age=60", "ETag", `"nc"`}, 0, "REVALIDATED", -1, "MISS"},
		{"must-understand with no-store", []string{"Cache-Control", "max-age=60, must-understand, no-store"}, 0, "HIT", 60, "STALE"},
		{"immutable", []string{"Cache-Control", "max-age=60, immutable"}, 0, "HIT", 60, "STALE"},
		{"Set-Cookie", []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, 0, "", -1, ""},
		{"Vary: *", []string{"Cache-Control", "max-age=60", "Vary", "*"}, 0, "", -1, ""},
		{"Vary with a bad field name", []string{"Cache-Control", "max-age=60", "Vary", "Accept-Language, (x)"}, 0, "", -1, ""},
		{"Expires", []string{"Date", date(0), "Expires", date(30 * time.Second)}, 0, "HIT", 30, "MISS"},
		{"Expires with Date hours behind", []string{"Date", date(-3 * time.Hour), "Expires", date(-3*time.Hour + 30*time.Second)}, 0, "HIT", 30, "MISS"},
		{"Expires with Date hours ahead", []string{"Date", date(3 * time.Hour), "Expires", date(3*time.Hour + 30*time.Second)}, 0, "HIT", 30, "MISS"},
		{"max-age over Expires", []string{"Cache-Control", "max-age=60", "Expires", date(-time.Hour)}, 0, "HIT", 60, "STALE"},
		{"invalid Expires is expired", []string{"Expires", "0"}, 0, "STALE", -1, "MISS"},
		{"Expires in the past", []string{"Date", date(0), "Expires", date(-time.Hour)}, 0, "STALE", -1, "MISS"},
		{"Age counts", []string{"Cache-Control", "max-age=60", "Age", "40"}, 0, "HIT", 20, "MISS"},
		{"Age past max-age and grace", []string{"Cache-Control", "max-age=60", "Age", "100"}, 0, "", -1, ""},
		{"bad Age is ignored", []string{"Cache-Control", "max-age=60", "Age", "x1"}, 0, "HIT", 60, "STALE"},
		{"negative Age is ignored", []string{"Cache-Control", "max-age=60", "Age", "-30"}, 0, "HIT", 60, "STALE"},
		{"Date hours behind does not age it", []string{"Cache-Control", "max-age=60", "Date", date(-3 * time.Hour)}, 0, "HIT", 60, "STALE"},
		{"Date hours ahead does not extend it", []string{"Cache-Control", "max-age=60", "Date", date(3 * time.Hour)}, 0, "HIT", 60, "STALE"},
		{"default TTL", nil, 0, "HIT", 120, "HIT"},
		{"404 default TTL", nil, 404, "HIT", 120, "HIT"},
		{"204", []string{"Cache-Control", "max-age=60"}, 204, "HIT", 60, "STALE"},
		{"302 without freshness", []string{"Location", "/x"}, 302, "", -1, ""},
		{"302 with freshness", []string{"Location", "/x", "Cache-Control", "max-age=60"}, 302, "HIT", 60, "STALE"},
		{"206 from the origin", []string{"Cache-Control", "max-age=60", "Content-Range", "bytes 0-1/10"}, 206, "", -1, ""},
		{"500", []string{"Cache-Control", "max-age=60"}, 500, "", -1, ""},
		{"403", []string{"Cache-Control", "max-age=60"}, 403, "", -1, ""},
		{"no-store on a 404", []string{"Cache-Control", "no-store"}, 404, "", -1, ""},
	}
	o := startScripted(t)
	e := startEdge(t, testConfig(o.addr()))
	for i, c := range cases {
		o.set(fmt.Sprintf("/m%d", i), answer{status: c.status, headers: c.headers, body: "body"})
	}
	xcache := func(r response) string {
		switch x := r.get("X-Cache"); x {
		case "MISS", "PASS":
			return ""
		default:
			return x
		}
	}
	for i, c := range cases {
		path := fmt.Sprintf("/m%d", i)
		e.get(path)
		e.settle()
		r := e.get(path)
		if got := xcache(r); got != c.at0 {
			t.Errorf("%s: second request X-Cache %q (%s), want %q", c.name, r.get("X-Cache"), r.get("Cache-Status"), c.at0)
			continue
		}
		if c.ttl >= 0 {
			ttl, ok := cacheStatusTTL(r.get("Cache-Status"))
			if !ok || ttl > c.ttl || ttl < c.ttl-1 {
				t.Errorf("%s: Cache-Status %q, want ttl=%d", c.name, r.get("Cache-Status"), c.ttl)
			}
		}
		if c.at0 != "" && r.body != "body" && c.status != 204 {
			t.Errorf("%s: body %q", c.name, r.body)
		}
	}
	// The STALE answers started background refreshes: the clock moves on
	// only when they are done (one finishing after the move would store a
	// copy that is fresh at 61 s).
	stale := 0
	for _, c := range cases {
		if c.at0 == "STALE" {
			stale++
		}
	}
	eventually(t, "the background refreshes", func() bool {
		done := 0.0
		for _, r := range []string{"ok", "not-modified", "error"} {
			done += counter(e.m.refreshes.WithLabelValues(r))
		}
		return done >= float64(stale)
	})
	e.settle()
	e.advance(61 * time.Second)
	for i, c := range cases {
		path := fmt.Sprintf("/m%d", i)
		r := e.get(path)
		want := c.at61
		if want == "MISS" {
			want = ""
		}
		if got := xcache(r); got != want {
			t.Errorf("%s: after 61 s X-Cache %q (%s), want %q", c.name, r.get("X-Cache"), r.get("Cache-Status"), c.at61)
		}
	}
}

// TestAgeNeverDecreases: Age grows with the freshness clock on every hit,
// starts from the origin's Age, and a clock that moves forward in jumps
// never makes it go back (docs/RELIABILITY.md, promise 9).
func TestAgeNeverDecreases(t *testing.T) {
	o := startScripted(t)
	o.set("/a", answer{headers: []string{"Cache-Control", "max-age=100000", "Age", "7"}, body: "x"})
	e := startEdge(t, testConfig(o.addr()))
	e.get("/a")
	e.settle()
	last := -1
	for _, jump := range []time.Duration{0, time.Second, 0, 59 * time.Second, time.Hour, 0, 24 * time.Hour, 500 * time.Millisecond} {
		e.advance(jump)
		r := e.get("/a")
		age, err := strconv.Atoi(r.get("Age"))
		if err != nil || r.get("X-Cache") != "HIT" {
			t.Fatalf("after +%s: Age %q X-Cache %q", jump, r.get("Age"), r.get("X-Cache"))
		}
		if age < last || age < 7 {
			t.Errorf("after +%s: Age %d, previous %d (origin said 7)", jump, age, last)
		}
		last = age
	}
	if want := 7 + int((25*time.Hour + 60*time.Second + 500*time.Millisecond).Seconds()); last != want {
		t.Errorf("final Age %d, want %d", last, want)
	}
}

// TestRevalidationMerges304: a 304 refreshes the stored object without a
// body (RFC 9111 §4.3.4): the stored body stays, the 304's end-to-end
// headers replace the stored ones, its freshness applies from now, and
// what a 304 may not change (Content-Type, Content-Length, Content-Encoding)
// does not change. A 304 that forbids storing is served once, not kept.
func TestRevalidationMerges304(t *testing.T) {
	o := startScripted(t)
	c := testConfig(o.addr())
	c.Cache.Grace = 0
	c.Cache.Keep = time.Hour
	e := startEdge(t, c)
	stored := []string{"Cache-Control", "max-age=10", "ETag", `"e1"`, "Content-Type", "text/plain", "X-Kept", "old", "X-Replaced", "old"}
	o.set("/r", answer{headers: stored, body: "the body", notModified: []string{
		"Cache-Control", "max-age=100", "ETag", `"e1"`, "X-Replaced", "new", "X-Added", "yes",
		"Content-Type", "application/evil", "Content-Length", "999", "Content-Encoding", "br",
	}})
	e.get("/r")
	e.settle()
	e.advance(20 * time.Second)
	r := e.get("/r")
	if r.get("X-Cache") != "REVALIDATED" || r.body != "the body" {
		t.Fatalf("revalidation: %q %q", r.get("X-Cache"), r.body)
	}
	check := func(r response, when string) {
		t.Helper()
		for name, want := range map[string]string{
			"X-Kept": "old", "X-Replaced": "new", "X-Added": "yes", "Content-Type": "text/plain",
			"Content-Encoding": "", "Content-Length": "8", "ETag": `"e1"`,
		} {
			if got := r.get(name); got != want {
				t.Errorf("%s: %s %q, want %q", when, name, got, want)
			}
		}
		if r.body != "the body" {
			t.Errorf("%s: body %q", when, r.body)
		}
	}
	check(r, "revalidated")
	e.settle()
	e.advance(50 * time.Second) // within the new max-age=100
	r = e.get("/r")
	if r.get("X-Cache") != "HIT" || r.get("Age") != "50" {
		t.Errorf("after the 304: X-Cache %q Age %q, want HIT 50", r.get("X-Cache"), r.get("Age"))
	}
	check(r, "hit after the 304")

	// A 304 that says no-store: this reader gets the body, nobody after.
	o.set("/n", answer{headers: []string{"Cache-Control", "max-age=10", "ETag", `"n1"`}, body: "nbody",
		notModified: []string{"Cache-Control", "no-store", "ETag", `"n1"`}})
	e.get("/n")
	e.settle()
	e.advance(20 * time.Second)
	if r := e.get("/n"); r.body != "nbody" || r.status != 200 {
		t.Errorf("no-store 304: %d %q", r.status, r.body)
	}
	e.settle()
	before := len(o.requests())
	if r := e.get("/n"); r.get("X-Cache") == "HIT" || len(o.requests()) == before {
		t.Errorf("after a no-store 304 the object was still served from cache: %q", r.get("X-Cache"))
	}
	// A 304 with Set-Cookie is not stored either.
	o.set("/c", answer{headers: []string{"Cache-Control", "max-age=10", "ETag", `"c1"`}, body: "cbody",
		notModified: []string{"Cache-Control", "max-age=100", "ETag", `"c1"`, "Set-Cookie", "s=1"}})
	e.get("/c")
	e.settle()
	e.advance(20 * time.Second)
	e.get("/c")
	e.settle()
	if r := e.get("/c"); r.get("X-Cache") == "HIT" || r.get("Set-Cookie") != "" {
		t.Errorf("after a 304 with Set-Cookie: X-Cache %q Set-Cookie %q", r.get("X-Cache"), r.get("Set-Cookie"))
	}
}

// TestHopByHop: hop-by-hop headers and those named in Connection are
// removed in both directions, on misses and hits (RFC 9110 §7.6.1).
func TestHopByHop(t *testing.T) {
	o := startScripted(t)
	o.set("/h", answer{headers: []string{
		"Cache-Control", "max-age=60", "Connection", "X-Conn-Only, Keep-Alive", "X-Conn-Only", "1",
		"Keep-Alive", "timeout=5", "Proxy-Authenticate", "Basic", "Upgrade", "h2c", "Trailer", "X-T", "X-End", "kept",
	}, body: "hop"})
	e := startEdge(t, testConfig(o.addr()))
	for i := range 2 {
		r := e.get("/h", "Connection", "X-Secret, keep-alive", "X-Secret", "s", "Keep-Alive", "timeout=1",
			"TE", "trailers", "Trailer", "X-T", "Upgrade", "websocket", "Proxy-Authorization", "Basic abc",
			"Proxy-Connection", "keep-alive")
		if r.body != "hop" || r.get("X-End") != "kept" {
			t.Fatalf("request %d: %d %q X-End %q", i, r.status, r.body, r.get("X-End"))
		}
		for _, h := range []string{"X-Conn-Only", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Trailer"} {
			if v := r.get(h); v != "" {
				t.Errorf("request %d (%s): %s %q reached the client", i, r.get("X-Cache"), h, v)
			}
		}
		if c := r.get("Connection"); c != "" && !strings.EqualFold(c, "keep-alive") && !strings.EqualFold(c, "close") {
			t.Errorf("request %d: Connection %q reached the client", i, c)
		}
		e.settle()
	}
	got := o.lastSeen(t)
	for _, h := range []string{"X-Secret", "Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Connection"} {
		if v := got.header.Get(h); v != "" {
			t.Errorf("%s %q reached the origin", h, v)
		}
	}
}

// TestViaAndForwarded: Via is appended to both ways; X-Forwarded-For is
// appended to only for trusted proxies and replaced otherwise;
// X-Forwarded-Proto is the edge's; X-Real-IP never passes.
func TestViaAndForwarded(t *testing.T) {
	o := startScripted(t)
	o.set("/v", answer{headers: []string{"Cache-Control", "max-age=60", "Via", "1.1 origin-lb"}, body: "v"})
	f := func(trusted []string, wantXFF string, headers ...string) {
		t.Helper()
		c := testConfig(o.addr())
		c.Edge.TrustedProxies = trusted
		c.Edge.ForwardedProto = "https"
		e := startEdge(t, c)
		for i := range 2 {
			r := e.get("/v", headers...)
			if got := r.get("Via"); got != "1.1 origin-lb, 1.1 lakka" {
				t.Errorf("trusted %v request %d (%s): Via to the client %q", trusted, i, r.get("X-Cache"), got)
			}
			e.settle()
		}
		// The direct fetch (credentials) shows what the origin receives.
		e.get("/v", append([]string{"Authorization", "Bearer t"}, headers...)...)
		got := o.lastSeen(t)
		if v := got.header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != wantXFF {
			t.Errorf("trusted %v: X-Forwarded-For %q, want %q", trusted, v, wantXFF)
		}
		if v := got.header.Values("X-Forwarded-Proto"); len(v) != 1 || v[0] != "https" {
			t.Errorf("trusted %v: X-Forwarded-Proto %q, want https", trusted, v)
		}
		if v := got.header.Values("Via"); len(v) != 1 || v[0] != "1.0 client-proxy, 1.1 lakka" {
			t.Errorf("trusted %v: Via to the origin %q", trusted, v)
		}
		if v := got.header.Get("X-Real-Ip"); v != "" {
			t.Errorf("trusted %v: X-Real-IP %q reached the origin", trusted, v)
		}
	}
	spoof := []string{"X-Forwarded-For", "6.6.6.6", "X-Real-IP", "6.6.6.6", "Via", "1.0 client-proxy"}
	f(nil, "127.0.0.1", spoof...)
	f([]string{"10.0.0.0/8"}, "127.0.0.1", spoof...)
	f([]string{"127.0.0.1/32"}, "6.6.6.6, 127.0.0.1", spoof...)
	f([]string{"127.0.0.0/8", "::1/128"}, "1.1.1.1, 2.2.2.2, 127.0.0.1",
		"X-Forwarded-For", "1.1.1.1", "X-Forwarded-For", "2.2.2.2", "Via", "1.0 client-proxy")
}

// TestHEADMatrix: HEAD is answered from the stored object with the length
// the matching GET would have, in either encoding, and never with a body.
func TestHEADMatrix(t *testing.T) {
	o := startScripted(t)
	page := strings.Repeat("compressible text ", 200)
	o.set("/t", answer{headers: []string{"Cache-Control", "max-age=60", "Content-Type", "text/html"}, body: page})
	o.set("/p", answer{headers: []string{"Cache-Control", "private"}, body: "private body"})
	o.set("/big", answer{headers: []string{"Cache-Control", "max-age=60", "Content-Type", "application/octet-stream"}, body: strings.Repeat("b", 2<<20)})
	e := startEdge(t, testConfig(o.addr()))
	for _, ae := range []string{"", "gzip"} {
		get := e.get("/t", "Accept-Encoding", ae)
		e.settle()
		head := e.do(http.MethodHead, "/t", "Accept-Encoding", ae)
		if head.body != "" || head.status != 200 {
			t.Errorf("HEAD /t (%q): %d body %q", ae, head.status, head.body)
		}
		if got, want := head.get("Content-Length"), strconv.Itoa(len(get.body)); got != want {
			t.Errorf("HEAD /t (%q): Content-Length %s, GET body is %s bytes", ae, got, want)
		}
		if head.get("Content-Encoding") != get.get("Content-Encoding") || head.get("ETag") != get.get("ETag") {
			t.Errorf("HEAD /t (%q): Content-Encoding %q ETag %q, GET had %q %q", ae,
				head.get("Content-Encoding"), head.get("ETag"), get.get("Content-Encoding"), get.get("ETag"))
		}
	}
	// Relayed answers (not stored, too large, passed): the same status,
	// and a Content-Length only when it is the GET's (RFC 9110 §8.6).
	o.set("/big-cl", answer{headers: []string{"Cache-Control", "max-age=60", "Content-Type", "application/octet-stream", "Content-Length", strconv.Itoa(2 << 20)}, body: strings.Repeat("c", 2<<20)})
	o.set("/small-ns", answer{headers: []string{"Cache-Control", "no-store", "Content-Length", "5"}, body: "small"})
	for _, path := range []string{"/p", "/big", "/big-cl", "/small-ns", "/missing"} {
		for _, extra := range [][]string{nil, {"Cookie", "s=1"}} {
			head := e.do(http.MethodHead, path, extra...)
			if head.body != "" {
				t.Errorf("HEAD %s %v: body %q", path, extra, head.body)
			}
			get := e.get(path, extra...)
			if head.status != get.status {
				t.Errorf("HEAD %s %v: status %d, GET %d", path, extra, head.status, get.status)
			}
			if cl := head.header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(get.body)) {
				t.Errorf("HEAD %s %v (%s): Content-Length %s, GET body is %d bytes", path, extra, head.get("X-Cache"), cl, len(get.body))
			}
		}
	}
}

// TestRangeMatrix: single ranges are served from the stored object (206),
// unsatisfiable ones get 416, and anything else the whole object;
// If-Range uses strong comparison (RFC 9110 §13.1.5, §14).
func TestRangeMatrix(t *testing.T) {
	o := startScripted(t)
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	o.set("/r", answer{headers: []string{"Cache-Control", "max-age=60", "ETag", `"r1"`, "Last-Modified", lm, "Content-Type", "text/plain"}, body: "0123456789"})
	o.set("/w", answer{headers: []string{"Cache-Control", "max-age=60", "ETag", `W/"w1"`, "Content-Type", "application/octet-stream"}, body: "0123456789"})
	o.set("/404", answer{status: 404, headers: []string{"Cache-Control", "max-age=60"}, body: "0123456789"})
	o.set("/gz", answer{headers: []string{"Cache-Control", "max-age=60", "Content-Type", "text/plain"}, body: strings.Repeat("0123456789", 100)})
	e := startEdge(t, testConfig(o.addr()))
	f := func(path string, wantStatus int, wantBody, wantRange string, headers ...string) {
		t.Helper()
		for i := range 2 { // miss, then hit
			r := e.get(path, headers...)
			if r.status != wantStatus || r.body != wantBody || r.get("Content-Range") != wantRange {
				t.Errorf("%s %v (request %d, %s): %d %q Content-Range %q, want %d %q %q",
					path, headers, i, r.get("X-Cache"), r.status, r.body, r.get("Content-Range"), wantStatus, wantBody, wantRange)
			}
			if r.get("Content-Encoding") != "" && wantStatus == 206 {
				t.Errorf("%s %v: a range of an encoded body", path, headers)
			}
			e.settle()
		}
	}
	all := "0123456789"
	f("/r", 206, "01234", "bytes 0-4/10", "Range", "bytes=0-4")
	f("/r", 206, "789", "bytes 7-9/10", "Range", "bytes=-3")
	f("/r", 206, all, "bytes 0-9/10", "Range", "bytes=-30")
	f("/r", 206, "6789", "bytes 6-9/10", "Range", "bytes=6-")
	f("/r", 206, "89", "bytes 8-9/10", "Range", "bytes=8-100")
	f("/r", 206, "5", "bytes 5-5/10", "Range", "BYTES=5-5")
	f("/r", 416, "", "bytes */10", "Range", "bytes=10-")
	f("/r", 416, "", "bytes */10", "Range", "bytes=-0")
	f("/r", 200, all, "", "Range", "bytes=0-1,3-4")
	f("/r", 200, all, "", "Range", "bytes=5-2")
	f("/r", 200, all, "", "Range", "items=0-1")
	f("/r", 200, all, "", "Range", "bytes=0-99999999999999999999")
	f("/r", 200, all, "", "Range", "bytes=x-y")
	f("/r", 200, all, "", "Range", "bytes=")
	f("/r", 206, "01", "bytes 0-1/10", "Range", "bytes=0-1", "If-Range", `"r1"`)
	f("/r", 200, all, "", "Range", "bytes=0-1", "If-Range", `"other"`)
	f("/r", 200, all, "", "Range", "bytes=0-1", "If-Range", `W/"r1"`)
	f("/r", 206, "01", "bytes 0-1/10", "Range", "bytes=0-1", "If-Range", lm)
	f("/r", 200, all, "", "Range", "bytes=0-1", "If-Range", time.Now().UTC().Format(http.TimeFormat))
	f("/r", 200, all, "", "Range", "bytes=0-1", "If-Range", "garbage")
	f("/w", 200, all, "", "Range", "bytes=0-1", "If-Range", `W/"w1"`)
	f("/404", 404, all, "", "Range", "bytes=0-1")
	f("/gz", 206, "0123456789", "bytes 990-999/1000", "Range", "bytes=990-", "Accept-Encoding", "gzip")
	if r := e.do(http.MethodHead, "/r", "Range", "bytes=0-1"); r.status != 200 || r.get("Content-Length") != "10" {
		t.Errorf("HEAD with Range: %d Content-Length %q, want 200 10", r.status, r.get("Content-Length"))
	}
	if n := len(o.requests()); n != 4 {
		t.Errorf("origin fetches %d, want one per object (4)", n)
	}
	for _, s := range o.requests() {
		if s.header.Get("Range") != "" || s.header.Get("If-Range") != "" {
			t.Errorf("origin saw Range %q If-Range %q", s.header.Get("Range"), s.header.Get("If-Range"))
		}
	}
}

// TestAuthorizationMatrix: a request with credentials is never answered
// from cache; its answer is stored only when the response says it may be
// shared (RFC 9111 §3.5).
func TestAuthorizationMatrix(t *testing.T) {
	o := startScripted(t)
	e := startEdge(t, testConfig(o.addr()))
	f := func(cc string, stored bool) {
		t.Helper()
		path := "/a/" + strings.NewReplacer(" ", "", ",", "-", "=", "").Replace(cc)
		o.set(path, answer{headers: []string{"Cache-Control", cc}, body: "for the user"})
		for range 2 {
			if r := e.get(path, "Authorization", "Basic dXNlcjpwdw=="); r.get("X-Cache") == "HIT" {
				t.Errorf("%q: a request with credentials was answered from cache", cc)
			}
			e.settle()
		}
		if r := e.get(path); (r.get("X-Cache") == "HIT") != stored {
			t.Errorf("%q: anonymous request X-Cache %q, want stored=%v", cc, r.get("X-Cache"), stored)
		}
	}
	f("max-age=60", false)
	f("public, max-age=60", true)
	f("s-maxage=60", true)
	f("must-revalidate, max-age=60", true)
	f("public, private, max-age=60", false)
	f("public, no-store, max-age=60", false)
	f("public", true)
}
