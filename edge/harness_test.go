package edge

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// origin is a real HTTP origin on 127.0.0.1 for tests: it counts requests
// and remembers the last one.
type origin struct {
	*httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Request]
}

func startOrigin(t testing.TB, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.last.Store(r.Clone(context.Background()))
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) addr() string { return strings.TrimPrefix(o.URL, "http://") }

// testEdge is a real edge server on 127.0.0.1 with ephemeral ports.
type testEdge struct {
	*Server
	t     testing.TB
	url   string
	reg   *prometheus.Registry
	clock *testClock
	stop  func() // shuts the edge down, once
}

// testClock is a freshness clock that tests move forward (advance).
type testClock struct{ offset atomic.Int64 }

func (c *testClock) at(t time.Time) time.Time { return t.Add(time.Duration(c.offset.Load())) }

// testConfig is the default config for tests: loopback, ephemeral ports,
// no access log, no drain delay.
func testConfig(backends ...string) config.Config {
	c := config.Default()
	c.Edge.Listen = "127.0.0.1:0"
	c.Edge.Admin = "127.0.0.1:0"
	c.Edge.DrainDelay = 0
	c.Edge.ShutdownTimeout = 5 * time.Second
	c.Log.Access = "off"
	c.Cache.SizeBytes = 64 * config.MiB
	c.Cache.MaxObjectBytes = 1 * config.MiB
	c.Backends.FetchTimeout = 5 * time.Second
	c.Backends.FirstByteTimeout = 5 * time.Second
	for _, b := range backends {
		c.Backends.Servers = append(c.Backends.Servers, config.Backend{Address: b})
	}
	return c
}

func startEdge(t testing.TB, c config.Config) *testEdge {
	t.Helper()
	return startEdgeWith(t, c, seams{})
}

// startEdgeWith is startEdge with seams of the test's own; the clock is
// always a testClock.
func startEdgeWith(t testing.TB, c config.Config, sm seams) *testEdge {
	t.Helper()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	clock := &testClock{}
	sm.clock = clock
	s := mustNew(t, c, logger, reg, sm)
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	te := &testEdge{Server: s, t: t, url: "http://" + s.Addr(), reg: reg, clock: clock}
	te.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		checkSlots(t, s)
	})
	t.Cleanup(te.stop)
	return te
}

// stopEdge shuts te down before the test ends (as the cleanup would).
func stopEdge(t testing.TB, te *testEdge) {
	t.Helper()
	te.stop()
}

// testCount is the number of observations in a histogram.
func testCount(t testing.TB, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// stored returns the entry stored under key, acquired until the test
// ends (its bytes may be read), or nil.
func (te *testEdge) stored(key []byte) *store.Entry {
	e := te.store.Get(key)
	if e != nil {
		te.t.Cleanup(e.Release) // before the edge stops: cleanups run last first
	}
	return e
}

// checkSlots fails the test if, once the edge stopped, a slot of its
// store's pool is still in use, or bytes of the body budget are still
// taken: a reference taken and never released (its memory would never be
// reused). Bodies written to connections that
// were just closed are released as fasthttp lets go of them: allow a
// moment.
func checkSlots(t testing.TB, s *Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := s.store.SlabStats()
		held := s.abs.bodies.Used()
		if st.Slots == 0 && held == 0 {
			return
		}
		if time.Now().After(deadline) {
			if st.Slots != 0 {
				t.Errorf("%d slots (%d bytes) still in use after the edge stopped: a reference leaked", st.Slots, st.Live)
			}
			if held != 0 {
				t.Errorf("%d bytes of cache.inflight_bytes still taken after the edge stopped: a fetch was never released", held)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client never decompresses or follows redirects: tests see the wire.
var client = &http.Client{
	Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 200},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
	Timeout: 20 * time.Second,
}

// response is a fully read response.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) get(name string) string { return r.header.Get(name) }

// do sends a request to the edge; headers alternate name, value.
func (te *testEdge) do(method, path string, headers ...string) response {
	te.t.Helper()
	return doURL(te.t, method, te.url+path, "", headers...)
}

func (te *testEdge) get(path string, headers ...string) response {
	te.t.Helper()
	return te.do(http.MethodGet, path, headers...)
}

func doURL(t testing.TB, method, url, body string, headers ...string) response {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// raw sends raw bytes on a new connection and returns the status line of
// the first response and whether the edge closed the connection after it.
func (te *testEdge) raw(req string) (status string, closed bool) {
	te.t.Helper()
	conn, err := net.Dial("tcp", te.Addr())
	if err != nil {
		te.t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		te.t.Fatal(err)
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		te.t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		te.t.Fatalf("read response to %q: %v", req, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// A closed connection reads EOF; an open one times out quickly.
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		te.t.Fatal(err)
	}
	_, err = br.ReadByte()
	closed = err == io.EOF || (err != nil && !isTimeout(err))
	return resp.Status, closed
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// advance moves the edge's freshness clock forward.
func (te *testEdge) advance(d time.Duration) {
	te.clock.offset.Add(int64(d))
}

// mustNew is New for tests: the configuration is validated first, as the
// command does (New does not).
func mustNew(t testing.TB, c config.Config, logger *slog.Logger, reg *prometheus.Registry, sm seams) *Server {
	t.Helper()
	if err := c.ValidateEdge(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	s, err := newServer(c, logger, reg, sm)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// settle waits until every store write so far is visible to lookups.
func (te *testEdge) settle() {
	te.store.Wait()
}

// counter reads a metric child.
func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// eventually polls cond until it holds or the deadline passes; it yields
// the processor between polls rather than sleeping.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

type routeCfg = config.Route

func configRoute(prefix string, mutate func(*routeCfg)) config.Route {
	r := config.Route{PathPrefix: prefix}
	mutate(&r)
	return r
}

func newTestRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// dial opens a client connection to the edge, closed when the test ends.
func (te *testEdge) dial() (net.Conn, *bufio.Reader) {
	te.t.Helper()
	conn, err := net.Dial("tcp", te.Addr())
	if err != nil {
		te.t.Fatal(err)
	}
	te.t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

// newIdleServer makes a Server that does not listen (store and entry
// tests); its background goroutines stop when the test ends.
func newIdleServer(t testing.TB, c config.Config) *Server {
	t.Helper()
	s := mustNew(t, c, discardLogger(), newTestRegistry(), seams{})
	t.Cleanup(s.closeBackground)
	return s
}
