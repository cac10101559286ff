package edge

import (
	"net"
	"sync/atomic"
	"time"
)

// Client connections keep edge.read_timeout and edge.idle_timeout
// themselves (clientConn), and make the write deadlines fasthttp sets for
// edge.write_timeout coarse. fasthttp moves a connection's deadlines three
// times per request (idle wait, request read, response write), each a
// clock read and a change to the runtime's timers: on a hit that is about
// a twentieth of the edge's CPU, as much as the cache lookup itself. Here
// a deadline is moved only when the one already set would be wrong: earlier
// than the timeout allows, or later than it by more than an eighth of it.
// A timeout therefore fires between its value and nine eighths of it (plus
// the coarse clock's tick), which no client can tell from a precise one,
// and a busy keep-alive connection moves its deadlines a few times a
// second instead of three times per request.

// clockTick is the resolution of the coarse clock behind the deadlines.
const clockTick = 5 * time.Millisecond

// coarseClock is the wall clock to clockTick, read with an atomic load.
type coarseClock struct{ ns atomic.Int64 }

func newCoarseClock() *coarseClock {
	c := &coarseClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

// run ticks until stop is closed.
func (c *coarseClock) run(stop <-chan struct{}) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			c.ns.Store(now.UnixNano())
		}
	}
}

func (c *coarseClock) now() int64 { return c.ns.Load() }

// connTimeouts are the client timeouts, in nanoseconds, with the slack
// each deadline may be late by (an eighth).
type connTimeouts struct {
	read, idle                       int64
	readSlack, idleSlack, writeSlack int64
	clock                            *coarseClock
}

func newConnTimeouts(read, idle, write time.Duration, clock *coarseClock) *connTimeouts {
	return &connTimeouts{
		read: int64(read), idle: int64(idle),
		readSlack: int64(read / 8), idleSlack: int64(idle / 8), writeSlack: int64(write / 8),
		clock: clock,
	}
}

// clientListener wraps accepted connections in clientConn.
type clientListener struct {
	net.Listener
	t *connTimeouts
}

func (l clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &clientConn{Conn: c, t: l.t}, nil
}

// Where a client connection stands, as its reads and writes show.
const (
	connNew     uint8 = iota // nothing read yet: the first request has read_timeout
	connReading              // reading a request: all of it within read_timeout of its first bytes
	connIdle                 // an answer went out: the next request may take idle_timeout to come
)

// clientConn is a client connection that keeps its read deadlines itself.
// fasthttp's serving goroutine is its only user (reads, writes and the
// deadlines it sets), so its fields need no lock; Close may come from
// elsewhere and is the embedded one.
type clientConn struct {
	net.Conn
	t        *connTimeouts
	state    uint8
	reqStart int64 // when the current request's first bytes came (coarse clock)
	readDL   int64 // the read deadline set on Conn (UnixNano; 0: none)
	writeDL  int64 // the write deadline set on Conn (UnixNano; 0: none)
	// moves counts the deadlines really set (tests).
	moves int
}

func (c *clientConn) Read(p []byte) (int, error) {
	now := c.t.clock.now()
	var target, slack int64
	switch c.state {
	case connReading:
		target, slack = c.reqStart+c.t.read, c.t.readSlack
	case connNew:
		target, slack = now+c.t.read, c.t.readSlack
	default:
		target, slack = now+c.t.idle, c.t.idleSlack
	}
	if c.readDL < target || c.readDL > target+slack {
		c.readDL = target + slack
		c.moves++
		if err := c.Conn.SetReadDeadline(time.Unix(0, c.readDL)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.state != connReading {
		c.state = connReading
		c.reqStart = c.t.clock.now()
	}
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) {
	// Anything read after an answer is the next request (or nothing).
	c.state = connIdle
	return c.Conn.Write(p)
}

// SetWriteDeadline is fasthttp's, once per response (edge.write_timeout
// for all of it): kept coarse.
func (c *clientConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		if c.writeDL == 0 {
			return nil
		}
		c.writeDL = 0
		c.moves++
		return c.Conn.SetWriteDeadline(t)
	}
	target := t.UnixNano()
	if c.writeDL >= target && c.writeDL <= target+c.t.writeSlack {
		return nil
	}
	c.writeDL = target + c.t.writeSlack
	c.moves++
	return c.Conn.SetWriteDeadline(time.Unix(0, c.writeDL))
}

// SetReadDeadline and SetDeadline are not used by the edge's fasthttp
// server (it has no read or idle timeout of its own); should anything call
// them, they apply as asked until the next read moves the deadline.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.readDL = unixNano(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.readDL, c.writeDL = unixNano(t), unixNano(t)
	return c.Conn.SetDeadline(t)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
