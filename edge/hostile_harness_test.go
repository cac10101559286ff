package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawOrigin is a backend that is a bare TCP listener on 127.0.0.1: it
// reads each request the edge sends with net/http's parser and lets the
// test answer with arbitrary bytes. It records which connection carried
// each request, so tests can tell whether the edge reused a connection.
type rawOrigin struct {
	ln      net.Listener
	accepts atomic.Int64 // connections accepted
	reqs    atomic.Int64 // requests read
	respond func(n int64, conn net.Conn, req *http.Request)

	mu     sync.Mutex // guards conns, connOf
	conns  map[net.Conn]struct{}
	connOf []int64 // connection number of request i (1-based numbers)
	wg     sync.WaitGroup
	closed chan struct{}
}

// startRawOrigin starts a raw origin. respond is called for request number
// n (1-based) and writes whatever it wants to conn; the connection is read
// again after it returns unless respond closed it.
func startRawOrigin(t testing.TB, respond func(n int64, conn net.Conn, req *http.Request)) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln, respond: respond, conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	o.wg.Add(1)
	go o.accept()
	t.Cleanup(o.close)
	return o
}

func (o *rawOrigin) addr() string { return o.ln.Addr().String() }

func (o *rawOrigin) accept() {
	defer o.wg.Done()
	for {
		c, err := o.ln.Accept()
		if err != nil {
			return
		}
		id := o.accepts.Add(1)
		o.mu.Lock()
		select {
		case <-o.closed:
			o.mu.Unlock()
			c.Close()
			return
		default:
		}
		o.conns[c] = struct{}{}
		o.wg.Add(1)
		o.mu.Unlock()
		go o.serve(id, c)
	}
}

func (o *rawOrigin) serve(id int64, c net.Conn) {
	defer o.wg.Done()
	defer func() {
		o.mu.Lock()
		delete(o.conns, c)
		o.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.ContentLength > 0 {
			if _, err := br.Discard(int(req.ContentLength)); err != nil {
				return
			}
		}
		n := o.reqs.Add(1)
		o.mu.Lock()
		o.connOf = append(o.connOf, id)
		o.mu.Unlock()
		o.respond(n, c, req)
	}
}

// conn returns the connection number that carried request n (1-based).
func (o *rawOrigin) conn(n int64) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n < 1 || int(n) > len(o.connOf) {
		return 0
	}
	return o.connOf[n-1]
}

func (o *rawOrigin) close() {
	o.mu.Lock()
	select {
	case <-o.closed:
	default:
		close(o.closed)
	}
	o.ln.Close()
	for c := range o.conns {
		c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// writeAll writes s to conn, ignoring errors: a hostile origin does not care
// whether the edge is still listening.
func writeAll(conn net.Conn, s string) {
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte(s))
}

// goodResponse is a well-formed cacheable response.
const goodResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n\r\ngood"

// dribble writes s one byte per tick: a slow-loris peer. The pacing is the
// attack itself, not a wait for a condition.
func dribble(conn net.Conn, s string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := range len(s) {
		if _, err := conn.Write([]byte{s[i]}); err != nil {
			return
		}
		<-t.C
	}
}

// rawConn sends raw request bytes on a new connection (closed when the
// test ends) and returns a reader of what comes back.
func rawConn(t testing.TB, addr, req string) *bufio.Reader {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(conn)
}

// rawExchange sends raw request bytes on a new connection and reads one
// response.
func rawExchange(t testing.TB, addr, req string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(rawConn(t, addr, req), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of response to %q: %v", req, err)
	}
	return resp, string(b)
}

// rawExchangeAll sends raw bytes (several pipelined requests) and returns
// the statuses of up to n responses read from the connection.
func rawExchangeAll(t testing.TB, addr, req string, n int) []int {
	t.Helper()
	br := rawConn(t, addr, req)
	var out []int
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp.StatusCode)
	}
	return out
}
