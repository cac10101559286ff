package edge

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Client connections keep edge.read_timeout and edge.idle_timeout
// themselves (clientConn), and make the write deadlines fasthttp sets for
// edge.write_timeout coarse. fasthttp moves a connection's deadlines three
// times per request (idle wait, request read, response write), each a
// clock read and a change to the runtime's timers: on a hit that is about
// a twentieth of the edge's CPU, as much as the cache lookup itself. Here
// a deadline is moved only when the one already set would be wrong: earlier
// than the timeout allows, or later than it by more than an eighth of it.
// A timeout therefore fires between its value (less the coarse clock's
// tick) and nine eighths of it, and a busy keep-alive connection moves its
// deadlines a few times a second instead of three times per request.
//
// Where a request starts and ends is fasthttp's to say, through its
// ConnState hook (connState): StateActive when the first byte of a request
// is there (read, or already buffered behind the previous one), StateIdle
// when its answer is done. The first request of a connection has
// read_timeout from the accept, as in fasthttp; every request has it from
// its first byte, its body included (also after a 100 Continue); the wait
// for the next one has idle_timeout.
//
// fasthttp's MaxConnsPerIP would wrap the connection where the hook could
// not see it, so the per-address limit is the listener's (clientListener).

// clockTick is the resolution of the coarse clock behind the deadlines.
const clockTick = 5 * time.Millisecond

// coarseClock is a monotonic clock to clockTick, read with an atomic load:
// nanoseconds since base (which carries the monotonic reading, so that a
// step of the wall clock moves no deadline).
type coarseClock struct {
	base time.Time
	ns   atomic.Int64
}

func newCoarseClock() *coarseClock { return &coarseClock{base: time.Now()} }

// set reads the real clock now.
func (c *coarseClock) set() { c.ns.Store(int64(time.Since(c.base))) }

// run ticks until stop is closed.
func (c *coarseClock) run(stop <-chan struct{}) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.set()
		}
	}
}

func (c *coarseClock) now() int64 { return c.ns.Load() }

// at returns the time of clock reading ns.
func (c *coarseClock) at(ns int64) time.Time { return c.base.Add(time.Duration(ns)) }

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

// clientListener wraps accepted connections in clientConn, and refuses
// connections over edge.max_connections_per_ip (0: no limit) with a 429,
// as fasthttp's MaxConnsPerIP does.
type clientListener struct {
	net.Listener
	t     *connTimeouts
	perIP int
	// refused counts the connections refused over perIP.
	refused prometheus.Counter

	mu    sync.Mutex // guards count
	count map[netip.Addr]int
}

func newClientListener(ln net.Listener, t *connTimeouts, perIP int) *clientListener {
	return &clientListener{Listener: ln, t: t, perIP: perIP, count: map[netip.Addr]int{}}
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc := &clientConn{Conn: c, t: l.t, state: connReading, reqStart: l.t.clock.now()}
		if l.perIP > 0 {
			if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
				ip := ta.AddrPort().Addr().Unmap()
				if !l.register(ip) {
					if l.refused != nil {
						l.refused.Inc()
					}
					refuse(c, fasthttp.StatusTooManyRequests, "The number of connections from your address exceeds edge.max_connections_per_ip")
					continue
				}
				cc.ip, cc.l = ip, l
			}
		}
		return cc, nil
	}
}

// register counts a connection from ip; false when it is over the limit.
func (l *clientListener) register(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[ip] >= l.perIP {
		return false
	}
	l.count[ip]++
	return true
}

func (l *clientListener) unregister(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[ip]--; l.count[ip] <= 0 {
		delete(l.count, ip)
	}
}

// refuse answers a connection that will not be served, briefly, and
// closes it.
func refuse(c net.Conn, status int, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	msg += "\n"
	_, _ = c.Write([]byte("HTTP/1.1 " + strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) +
		"\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
		strconv.Itoa(len(msg)) + "\r\n\r\n" + msg))
	_ = c.Close()
}

// Where a client connection stands.
const (
	connReading uint8 = iota // reading a request: all of it within read_timeout of reqStart
	connIdle                 // an answer is done: the next request may take idle_timeout to start
)

// clientConn is a client connection that keeps its read deadlines itself.
// fasthttp's serving goroutine is its only user (reads, writes, the
// deadlines it sets and its ConnState hook), so those fields need no lock;
// Close may come from elsewhere.
type clientConn struct {
	net.Conn
	t        *connTimeouts
	state    uint8
	reqStart int64 // when the current request started (coarse clock)
	readDL   int64 // the read deadline set on Conn (coarse clock; 0: none)
	writeDL  int64 // the write deadline set on Conn (coarse clock; 0: none)
	// moves counts the deadlines really set (tests).
	moves int

	// ip and l count the connection against its address's limit.
	ip     netip.Addr
	l      *clientListener
	closed atomic.Bool
}

// connState is the fasthttp server's ConnState hook.
func connState(nc net.Conn, st fasthttp.ConnState) {
	c, ok := nc.(*clientConn)
	if !ok {
		return
	}
	switch st {
	case fasthttp.StateActive:
		if c.state == connIdle {
			c.state = connReading
			c.reqStart = c.t.clock.now()
		}
	case fasthttp.StateIdle:
		c.state = connIdle
	}
}

func (c *clientConn) Read(p []byte) (int, error) {
	var target, slack int64
	if c.state == connReading {
		target, slack = c.reqStart+c.t.read, c.t.readSlack
	} else {
		target, slack = c.t.clock.now()+c.t.idle, c.t.idleSlack
	}
	if c.readDL == 0 || c.readDL < target || c.readDL > target+slack {
		c.readDL = target + slack
		c.moves++
		if err := c.Conn.SetReadDeadline(c.t.clock.at(c.readDL)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
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
	target := int64(t.Sub(c.t.clock.base)) // monotonic, like the read side
	if c.writeDL >= target && c.writeDL <= target+c.t.writeSlack {
		return nil
	}
	c.writeDL = target + c.t.writeSlack
	c.moves++
	return c.Conn.SetWriteDeadline(c.t.clock.at(c.writeDL))
}

// SetReadDeadline and SetDeadline are not used by the edge's fasthttp
// server (it has no read or idle timeout of its own); should anything call
// them, they apply as asked until the next read moves the deadline.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.readDL = 0
	return c.Conn.SetReadDeadline(t)
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.readDL, c.writeDL = 0, 0
	return c.Conn.SetDeadline(t)
}

func (c *clientConn) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.l != nil {
		c.l.unregister(c.ip)
	}
	return c.Conn.Close()
}
