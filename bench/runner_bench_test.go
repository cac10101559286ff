package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func BenchmarkSpikeSourceNext(b *testing.B) {
	m := DefaultSpikeModel()
	m.Paths = testPaths(10000)
	m.Duration = time.Duration(1<<62 - 1)
	m.SpikeAt = time.Second
	m.Ramp = time.Second
	src, err := m.Source(NewSpikeSlots())
	if err != nil {
		b.Fatal(err)
	}
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if !src.Next(&r) {
			b.Fatal("source ended")
		}
	}
}

func BenchmarkParseCombined(b *testing.B) {
	line := []byte(`10.1.2.3 - - [27/Nov/2026:12:00:00 +0000] "GET /news/world/42-quake-hits?utm_source=tw HTTP/1.1" 200 20480 "https://t.co/" "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1" HIT 0.000123`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCombined(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSONLine(b *testing.B) {
	line := []byte(`{"time":"2026-11-27T12:00:00.123456Z","remote":"127.0.0.1","method":"GET","host":"example.com","uri":"/path?q","proto":"HTTP/1.1","status":200,"bytes":1234,"referer":"","user_agent":"curl/8","cache":"HIT","duration_ms":0.123}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSONLine(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCollectorAdd(b *testing.B) {
	c := newCollector(time.Minute, false)
	batch := make([]result, batchSize)
	for i := range batch {
		at := time.Duration(i) * time.Millisecond
		batch[i] = result{at: at, sent: at, done: at + 300*time.Microsecond, status: 200, cache: cacheHit, bytes: 2048}
	}
	b.ReportAllocs()
	for b.Loop() {
		c.add(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/result")
}

// BenchmarkRunnerLoopback is the whole bench, closed loop (as fast as the
// connections allow), against an in-process loopback server: a rough
// figure of the bench's cost per request. For the bench's real ceiling,
// with a core each, see "lakka bench target" in docs/bench.md.
func BenchmarkRunnerLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Cache", "HIT")
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewRunner(RunConfig{Target: srv.URL, Connections: 8, Timeout: 5 * time.Second, Duration: time.Minute, ASAP: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Run(context.Background(), evenly(1000, 0, "/")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/request")
}
