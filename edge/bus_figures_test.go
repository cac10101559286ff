package edge

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/internal/natstest"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// TestBusFigures measures the purge bus for the notes: three edges, purges
// published at 100 per second for LAKKA_BUS_FIGURES (a duration, e.g.
// 60s), each one a tag of a stored object; it reports the lag (applied
// minus issued) p50, p99 and max on every edge, and the hit throughput of
// one edge under a closed loop of 32 clients with and without the purges,
// side by side. It asserts only that no purge was lost. Skipped unless
// LAKKA_BUS_FIGURES is set:
//
//	LAKKA_BUS_FIGURES=60s go test -run TestBusFigures -v ./edge
func TestBusFigures(t *testing.T) {
	flow, err := time.ParseDuration(os.Getenv("LAKKA_BUS_FIGURES"))
	if err != nil || flow <= 0 {
		t.Skip("set LAKKA_BUS_FIGURES to a duration (60s) to measure the purge bus")
	}
	const rate = 100
	ns := natstest.Start(t)
	o, _ := versionedOrigin(t)
	var mu sync.Mutex
	lags := make([][]time.Duration, 3)
	var edges []*testEdge
	for i := range 3 {
		c := testConfig(o.addr())
		c.Purge.Bus.URL = ns.URL()
		c.Edge.NodeID = fmt.Sprintf("f%d", i)
		c.Cache.SizeBytes = 256 << 20
		e := startEdgeWith(t, c, seams{busApplied: func(lag time.Duration) {
			mu.Lock()
			lags[i] = append(lags[i], lag)
			mu.Unlock()
		}})
		eventually(t, "ready", func() bool { return e.health() == 200 })
		edges = append(edges, e)
	}
	n := int(flow.Seconds() * rate)
	// Every purge has an object to remove on every edge.
	for _, e := range edges {
		warm(t, e, n)
	}
	hot := "/hot"
	edges[0].get(hot, "Host", newsHost)

	quiet := hitLoad(t, edges[0], hot, 10*time.Second)
	pubCfg := edges[0].cfg.Purge.Bus
	pub, err := bus.Connect(pubCfg, bus.Options{Name: "figures"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			m := purge.Message{ID: fmt.Sprintf("fig-%d", i), Tags: []string{fmt.Sprintf("tag-o%d", i)}, IssuedAt: time.Now(), Issuer: "figures"}
			if _, err := pub.Publish(context.Background(), m); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
		}
	}()
	busy := hitLoad(t, edges[0], hot, min(flow, 10*time.Second))
	<-done
	eventually(t, "every purge applied", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lags {
			if len(l) < n {
				return false
			}
		}
		return true
	})
	for i, l := range lags {
		slices.Sort(l)
		t.Logf("edge f%d: %d purges at %d/s, lag p50 %v p99 %v max %v", i, len(l), rate,
			l[len(l)/2].Round(10*time.Microsecond), l[len(l)*99/100].Round(10*time.Microsecond), l[len(l)-1].Round(10*time.Microsecond))
		if len(l) != n {
			t.Errorf("edge f%d applied %d purges, want %d", i, len(l), n)
		}
		if st := edges[i].bus.consumer().Status(); st.Gaps != 0 {
			t.Errorf("edge f%d: %d gaps", i, st.Gaps)
		}
	}
	t.Logf("hits on f0, 32 clients: %.0f/s without purges, %.0f/s while %d purges/s flow (%.1f%%)", quiet, busy, rate, 100*busy/quiet)
	for i := range n {
		if r := edges[1].get(fmt.Sprintf("/o%d", i), "Host", newsHost); r.get("X-Cache") != "MISS" {
			t.Fatalf("/o%d on f1 after its purge: X-Cache %s, want MISS (a purge lost)", i, r.get("X-Cache"))
		}
	}
}

// warm stores /o0 .. /o(n-1) on e.
func warm(t testing.TB, e *testEdge, n int) {
	t.Helper()
	c := &fasthttp.HostClient{Addr: e.Addr(), MaxConns: 16}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				req.SetRequestURI(fmt.Sprintf("http://%s/o%d", newsHost, i))
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != http.StatusOK {
					t.Errorf("warm /o%d: %v %d", i, err, resp.StatusCode())
					return
				}
			}
		})
	}
	wg.Wait()
}

// hitLoad runs 32 closed-loop clients asking for path on e for d and
// returns the hits per second.
func hitLoad(t testing.TB, e *testEdge, path string, d time.Duration) float64 {
	t.Helper()
	c := &fasthttp.HostClient{Addr: e.Addr(), MaxConns: 32}
	var hits atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + newsHost + path)
			for time.Now().Before(stop) {
				if err := c.Do(req, resp); err != nil {
					t.Errorf("hit: %v", err)
					return
				}
				if strings.HasPrefix(string(resp.Header.Peek("X-Cache")), "HIT") {
					hits.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(hits.Load()) / d.Seconds()
}

// BenchmarkBusApply: purges per second one edge applies from the bus, soft
// purges of one tag that covers 1, 100 or 10,000 stored objects (published
// by 8 goroutines while the edge applies them: a pipeline, so the figure is
// the slower of the two).
//
//	go test -run '^$' -bench BusApply -benchtime 2000x ./edge
func BenchmarkBusApply(b *testing.B) {
	for _, objects := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("objects=%d", objects), func(b *testing.B) {
			ns := natstest.Start(b)
			o := startOrigin(b, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Surrogate-Key", "t")
				fmt.Fprint(w, r.URL.Path)
			})
			c := testConfig(o.addr())
			c.Purge.Bus.URL = ns.URL()
			c.Edge.NodeID = "bench"
			e := startEdge(b, c)
			for e.health() != 200 {
				time.Sleep(10 * time.Millisecond)
			}
			warm(b, e, objects)
			pub, err := bus.Connect(c.Purge.Bus, bus.Options{Name: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			start := e.bus.consumer().Status().Applied
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						m := purge.Message{ID: fmt.Sprintf("bench-%d-%d", objects, i), Tags: []string{"t"}, Soft: true}
						if _, err := pub.Publish(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			for e.bus.consumer().Status().Applied < start+uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purges/s")
		})
	}
}
