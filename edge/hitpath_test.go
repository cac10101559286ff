//go:build !race

package edge

import (
	"testing"

	"github.com/lakka-cache/lakka/config"
)

// TestHitAllocatesNothing guards STYLE.md's rule: a cache hit allocates
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
			ctx := hitCtx("/page", hdrs...)
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
