package backend

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// Backend is one origin server: a keep-alive pool with explicit timeouts
// per phase, an adaptive fetch limit, and its health.
type Backend struct {
	name    string
	addr    string
	hc      *fasthttp.HostClient
	limiter *limiter

	health *health

	queueFull, queueTimeout prometheus.Counter
	retries                 prometheus.Counter

	okFetches      prometheus.Counter
	errFetches     prometheus.Counter
	timeoutFetches prometheus.Counter
	busyFetches    prometheus.Counter
	duration       prometheus.Observer
}

// Counters returns the backend's fetch counters by result (for
// /api/stats).
func (b *Backend) Counters() (ok, errs, timeouts, busy prometheus.Counter) {
	return b.okFetches, b.errFetches, b.timeoutFetches, b.busyFetches
}

// newHostClient configures fasthttp's client as docs/ARCHITECTURE.md asks: explicit
// timeouts per phase, bounded pool and header size, bodies streamed (the
// caller bounds what it reads), exact request bytes (no path
// normalisation), and no retries of its own (fasthttp's default retries up
// to 5 times on any error): Director.Fetch retries a request that was not
// sent because its pooled connection was dirty, and an idempotent request
// whose reused connection failed before any response byte.
func newHostClient(addr string, c config.Backends, dial Dialer, dialing *atomic.Int32) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		NoDefaultUserAgentHeader:      true,
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
		MaxConns:                      c.MaxConnections,
		MaxIdleConnDuration:           c.IdleTimeout,
		MaxConnWaitTimeout:            c.QueueTimeout,
		ReadBufferSize:                int(c.MaxResponseHeaderBytes),
		WriteTimeout:                  c.WriteTimeout,
		ReadTimeout:                   c.FetchTimeout,
		StreamResponseBody:            true,
		// fasthttp's RetryIfErr cannot tell a reused connection from a
		// fresh one (it retries a fresh connection's EOF too), so it never
		// retries; Director.Fetch does, knowing the connection.
		MaxIdemponentCallAttempts: 1,
		ConnPoolStrategy:          fasthttp.LIFO,
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) {
			return false, false
		},
		Dial: func(a string) (net.Conn, error) {
			dialing.Add(1)
			conn, err := dial(a, c.ConnectTimeout)
			dialing.Add(-1)
			if err != nil {
				return nil, &dialError{err}
			}
			pc := &phaseConn{Conn: conn, firstByte: c.FirstByteTimeout, betweenBytes: c.BetweenBytesTimeout}
			pc.addr = &backendAddr{Addr: conn.LocalAddr(), c: pc}
			return pc, nil
		},
	}
}

// isReusedConnError reports errors that mean a pooled keep-alive
// connection was closed by the origin before it read our request: safe to
// retry for an idempotent request.
func isReusedConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// phaseConn applies the first-byte and between-bytes timeouts: the first
// read after a write waits at most firstByte, later reads betweenBytes,
// and never past the deadline fasthttp set for the whole fetch.
type phaseConn struct {
	net.Conn
	firstByte, betweenBytes time.Duration
	outer                   time.Time // deadline set by fasthttp
	wrote                   bool
	framing                 framingCheck // refuses bad response headers
	addr                    *backendAddr
	// exchanges counts the requests written on the connection; answered
	// says a byte of the current response arrived.
	exchanges int
	answered  bool
}

// backendAddr is the local address of a backend connection. fasthttp hands
// it to the response (Response.LocalAddr), which is how Director.Fetch finds
// the connection a failed fetch used.
type backendAddr struct {
	net.Addr
	c *phaseConn
}

func (c *phaseConn) LocalAddr() net.Addr { return c.addr }

// errDirtyConn means a pooled backend connection was found closed, or
// holding bytes nobody asked for, before a request was written on it.
var errDirtyConn = errors.New("edge: pooled backend connection closed or holding unsolicited bytes")

// maxFetchAttempts bounds the attempts of one fetch (see retryable).
const maxFetchAttempts = 3

// retryable reports whether a failed fetch may be sent again: any request
// that was not written because its pooled connection was dirty, or an
// idempotent request whose connection was reused and closed by the backend
// before any byte of the answer (the keep-alive race). The connection is
// closed by then, so reading its state is safe.
func retryable(req *fasthttp.Request, resp *fasthttp.Response, err error) bool {
	if errors.Is(err, errDirtyConn) {
		return true
	}
	if !(req.Header.IsGet() || req.Header.IsHead()) || !isReusedConnError(err) {
		return false
	}
	a, ok := resp.LocalAddr().(*backendAddr)
	return ok && a.c.exchanges > 1 && !a.c.answered
}

func (c *phaseConn) SetReadDeadline(t time.Time) error {
	c.outer = t
	return c.Conn.SetReadDeadline(t)
}

func (c *phaseConn) SetDeadline(t time.Time) error {
	c.outer = t
	return c.Conn.SetDeadline(t)
}

func (c *phaseConn) Write(p []byte) (int, error) {
	if !c.wrote {
		c.exchanges++
		c.answered = false
		c.framing.start()
		if c.exchanges > 1 && idleConnDirty(c.Conn) {
			// Bytes nobody asked for, or closed by the backend while idle:
			// nothing of this request is sent on it.
			return 0, errDirtyConn
		}
	}
	c.wrote = true
	return c.Conn.Write(p)
}

func (c *phaseConn) Read(p []byte) (int, error) {
	d := c.betweenBytes
	if c.wrote {
		d = c.firstByte
		c.wrote = false
	}
	if d > 0 {
		dl := time.Now().Add(d)
		if !c.outer.IsZero() && c.outer.Before(dl) {
			dl = c.outer
		}
		if err := c.Conn.SetReadDeadline(dl); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.answered = true
	}
	if c.framing.active || c.framing.err != nil {
		if m, herr := c.framing.scan(p[:n]); herr != nil {
			return m, herr
		}
	}
	return n, err
}

// dialError is a failure to connect to a backend: no byte of the request
// was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialFailed reports whether a fetch failed to connect (refused,
// unreachable, timed out): no byte of its request was sent.
func dialFailed(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}

// isDown reports whether a failed fetch is evidence that the backend is
// down, not merely slow or busy: a connection refused, unreachable or
// failing otherwise (but not timing out) while being made, or a fresh
// connection closed by the backend before any byte of an answer (it
// accepts connections and drops them). Passive health counts only these.
func isDown(resp *fasthttp.Response, err error) bool {
	if dialFailed(err) {
		// A connection that times out is an overloaded backend's (its
		// accept queue is full), not a down one's.
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	if !isReusedConnError(err) {
		return false
	}
	a, ok := resp.LocalAddr().(*backendAddr)
	return ok && a.c.exchanges == 1 && !a.c.answered
}
