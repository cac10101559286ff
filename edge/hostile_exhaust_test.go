package edge

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitClosed reads from conn until the edge closes it or deadline passes;
// it returns how long that took and whether the edge closed it.
func waitClosed(conn net.Conn, deadline time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(deadline))
	_, err := io.Copy(io.Discard, conn)
	return time.Since(start), err == nil || !isTimeout(err)
}

// TestSlowlorisClients: clients that send their headers a byte at a time,
// or nothing at all, are disconnected by edge.read_timeout and
// edge.idle_timeout, and do not stop others from being served.
func TestSlowlorisClients(t *testing.T) {
	o := startOrigin(t, fixed("page", "Cache-Control", "max-age=60"))
	c := testConfig(o.addr())
	c.Edge.ReadTimeout = 400 * time.Millisecond
	c.Edge.IdleTimeout = 400 * time.Millisecond
	e := startEdge(t, c)
	const n = 20
	var wg sync.WaitGroup
	took := make(chan time.Duration, 2*n)
	for i := range 2 * n {
		conn, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				// A byte every 50 ms, forever: the whole request must
				// arrive within read_timeout.
				go dribble(conn, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "+strings.Repeat("x", 200), 50*time.Millisecond)
			}
			d, closed := waitClosed(conn, 5*time.Second)
			if !closed {
				d = time.Hour
			}
			took <- d
		}()
	}
	// Others are served meanwhile.
	for range 5 {
		if r := e.get("/"); r.status != 200 {
			t.Errorf("a normal client got %d", r.status)
		}
	}
	wg.Wait()
	close(took)
	for d := range took {
		if d > 2*time.Second {
			t.Errorf("a slow client kept its connection for %s (read and idle timeouts are 400 ms)", d)
		}
	}
}

// TestIdleConnectionsBounded: edge.max_connections bounds connections; one
// over the limit is refused at once, and idle keep-alive connections are
// reclaimed by the idle timeout so that new clients get in.
func TestIdleConnectionsBounded(t *testing.T) {
	o := startOrigin(t, fixed("page", "Cache-Control", "max-age=60"))
	c := testConfig(o.addr())
	c.Edge.MaxConnections = 8
	c.Edge.IdleTimeout = 300 * time.Millisecond
	c.Edge.ReadTimeout = 300 * time.Millisecond
	e := startEdge(t, c)
	// Eight keep-alive connections, each after one request.
	var idle []net.Conn
	for range 8 {
		conn, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		idle = append(idle, conn)
	}
	// The ninth is refused while they are held.
	status, _ := e.raw("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(status, "503") {
		t.Errorf("connection over max_connections: %q, want 503", status)
	}
	// The idle ones are closed by the edge, and new clients get in.
	for _, conn := range idle {
		if d, closed := waitClosed(conn, 5*time.Second); !closed || d > 2*time.Second {
			t.Errorf("idle connection: closed %v after %s", closed, d)
		}
	}
	eventually(t, "a new connection to be served", func() bool {
		s, _ := e.raw("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		return strings.HasPrefix(s, "200")
	})
}

// TestSlowReaders: a client that does not read a large response is
// disconnected by edge.write_timeout; for a response streamed from the
// origin (too large to store) that also frees the backend fetch slot, so a
// slow reader cannot starve the origin pool.
func TestSlowReaders(t *testing.T) {
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stored":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(big[:6<<20])
		case "/streamed":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(big)
		default:
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, "small")
		}
	})
	c := testConfig(o.addr())
	c.Edge.WriteTimeout = 500 * time.Millisecond
	c.Cache.MaxObjectBytes = 7 << 20
	c.Backends.MaxFetches = 1
	c.Backends.QueueTimeout = 3 * time.Second
	e := startEdge(t, c)
	e.get("/stored") // cache it
	e.settle()
	baseline := e.fast.GetOpenConnectionsCount()
	for _, path := range []string{"/stored", "/streamed"} {
		conn, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path)
		start := time.Now()
		eventually(t, "the edge to accept the slow reader", func() bool {
			return e.fast.GetOpenConnectionsCount() > baseline
		})
		// The client reads, but slowly: a deadline per write would never
		// run out.
		go readSlowly(conn, 10*time.Second)
		if path == "/streamed" {
			// The only fetch slot is held by the slow reader's stream;
			// another fetch gets it once the edge drops the reader.
			resp, body := rawExchange(t, e.Addr(), "GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != 200 || body != "small" {
				t.Errorf("fetch while a slow reader streams: %d %q", resp.StatusCode, body)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("fetch waited %s for the slot held by a slow reader", d)
			}
		}
		eventually(t, "the edge to drop the slow reader of "+path, func() bool {
			return e.fast.GetOpenConnectionsCount() <= baseline
		})
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: slow reader held its connection for %s (write_timeout 500 ms)", path, d)
		}
		conn.Close()
	}
	if r := e.get("/stored"); r.status != 200 || len(r.body) != 6<<20 {
		t.Errorf("a normal reader after the slow ones: %d, %d bytes", r.status, len(r.body))
	}
}

// readSlowly reads 1 KiB every 10 ms (a slow reader: the pacing is the
// client's behaviour, not a wait) until the edge closes the connection or
// limit passes; it returns the bytes read and whether the edge closed it.
func readSlowly(conn net.Conn, limit time.Duration) (int, bool) {
	end := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 1<<10)
	total := 0
	for time.Now().Before(end) {
		<-tick.C
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, err := conn.Read(buf)
		total += n
		if err != nil && !isTimeout(err) {
			return total, true
		}
	}
	return total, false
}

// TestCacheBustingFlood: a flood of unique URLs and hosts (each a miss
// that stores a 16 KiB object) keeps the store within cache.size_bytes and
// the process heap within a bound; nothing is left behind in the flights
// or the index beyond what is stored.
func TestCacheBustingFlood(t *testing.T) {
	body := make([]byte, 16<<10)
	_, _ = rand.Read(body)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if strings.HasPrefix(r.URL.Path, "/private") {
			w.Header().Set("Cache-Control", "private")
		} else {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Surrogate-Key", "k"+r.URL.Path+" all")
		}
		_, _ = w.Write(body)
	})
	const budget = 2 << 20
	c := testConfig(o.addr())
	c.Cache.SizeBytes = budget
	e := startEdge(t, c)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const workers, perWorker = 8, 60
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if time.Now().After(deadline) {
					return
				}
				path := fmt.Sprintf("/bust/%d/%d?utm_source=x&r=%d", w, i, i)
				host := fmt.Sprintf("h%d-%d.example", w, i%50)
				if i%5 == 0 {
					path = fmt.Sprintf("/private/%d/%d", w, i)
				}
				r := doURL(t, http.MethodGet, e.url+path, "", "Host", host)
				if r.status != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(deadline) {
		t.Fatalf("flood did not finish in time")
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests failed", n)
	}
	e.settle()
	if b := e.store.Stats().Bytes; b > budget {
		t.Errorf("store holds %d bytes, budget %d", b, budget)
	}
	after := heap()
	// Store budget, identity copies, ristretto's counters and buffers,
	// pools: generously bounded, far below the 8 MB that went through (4 budgets).
	if after > before && after-before > 4*budget {
		t.Errorf("heap grew by %d bytes over the flood (budget %d)", after-before, budget)
	}
	st := e.store.Stats()
	if int64(st.Hosts) > st.Objects || int64(st.Tags) > st.Objects+1 {
		t.Errorf("index holds %d hosts and %d tags for %d objects", st.Hosts, st.Tags, st.Objects)
	}
}

// TestVaryVariantFlood: a flood of requests with distinct values of a
// varied header, concurrent and sequential, stores at most
// cache.max_variants variants of the URL.
func TestVaryVariantFlood(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "User-Agent")
		w.Header().Set("Content-Type", "application/octet-stream")
		fmt.Fprint(w, r.Header.Get("User-Agent"))
	})
	c := testConfig(o.addr())
	c.Cache.MaxVariants = 4
	e := startEdge(t, c)
	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				ua := fmt.Sprintf("ua-%d-%d", w, i)
				if r := e.get("/v", "User-Agent", ua); r.body != ua {
					t.Errorf("%s got %q", ua, r.body)
				}
			}
		}()
	}
	wg.Wait()
	e.settle()
	stored := 0
	for w := range workers {
		for i := range perWorker {
			if r := e.get("/v", "User-Agent", fmt.Sprintf("ua-%d-%d", w, i)); r.get("X-Cache") == "HIT" {
				stored++
			}
		}
	}
	if stored > c.Cache.MaxVariants {
		t.Errorf("%d variants of /v stored, max_variants %d", stored, c.Cache.MaxVariants)
	}
	if objs := e.store.Stats().Objects; objs > int64(c.Cache.MaxVariants)+1 {
		t.Errorf("store holds %d objects for one URL with at most %d variants", objs, c.Cache.MaxVariants)
	}
	// A variant beyond the limit is served but not stored, and its
	// Cache-Status says so (it used to say "; stored").
	r := e.get("/v", "User-Agent", "one-too-many")
	if got := r.get("Cache-Status"); r.body != "one-too-many" || got != "lakka; fwd=miss; detail=not-stored" {
		t.Errorf("a variant over max_variants: body %q, Cache-Status %q", r.body, got)
	}
}

// TestStreamedBodiesNotBuffered: bodies too large to store are streamed
// from the origin to the client, never held whole in memory (docs/RELIABILITY.md,
// promise 8), both when relayed and when a stored gzip object too large to
// keep decoded is decoded for an identity client.
func TestStreamedBodiesNotBuffered(t *testing.T) {
	const size = 24 << 20
	big := make([]byte, size)
	// 6 MiB of text, gzip from the origin: stored (under max_object_bytes
	// compressed, under 8x decoded), too large to keep a decoded copy.
	text := []byte(strings.Repeat("all work and no play makes jack a dull boy\n", 6<<20/44))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(text)
	_ = zw.Close()
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/text" {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gz.Bytes())
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(big)
	})
	e := startEdge(t, testConfig(o.addr())) // max_object_bytes 1 MiB
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	e.get("/text", "Accept-Encoding", "gzip")
	e.settle()
	got := allocated(func() {
		resp, err := client.Get(e.url + "/text")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Cache") != "HIT" || n != int64(len(text)) || err != nil {
			t.Errorf("decoded for an identity client: %s, %d bytes (%v), want HIT %d", resp.Header.Get("X-Cache"), n, err, len(text))
		}
	})
	if got > uint64(len(text))/2 {
		t.Errorf("decoding a %d MiB body for a client allocated %d MiB", len(text)>>20, got>>20)
	}
	got = allocated(func() {
		resp, err := client.Get(e.url + "/big")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Errorf("streamed body: %d bytes, %v", n, err)
		}
	})
	if got > size/2 {
		t.Errorf("relaying a %d MiB body allocated %d MiB", size>>20, got>>20)
	}
}
