package origin

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakka-cache/lakka/config"
)

// countingStore records the batches of views written.
type countingStore struct {
	Store
	mu      sync.Mutex // guards batches
	batches []map[int64]int64
}

func (c *countingStore) AddViews(ctx context.Context, views map[int64]int64) error {
	c.mu.Lock()
	c.batches = append(c.batches, maps.Clone(views))
	c.mu.Unlock()
	return c.Store.AddViews(ctx, views)
}

func (c *countingStore) written() []map[int64]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.batches)
}

// TestViewsFlushInBatches runs the view counter on a fake clock: many views
// become one write per interval, and none before it.
func TestViewsFlushInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := NewMemoryStore()
		mustSeed(t, mem, 10)
		st := &countingStore{Store: mem}
		m, err := newServerMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		v := newViewCounter(st, testLogger(t), m)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			v.run(ctx, 5*time.Second, time.Second)
			close(done)
		}()
		for range 1000 {
			v.add(3)
		}
		v.add(4)
		time.Sleep(4 * time.Second) // the fake clock: before the first flush
		synctest.Wait()
		if w := st.written(); len(w) != 0 {
			t.Fatalf("writes before the interval: %v", w)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		diff(t, "after one interval", []map[int64]int64{{3: 1000, 4: 1}}, st.written())
		time.Sleep(20 * time.Second) // nothing pending: no writes
		synctest.Wait()
		if w := st.written(); len(w) != 1 {
			t.Errorf("writes without new views: %v", w)
		}
		v.add(5)
		cancel() // shutdown writes what is pending
		<-done
		diff(t, "after shutdown", []map[int64]int64{{3: 1000, 4: 1}, {5: 1}}, st.written())
		if got := testutil.ToFloat64(m.views); got != 1002 {
			t.Errorf("views counted = %v, want 1002", got)
		}
	})
}

// TestViewsBounded: beacons for more distinct articles than the buffer
// holds are dropped and counted, never stored in memory.
func TestViewsBounded(t *testing.T) {
	m, err := newServerMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	v := newViewCounter(NewMemoryStore(), testLogger(t), m)
	for id := range int64(maxPendingViews + 10) {
		v.add(id + 1)
	}
	v.add(1) // known: still counted
	if n := len(v.take()); n != maxPendingViews {
		t.Errorf("%d pending articles, want %d", n, maxPendingViews)
	}
	if got := testutil.ToFloat64(m.dropped); got != 10 {
		t.Errorf("dropped = %v, want 10", got)
	}
}

// TestServeShutdown: Serve answers, and on cancel stops serving, writes
// the buffered view counts and returns nil.
func TestServeShutdown(t *testing.T) {
	mem := NewMemoryStore()
	mustSeed(t, mem, 10)
	st := &countingStore{Store: mem}
	o := startOrigin(t, st, func(c *config.Origin) { c.ViewFlushInterval = time.Hour })
	for range 3 {
		resp, err := http.Post(o.url+"/views/7", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.Body.Close(); err != nil || resp.StatusCode != http.StatusNoContent || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("beacon: %d %q %v", resp.StatusCode, resp.Header.Get("Cache-Control"), err)
		}
	}
	if resp, err := http.Post(o.url+"/views/x", "text/plain", nil); err != nil || resp.Body.Close() != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad beacon: %v", err)
	}
	if w := st.written(); len(w) != 0 {
		t.Fatalf("views written before the flush interval: %v", w)
	}
	if err := o.stop(); err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	diff(t, "views written at shutdown", []map[int64]int64{{7: 3}}, st.written())
	if _, err := http.Get(o.url + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}
