//go:build !race

package edge

import (
	"net/http"
	"strings"
	"testing"
)

// TestVaryHitAllocatesNothing extends TestHitAllocatesNothing to what the
// hostile-input fixes added to the hit path: the variant key over every
// line of a varied header, and the removal of headers named in Connection.
func TestVaryHitAllocatesNothing(t *testing.T) {
	body := strings.Repeat("<p>news text</p>\n", 200)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=3600", "Content-Type", "text/html", "Vary", "Accept-Language"))
	e := startEdge(t, testConfig(o.addr()))
	for _, hdrs := range [][]string{
		{"Accept-Language", "fi", "Accept-Encoding", "gzip"},
		{"Accept-Language", "fi", "Connection", "keep-alive"},
		{"Accept-Language", "en", "Connection", "keep-alive, X-Debug", "X-Debug", "1"},
	} {
		ctx := hitCtx(t, "/page", hdrs...)
		e.handle(ctx)
		if ctx.Response.StatusCode() != http.StatusOK {
			t.Fatalf("priming %v: status %d", hdrs, ctx.Response.StatusCode())
		}
		e.settle()
		for range 1000 {
			serveHit(e, ctx)
		}
		if x := string(ctx.Response.Header.Peek("X-Cache")); x != "HIT" {
			t.Fatalf("%v: X-Cache %q, want HIT", hdrs, x)
		}
		if n := testing.AllocsPerRun(200, func() { serveHit(e, ctx) }); n != 0 {
			t.Errorf("%v: a hit allocates %.1f times", hdrs, n)
		}
	}
}
