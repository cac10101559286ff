package store

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
)

// testMetrics returns metric children registered nowhere.
func testMetrics() Metrics {
	c := func() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "c"}) }
	g := func() prometheus.Gauge { return prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}) }
	return Metrics{
		Evictions: c(), Rejections: c(), Dropped: c(),
		IdentityBytes: g(), HeaderBytes: g(),
		IdentityDropped: c(), HeadersDropped: c(),
	}
}

// storeSim drives the real store with synthetic entries.
func storeSim(tb testing.TB, budget int64) (get func(int) bool, put func(int, int64), settle func(), st *Store) {
	// The whole budget for the store (no pools), divided between
	// ristretto and the window as config.Budget divides its part.
	win := max(budget/50, min(1<<20, budget/4))
	st, err := New(config.Budget{Store: budget - win, Window: win}, 16, testMetrics())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	now := time.Now()
	keyOf := func(id int) []byte { return strconv.AppendInt([]byte("news.example/a/"), int64(id), 10) }
	get = func(id int) bool { return st.Peek(keyOf(id)) != nil }
	var body []byte
	put = func(id int, size int64) {
		if int64(len(body)) < size {
			body = make([]byte, size)
		}
		// A body of size bytes: the entry costs its slot.
		putSealed(tb, st, &Entry{Key: keyOf(id), ID: st.NextID(), stored: now.Sub(clockBase), TTL: time.Hour, Body: body[:size], Cost: size})
	}
	return get, put, st.Wait, st
}

// putSealed seals e (an entry without stored bytes takes the smallest
// slot), stores it and lets go of the builder's reference, as the edge
// does.
func putSealed(tb testing.TB, st *Store, e *Entry) bool {
	if !st.Seal(e) {
		tb.Fatalf("no slot for %s", e.Key)
	}
	defer e.Release()
	return st.Put(e, st.Generation())
}
