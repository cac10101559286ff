//go:build !race

package edge

import (
	"testing"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
)

// TestCompressedHitsDoNoWork: a hit on a compressed page allocates nothing
// and neither compresses nor decodes, for every encoding, HEAD and 304
// included (the decoded copy is made once, before measuring).
func TestCompressedHitsDoNoWork(t *testing.T) {
	e, _ := primedEdgeConfig(t, 40<<10, func(c *config.Config) {
		c.Log.Access = "off"
		c.Compression.Zstd = true
	})
	for _, hdrs := range [][]string{
		{"Accept-Encoding", "gzip"},
		{"Accept-Encoding", "zstd, gzip"},
		{"Accept-Encoding", "br;q=1, gzip;q=0.5"},
		{},
		{"Accept-Encoding", "gzip;q=0"},
		{"If-None-Match", `"abc-zstd"`, "Accept-Encoding", "gzip, deflate, br, zstd"},
		{"If-None-Match", `"abc"`},
		{"Range", "bytes=100-199", "Accept-Encoding", "gzip"},
	} {
		ctx := hitCtx(t, "/page", hdrs...)
		serveHit(e, ctx)
		work := func() float64 {
			return counter(e.m.compressions[cachepolicy.Gzip]) + counter(e.m.compressions[cachepolicy.Zstd]) + counter(e.m.decompressions)
		}
		before := work()
		allocs := testing.AllocsPerRun(200, func() {
			serveHit(e, ctx)
			if string(ctx.Response.Header.Peek("X-Cache")) != "HIT" {
				t.Fatalf("not a hit: %s", ctx.Response.Header.Peek("X-Cache"))
			}
		})
		if allocs != 0 {
			t.Errorf("%q: %.1f allocations per hit, want 0", hdrs, allocs)
		}
		if w := work() - before; w != 0 {
			t.Errorf("%q: %v compressions or decodes in 201 hits, want 0", hdrs, w)
		}
	}
}
