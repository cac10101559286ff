//go:build !race

package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// TestHitAllocatesNothing guards docs/ARCHITECTURE.md's rule: a cache hit allocates
// nothing, for gzip and identity clients, with and without the access log.
func TestHitAllocatesNothing(t *testing.T) {
	for _, accessLog := range []string{"off", "/dev/null"} {
		for _, hdrs := range [][]string{
			{"Accept-Encoding", "gzip, deflate, br"},
			{},
			{"If-None-Match", `"abc-gzip"`, "Accept-Encoding", "gzip"},
			{"Range", "bytes=0-99"},
		} {
			e, _ := primedEdgeConfig(t, 40<<10, func(c *config.Config) {
				c.Log.Access = accessLog
				// A small line buffer is soon all allocated; after that a
				// slow log writer drops lines instead of allocating.
				c.Log.AccessBuffer = 16
			})
			ctx := hitCtx(t, "/page", hdrs...)
			for range 1000 { // warm the pools and the decoded copy
				serveHit(e, ctx)
			}
			allocs := testing.AllocsPerRun(200, func() {
				serveHit(e, ctx)
				if string(ctx.Response.Header.Peek("X-Cache")) != "HIT" {
					t.Fatalf("not a hit: %s", ctx.Response.Header.Peek("X-Cache"))
				}
			})
			if allocs != 0 {
				t.Errorf("access log %s, headers %q: %.1f allocations per hit, want 0", accessLog, hdrs, allocs)
			}
		}
	}
}

// TestLoopHitAllocatesNothing: through the whole server loop, a hit that
// copies its kept header allocates nothing, server side and handler alike.
func TestLoopHitAllocatesNothing(t *testing.T) {
	for _, enc := range []string{"gzip", "identity"} {
		e, _ := primedEdge(t, 2<<10, "off")
		c := serveLoop(e)
		req := []byte("GET /page HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: " + enc + "\r\n\r\n")
		for range 100 {
			c.send(req)
		}
		if e.hitHeaderSets() != 1 {
			t.Fatalf("%s: %d headers kept, want 1", enc, e.hitHeaderSets())
		}
		allocs := testing.AllocsPerRun(500, func() { c.send(req) })
		if allocs != 0 {
			t.Errorf("%s: %.2f allocations per hit through the server loop, want 0", enc, allocs)
		}
	}
}

// TestHitHeaderBackoff: when more objects are hot than the header pool holds,
// hits do not make (allocate) a header each: an object whose header was
// dropped for room waits twice as many hits before it is offered one
// again (Entry.HeaderBackoff), so the churn dies down.
func TestHitHeaderBackoff(t *testing.T) {
	const objects, rounds = 64, 200
	o := startOrigin(t, fixed(strings.Repeat("x", 600), "Cache-Control", "max-age=3600", "Content-Type", "text/plain"))
	c := testConfig(o.addr())
	c.Cache.SizeBytes = 1 * config.MiB // headers: 16 KiB, room for about a dozen
	c.Cache.MaxObjectBytes = 64 << 10
	e := startEdge(t, c)
	lc := serveLoop(e)
	reqs := make([][]byte, objects)
	for i := range reqs {
		reqs[i] = []byte(fmt.Sprintf("GET /o%d HTTP/1.1\r\nHost: example.com\r\n\r\n", i))
		lc.send(reqs[i]) // the miss
	}
	e.settle()
	hits := 0
	for range rounds {
		for _, r := range reqs {
			lc.send(r)
			if strings.Contains(string(lc.last), "\r\nX-Cache: HIT\r\n") {
				hits++
			}
		}
	}
	_, kept := e.store.Headers.Stats()
	made := int(counter(e.m.store.HeadersDropped)) + kept
	t.Logf("%d hits on %d objects, pool of %d headers: %d headers made", hits, objects, kept, made)
	if hits < objects*rounds*9/10 {
		t.Fatalf("only %d hits of %d", hits, objects*rounds)
	}
	// Without backoff every hit on a header-less object makes one: about
	// one per hit. With it, an object makes about log2(its hits) of them.
	if made > objects*12 {
		t.Errorf("%d headers made for %d hits: the pool churns", made, hits)
	}
}

// TestSlowHitsDoNotMakeHeaders: an object hit less than once a second finds
// its kept header out of date at every hit. It does not make (allocate) a
// new one each time: a header no hit copied doubles the misses before the
// next (HeaderForm.Again), so 600 such hits make about log2(600) headers, and
// soon allocate nothing.
func TestSlowHitsDoNotMakeHeaders(t *testing.T) {
	e, _ := primedEdge(t, 2<<10, "off")
	c := serveLoop(e)
	req := []byte("GET /page HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip\r\n\r\n")
	hit := func() {
		e.advance(2 * time.Second)
		c.send(req)
	}
	for range 600 {
		hit()
	}
	if e.hitHeaderSets() != 1 {
		t.Fatalf("%d header sets kept, want 1", e.hitHeaderSets())
	}
	// Made after 1, 2, 4, ... 256 misses (511 hits), then after 512 more.
	if made := counter(e.m.headersMade); made > 10 {
		t.Errorf("%.0f headers made for 600 hits two seconds apart, want at most 10", made)
	}
	if allocs := testing.AllocsPerRun(500, hit); allocs != 0 {
		t.Errorf("%.2f allocations per hit two seconds apart, want 0", allocs)
	}
}

// TestNewsroomHitAllocatesNothing: a hit through the newsroom's rules
// (request phase: cookies, device class, canary and dark launch checks;
// deliver phase: header changes) allocates nothing, nor with 200 more
// rules.
func TestNewsroomHitAllocatesNothing(t *testing.T) {
	for _, n := range []int{0, 200} {
		e, _ := primedEdgeConfig(t, 2<<10, func(c *config.Config) { newsroomRules(t, c, manyRules(n)) })
		// A first context for the miss that stores the page under the
		// reader's key: a miss's forwarding parses the request's cookies,
		// which a context that only ever sees hits (a new request's, on
		// the server) never has.
		serveHit(e, newsroomHitCtx(t))
		e.settle()
		ctx := newsroomHitCtx(t)
		for range 1000 {
			serveHit(e, ctx)
		}
		if string(ctx.Response.Header.Peek("X-Cache")) != "HIT" || string(ctx.Response.Header.Peek("X-Served-By")) != "edge-1" {
			t.Fatalf("not a newsroom hit: X-Cache %s, X-Served-By %s", ctx.Response.Header.Peek("X-Cache"), ctx.Response.Header.Peek("X-Served-By"))
		}
		// AllocsPerRun counts the whole process's allocations: the edge's
		// background goroutines (probes of its two pools, the store's)
		// allocate now and then. The same hit again and again allocates
		// the same each time: the best of three windows is the hit's.
		best := 1e9
		for range 3 {
			best = min(best, testing.AllocsPerRun(200, func() { serveHit(e, ctx) }))
		}
		if best != 0 {
			t.Errorf("newsroom rules + %d: %.1f allocations per hit, want 0", n, best)
		}
	}
}
