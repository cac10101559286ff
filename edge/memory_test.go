//go:build !race

package edge

import (
	"bufio"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// TestMemoryPerObject stores 100,000 objects of 4 KiB (DESIGN.md's
// comparison: Varnish ~1.2 KB of overhead per object, nginx ~5.9 KB) built
// the way a fetch builds them, and reports the heap used per object beyond
// the body bytes: headers, key, entry, store and index bookkeeping.
func TestMemoryPerObject(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 400 MiB")
	}
	const n = 100_000
	const body = 4 << 10
	c := testConfig("127.0.0.1:1")
	c.Cache.SizeBytes = 2 << 30
	c.Compression.Enabled = false // measure the stored bytes as they are
	s := newIdleServer(t, c)
	raw := "HTTP/1.1 200 OK\r\n" +
		"Date: Fri, 27 Nov 2026 12:00:00 GMT\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"Cache-Control: public, max-age=300, stale-while-revalidate=60, stale-if-error=86400\r\n" +
		"Surrogate-Key: article:%d section:%d front\r\n" +
		"ETag: \"%08x\"\r\n" +
		"Last-Modified: Fri, 27 Nov 2026 11:00:00 GMT\r\n" +
		"Content-Length: %d\r\n\r\n"
	payload := []byte(strings.Repeat("x", body))
	now := time.Now()
	before := heapAlloc()
	for i := range n {
		var resp fasthttp.Response
		hdr := fmt.Sprintf(raw, i, i%50, i, body)
		if err := resp.Header.Read(bufio.NewReader(strings.NewReader(hdr))); err != nil {
			t.Fatal(err)
		}
		url := []byte(fmt.Sprintf("www.example.com/news/section-%d/%d-a-headline-of-some-length", i%50, i))
		m := s.responseMeta(&resp)
		dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, now, now, s.defaults)
		b := append([]byte(nil), payload...)
		e, err := s.newEntry(url, &resp, m, b, dec, now, requestView{})
		if err != nil || e == nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		s.store.put(e, s.store.idx.generation())
	}
	s.store.wait()
	after := heapAlloc()
	objects := s.store.objects.Load()
	per := float64(after-before)/float64(objects) - body
	t.Logf("%d objects of %d bytes stored: %.0f bytes per object beyond the body (headers, key, entry, tags, index and store bookkeeping); accounted cost %.0f",
		objects, body, per, float64(s.store.bytes.Load())/float64(objects)-body)
	if objects < n*9/10 {
		t.Errorf("only %d of %d objects stored", objects, n)
	}
	if per > 1300 {
		t.Errorf("%.0f bytes per object beyond the body: a regression (it was ~1,170)", per)
	}
	// The accounted cost must not under-count what is really used.
	if acc := float64(s.store.bytes.Load()) / float64(objects); acc < per+body-64 {
		t.Errorf("accounted %.0f bytes per object, but %.0f are used", acc, per+body)
	}
	runtime.KeepAlive(s)
}

// TestHeadCost checks headSetCost and hitHeadCost, the memory the head
// pool counts for the heads hits copy (Entry.head), against the heap those
// heads really take: objects stored identity (one head each) and gzip
// (identity and gzip).
func TestHeadCost(t *testing.T) {
	const n = 20_000
	c := testConfig("127.0.0.1:1")
	c.Cache.SizeBytes = 4 << 30 // heads get 64 MiB: room for all
	s := newIdleServer(t, c)
	raw := "HTTP/1.1 200 OK\r\n" +
		"Date: Fri, 27 Nov 2026 12:00:00 GMT\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"Cache-Control: public, max-age=300, stale-while-revalidate=60, stale-if-error=86400\r\n" +
		"ETag: \"%08x\"\r\n" +
		"Vary: Accept-Language\r\n" +
		"X-Content-Version: %d\r\n" +
		"Link: </static/site--%08x.css>; rel=preload; as=style\r\n" +
		"Content-Length: 5\r\n\r\n"
	page := []byte(strings.Repeat("<p>the council met on Tuesday</p>\n", 40))
	now := time.Now()
	entries := make([]*Entry, n)
	var counted int64
	gzipped := 0
	for i := range entries {
		var resp fasthttp.Response
		if err := resp.Header.Read(bufio.NewReader(strings.NewReader(fmt.Sprintf(raw, i, i, i)))); err != nil {
			t.Fatal(err)
		}
		m := s.responseMeta(&resp)
		dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, now, now, s.defaults)
		body := []byte("hello")
		if i%2 == 1 {
			body = page // compressed at store time
		}
		e, err := s.newEntry([]byte(fmt.Sprintf("example.com/%d", i)), &resp, m, body, dec, now, requestView{})
		if err != nil || e == nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.enc == cachepolicy.Gzip {
			gzipped++
		}
		e.inStore.Store(true)
		entries[i] = e
		counted += headSetCost + hitHeadCost(e, cachepolicy.Identity, len(s.cacheSt))
		if e.enc == cachepolicy.Gzip {
			counted += hitHeadCost(e, cachepolicy.Gzip, len(s.cacheSt))
		}
	}
	if gzipped != n/2 {
		t.Fatalf("%d of %d objects stored gzip, want half", gzipped, n)
	}
	rs := s.acquireState()
	rs.result = resHit
	var h fasthttp.ResponseHeader
	before := heapAlloc()
	for _, e := range entries {
		set := new(headSet)
		if !s.store.heads.keep(e, set, headSetCost) {
			t.Fatal("a set was not kept")
		}
		for enc := range cachepolicy.Encoding(numForms) {
			if enc != cachepolicy.Identity && e.enc != enc {
				continue
			}
			h.Reset()
			// An Age and a TTL of realistic length (a day and more).
			s.wholeHead(&h, rs, e, enc, e.etagFor(enc), 123456, 123456, now)
			hh := &hitHead{age: 123456, ttl: 123456, result: resHit}
			h.CopyTo(&hh.h)
			set.forms[enc].cur.Store(hh)
			if !s.store.heads.grow(e, e.head.Load(), hitHeadCost(e, enc, len(s.cacheSt))) {
				t.Fatal("a head was not counted")
			}
		}
	}
	after := heapAlloc()
	if used, heads := s.store.heads.stats(); heads != n || used != counted {
		t.Fatalf("the head pool holds %d sets, %d bytes; want %d, %d", heads, used, n, counted)
	}
	used := float64(after-before) / n
	want := float64(counted) / n
	t.Logf("an object's kept heads take %.0f bytes; headSetCost counts %.0f", used, want)
	if want < used {
		t.Errorf("headSetCost counts %.0f bytes per object, the heap shows %.0f: the byte budget would not hold", want, used)
	}
	if want > used*1.5 {
		t.Errorf("headSetCost counts %.0f bytes per object, the heap shows %.0f: far too high", want, used)
	}
	runtime.KeepAlive(entries)
}
