package edge

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// fakeConn records the deadlines set on it; Read returns the queued
// chunks, then EOF.
type fakeConn struct {
	net.Conn
	chunks         []string
	readDL, wrDL   time.Time
	readSets, wSet int
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if len(f.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.chunks[0])
	f.chunks = f.chunks[1:]
	return n, nil
}
func (f *fakeConn) Write(p []byte) (int, error)        { return len(p), nil }
func (f *fakeConn) SetReadDeadline(t time.Time) error  { f.readDL = t; f.readSets++; return nil }
func (f *fakeConn) SetWriteDeadline(t time.Time) error { f.wrDL = t; f.wSet++; return nil }

// TestClientConnDeadlines walks a connection through fasthttp's use of it
// on a clock the test moves: every deadline is where the timeouts say
// (within an eighth late, never early), and a busy connection seldom
// moves them.
func TestClientConnDeadlines(t *testing.T) {
	const read, idle, write = 10 * time.Second, 60 * time.Second, 30 * time.Second
	clock := newCoarseClock()
	start := time.Unix(1_800_000_000, 0)
	now := start
	clock.ns.Store(now.UnixNano())
	advance := func(d time.Duration) {
		now = now.Add(d)
		clock.ns.Store(now.UnixNano())
	}
	f := &fakeConn{}
	c := &clientConn{Conn: f, t: newConnTimeouts(read, idle, write, clock)}
	within := func(what string, got time.Time, from time.Time, d time.Duration) {
		t.Helper()
		if got.Before(from.Add(d)) || got.After(from.Add(d+d/8)) {
			t.Errorf("%s: deadline %s after the start, want %s to %s", what, got.Sub(start), from.Add(d).Sub(start), from.Add(d+d/8).Sub(start))
		}
	}
	buf := make([]byte, 64)
	// A new connection: the first request within read_timeout.
	f.chunks = []string{"GET / HT"}
	c.Read(buf)
	within("first request", f.readDL, now, read)
	// The rest of it comes 3 s later, still under the first deadline.
	advance(3 * time.Second)
	first := now.Add(-3 * time.Second)
	f.chunks = []string{"TP/1.1\r\n\r\n"}
	c.Read(buf)
	within("rest of the first request", f.readDL, first, read)
	// The answer: fasthttp's write deadline.
	c.SetWriteDeadline(now.Add(write))
	c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	within("answer", f.wrDL, now, write)
	// Waiting for the next request: idle_timeout.
	f.chunks = []string{"GET / HTTP/1.1\r\n\r\n"}
	c.Read(buf)
	within("idle wait", f.readDL, now, idle)
	// A slowloris: first bytes, then a trickle; the deadline comes down to
	// read_timeout from the first bytes.
	c.SetWriteDeadline(now.Add(write))
	c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.chunks = []string{"G"}
	c.Read(buf)
	slowStart := now
	for range 5 {
		advance(time.Second)
		f.chunks = []string{"E"}
		c.Read(buf)
		within("slow request", f.readDL, slowStart, read)
	}
	// A busy keep-alive connection: 100,000 requests, one every 100 µs
	// (10 s in all), each read at once and answered.
	sets, wsets := f.readSets, f.wSet
	for range 100_000 {
		advance(100 * time.Microsecond)
		c.SetWriteDeadline(now.Add(write))
		c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
		f.chunks = []string{"GET / HTTP/1.1\r\n\r\n"}
		c.Read(buf)
		if f.readDL.Before(now.Add(idle)) || f.wrDL.Before(now.Add(write)) {
			t.Fatalf("a deadline fell behind the clock: read %s, write %s at %s", f.readDL.Sub(start), f.wrDL.Sub(start), now.Sub(start))
		}
	}
	moves := f.readSets - sets + f.wSet - wsets
	t.Logf("100,000 requests in 10 s: %d deadline moves", moves)
	if moves > 20 {
		t.Errorf("%d deadline moves for 100,000 requests over 10 s: not coarse", moves)
	}
}

// TestBusyConnectionOutlivesReadTimeout: a keep-alive connection that keeps
// asking for longer than read_timeout, and rests between requests for
// longer than read_timeout but less than idle_timeout, is never cut.
func TestBusyConnectionOutlivesReadTimeout(t *testing.T) {
	o := startOrigin(t, fixed("page", "Cache-Control", "max-age=60"))
	c := testConfig(o.addr())
	c.Edge.ReadTimeout = 200 * time.Millisecond
	c.Edge.IdleTimeout = 2 * time.Second
	e := startEdge(t, c)
	conn, br := e.dial()
	ask := func(i int) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /?%d HTTP/1.1\r\nHost: a\r\n\r\n", i%3)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	end := time.Now().Add(time.Second)
	i := 0
	for ; time.Now().Before(end) && i < 5000; i++ {
		ask(i)
	}
	// Rest longer than read_timeout, then ask again on the same connection.
	rest := time.NewTimer(600 * time.Millisecond)
	<-rest.C
	ask(i)
}
