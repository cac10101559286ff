package edge

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// readWire reads one response off the wire as it came: the header, then
// Content-Length bytes of body (none for HEAD and 304).
func readWire(t *testing.T, br *bufio.Reader, header bool) []byte {
	t.Helper()
	var out []byte
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the header: %v (so far %q)", err, out)
		}
		out = append(out, line...)
		if string(line) == "\r\n" {
			break
		}
		if k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":")); ok && string(bytes.ToLower(k)) == "content-length" {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if header || bytes.HasPrefix(out, []byte("HTTP/1.1 304")) {
		return out
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatalf("reading %d bytes of body: %v", n, err)
	}
	return append(out, body...)
}

// ageLines finds the Age and TTL-left values of a response.
var ageLines = regexp.MustCompile(`(?m)^(Age: |Cache-Status: lakka; hit; ttl=)-?\d+\r$`)

// TestCopiedHitHeaderSameBytes: a hit that copies the kept header (Entry.header)
// sends the very bytes the long way sends, for every kind of request that
// serves a whole stored object: gzip and identity clients, HEAD, a Range,
// a conditional that does not match, an object stored identity, an object
// that varies.
func TestCopiedHitHeaderSameBytes(t *testing.T) {
	page := bytes.Repeat([]byte("<p>the council met on Tuesday</p>\n"), 200)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Date", "Fri, 27 Nov 2026 12:00:00 GMT")
		h.Set("Cache-Control", "public, max-age=600, stale-while-revalidate=30")
		h.Set("ETag", `"v1"`)
		h.Set("Last-Modified", "Fri, 27 Nov 2026 11:00:00 GMT")
		h.Set("Link", "</site--abc.css>; rel=preload; as=style")
		h.Set("X-Content-Version", "7")
		switch r.URL.Path {
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/lang":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Vary", "Accept-Language")
		default:
			h.Set("Content-Type", "text/html; charset=utf-8")
		}
		_, _ = w.Write(page)
	})
	c := testConfig(o.addr())
	c.Edge.DebugHeaders = false
	e := startEdge(t, c)
	conn, br := e.dial()
	send := func(method, path string, headers ...string) []byte {
		req := method + " " + path + " HTTP/1.1\r\nHost: example.com\r\n"
		for i := 0; i+1 < len(headers); i += 2 {
			req += headers[i] + ": " + headers[i+1] + "\r\n"
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
			t.Fatal(err)
		}
		return readWire(t, br, method == http.MethodHead)
	}
	ok := "HTTP/1.1 200 OK\r\n"
	for _, tc := range []struct {
		name, method, path string
		headers            []string
		line               string
	}{
		{"gzip client", "GET", "/a", []string{"Accept-Encoding", "gzip"}, ok},
		{"identity client", "GET", "/a", nil, ok},
		{"HEAD, gzip", "HEAD", "/a", []string{"Accept-Encoding", "gzip"}, ok},
		{"HEAD, identity", "HEAD", "/a", nil, ok},
		{"range", "GET", "/a", []string{"Range", "bytes=10-99"}, "HTTP/1.1 206 Partial Content\r\n"},
		{"unsatisfiable range", "GET", "/a", []string{"Range", "bytes=999999-"}, "HTTP/1.1 416 Requested Range Not Satisfiable\r\n"},
		{"no match", "GET", "/a", []string{"If-None-Match", `"other"`, "Accept-Encoding", "gzip"}, ok},
		{"stored identity", "GET", "/png", []string{"Accept-Encoding", "gzip"}, ok},
		{"varies", "GET", "/lang", []string{"Accept-Language", "fi", "Accept-Encoding", "gzip"}, ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh URL each time, so that the first hit goes the long way.
			path := tc.path + "?" + strconv.Itoa(int(e.store.NextID()))
			send("GET", path, tc.headers...) // the miss
			e.settle()
			// The first hit builds the header of its second, the next copies
			// it; the clock runs on between them, so a pair that straddles
			// a second (its Age or TTL left differ) is sent again.
			var long, copied []byte
			for range 3 {
				long = send(tc.method, path, tc.headers...)
				copied = send(tc.method, path, tc.headers...)
				if bytes.Equal(bytes.Join(ageLines.FindAll(long, -1), nil), bytes.Join(ageLines.FindAll(copied, -1), nil)) {
					break
				}
			}
			if !bytes.Contains(long, []byte("\r\nX-Cache: HIT\r\n")) {
				t.Fatalf("not a hit:\n%s", long)
			}
			if !bytes.HasPrefix(copied, []byte(tc.line)) {
				t.Errorf("status line %q, want %q", bytes.SplitN(copied, []byte("\n"), 2)[0], tc.line)
			}
			key := []byte("example.com" + path)
			en := e.stored(key)
			if en != nil && en.Kind == store.KindVary {
				var h fasthttp.RequestHeader
				for i := 0; i+1 < len(tc.headers); i += 2 {
					h.Add(tc.headers[i], tc.headers[i+1])
				}
				en = e.stored(cachekey.AppendVariant(nil, key, en.VaryNames, &h))
			}
			if en == nil || en.Headers() == nil {
				t.Fatalf("the hit kept no header")
			}
			copiedOne := false
			for i := range store.NumForms {
				if hh := en.Headers().Value().Forms[i].Cur.Load(); hh != nil && hh.Used.Load() {
					copiedOne = true
				}
			}
			if !copiedOne {
				t.Fatalf("the second hit did not copy the header the first kept")
			}
			if !bytes.Equal(long, copied) {
				t.Errorf("the copied header sends other bytes.\nlong way:\n%s\ncopied:\n%s", long, copied)
			}
		})
	}
}

var ageValue = regexp.MustCompile(`\r\nAge: (\d+)\r\n`)

// TestHitHeaderFollowsTheClock: the kept whole header of a hit is only copied
// within its second. As the entry ages, every hit sends its own Age and
// TTL left, and the bytes the long way sends. A soft purge in the same
// second turns the very next hit into STALE, whatever header was kept, and
// grace hits then copy STALE headers of their own.
func TestHitHeaderFollowsTheClock(t *testing.T) {
	page := string(bytes.Repeat([]byte("<p>the council met</p>\n"), 100))
	var fetches atomic.Int32
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			// Refreshes fail: the purged object stays in grace.
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=600, stale-while-revalidate=300")
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("ETag", `"v1"`)
		_, _ = io.WriteString(w, page)
	})
	c := testConfig(o.addr())
	c.Edge.DebugHeaders = false
	e := startEdge(t, c)
	lc := serveLoop(e)
	req := []byte("GET /story HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip\r\n\r\n")
	lc.send(req) // the miss
	e.settle()
	en := e.stored([]byte("example.com/story"))
	if en == nil {
		t.Fatal("not stored")
	}
	age := func(b []byte) int {
		m := ageValue.FindSubmatch(b)
		if m == nil {
			t.Fatalf("no Age in\n%s", b)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	// pair sends two hits: the first makes the header of its second, the
	// second copies it. The clock runs on between them, so a pair that
	// straddles a second is sent again.
	pair := func(what string) (long, copied []byte) {
		for range 3 {
			lc.send(req)
			long = append(long[:0], lc.last...)
			lc.send(req)
			copied = append(copied[:0], lc.last...)
			if age(long) != age(copied) {
				continue
			}
			if !bytes.Equal(long, copied) {
				t.Errorf("%s: the copied header sends other bytes.\nlong way:\n%s\ncopied:\n%s", what, long, copied)
			}
			item := en.Headers()
			if item == nil {
				t.Fatalf("%s: no headers kept", what)
			}
			hh := item.Value().Forms[cachepolicy.Gzip].Cur.Load()
			if hh == nil || !hh.Used.Load() || hh.Age != int64(age(copied)) {
				t.Fatalf("%s: the second hit did not copy a header of its second", what)
			}
			return long, copied
		}
		t.Fatalf("%s: three pairs of hits straddled a second each", what)
		return nil, nil
	}
	// steps sends n pairs ten seconds apart and returns their copied
	// answers, each checked to say X-Cache: want.
	steps := func(n int, name, want string) [][]byte {
		var out [][]byte
		for step := range n {
			if step > 0 {
				e.advance(10 * time.Second)
			}
			what := name + " " + strconv.Itoa(step)
			_, copied := pair(what)
			if !bytes.Contains(copied, []byte("\r\nX-Cache: "+want+"\r\n")) {
				t.Fatalf("%s: not X-Cache %s:\n%s", what, want, copied)
			}
			out = append(out, copied)
		}
		return out
	}
	prev := -1
	for step, copied := range steps(5, "step", "HIT") {
		a := age(copied)
		if prev >= 0 && a < prev+10 {
			t.Errorf("step %d: Age %d after %d and ten seconds", step, a, prev)
		}
		// The TTL left is 600 s less the exact age, in whole seconds.
		want1 := "Cache-Status: lakka; hit; ttl=" + strconv.Itoa(600-a) + "\r\n"
		want2 := "Cache-Status: lakka; hit; ttl=" + strconv.Itoa(600-a-1) + "\r\n"
		if !bytes.Contains(copied, []byte(want1)) && !bytes.Contains(copied, []byte(want2)) {
			t.Errorf("step %d: want %q or %q in\n%s", step, want1, want2, copied)
		}
		prev = a
	}
	// Soft purge within the second of the HIT header just copied: it must
	// not be copied again.
	e.store.Purge(store.Purge{URLs: [][]byte{en.URL()}, Soft: true}, e.clock.at(time.Now()))
	lc.send(req)
	if !bytes.Contains(lc.last, []byte("\r\nX-Cache: STALE\r\n")) || !bytes.Contains(lc.last, []byte("; detail=grace\r\n")) {
		t.Fatalf("after a soft purge:\n%s", lc.last)
	}
	eventually(t, "the failed refresh", func() bool { return fetches.Load() >= 2 })
	steps(2, "grace", "STALE")
}

// TestHitHeadersCounted: headers made by real hits are counted in the header
// pool as they come: a set when the first is made, then each encoding's
// header once (the headers of later seconds replace it), and given back when
// the object leaves the store.
func TestHitHeadersCounted(t *testing.T) {
	page := strings.Repeat("<p>the council met on Tuesday</p>\n", 60)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("ETag", `"v1"`)
		if r.URL.Path == "/png" {
			w.Header().Set("Content-Type", "image/png") // stored as sent
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8") // stored gzip
		}
		_, _ = io.WriteString(w, page)
	})
	c := testConfig(o.addr())
	c.Edge.DebugHeaders = false
	e := startEdge(t, c)
	lc := serveLoop(e)
	get := func(path, ae string) {
		lc.send([]byte("GET " + path + " HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: " + ae + "\r\n\r\n"))
	}
	used := func() int64 { u, _ := e.store.Headers.Stats(); return u }
	name := len(e.g().pol.name)
	get("/html", "gzip") // the misses
	get("/png", "gzip")
	e.settle()
	html, png := e.stored([]byte("example.com/html")), e.stored([]byte("example.com/png"))
	if html == nil || png == nil || html.Enc != cachepolicy.Gzip || png.Enc != cachepolicy.Identity {
		t.Fatalf("want /html stored gzip and /png identity")
	}
	want := int64(0)
	for _, step := range []struct {
		path, ae string
		add      int64
	}{
		{"/html", "gzip", headerSetCost + hitHeaderCost(html, cachepolicy.Gzip, name)},
		{"/html", "gzip", 0},
		{"/html", "identity", hitHeaderCost(html, cachepolicy.Identity, name)},
		{"/html", "identity", 0},
		{"/png", "gzip", headerSetCost + hitHeaderCost(png, cachepolicy.Identity, name)},
		{"/png", "identity", 0},
	} {
		for range 3 { // a second's turn makes another header: counted once
			get(step.path, step.ae)
		}
		e.advance(time.Second)
		get(step.path, step.ae)
		want += step.add
		if got := used(); got != want {
			t.Fatalf("after hits on %s (%s): the pool counts %d bytes, want %d", step.path, step.ae, got, want)
		}
	}
	if n := e.store.Purge(store.Purge{URLs: [][]byte{[]byte("example.com/html")}}, time.Now()); n != 1 {
		t.Fatalf("the purge removed %d objects, want 1", n)
	}
	// The store lets go of a removed entry asynchronously (ristretto).
	want = headerSetCost + hitHeaderCost(png, cachepolicy.Identity, name)
	eventually(t, "/html's headers given back", func() bool { return used() == want })
}
