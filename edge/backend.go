package edge

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// Errors of the backend layer, mapped to statuses by fetchStatus.
var (
	errNoBackend = errors.New("edge: no healthy backend")
	errBusy      = errors.New("edge: backend fetch limit reached")
)

// backend is one origin server: a keep-alive pool and a fetch limit.
type backend struct {
	name  string
	addr  string
	hc    *fasthttp.HostClient
	slots chan struct{} // one token per allowed concurrent fetch

	health *health

	okFetches      prometheus.Counter
	errFetches     prometheus.Counter
	timeoutFetches prometheus.Counter
	busyFetches    prometheus.Counter
	duration       prometheus.Observer
}

// director picks a backend for each fetch.
type director struct {
	backends []*backend
	fallback bool
	next     atomic.Uint64
	queue    time.Duration
}

// newDirector builds the backends of c; dial opens their connections (nil:
// a net.Dialer with c.ConnectTimeout).
func newDirector(c config.Backends, m *metrics, dial func(addr string, timeout time.Duration) (net.Conn, error)) *director {
	if dial == nil {
		dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr)
		}
	}
	d := &director{fallback: c.Director == "fallback", queue: c.QueueTimeout}
	for _, s := range c.Servers {
		name := s.Name
		if name == "" {
			name = s.Address
		}
		b := &backend{
			name:           name,
			addr:           s.Address,
			slots:          make(chan struct{}, c.MaxFetches),
			okFetches:      m.fetches.WithLabelValues(name, "ok"),
			errFetches:     m.fetches.WithLabelValues(name, "error"),
			timeoutFetches: m.fetches.WithLabelValues(name, "timeout"),
			busyFetches:    m.fetches.WithLabelValues(name, "busy"),
			duration:       m.fetchDuration.WithLabelValues(name),
		}
		b.health = newHealth(c, name, m)
		b.hc = newHostClient(s.Address, c, dial)
		d.backends = append(d.backends, b)
	}
	return d
}

// newHostClient configures fasthttp's client as STYLE.md asks: explicit
// timeouts per phase, bounded pool and header size, bodies streamed (the
// caller bounds what it reads), exact request bytes (no path
// normalisation), and no retries of its own (fasthttp's default retries up
// to 5 times on any error): director.do retries a request that was not
// sent because its pooled connection was dirty, and an idempotent request
// whose reused connection failed before any response byte.
func newHostClient(addr string, c config.Backends, dial func(string, time.Duration) (net.Conn, error)) *fasthttp.HostClient {
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
		// retries; director.do does, knowing the connection.
		MaxIdemponentCallAttempts: 1,
		ConnPoolStrategy:          fasthttp.LIFO,
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) {
			return false, false
		},
		Dial: func(a string) (net.Conn, error) {
			conn, err := dial(a, c.ConnectTimeout)
			if err != nil {
				return nil, err
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
	head                    headCheck // refuses bad response heads
	addr                    *backendAddr
	// exchanges counts the requests written on the connection; answered
	// says a byte of the current response arrived.
	exchanges int
	answered  bool
}

// backendAddr is the local address of a backend connection. fasthttp hands
// it to the response (Response.LocalAddr), which is how director.do finds
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
		c.head.start()
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
	if c.head.active || c.head.err != nil {
		if m, herr := c.head.scan(p[:n]); herr != nil {
			return m, herr
		}
	}
	return n, err
}

// pick returns the backend for the next fetch, or nil when none is healthy.
func (d *director) pick() *backend {
	now := time.Now()
	n := len(d.backends)
	if d.fallback {
		for _, b := range d.backends {
			if b.health.healthy(now) {
				return b
			}
		}
		return nil
	}
	start := d.next.Add(1)
	for i := range n {
		b := d.backends[(start+uint64(i))%uint64(n)]
		if b.health.healthy(now) {
			return b
		}
	}
	return nil
}

// do sends req to a backend and reads the response headers into resp; the
// body is left to stream. On success the caller must call release once it
// has finished with the body.
func (d *director) do(req *fasthttp.Request, resp *fasthttp.Response, fetchTimeout time.Duration) (b *backend, err error) {
	b = d.pick()
	if b == nil {
		return nil, errNoBackend
	}
	if err := b.acquire(d.queue); err != nil {
		b.busyFetches.Inc()
		return b, err
	}
	kept := false
	defer func() {
		// The slot goes back unless the caller holds it for the body: on
		// errors, and when fetching panicked (the handler recovers; a
		// slot lost per panic would soon leave the backend "busy").
		if !kept {
			b.release()
		}
	}()
	start := time.Now()
	err = b.hc.DoDeadline(req, resp, start.Add(fetchTimeout))
	for i := 1; i < maxFetchAttempts && err != nil && retryable(req, resp, err); i++ {
		err = b.hc.DoDeadline(req, resp, start.Add(fetchTimeout))
	}
	end := time.Now()
	b.duration.Observe(end.Sub(start).Seconds())
	b.health.fetchResult(err != nil && !errors.Is(err, fasthttp.ErrNoFreeConns), end)
	if err != nil {
		if fetchStatus(err) == fasthttp.StatusGatewayTimeout {
			b.timeoutFetches.Inc()
		} else {
			b.errFetches.Inc()
		}
		return b, err
	}
	b.okFetches.Inc()
	kept = true
	return b, nil
}

func (b *backend) acquire(wait time.Duration) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	default:
	}
	if wait <= 0 {
		return errBusy
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	}
}

func (b *backend) release() { <-b.slots }

// fetchStatus maps a fetch error to the status the client gets: timeouts
// 504, no backend or no capacity 503, anything else (refused, reset, bad
// framing from the origin) 502.
func fetchStatus(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, errNoBackend), errors.Is(err, errBusy), errors.Is(err, fasthttp.ErrNoFreeConns):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

// fetchReason is the closed set of error kinds for logs.
func fetchReason(err error) string {
	switch fetchStatus(err) {
	case fasthttp.StatusGatewayTimeout:
		return "timeout"
	case fasthttp.StatusServiceUnavailable:
		if errors.Is(err, errNoBackend) {
			return "no-backend"
		}
		return "busy"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "refused"
	}
	return "error"
}
