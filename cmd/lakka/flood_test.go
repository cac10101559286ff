//go:build !race && linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// TestFloodRSS floods an edge (the real binary, without the race
// detector) with distinct URLs, as a cache-busting attack does, and checks
// its peak RSS (VmHWM) against the promise: at most 1.25 times
// cache.size_bytes plus 48 MiB. Three waves: 40 KiB pages, then 2 KiB ones
// (many small objects: per-object overhead, and memory moving from one
// size of body to another), then 16 KiB of compressible HTML for a client
// without gzip (stored gzip, each answer decoded: the decoded copies'
// pool fills too). LAKKA_FLOOD_CACHE sets the cache size
// (default 64MiB; the README quotes 1GiB too), LAKKA_FLOOD_REQUESTS the
// requests of each wave.
func TestFloodRSS(t *testing.T) {
	cache := config.ByteSize(64 << 20)
	if s := os.Getenv("LAKKA_FLOOD_CACHE"); s != "" {
		if err := cache.Set(s); err != nil {
			t.Fatalf("LAKKA_FLOOD_CACHE: %v", err)
		}
	}
	waves := []struct {
		size, requests int
		html           bool
	}{{40 << 10, 0, false}, {2 << 10, 0, false}, {16 << 10, 0, true}}
	for i := range waves {
		// Enough distinct objects to fill the cache about three times.
		waves[i].requests = max(3*int(cache)/waves[i].size, 20_000)
		if waves[i].requests > 300_000 {
			waves[i].requests = 300_000
		}
		if s := os.Getenv("LAKKA_FLOOD_REQUESTS"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("LAKKA_FLOOD_REQUESTS: %v", err)
			}
			waves[i].requests = n
		}
	}
	// Incompressible bodies: the edge stores what it gets.
	block := make([]byte, 64<<10)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(block)
	// Compressible: words from a small vocabulary (about 4:1 with gzip).
	html := make([]byte, 0, 64<<10)
	words := []string{"the", "council", "met", "on", "tuesday", "<p>", "</p>", "storm", "minister", "said", "results", "league"}
	for len(html) < 64<<10 {
		html = append(html, words[rng.Uint64()%uint64(len(words))]...)
		html = append(html, ' ')
	}
	var originHits atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		n, err := strconv.Atoi(r.URL.Query().Get("size"))
		if err != nil || n > len(block) {
			http.Error(w, "size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		off := len(r.URL.Path) % 1024
		if r.URL.Query().Get("html") != "" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(html[off : off+n])
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(block[off : off+n])
	}))
	defer o.Close()
	a, cmd, logs := startBinary(t, listening, []string{"LAKKA_ADMIN_TOKEN=" + testAdminToken}, "edge",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend", strings.TrimPrefix(o.URL, "http://"),
		"--cache-size", cache.String())
	pid := cmd.Process.Pid
	base := readStatus(t, pid, "VmRSS")
	// No Accept-Encoding: every body is asked for, and checked, as it is.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 30 * time.Second}
	limit := int64(cache)*5/4 + 48<<20
	deadline := time.Now().Add(4 * time.Minute)
	for w, wave := range waves {
		var next, failed atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(wave.requests) || time.Now().After(deadline) {
						return
					}
					url := fmt.Sprintf("http://%s/w%d/%d?size=%d", a[0], w, i, wave.size)
					if wave.html {
						url += "&html=1"
					}
					resp, err := client.Get(url)
					if err != nil {
						failed.Add(1)
						continue
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || n != int64(wave.size) {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		sent := min(next.Load()-1, int64(wave.requests))
		hwm := readStatus(t, pid, "VmHWM")
		t.Logf("wave %d: %d requests of %d B in %v, %d failed; RSS %.1f MiB, peak %.1f MiB (limit %.1f MiB; peak = %.2f x the cache + 48 MiB)",
			w, sent, wave.size, time.Since(start).Round(time.Millisecond), failed.Load(),
			mib(readStatus(t, pid, "VmRSS")), mib(hwm), mib(limit), float64(hwm-48<<20)/float64(cache))
		t.Logf("wave %d: %s", w, memoryMetrics(t, client, a[1]))
		if failed.Load() > 0 {
			t.Errorf("wave %d: %d requests failed", w, failed.Load())
		}
		if hwm > limit {
			t.Errorf("wave %d: peak RSS %.1f MiB over %.1f MiB (1.25 x %s + 48 MiB)", w, mib(hwm), mib(limit), cache)
		}
	}
	t.Logf("RSS at start %.1f MiB; origin answered %d", mib(base), originHits.Load())
	stopBinary(t, cmd, logs)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// readStatus returns a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func readStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		return kb << 10
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// memoryMetrics summarises where the edge's memory is, from its metrics:
// the Go heap in use, what the Go runtime holds from the system, the
// slots outside the heap.
func memoryMetrics(t *testing.T, client *http.Client, admin string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := map[string]string{
		"go_memstats_heap_inuse_bytes":            "heap in use",
		"go_memstats_sys_bytes":                   "Go runtime from the system",
		`lakka_edge_slab_bytes{state="live"}`:     "slots live",
		`lakka_edge_slab_bytes{state="resident"}`: "slots resident",
		"lakka_edge_cache_bytes":                  "cache counted",
		`lakka_edge_slab_refusals_total`:          "slot refusals",
		`lakka_edge_inflight_body_refusals_total`: "bodies streamed for want of cache.inflight_bytes",
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if what, found := want[name]; ok && found {
			f, _ := strconv.ParseFloat(v, 64)
			if strings.HasSuffix(name, "_total") {
				out = append(out, fmt.Sprintf("%s %.0f", what, f))
			} else {
				out = append(out, fmt.Sprintf("%s %.1f MiB", what, f/(1<<20)))
			}
		}
	}
	return strings.Join(out, ", ")
}
