package edge

import (
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// panicky makes every backend request whose URI contains a marker panic
// (RELIABILITY promise 1: recovered, counted, 500, the server keeps
// serving).
type panicky struct{ marker atomic.Pointer[[]byte] }

func (p *panicky) arm(marker string) {
	b := []byte(marker)
	p.marker.Store(&b)
}

func (p *panicky) disarm() { p.marker.Store(nil) }

func (p *panicky) hook(req *fasthttp.Request) {
	if m := p.marker.Load(); m != nil && bytes.Contains(req.Header.RequestURI(), *m) {
		panic("injected panic for " + string(req.Header.RequestURI()))
	}
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
	var p panicky
	e := startEdgeWith(t, c, func(s *Server) { s.beforeSend = p.hook })
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
	if r := e.get("/other"); r.status != 200 || r.body != "ok/other" {
		t.Errorf("another URL during the panics: %d %q", r.status, r.body)
	}

	// A background refresh that panics: the stale object is served, the
	// refresh is recovered, and a later miss is not stuck behind it.
	p.arm("/stale")
	e.advance(20 * time.Second)
	panicsBefore := counter(e.m.panics)
	if r := e.get("/stale"); r.get("X-Cache") != "STALE" || r.body != "ok/stale" {
		t.Errorf("stale during a panicking refresh: %q %q", r.get("X-Cache"), r.body)
	}
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
	if got := counter(e.m.panics); got < n+3+1 {
		t.Errorf("lakka_edge_panics_total = %v, want at least %d", got, n+3+1)
	}
}
