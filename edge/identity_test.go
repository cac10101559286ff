package edge

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"

	"github.com/lakka-cache/lakka/config"
)

// TestIdentityCopiesUnderEviction runs identity clients over more pages
// than the pool holds, with purges and store evictions, through a real
// edge: the pool stays within its budget with exact accounting, and
// purged objects give their copies back.
func TestIdentityCopiesUnderEviction(t *testing.T) {
	body := page(24 << 10)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Surrogate-Key", "all")
		fmt.Fprint(w, r.URL.Path, body)
	})
	c := testConfig(o.addr())
	c.Cache.SizeBytes = 2 * config.MiB // identity copies: 256 KiB, about ten pages
	c.Purge.Token = testToken
	e := startEdge(t, c)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 150 {
				path := fmt.Sprintf("/p/%d", r.IntN(40))
				ae := []string{"", "gzip", ""}[r.IntN(3)]
				got := doURL(t, http.MethodGet, e.url+path, "", "Accept-Encoding", ae)
				if got.status != 200 || decoded(t, got) != path+body {
					t.Errorf("%s %q: %d, body wrong", path, ae, got.status)
					return
				}
			}
		}()
	}
	wg.Wait()
	e.settle()
	// The pool's own invariants are the store's tests'; here, what a
	// client of the edge can see: within budget, churned, given back.
	used, n := e.store.Identity.Stats()
	if budget := c.Budget().Identity; used > budget || n == 0 {
		t.Errorf("pool: %d bytes in %d copies, budget %d", used, n, budget)
	}
	if got := counter(e.m.store.IdentityDropped); got == 0 {
		t.Errorf("no copy was dropped for room: the test did not churn")
	}
	if st, _ := e.purgeAPI(testToken, `{"tags": ["all"]}`); st != 200 {
		t.Fatalf("purge: %d", st)
	}
	eventually(t, "purged objects give their copies back", func() bool {
		e.settle()
		used, n := e.store.Identity.Stats()
		return used == 0 && n == 0
	})
}
