package edge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// panicky makes every backend request whose URI contains a marker panic
// while fasthttp writes it to the backend connection (docs/RELIABILITY.md,
// promise 1: recovered, counted, 500, the server keeps serving).
type panicky struct{ marker atomic.Pointer[[]byte] }

func (p *panicky) arm(marker string) {
	b := []byte(marker)
	p.marker.Store(&b)
}

func (p *panicky) disarm() { p.marker.Store(nil) }

// dial is the edge's backend dialer (seams.dial): its connections panic
// on writing an armed request.
func (p *panicky) dial(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &panickyConn{Conn: c, p: p}, nil
}

type panickyConn struct {
	net.Conn
	p *panicky
}

func (c *panickyConn) Write(b []byte) (int, error) {
	if m := c.p.marker.Load(); m != nil && bytes.Contains(b, *m) {
		panic("injected panic writing " + string(*m))
	}
	return c.Conn.Write(b)
}

// TestPanicRecovered injects panics into fetches made for clients (a
// coalesced miss with waiters, a pass, a credentialed fetch) and into a
// background refresh: each is answered 500 or served stale, counted in
// lakka_edge_panics_total, leaves no flight behind for waiters to hang on,
// and the edge keeps serving that URL and others.
func TestPanicRecovered(t *testing.T) {
	o := startScripted(t)
	for _, p := range []string{"/boom", "/other", "/stale"} {
		o.set(p, answer{headers: []string{"Cache-Control", "max-age=10, stale-while-revalidate=3600"}, body: "ok" + p})
	}
	c := testConfig(o.addr())
	c.Cache.WaitTimeout = 10 * time.Second
	// Fewer fetch slots than panics: a slot not returned by a panicking
	// fetch would leave the backend busy (503) before the test ends.
	c.Backends.MaxFetches = 4
	var p panicky
	e := startEdgeWith(t, c, seams{dial: p.dial})
	e.get("/stale")
	e.settle()
	p.arm("/boom")

	// A miss with waiters: the leader panics, the waiters are not left
	// waiting for a fetch that will never finish.
	const n = 8
	var wg sync.WaitGroup
	start := time.Now()
	statuses := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.get("/boom").status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 500 {
			t.Errorf("a request for /boom got %d, want 500", s)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("requests for /boom took %s: waiters hung on the panicked fetch", d)
	}
	panicsBefore := counter(e.m.panics)
	for _, req := range []struct{ method, hdr, val string }{
		{http.MethodPost, "", ""},
		{http.MethodGet, "Authorization", "Bearer t"},
		{http.MethodGet, "Cookie", "s=1"},
	} {
		var hdrs []string
		if req.hdr != "" {
			hdrs = []string{req.hdr, req.val}
		}
		r := doURL(t, req.method, e.url+"/boom", "", hdrs...)
		if r.status != 500 {
			t.Errorf("%s /boom %s: %d, want 500", req.method, req.hdr, r.status)
		}
	}
	if got := counter(e.m.panics) - panicsBefore; got != 3 {
		t.Errorf("%v panics counted for three requests that panicked", got)
	}
	if r := e.get("/other"); r.status != 200 || r.body != "ok/other" {
		t.Errorf("another URL during the panics: %d %q", r.status, r.body)
	}

	// A background refresh that panics: the stale object is served, the
	// refresh is recovered, and a later miss is not stuck behind it.
	p.arm("/stale")
	e.advance(20 * time.Second)
	panicsBefore = counter(e.m.panics)
	if r := e.get("/stale"); r.get("X-Cache") != "STALE" || r.body != "ok/stale" {
		t.Errorf("stale during a panicking refresh: %q %q", r.get("X-Cache"), r.body)
	}
	// Counted once the refresh's flight is finished.
	eventually(t, "the refresh panic to be recovered", func() bool { return counter(e.m.panics) > panicsBefore })

	p.disarm()
	if r := e.get("/boom"); r.status != 200 || r.body != "ok/boom" {
		t.Errorf("/boom after the panics: %d %q", r.status, r.body)
	}
	e.advance(2 * time.Hour) // past grace: a miss, with the refresh's flight long gone
	start = time.Now()
	if r := e.get("/stale"); r.status != 200 || r.body != "ok/stale" {
		t.Errorf("/stale after the refresh panic: %d %q", r.status, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/stale took %s: it waited on the panicked refresh", d)
	}
	if n := e.g().dir.Snapshots(time.Now())[0].Fetching; n != 0 {
		t.Errorf("%d fetch slots still taken after the panics", n)
	}
	// The leaders of /boom panicked (waiters got their 500 without one),
	// then the three uncoalesced requests and the refresh.
	if got := counter(e.m.panics); got < 1+3+1 {
		t.Errorf("lakka_edge_panics_total = %v, want at least %d", got, 1+3+1)
	}
}

// TestRollingRestart drains an edge the way a rolling deploy does
// (docs/RELIABILITY.md, promise 10): /healthz fails at once while requests are still
// served through the drain delay; then the listener closes, idle
// keep-alive connections are closed, a request in flight finishes with its
// whole body, a client looping on keep-alive sees only complete answers,
// and Shutdown returns once the last request is done (a connection that
// never sent a request is closed by edge.read_timeout).
func TestRollingRestart(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			once.Do(func() { close(entered) })
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, strings.Repeat("x", 10000))
	})
	c := testConfig(o.addr())
	c.Edge.DrainDelay = time.Second
	c.Edge.ReadTimeout = time.Second
	s := mustNew(t, c, discardLogger(), newTestRegistry(), seams{})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	addr := s.Addr()
	dial := func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// An idle keep-alive connection, and one that never sends a request.
	idle := dial()
	fmt.Fprint(idle, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBR, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	silent := dial()
	// A request in flight.
	inflight := make(chan response, 1)
	go func() { inflight <- doURL(t, http.MethodGet, "http://"+addr+"/slow", "") }()
	<-entered
	// A client looping on its own keep-alive connections.
	loopClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer loopClient.CloseIdleConnections()
	stopLoop := make(chan struct{})
	loopDone := make(chan [2]int, 1)
	go func() {
		ok, bad := 0, 0
		for i := 0; i < 100000; i++ {
			select {
			case <-stopLoop:
				loopDone <- [2]int{ok, bad}
				return
			default:
			}
			resp, err := loopClient.Get("http://" + addr + "/loop")
			if err != nil {
				continue // refused or closed before an answer: retried by a real client elsewhere
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || len(b) != 10000 || resp.StatusCode != 200 {
				bad++
				continue
			}
			ok++
		}
		loopDone <- [2]int{ok, bad}
	}()

	shutdownStart := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	eventually(t, "draining", s.draining.Load)
	if r := doURL(t, http.MethodGet, "http://"+s.AdminAddr()+"/healthz", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("healthz while draining: %d, want 503", r.status)
	}
	// Still serving during the drain delay: the load balancer has not
	// noticed yet.
	if r := doURL(t, http.MethodGet, "http://"+addr+"/during", ""); r.status != 200 {
		t.Errorf("a request during the drain delay: %d", r.status)
	}
	if time.Since(shutdownStart) > c.Edge.DrainDelay {
		t.Logf("the drain-delay check ran late (%s): slow machine", time.Since(shutdownStart))
	}
	eventually(t, "the listener to close", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	if d, closed := waitClosed(idle, 3*time.Second); !closed {
		t.Errorf("idle keep-alive connection not closed (%s)", d)
	}
	close(release)
	r := <-inflight
	if r.status != 200 || len(r.body) != 10000 {
		t.Errorf("in-flight request: %d, %d bytes", r.status, len(r.body))
	}
	if d, closed := waitClosed(silent, 3*time.Second); !closed {
		t.Errorf("connection without a request not closed (%s)", d)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Shutdown did not return after the last request")
	}
	close(stopLoop)
	res := <-loopDone
	if res[1] != 0 || res[0] == 0 {
		t.Errorf("the looping client got %d incomplete answers and %d complete ones", res[1], res[0])
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestClockJumps moves the freshness clock forward in large jumps: stored
// objects expire exactly once, are fetched again, and nothing overflows or
// serves an object as fresh after its lifetime (docs/RELIABILITY.md, promise 9).
func TestClockJumps(t *testing.T) {
	o := startScripted(t)
	o.set("/short", answer{headers: []string{"Cache-Control", "max-age=60"}, body: "short"})
	o.set("/long", answer{headers: []string{"Cache-Control", "max-age=2147483648"}, body: "long"})
	e := startEdge(t, testConfig(o.addr()))
	f := func(path, want string) {
		t.Helper()
		r := e.get(path)
		if r.get("X-Cache") != want || r.status != 200 {
			t.Errorf("%s: %d X-Cache %q (%s), want %s", path, r.status, r.get("X-Cache"), r.get("Cache-Status"), want)
		}
		e.settle()
	}
	f("/short", "MISS")
	f("/long", "MISS")
	f("/short", "HIT")
	for _, jump := range []time.Duration{24 * time.Hour, 365 * 24 * time.Hour, 50 * 365 * 24 * time.Hour} {
		e.advance(jump)
		f("/short", "MISS") // expired long ago, past grace: fetched again
		f("/short", "HIT")
	}
	// The 2^31 s cap is 68 years: fresh after 51 years, gone after 70.
	f("/long", "HIT")
	e.advance(19 * 365 * 24 * time.Hour)
	f("/long", "MISS")
}
