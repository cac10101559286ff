package edge

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// readWire reads one response off the wire as it came: the head, then
// Content-Length bytes of body (none for HEAD and 304).
func readWire(t *testing.T, br *bufio.Reader, head bool) []byte {
	t.Helper()
	var out []byte
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the head: %v (so far %q)", err, out)
		}
		out = append(out, line...)
		if string(line) == "\r\n" {
			break
		}
		if k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":")); ok && string(bytes.ToLower(k)) == "content-length" {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if head || bytes.HasPrefix(out, []byte("HTTP/1.1 304")) {
		return out
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatalf("reading %d bytes of body: %v", n, err)
	}
	return append(out, body...)
}

var ageLines = regexp.MustCompile(`(?m)^(Age: \d+|Cache-Status: lakka; hit; ttl=\d+)\r$`)

// TestCopiedHeadSameBytes: a hit that copies the kept head (Entry.head)
// sends the very bytes the long way sends, for every kind of request that
// serves a whole stored object: gzip and identity clients, HEAD, a Range,
// a conditional that does not match, an object stored identity, an object
// that varies.
func TestCopiedHeadSameBytes(t *testing.T) {
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
			path := tc.path + "?" + strconv.Itoa(int(e.store.nextID.Load()))
			send("GET", path, tc.headers...) // the miss
			e.settle()
			long := send(tc.method, path, tc.headers...)
			copied := send(tc.method, path, tc.headers...)
			if !bytes.Contains(long, []byte("\r\nX-Cache: HIT\r\n")) {
				t.Fatalf("not a hit:\n%s", long)
			}
			if !bytes.HasPrefix(copied, []byte(tc.line)) {
				t.Errorf("status line %q, want %q", bytes.SplitN(copied, []byte("\n"), 2)[0], tc.line)
			}
			key := []byte("example.com" + path)
			en := e.store.get(key)
			if en != nil && en.kind == kindVary {
				en = nil
				for _, v := range *e.store.get(key).variantList.Load() {
					en = v
				}
			}
			if en == nil || en.head.Load() == nil {
				t.Fatalf("the hit kept no head")
			}
			// Age and the TTL left may tick between the two.
			long = ageLines.ReplaceAll(long, []byte("$1-"))
			copied = ageLines.ReplaceAll(copied, []byte("$1-"))
			if !bytes.Equal(long, copied) {
				t.Errorf("the copied head sends other bytes.\nlong way:\n%s\ncopied:\n%s", long, copied)
			}
		})
	}
}

var ageValue = regexp.MustCompile(`\r\nAge: (\d+)\r\n`)

// TestHitHeadFollowsTheClock: the kept whole head of a hit is only copied
// within its second. As the entry ages, every hit sends its own Age and
// TTL left, and the bytes the long way sends; a soft purge turns the very
// next hit into STALE, whatever head was kept.
func TestHitHeadFollowsTheClock(t *testing.T) {
	o := startOrigin(t, fixed(string(bytes.Repeat([]byte("<p>the council met</p>\n"), 100)),
		"Cache-Control", "public, max-age=600, stale-while-revalidate=30",
		"Content-Type", "text/html; charset=utf-8", "ETag", `"v1"`))
	c := testConfig(o.addr())
	c.Edge.DebugHeaders = false
	e := startEdge(t, c)
	lc := serveLoop(e)
	req := []byte("GET /story HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip\r\n\r\n")
	lc.send(req) // the miss
	e.settle()
	en := e.store.get([]byte("example.com/story"))
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
	// pair sends two hits: the first makes the head of its second, the
	// second copies it. The clock runs on between them, so a pair that
	// straddles a second is sent again.
	pair := func() (long, copied []byte) {
		for range 3 {
			lc.send(req)
			long = append(long[:0], lc.last...)
			lc.send(req)
			copied = append(copied[:0], lc.last...)
			if age(long) == age(copied) {
				return long, copied
			}
		}
		t.Fatal("three pairs of hits straddled a second each")
		return nil, nil
	}
	prev := -1
	for step := range 5 {
		long, copied := pair()
		if !bytes.Contains(copied, []byte("\r\nX-Cache: HIT\r\n")) {
			t.Fatalf("step %d: not a hit:\n%s", step, copied)
		}
		if !bytes.Equal(long, copied) {
			t.Errorf("step %d: the copied head sends other bytes.\nlong way:\n%s\ncopied:\n%s", step, long, copied)
		}
		item := en.head.Load()
		if item == nil {
			t.Fatalf("step %d: no heads kept", step)
		}
		if hh := item.v.forms[cachepolicy.Gzip].cur.Load(); hh == nil || !hh.used.Load() || hh.age != int64(age(copied)) {
			t.Fatalf("step %d: the second hit did not copy a head of its second", step)
		}
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
		e.advance(10 * time.Second)
	}
	// Soft purge: the kept HIT head of this second must not be copied.
	invalidateEntry(en, true, time.Now().Add(time.Duration(e.offset.Load())))
	lc.send(req)
	if !bytes.Contains(lc.last, []byte("\r\nX-Cache: STALE\r\n")) || !bytes.Contains(lc.last, []byte("; detail=grace\r\n")) {
		t.Fatalf("after a soft purge:\n%s", lc.last)
	}
}
