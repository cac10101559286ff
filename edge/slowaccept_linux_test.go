package edge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowListener is an origin's listening socket with a small accept queue
// (backlog) whose connections are accepted only while one of a few
// workers is free: when more connections come than it takes, the kernel's
// queue fills and new connections wait for their SYN to be retried, as
// they do in front of an overloaded application server.
type slowListener struct {
	net.Listener
	free chan struct{}
}

func listenSlow(t testing.TB, backlog, workers int) *slowListener {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "slow listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	l := &slowListener{Listener: ln, free: make(chan struct{}, workers)}
	for range workers {
		l.free <- struct{}{}
	}
	return l
}

// Accept takes a connection only when a worker is free; the worker is
// given back when the connection closes.
func (l *slowListener) Accept() (net.Conn, error) {
	<-l.free
	c, err := l.Listener.Accept()
	if err != nil {
		l.free <- struct{}{}
		return nil, err
	}
	return &workerConn{Conn: c, l: l}, nil
}

// connKey holds a connection's answer count in its requests' contexts.
type connKey struct{}

type workerConn struct {
	net.Conn
	l    *slowListener
	once sync.Once
}

func (c *workerConn) Close() error {
	c.once.Do(func() { c.l.free <- struct{}{} })
	return c.Conn.Close()
}

// TestStrugglingOriginUnderBurst replays a burst of news traffic (a few hot
// pages and a long tail, as an access log from a breaking story has it)
// through an edge in front of an origin that accepts slowly (a backlog of
// 2, four workers) and answers in 20 ms: fewer than 1% of the requests
// fail, and the origin gets a steady stream of fetches at what it can take
// (docs/RELIABILITY.md, promise 11). Before the adaptive fetch limit and
// the change to passive health, timeouts took the only backend out of
// rotation and a third of such a replay got 503.
func TestStrugglingOriginUnderBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a few thousand requests")
	}
	const workers, answer = 4, 20 * time.Millisecond
	ln := listenSlow(t, 2, workers)
	var served, concurrent, maxConcurrent atomic.Int64
	var mu sync.Mutex
	var times []time.Duration
	start := time.Now()
	// Like Apache's KeepAliveTimeout and MaxKeepAliveRequests: a
	// connection gives its worker back after a second idle or 100 answers.
	srv := &http.Server{IdleTimeout: time.Second, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, new(atomic.Int64))
	}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := concurrent.Add(1)
		defer concurrent.Add(-1)
		for {
			m := maxConcurrent.Load()
			if n <= m || maxConcurrent.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(answer)
		if r.Context().Value(connKey{}).(*atomic.Int64).Add(1) >= 100 {
			w.Header().Set("Connection", "close")
		}
		served.Add(1)
		mu.Lock()
		times = append(times, time.Since(start))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "page %s", r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	c := testConfig(ln.Addr().String())
	c.Backends.Passive.Failures = 10
	c.Backends.Passive.Cooldown = time.Minute
	e := startEdge(t, c)

	// The trace: 3,000 requests, a third to 10 hot pages, the rest over
	// 900 others, the long tail of a news site's log.
	r := rand.New(rand.NewPCG(1, 2))
	trace := make([]string, 3000)
	distinct := map[string]bool{}
	for i := range trace {
		if r.IntN(3) == 0 {
			trace[i] = fmt.Sprintf("/hot/%d", r.IntN(10))
		} else {
			trace[i] = fmt.Sprintf("/news/%d", r.IntN(900))
		}
		distinct[trace[i]] = true
	}
	// Replayed as fast as 32 clients go (like lakka bench replay --max).
	paths := make(chan string)
	var failed atomic.Int64
	statuses := map[int]int{}
	var smu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range paths {
				if time.Now().After(deadline) {
					failed.Add(1)
					continue
				}
				resp := e.get(p)
				if resp.status != 200 || resp.body != "page "+p {
					failed.Add(1)
					smu.Lock()
					statuses[resp.status]++
					if statuses[resp.status] <= 3 {
						t.Logf("failed: %s: %d %s", p, resp.status, resp.get("Cache-Status"))
					}
					smu.Unlock()
				}
			}
		}()
	}
	begin := time.Now()
	for _, p := range trace {
		paths <- p
	}
	close(paths)
	wg.Wait()
	took := time.Since(begin)

	f := failed.Load()
	t.Logf("%d requests (%d distinct) in %s: %d failed %v; the origin answered %d, at most %d at once",
		len(trace), len(distinct), took.Round(time.Millisecond), f, statuses, served.Load(), maxConcurrent.Load())
	if f*100 >= int64(len(trace)) {
		t.Errorf("%d of %d requests failed (%v), want under 1%%", f, len(trace), statuses)
	}
	if got := served.Load(); got < int64(len(distinct))*95/100 {
		t.Errorf("the origin answered %d fetches for %d distinct pages", got, len(distinct))
	}
	// A steady stream: no second of the busy period without fetches, and
	// the rate near what four workers at 20 ms each can do (200/s).
	mu.Lock()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	perSecond := map[int]int{}
	for _, d := range times {
		perSecond[int(d/time.Second)]++
	}
	last := int(times[len(times)-1] / time.Second)
	mu.Unlock()
	var rates []int
	for s := 0; s < last; s++ { // whole seconds only
		rates = append(rates, perSecond[s])
		if perSecond[s] == 0 {
			t.Errorf("second %d: the origin got no fetch", s)
		}
	}
	t.Logf("origin answers per second: %v", rates)
	rate := float64(served.Load()) / (times[len(times)-1] - times[0]).Seconds()
	if rate < 0.5*float64(workers)/answer.Seconds() {
		t.Errorf("the origin answered %.0f/s, want at least half of its %0.f/s", rate, float64(workers)/answer.Seconds())
	}
	if b := e.g().dir.Snapshots(time.Now())[0]; !b.Healthy {
		t.Errorf("the backend was taken out of rotation: %+v", b)
	}
}
