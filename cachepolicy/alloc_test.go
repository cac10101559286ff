//go:build !race

package cachepolicy

import "testing"

// TestHitPathAllocs guards docs/ARCHITECTURE.md's "a hit allocates nothing" for the
// calls of this package on the edge's hit path (see hitPath).
func TestHitPathAllocs(t *testing.T) {
	for _, c := range hitPath() {
		if n := testing.AllocsPerRun(100, c.f); n != 0 {
			t.Errorf("%s: got %v allocations per call, want 0", c.name, n)
		}
	}
}
