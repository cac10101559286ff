// Package backend is the edge's side of its origins: a pool of keep-alive
// connections per origin server with timeouts per phase, a fetch limit,
// active and passive health, a director that picks the server for each
// fetch, and the checks that refuse an origin's ambiguous framing.
//
// Invariants it keeps (docs/RELIABILITY.md):
//   - one reading of an origin's framing: a response header that a proxy
//     could read two ways fails the fetch (ErrFraming) and the connection
//     is closed (promise 2);
//   - a fetch is retried only when its request was never written (a dirty
//     pooled connection) or when an idempotent request's reused connection
//     was closed before any byte of the answer (promise 6);
//   - a fetch slot taken is given back exactly once: by Fetch on failure
//     (or a panic), by Fetched.Release otherwise.
package backend

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// errNoBackend means no backend's probes pass. Status maps it to 503 (or a
// stale copy).
var errNoBackend = errors.New("edge: no healthy backend")

// Metrics are the backends' Prometheus vectors, made by the edge (which
// owns the metric names); each backend resolves its children once.
type Metrics struct {
	Fetches         *prometheus.CounterVec   // backend, result (ok, error, timeout, busy)
	FetchDuration   *prometheus.HistogramVec // backend
	Healthy         *prometheus.GaugeVec     // backend
	Probes          *prometheus.CounterVec   // backend, result (ok, fail)
	Transitions     *prometheus.CounterVec   // backend
	FetchLimit      *prometheus.GaugeVec     // backend
	InFlight        *prometheus.GaugeVec     // backend
	Queued          *prometheus.GaugeVec     // backend
	QueueRejections *prometheus.CounterVec   // backend, reason (full, timeout)
	Retries         *prometheus.CounterVec   // backend
	Panic           prometheus.Counter       // fetches routed in panic mode
}

// Dialer opens a connection to a backend address within timeout.
type Dialer func(addr string, timeout time.Duration) (net.Conn, error)

// Director picks a backend for each fetch (round robin or fallback, among
// the healthy ones) and performs it.
type Director struct {
	backends []*Backend
	// rotation is the round-robin order, each backend as often as its
	// weight.
	rotation     []*Backend
	fallback     bool
	next         atomic.Uint64
	queue        time.Duration
	fetchTimeout time.Duration
	// overload is backends.overload_latency; panicAt is
	// backends.panic_threshold.
	overload time.Duration
	panicAt  float64
	panics   prometheus.Counter
	// now is the clock of Fetched.ReqTime and ResTime: the edge's
	// freshness clock.
	now    func() time.Time
	probes *prober
}

// New builds the backends of c. dial opens their connections (nil: a
// net.Dialer); now stamps each fetch's request and response times. Start
// begins the health probes, Stop ends them.
func New(c config.Backends, m Metrics, dial Dialer, now func() time.Time) *Director {
	if dial == nil {
		dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr)
		}
	}
	d := &Director{fallback: c.Director == "fallback", queue: c.QueueTimeout, fetchTimeout: c.FetchTimeout, now: now,
		overload: c.OverloadLatency, panicAt: c.PanicThreshold, panics: m.Panic}
	var weights []int
	for _, s := range c.Servers {
		name := s.Name
		if name == "" {
			name = s.Address
		}
		b := &Backend{
			name: name,
			addr: s.Address,
			limiter: newLimiter(c.FetchStart(), c.FetchFloor(), c.MaxFetches, c.QueueLength, limiterGauges{
				limit:    m.FetchLimit.WithLabelValues(name),
				inflight: m.InFlight.WithLabelValues(name),
				queued:   m.Queued.WithLabelValues(name),
			}),
			queueFull:      m.QueueRejections.WithLabelValues(name, "full"),
			queueTimeout:   m.QueueRejections.WithLabelValues(name, "timeout"),
			retries:        m.Retries.WithLabelValues(name),
			okFetches:      m.Fetches.WithLabelValues(name, "ok"),
			errFetches:     m.Fetches.WithLabelValues(name, "error"),
			timeoutFetches: m.Fetches.WithLabelValues(name, "timeout"),
			busyFetches:    m.Fetches.WithLabelValues(name, "busy"),
			duration:       m.FetchDuration.WithLabelValues(name),
		}
		b.health = newHealth(c, name, m)
		b.hc = newHostClient(s.Address, c, dial, &b.limiter.dialing)
		d.backends = append(d.backends, b)
		weights = append(weights, max(s.Weight, 1))
	}
	d.rotation = weightedRotation(d.backends, weights)
	d.probes = newProber(d.backends, c.Probe, time.Now)
	return d
}

// Start begins the active health probes (when configured).
func (d *Director) Start() { d.probes.start() }

// Stop ends the probes and waits for them.
func (d *Director) Stop() { d.probes.stopAndWait() }

// Backends returns the backends, in configuration order.
func (d *Director) Backends() []*Backend { return d.backends }

// Snapshots returns every backend's state at now.
func (d *Director) Snapshots(now time.Time) []Snapshot {
	out := make([]Snapshot, 0, len(d.backends))
	for _, b := range d.backends {
		out = append(out, b.snapshot(now))
	}
	return out
}

// pick returns the backend for the next fetch: round robin (or the first,
// for the fallback director) among the backends in rotation. When fewer
// than backends.panic_threshold of them are in rotation, it picks among
// those whose probes pass instead, ignoring passive health (Envoy's panic
// routing): a run of failed fetches never empties the pool. It returns nil
// when no backend's probes pass.
func (d *Director) pick() *Backend {
	now := time.Now()
	ok, usable := 0, 0
	for _, b := range d.backends {
		r, p := b.health.state(now)
		if r {
			ok++
		}
		if p {
			usable++
		}
	}
	if usable == 0 {
		return nil
	}
	// With none in rotation, panic routing whatever the threshold.
	panicking := ok == 0 || float64(ok) < d.panicAt*float64(len(d.backends))
	if panicking {
		d.panics.Inc()
	}
	candidate := func(b *Backend) bool {
		r, p := b.health.state(now)
		return r || panicking && p
	}
	if d.fallback {
		for _, b := range d.backends {
			if candidate(b) {
				return b
			}
		}
		return nil
	}
	n := uint64(len(d.rotation))
	start := d.next.Add(1)
	for k := range n {
		if b := d.rotation[(start+k)%n]; candidate(b) {
			return b
		}
	}
	return nil
}

// weightedRotation is the order round robin goes through the backends:
// each as often as its weight, spread out (nginx's smooth weighted round
// robin, run once over the sum of the weights).
func weightedRotation(bs []*Backend, weights []int) []*Backend {
	total := 0
	for _, w := range weights {
		total += w
	}
	cur := make([]int, len(bs))
	out := make([]*Backend, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, bs[best])
	}
	return out
}

// Fetched is a backend response with its header read and its body not
// yet (or partly) read, and the times the fetch began and ended on the
// Director's clock. Release returns the response and the fetch slot.
type Fetched struct {
	Resp             *fasthttp.Response
	ReqTime, ResTime time.Time
	b                *Backend
	outcome          outcome
	latency          time.Duration // to the response headers
	// budget and held are the body bytes this fetch took (BodyBudget.Take),
	// given back by Release.
	budget *BodyBudget
	held   int64
}

// Release returns the response, the fetch slot and the body bytes the
// fetch took (BodyBudget.Take); it may be called more than once.
func (f *Fetched) Release() {
	if f.Resp != nil {
		_ = f.Resp.CloseBodyStream()
		fasthttp.ReleaseResponse(f.Resp)
		f.Resp = nil
	}
	if f.b != nil {
		f.b.limiter.release(f.outcome, f.latency)
		f.b = nil
	}
	if f.held > 0 {
		f.budget.give(f.held)
		f.held = 0
	}
}

// Fetch sends req to a backend and reads the response header; the body is
// left to stream (backends.fetch_timeout bounds the whole fetch). On
// success the caller must Release the result once done with the body.
func (d *Director) Fetch(req *fasthttp.Request) (*Fetched, error) {
	resp := fasthttp.AcquireResponse()
	// Without this, ContentType() and All() report "text/plain;
	// charset=utf-8" for a response that has no Content-Type: the edge
	// would store, relay and compress a type the origin never sent.
	resp.Header.SetNoDefaultContentType(true)
	f := &Fetched{Resp: resp, ReqTime: d.now()}
	b, o, latency, err := d.do(req, resp)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	f.b, f.outcome, f.latency = b, o, latency
	f.ResTime = d.now()
	return f, nil
}

// Retries of a fetch that could not connect (refused, unreachable, timed
// out): the request never left, so an idempotent one is sent again, to
// whichever backend pick gives, up to maxDownRetries times after a
// jittered pause of up to retryPause doubled each time. (A connection the
// backend accepted and dropped is not retried: the request may have
// reached the application, and may be what made it fail.)
const (
	maxDownRetries = 2
	retryPause     = 25 * time.Millisecond
)

// do performs one fetch on a backend the director picks, retrying what is
// safe to retry. On success the backend's slot stays taken for the body,
// and the outcome says what the fetch showed about its load.
func (d *Director) do(req *fasthttp.Request, resp *fasthttp.Response) (*Backend, outcome, time.Duration, error) {
	idempotent := req.Header.IsGet() || req.Header.IsHead()
	for attempt := 0; ; attempt++ {
		b := d.pick()
		if b == nil {
			return nil, outcomeNeutral, 0, errNoBackend
		}
		o, latency, err := d.attempt(b, req, resp)
		if err == nil {
			return b, o, latency, nil
		}
		if attempt >= maxDownRetries || !idempotent || !dialFailed(err) {
			return b, o, latency, err
		}
		b.retries.Inc()
		time.Sleep(rand.N(retryPause << attempt))
		resp.Reset()
		resp.Header.SetNoDefaultContentType(true)
	}
}

// attempt sends req to b. It holds one of b's fetch slots, and keeps it
// only on success (for the body); the outcome adjusts b's fetch limit.
func (d *Director) attempt(b *Backend, req *fasthttp.Request, resp *fasthttp.Response) (o outcome, latency time.Duration, err error) {
	if err := b.limiter.acquire(d.queue); err != nil {
		b.busyFetches.Inc()
		if errors.Is(err, errQueueFull) {
			b.queueFull.Inc()
		} else {
			b.queueTimeout.Inc()
		}
		return outcomeNeutral, 0, err
	}
	kept := false
	defer func() {
		// The slot goes back unless the caller holds it for the body: on
		// errors, and when fetching panicked (the handler recovers; a
		// slot lost per panic would soon leave the backend "busy").
		if !kept {
			b.limiter.release(o, latency)
		}
	}()
	start := time.Now()
	err = b.hc.DoDeadline(req, resp, start.Add(d.fetchTimeout))
	for i := 1; i < maxFetchAttempts && err != nil && retryable(req, resp, err); i++ {
		err = b.hc.DoDeadline(req, resp, start.Add(d.fetchTimeout))
	}
	end := time.Now()
	latency = end.Sub(start)
	b.duration.Observe(latency.Seconds())
	b.health.fetchResult(err != nil && isDown(resp, err), end)
	if err != nil {
		if Status(err) == fasthttp.StatusGatewayTimeout {
			b.timeoutFetches.Inc()
			o = outcomeOverload
		} else {
			b.errFetches.Inc()
		}
		return o, latency, err
	}
	b.okFetches.Inc()
	switch status := resp.StatusCode(); {
	case status == fasthttp.StatusServiceUnavailable || status == fasthttp.StatusTooManyRequests || latency > d.overload:
		o = outcomeOverload
	default:
		o = outcomeOK
	}
	kept = true
	return o, latency, nil
}

// Status maps a fetch error to the status the client gets: timeouts 504,
// no backend or no capacity 503, anything else (refused, reset, bad
// framing from the origin) 502.
func Status(err error) int {
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

// Failure is the closed set of fetch failures, for logs and Cache-Status.
type Failure uint8

const (
	FailError     Failure = iota // anything else: reset, bad framing, ...
	FailTimeout                  // a timeout of any phase (504)
	FailBusy                     // the backend's fetch limit, or its connection pool (503)
	FailNoBackend                // no healthy backend (503)
	FailRefused                  // the connection was refused (502)
	NumFailures
)

var failureNames = [NumFailures]string{"error", "timeout", "busy", "no-backend", "refused"}

func (f Failure) String() string { return failureNames[f] }

// Reason classifies a fetch error.
func Reason(err error) Failure {
	switch Status(err) {
	case fasthttp.StatusGatewayTimeout:
		return FailTimeout
	case fasthttp.StatusServiceUnavailable:
		if errors.Is(err, errNoBackend) {
			return FailNoBackend
		}
		return FailBusy
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return FailRefused
	}
	return FailError
}
