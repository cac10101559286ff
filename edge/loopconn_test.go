package edge

import (
	"io"
	"net"
	"time"
)

// loopConn is an in-memory connection for driving the edge's fasthttp
// server loop (Server.ServeConn) request by request, without sockets: the
// server loop's own costs count, and nothing on the test's side
// allocates. send hands over one request and returns once the server has
// written its answer and gone back to reading.
type loopConn struct {
	in      chan []byte
	done    chan struct{}
	pending []byte
	started bool
	// last holds the bytes written for the last request.
	last []byte
}

func newLoopConn() *loopConn {
	return &loopConn{in: make(chan []byte), done: make(chan struct{})}
}

// send writes req to the server and waits for its answer.
func (c *loopConn) send(req []byte) {
	c.last = c.last[:0]
	c.in <- req
	<-c.done
}

// close ends the connection: the server loop sees EOF.
func (c *loopConn) close() { close(c.in) }

func (c *loopConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		// The server wants the next request: the previous answer is out.
		if c.started {
			c.done <- struct{}{}
		}
		c.started = true
		b, ok := <-c.in
		if !ok {
			return 0, io.EOF
		}
		c.pending = b
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error) {
	c.last = append(c.last, p...)
	return len(p), nil
}

var loopAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) LocalAddr() net.Addr              { return loopAddr }
func (c *loopConn) RemoteAddr() net.Addr             { return loopAddr }
func (c *loopConn) SetDeadline(time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

// serveLoop starts the edge's server loop on a loopConn; the connection
// is closed when the test ends.
func serveLoop(te *testEdge) *loopConn {
	c := newLoopConn()
	go func() { _ = te.fast.ServeConn(c) }()
	te.t.Cleanup(c.close)
	return c
}

// headers returns the number of headers the header pool keeps.
func (te *testEdge) hitHeaderSets() int {
	_, n := te.store.Headers.Stats()
	return n
}
