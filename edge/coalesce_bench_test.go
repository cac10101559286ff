package edge

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCoalesced500 measures what Varnish and nginx were compared on: 500 concurrent
// misses for one object on an origin that takes 200 ms. Varnish answers all
// by 226 ms, nginx by 512 ms. It reports the origin fetches and when the
// last client had its answer.
func BenchmarkCoalesced500(b *testing.B) {
	var fetches atomic.Int64
	o := startOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(200 * time.Millisecond) // the slow origin being modelled
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "story")
	})
	e := startEdge(b, testConfig(o.addr()))
	// Warm the connection pool so that only the fetch itself is measured.
	e.get("/warm")
	var worst []time.Duration
	n := 0
	for b.Loop() {
		n++
		path := fmt.Sprintf("/story-%d", n)
		const clients = 500
		var wg sync.WaitGroup
		lat := make([]time.Duration, clients)
		start := time.Now()
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := e.get(path); r.body != "story" {
					b.Errorf("got %q", r.body)
				}
				lat[i] = time.Since(start)
			}()
		}
		wg.Wait()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		worst = append(worst, lat[len(lat)-1])
	}
	sort.Slice(worst, func(i, j int) bool { return worst[i] < worst[j] })
	b.ReportMetric(float64(worst[len(worst)/2].Milliseconds()), "last-answer-ms")
	b.ReportMetric(float64(fetches.Load()-1)/float64(n), "origin-fetches/op")
}
