package bench

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/valyala/fasthttp/fasthttputil"
)

// listSource serves a fixed list of requests.
type listSource struct {
	reqs []Request
	i    int
}

func (s *listSource) Next(r *Request) bool {
	if s.i >= len(s.reqs) {
		return false
	}
	*r = s.reqs[s.i]
	s.i++
	return true
}

// evenly returns n GET requests for path, every gap, starting at 0.
func evenly(n int, gap time.Duration, path string) *listSource {
	s := &listSource{}
	for i := range n {
		s.reqs = append(s.reqs, Request{At: time.Duration(i) * gap, Path: path, URL: -1})
	}
	return s
}

func newTestRunner(t *testing.T, cfg RunConfig) *Runner {
	t.Helper()
	if cfg.Connections == 0 {
		cfg.Connections = 4
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	return r
}

func TestRunnerCountsAndRates(t *testing.T) {
	var hits, misses atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hit":
			hits.Add(1)
			w.Header().Set("X-Cache", "HIT")
			w.Write([]byte("0123456789"))
		case "/miss":
			misses.Add(1)
			w.Header().Set("X-Cache", "MISS")
			w.Write([]byte("01234"))
		case "/err":
			w.WriteHeader(503)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	src := &listSource{}
	for i := range 300 {
		path := "/hit"
		switch i % 10 {
		case 0:
			path = "/miss"
		case 1:
			path = "/err"
		case 2:
			path = "/nope"
		}
		src.reqs = append(src.reqs, Request{At: time.Duration(i) * time.Millisecond, Path: path, URL: -1})
	}
	r := newTestRunner(t, RunConfig{Target: srv.URL})
	if err := r.Run(context.Background(), src); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rep := r.Report()
	if rep.Requests != 300 || rep.Offered != 300 || rep.Responses != 300 {
		t.Errorf("requests %d offered %d responses %d, want 300 each", rep.Requests, rep.Offered, rep.Responses)
	}
	if got, want := hits.Load(), int64(210); got != want {
		t.Errorf("server saw %d hits, want %d", got, want)
	}
	if rep.Errors.HTTP5xx != 30 || rep.Errors.HTTP4xx != 30 || rep.Errors.Total != 60 {
		t.Errorf("errors %+v, want 30 5xx and 30 4xx", rep.Errors)
	}
	if rep.Cache["HIT"] != 210 || rep.Cache["MISS"] != 30 || rep.Cache["none"] != 60 {
		t.Errorf("cache %v", rep.Cache)
	}
	// Hit ratio over responses with a cache status: 210 of 240.
	if rep.HitRatio == nil || *rep.HitRatio != 0.875 {
		t.Errorf("hit ratio %v, want 0.875", rep.HitRatio)
	}
	if want := int64(210*10 + 30*5); rep.Bytes < want {
		t.Errorf("bytes %d, want at least %d", rep.Bytes, want)
	}
	// 300 requests scheduled over 0.3 s: the run takes at least that long,
	// and the offered rate cannot exceed 300 over the run's wall time.
	if rep.DurationS < 0.299 {
		t.Errorf("duration %v s, want ≥ 0.299", rep.DurationS)
	}
	if rep.OfferedRPS > 300/0.299 || rep.OfferedRPS <= 0 {
		t.Errorf("offered rate %v", rep.OfferedRPS)
	}
	// Everything was scheduled in second 0; responses may complete later.
	var achieved int64
	for _, s := range rep.Series {
		achieved += s.Achieved
	}
	if rep.Series[0].Offered != 300 || achieved != 300 {
		t.Errorf("series offered %d in second 0 and achieved %d, want 300 and 300", rep.Series[0].Offered, achieved)
	}
}

func TestRunnerStopsAtDurationAndMaxRequests(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()

	r := newTestRunner(t, RunConfig{Target: srv.URL, MaxRequests: 25})
	if err := r.Run(context.Background(), evenly(100, 0, "/")); err != nil {
		t.Fatal(err)
	}
	if got := r.Report().Requests; got != 25 || n.Load() != 25 {
		t.Errorf("sent %d (server saw %d), want 25", got, n.Load())
	}

	// Requests scheduled at or after Duration are not sent.
	r = newTestRunner(t, RunConfig{Target: srv.URL, Duration: 50 * time.Millisecond})
	if err := r.Run(context.Background(), evenly(100, time.Millisecond, "/")); err != nil {
		t.Fatal(err)
	}
	if got := r.Report().Requests; got != 50 {
		t.Errorf("sent %d, want the 50 scheduled before the duration", got)
	}
}

func TestRunnerErrorKinds(t *testing.T) {
	// A port nobody listens on: connect errors.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r := newTestRunner(t, RunConfig{Target: dead})
	if err := r.Run(context.Background(), evenly(5, 0, "/")); err != nil {
		t.Fatal(err)
	}
	if e := r.Report().Errors; e.Connect != 5 || e.Total != 5 {
		t.Errorf("errors %+v, want 5 connect errors", e)
	}

	// A server that never answers: timeouts.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	r = newTestRunner(t, RunConfig{Target: srv.URL, Timeout: 50 * time.Millisecond})
	if err := r.Run(context.Background(), evenly(3, 0, "/")); err != nil {
		t.Fatal(err)
	}
	if e := r.Report().Errors; e.Timeout != 3 {
		t.Errorf("errors %+v, want 3 timeouts", e)
	}
}

func TestRunnerOtherErrors(t *testing.T) {
	// A server that hangs up without answering: "other" errors, with
	// their message kept as an example.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte("garbage\r\n\r\n"))
			c.Close()
		}
	}()
	r := newTestRunner(t, RunConfig{Target: "http://" + ln.Addr().String(), Connections: 1})
	if err := r.Run(context.Background(), evenly(3, 0, "/")); err != nil {
		t.Fatal(err)
	}
	e := r.Report().Errors
	if e.Other != 3 || len(e.OtherExamples) == 0 {
		t.Errorf("errors %+v, want 3 other errors with examples", e)
	}
}

func TestRunnerSendsHeaders(t *testing.T) {
	type seen struct{ host, ae, cookie, inm, ua, method string }
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Host, r.Header.Get("Accept-Encoding"), r.Header.Get("Cookie"),
			r.Header.Get("If-None-Match"), r.Header.Get("User-Agent"), r.Method})
		mu.Unlock()
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte("body"))
	}))
	defer srv.Close()

	src := &listSource{reqs: []Request{
		{At: 0, Path: "/a", URL: 0, AcceptEncoding: "gzip", UserAgent: "ua1", Host: "www.example.com"},
		{At: 10 * time.Millisecond, Path: "/a", URL: 0, Conditional: true, Cookie: "sessionid=1", Method: "HEAD"},
	}}
	r := newTestRunner(t, RunConfig{Target: srv.URL, Connections: 1, URLTableSize: 1})
	if err := r.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(got))
	}
	if want := (seen{"www.example.com", "gzip", "", "", "ua1", "GET"}); got[0] != want {
		t.Errorf("first request %+v, want %+v", got[0], want)
	}
	host := srv.Listener.Addr().String()
	if want := (seen{host, "", "sessionid=1", `"v1"`, "", "HEAD"}); got[1] != want {
		t.Errorf("second request %+v, want %+v", got[1], want)
	}
	if s := r.Report().Status; s["3xx"] != 1 || s["2xx"] != 1 {
		t.Errorf("status %v, want one 2xx and one 3xx", s)
	}
}

func TestRunnerWaitsForSlot(t *testing.T) {
	paths := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.Header().Set("X-Content-Version", "3")
	}))
	defer srv.Close()
	slot := NewSlot()
	src := &listSource{reqs: []Request{{At: 0, Path: "/before", URL: -1}, {At: time.Millisecond, Slot: slot, URL: -1, Track: true}}}
	r := newTestRunner(t, RunConfig{Target: srv.URL})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), src) }()
	if p := <-paths; p != "/before" {
		t.Fatalf("first path %q", p)
	}
	slot.Set("/published")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := <-paths; p != "/published" {
		t.Errorf("slot request went to %q, want /published", p)
	}
	// The version of a tracked response is what freshness lag is made of.
	r.RecordEdit(r.Start(), 3)
	if f := r.Report().FreshnessLagMs; f.Seen != 1 {
		t.Errorf("freshness %+v, want the edit seen", f)
	}

	// A failed slot ends the run with its error.
	slot = NewSlot()
	slot.Fail(errors.New("publish failed"))
	r = newTestRunner(t, RunConfig{Target: srv.URL})
	err := r.Run(context.Background(), &listSource{reqs: []Request{{Slot: slot, URL: -1}}})
	if err == nil {
		t.Error("Run with a failed slot: no error")
	}
}

func TestRunnerCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	r := newTestRunner(t, RunConfig{Target: srv.URL, Duration: time.Hour, Progress: func(Progress) {}})
	// Requests an hour apart: the run waits; cancelling ends it at once.
	src := &listSource{reqs: []Request{{At: 0, Path: "/", URL: -1}, {At: 59 * time.Minute, Path: "/", URL: -1}}}
	hook := &hookSource{src: src, after: func(i int) {
		if i == 1 {
			once.Do(cancel)
		}
	}}
	if err := r.Run(ctx, hook); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	if got := r.Report().Requests; got != 1 {
		t.Errorf("sent %d, want 1", got)
	}
}

// hookSource calls after(i) once it has produced request i.
type hookSource struct {
	src   Source
	i     int
	after func(int)
}

func (h *hookSource) Next(r *Request) bool {
	ok := h.src.Next(r)
	if ok {
		h.after(h.i)
		h.i++
	}
	return ok
}

// TestLatencyFromSchedule runs against a server that takes 100 ms per
// request, with one connection and a request due every 10 ms. A closed-loop
// tool would report 100 ms for each; open loop, request k waits for the k
// before it, so its latency from the schedule is 100 ms + k × 90 ms. Fake
// time (synctest) over an in-memory network makes the figures exact.
func TestLatencyFromSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := fasthttputil.NewInmemoryListener()
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte("ok"))
		})}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()

		r := newTestRunner(t, RunConfig{
			Target:      "http://bench.test",
			Connections: 1,
			dial:        func(string) (net.Conn, error) { return ln.Dial() },
			timerPacing: true,
		})
		if err := r.Run(context.Background(), evenly(12, 10*time.Millisecond, "/")); err != nil {
			t.Fatal(err)
		}
		rep := r.Report()
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatal(err)
		}
		// Let the client's idle-connection cleaner see that nothing is left
		// and exit (fake time: this returns at once).
		time.Sleep(time.Minute)
		// Latencies 100, 190, 280, ... 1090 ms: the 6th of 12 is 550.
		l := rep.LatencyMs
		if !near(l.P50, 550) || !near(l.Max, 1090) {
			t.Errorf("latency p50 %v max %v ms, want 550 and 1090", l.P50, l.Max)
		}
		if !near(rep.SendDelayMs.Max, 990) {
			t.Errorf("send delay max %v ms, want 990 (request 11 sent at 1100 ms, due at 110 ms)", rep.SendDelayMs.Max)
		}
		if l := rep.Limits; l.Late != 11 || l.PoolLate != 11 || l.BenchLate != 0 || !l.PoolLimited || l.BenchLimited {
			t.Errorf("limits %+v, want 11 late requests, all for the pool", rep.Limits)
		}
	})
}

// near reports whether a histogram's value is want, within its precision
// (three significant digits).
func near(got, want float64) bool { return got >= want && got <= want*1.001 }

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int64{"7": 7, "": 0, "12345": 12345, "-1": 0, "1a": 0, "99999999999999999999": 0} {
		if got := parseVersion([]byte(in)); got != want {
			t.Errorf("parseVersion(%q) = %d, want %d", in, got, want)
		}
	}
}

// With several targets (a fleet behind no load balancer), requests go to
// each in turn, all with the first target's Host.
func TestRunnerSpreadsOverTargets(t *testing.T) {
	var counts [3]atomic.Int64
	var hosts sync.Map
	var srvs []*httptest.Server
	for i := range counts {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			counts[i].Add(1)
			hosts.Store(r.Host, true)
			w.Header().Set("X-Cache", "HIT")
		}))
		defer srv.Close()
		srvs = append(srvs, srv)
	}
	r := newTestRunner(t, RunConfig{Target: srvs[0].URL, MoreTargets: []string{srvs[1].URL, srvs[2].URL}})
	if err := r.Run(context.Background(), evenly(300, 0, "/")); err != nil {
		t.Fatal(err)
	}
	for i := range counts {
		if n := counts[i].Load(); n != 100 {
			t.Errorf("target %d got %d of 300 requests, want 100", i, n)
		}
	}
	n := 0
	hosts.Range(func(h, _ any) bool {
		n++
		if h != srvs[0].Listener.Addr().String() {
			t.Errorf("a request with Host %q, want the first target's", h)
		}
		return true
	})
	if n != 1 {
		t.Errorf("%d distinct Host headers", n)
	}
	if rep := r.Report(); rep.Responses != 300 || !strings.Contains(rep.Target, srvs[2].URL) {
		t.Errorf("report: %d responses, target %q", rep.Responses, rep.Target)
	}
}
