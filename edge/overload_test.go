package edge

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSlowOriginServesStaleAfterWait: a miss with a stale copy in keep
// waits for a slow origin at most cache.stale_wait, then gets the copy
// (STALE, detail=slow-origin) while the fetch goes on and stores its
// result for the readers after it; a hung origin costs no reader more than
// the wait (docs/RELIABILITY.md, promise 11).
func TestSlowOriginServesStaleAfterWait(t *testing.T) {
	var version atomic.Int64
	var delay atomic.Int64 // ns; -1 hangs until the test ends
	hang := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch d := time.Duration(delay.Load()); {
		case d < 0:
			<-hang
			return
		case d > 0:
			time.Sleep(d)
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=3600")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	t.Cleanup(func() { close(hang) }) // before the origin's Close, which waits for its handlers
	c := testConfig(o.addr())
	c.Cache.Grace = 0
	c.Cache.StaleWait = 200 * time.Millisecond
	c.Backends.FirstByteTimeout = 1500 * time.Millisecond
	e := startEdge(t, c)
	e.get("/p")
	e.advance(time.Minute) // past freshness, within keep

	// A slow origin (700 ms): the reader gets the copy after the wait, the
	// fetch stores v1 behind it.
	version.Store(1)
	delay.Store(int64(700 * time.Millisecond))
	start := time.Now()
	r := e.get("/p")
	took := time.Since(start)
	if r.body != "v0" || r.get("X-Cache") != "STALE" || !strings.Contains(r.get("Cache-Status"), "detail=slow-origin") {
		t.Errorf("slow origin: %q %q %q, want the stale copy (slow-origin)", r.body, r.get("X-Cache"), r.get("Cache-Status"))
	}
	if took < 200*time.Millisecond || took > 900*time.Millisecond {
		t.Errorf("slow origin: answered after %s, want about cache.stale_wait (200 ms)", took)
	}
	eventually(t, "the background fetch to store v1", func() bool {
		e.settle()
		r := e.get("/p")
		return r.body == "v1" && r.get("X-Cache") == "HIT"
	})

	// A hung origin: every reader gets the copy after the wait, and no
	// reader waits for the fetch itself.
	e.advance(time.Minute)
	delay.Store(-1)
	for i := range 3 {
		start := time.Now()
		r := e.get("/p")
		if r.body != "v1" || r.get("X-Cache") != "STALE" {
			t.Errorf("hung origin, reader %d: %d %q %q", i, r.status, r.body, r.get("X-Cache"))
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("hung origin, reader %d: waited %s", i, d)
		}
	}
	if n := o.hits.Load(); n != 3 {
		t.Errorf("the origin got %d requests, want 3 (the first, the slow fetch, one hung fetch for all readers)", n)
	}

	// A fast origin answers in time: the reader gets the fresh copy.
	delay.Store(0)
	version.Store(2)
	r = e.get("/fresh")
	if r.body != "v2" || r.get("X-Cache") != "MISS" {
		t.Errorf("a miss without a copy: %q %q", r.body, r.get("X-Cache"))
	}
}

// TestPassiveHealthIgnoresSlowness: timeouts are not evidence that a
// backend is down; a slow origin stays in rotation, so requests after the
// slow ones are answered (before, ten 504s took the only backend out and
// every later request got 503).
func TestPassiveHealthIgnoresSlowness(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "ok")
	})
	c := testConfig(o.addr())
	c.Backends.FirstByteTimeout = 50 * time.Millisecond
	c.Backends.Passive.Failures = 2
	c.Backends.Passive.Cooldown = time.Hour
	e := startEdge(t, c)
	for i := range 5 {
		if r := e.get("/slow"); r.status != http.StatusGatewayTimeout {
			t.Errorf("slow %d: %d, want 504", i, r.status)
		}
	}
	if !e.backendHealthy(0) {
		t.Errorf("five timeouts took the backend out of rotation")
	}
	if r := e.get("/fast"); r.status != 200 || r.body != "ok" {
		t.Errorf("after the timeouts: %d %q", r.status, r.body)
	}
	if got := e.g().dir.Snapshots(time.Now())[0].FetchLimit; got >= 20 {
		t.Errorf("fetch limit %v after five timeouts, want it lowered from 20", got)
	}
}

// TestLastBackendNotTakenOut: a backend that drops connections is taken
// out by passive health only while another is in rotation; the only one
// left keeps getting fetches (panic routing), so it is used again as soon
// as it answers, not after the cooldown.
func TestLastBackendNotTakenOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var drops atomic.Int64
	drops.Store(3)
	healthy := startOrigin(t, fixed("ok", "Cache-Control", "no-store"))
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if drops.Add(-1) >= 0 {
				conn.Close() // accepted and dropped: evidence it is down
				continue
			}
			// Then it answers, through a proxy to a working origin.
			go proxyTo(conn, healthy.addr())
		}
	}()
	c := testConfig(ln.Addr().String())
	c.Backends.Passive.Failures = 2
	c.Backends.Passive.Cooldown = time.Hour
	e := startEdge(t, c)
	for i := range 3 {
		if r := e.get(fmt.Sprintf("/d%d", i)); r.status != http.StatusBadGateway {
			t.Errorf("dropped connection %d: %d, want 502", i, r.status)
		}
	}
	if e.backendHealthy(0) {
		t.Errorf("the backend is in rotation after dropping connections")
	}
	if r := e.get("/after"); r.status != 200 || r.body != "ok" {
		t.Errorf("the only backend, answering again: %d %q, want 200 (panic routing)", r.status, r.body)
	}
	if got := counter(e.m.backends.Panic); got == 0 {
		t.Errorf("no fetch counted as panic-routed")
	}
}

// proxyTo copies one connection to addr and back.
func proxyTo(conn net.Conn, addr string) {
	defer conn.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = copyConn(up, conn); done <- struct{}{} }()
	go func() { _, _ = copyConn(conn, up); done <- struct{}{} }()
	<-done
}

func copyConn(dst, src net.Conn) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		m, err := src.Read(buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err != nil {
			return n, err
		}
	}
}

// TestRefusedConnectionRetried: a fetch whose connection is refused is
// sent again after a short jittered pause (idempotent requests only), so a
// backend that restarts or sheds one connection costs no client an error.
func TestRefusedConnectionRetried(t *testing.T) {
	// Connection: close makes every fetch dial anew.
	o := startOrigin(t, fixed("ok", "Cache-Control", "no-store", "Connection", "close"))
	var refusals atomic.Int64
	refusals.Store(2)
	dial := func(addr string, timeout time.Duration) (net.Conn, error) {
		if refusals.Add(-1) >= 0 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		}
		return net.DialTimeout("tcp", addr, timeout)
	}
	e := startEdgeWith(t, testConfig(o.addr()), seams{dial: dial})
	if r := e.get("/r"); r.status != 200 || r.body != "ok" {
		t.Errorf("after two refused connections: %d %q, want 200", r.status, r.body)
	}
	if got := counter(e.m.backends.Retries.WithLabelValues(o.addr())); got != 2 {
		t.Errorf("retries counted %v, want 2", got)
	}
	// A POST is not retried.
	refusals.Store(1)
	if r := e.do(http.MethodPost, "/r"); r.status != http.StatusBadGateway {
		t.Errorf("POST after a refused connection: %d, want 502", r.status)
	}
	// Three refusals in a row exhaust the retries.
	refusals.Store(3)
	r := e.get("/r2")
	if r.status != http.StatusBadGateway {
		t.Errorf("three refused connections: %d, want 502", r.status)
	}
}
