//go:build !race

package edge

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryPerObject stores 100,000 objects of 4 KiB (for
// comparison, Varnish keeps ~1.2 KB per object beyond the body, nginx ~5.9 KB) built
// the way a fetch builds them, and reports the memory used per object beyond
// the body bytes: on the Go heap (entry, store and index bookkeeping) and
// in its slot (the stored header fields, key and tags, the slot's
// rounding). With LAKKA_MEMPROF=FILE it also writes a heap profile of the
// stored objects there (run with -memprofilerate 64 for every
// allocation): go tool pprof -sample_index=inuse_space -top FILE.
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
		m := s.abs.responseMeta(&resp, s.g().pol)
		dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, now, now, s.g().pol.defaults)
		b := append([]byte(nil), payload...)
		e, err := s.abs.newEntry(url, &resp, m, b, dec, now, fetchView{pol: s.g().pol})
		if err != nil || e == nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		storeBuilt(s, e)
	}
	s.store.Wait()
	after := heapAlloc()
	if f := os.Getenv("LAKKA_MEMPROF"); f != "" {
		w, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	objects := s.store.Stats().Objects
	heap := float64(after-before) / float64(objects)
	slot := float64(s.store.SlabStats().Live)/float64(objects) - body
	used := float64(s.store.SlabStats().Used)/float64(objects) - body
	accounted := float64(s.store.Stats().Bytes)/float64(objects) - body
	t.Logf("%d objects of %d bytes stored: beyond the body, %.0f bytes per object on the Go heap (entry, index and store bookkeeping) and %.0f in its slot (%.0f of stored header fields and their tables, key and tags, then rounding up to the slot's size); accounted %.0f (the heap's part counted twice)",
		objects, body, heap, slot, used, accounted)
	if objects < n*9/10 {
		t.Errorf("only %d of %d objects stored", objects, n)
	}
	if heap > 600 {
		t.Errorf("%.0f bytes per object on the heap: a regression (it was ~536)", heap)
	}
	if slot > 640 {
		t.Errorf("%.0f bytes per object in its slot beyond the body: a regression (it was 512)", slot)
	}
	// The accounted cost must not under-count what is really used: the
	// slot, and the heap's part twice (GOGC 100).
	if accounted < slot+2*heap-64 {
		t.Errorf("accounted %.0f bytes per object beyond the body, but %.0f are used (slot %.0f, twice the heap's %.0f)", accounted, slot+2*heap, slot, heap)
	}
	runtime.KeepAlive(s)
}

// TestHeadCost checks headerSetCost and hitHeaderCost, the memory the header
// pool counts for the headers hits copy (Entry.header), against the heap those
// headers really take: objects stored identity (one header each) and gzip
// (identity and gzip).
func TestHeaderCost(t *testing.T) {
	const n = 20_000
	c := testConfig("127.0.0.1:1")
	c.Cache.SizeBytes = 4 << 30 // headers get 64 MiB: room for all
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
	entries := make([]*store.Entry, n)
	var counted int64
	gzipped := 0
	for i := range entries {
		var resp fasthttp.Response
		if err := resp.Header.Read(bufio.NewReader(strings.NewReader(fmt.Sprintf(raw, i, i, i)))); err != nil {
			t.Fatal(err)
		}
		m := s.abs.responseMeta(&resp, s.g().pol)
		dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, now, now, s.g().pol.defaults)
		body := []byte("hello")
		if i%2 == 1 {
			body = page // compressed at store time
		}
		e, err := s.abs.newEntry([]byte(fmt.Sprintf("example.com/%d", i)), &resp, m, body, dec, now, fetchView{pol: s.g().pol})
		if err != nil || e == nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.Enc == cachepolicy.Gzip {
			gzipped++
		}
		entries[i] = e
		counted += headerSetCost + hitHeaderCost(e, cachepolicy.Identity, len(s.g().pol.name))
		if e.Enc == cachepolicy.Gzip {
			counted += hitHeaderCost(e, cachepolicy.Gzip, len(s.g().pol.name))
		}
	}
	if gzipped != n/2 {
		t.Fatalf("%d of %d objects stored gzip, want half", gzipped, n)
	}
	r := &request{s: s, g: s.g(), ctx: new(fasthttp.RequestCtx), result: resHit, now: now}
	h := &r.ctx.Response.Header
	before := heapAlloc()
	for _, e := range entries {
		set := new(store.HeaderSet)
		if !s.store.Headers.Keep(e, set, headerSetCost) {
			t.Fatal("a set was not kept")
		}
		for enc := range cachepolicy.Encoding(store.NumForms) {
			if enc != cachepolicy.Identity && e.Enc != enc {
				continue
			}
			h.Reset()
			// An Age and a TTL of realistic length (a day and more).
			r.wholeHeader(e, enc, e.ETagFor(enc), 123456, 123456)
			hh := &store.HitHeader{Age: 123456, TTL: 123456, Result: uint8(resHit)}
			h.CopyTo(&hh.H)
			set.Forms[enc].Cur.Store(hh)
			if !s.store.Headers.Grow(e, e.Headers(), hitHeaderCost(e, enc, len(s.g().pol.name))) {
				t.Fatal("a header was not counted")
			}
		}
	}
	after := heapAlloc()
	if used, sets := s.store.Headers.Stats(); sets != n || used != counted {
		t.Fatalf("the header pool holds %d sets, %d bytes; want %d, %d", sets, used, n, counted)
	}
	used := float64(after-before) / n
	want := float64(counted) / n
	t.Logf("an object's kept headers take %.0f bytes; headerSetCost counts %.0f", used, want)
	if want < used {
		t.Errorf("headerSetCost counts %.0f bytes per object, the heap shows %.0f: the byte budget would not hold", want, used)
	}
	if want > used*1.5 {
		t.Errorf("headerSetCost counts %.0f bytes per object, the heap shows %.0f: far too high", want, used)
	}
	runtime.KeepAlive(entries)
}

// gcCPU returns the CPU the garbage collector has used so far: mark work
// (assists and dedicated workers) and pauses, not the idle workers that
// only run on otherwise idle processors.
func gcCPU() time.Duration {
	s := []rtmetrics.Sample{
		{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
		{Name: "/cpu/classes/gc/mark/dedicated:cpu-seconds"},
		{Name: "/cpu/classes/gc/pause:cpu-seconds"},
	}
	rtmetrics.Read(s)
	var sec float64
	for _, v := range s {
		sec += v.Value.Float64()
	}
	return time.Duration(sec * float64(time.Second))
}

// BenchmarkChurnGC stores objects into a full cache of 256 MiB as a flood
// of new URLs does, each built as a fetch builds it (header fields, the
// body read into its own buffer, then stored), and reports the garbage
// collector's CPU per object stored (gc-ns/op) and the Go heap in use at
// the end: the cost of keeping the cache's bytes where the collector
// scans them, or not.
func BenchmarkChurnGC(b *testing.B) {
	for _, size := range []int{4 << 10, 40 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			c := testConfig("127.0.0.1:1")
			c.Cache.SizeBytes = 256 << 20
			c.Compression.Enabled = false
			s := newIdleServer(b, c)
			var resp fasthttp.Response
			resp.Header.SetStatusCode(200)
			resp.Header.Set("Cache-Control", "max-age=600")
			resp.Header.Set("Content-Type", "application/octet-stream")
			resp.Header.Set("Surrogate-Key", "front section:1")
			m := s.abs.responseMeta(&resp, s.g().pol)
			now := time.Now()
			dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, now, now, s.g().pol.defaults)
			payload := make([]byte, size)
			store1 := func(i int) {
				url := strconv.AppendInt([]byte("www.example.com/flood/"), int64(i), 10)
				body := append(getBodyBuf(size)[:0], payload...) // as readBody reads it
				e, err := s.abs.newEntry(url, &resp, m, body, dec, now, fetchView{pol: s.g().pol})
				if err != nil || e == nil {
					b.Fatalf("entry %d: %v", i, err)
				}
				s.abs.storeNew(e, body, s.store.Generation())
				e.Release()
			}
			// Fill the cache first: the churn is what is measured.
			for i := range int(c.Cache.SizeBytes) / size * 2 {
				store1(-i - 1)
			}
			s.store.Wait()
			runtime.GC()
			gc0 := gcCPU()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				store1(i)
				i++
			}
			b.StopTimer()
			b.ReportMetric(float64(gcCPU()-gc0)/float64(b.N), "gc-ns/op")
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		})
	}
}

// storeBuilt stores an entry newEntry built, as absorb does: sealed into
// the store's pool, stored, the builder's reference released.
func storeBuilt(s *Server, e *store.Entry) {
	s.abs.storeNew(e, nil, s.store.Generation())
	e.Release()
}
