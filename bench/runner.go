package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// RunConfig configures one open-loop run.
type RunConfig struct {
	// Target is the base URL requests go to: scheme, host and port
	// ("http://127.0.0.1:8080"); a path in it is ignored.
	Target string
	// MoreTargets are further edges (a fleet): requests go to Target and
	// each of them in turn, all with the same Host (Target's, unless Host
	// is set), as a load balancer in front of them would send them.
	MoreTargets []string
	// Host is the Host header of requests that name none; empty sends the
	// target's host.
	Host string
	// Connections bounds the connections (and requests in flight).
	Connections int
	// Timeout bounds one request, from the moment it is written.
	Timeout time.Duration
	// Duration bounds the schedule: requests due at or after it are not sent.
	Duration time.Duration
	// MaxRequests bounds the requests sent; 0 means no bound beyond Duration.
	MaxRequests int64
	// ASAP ignores the schedule and sends every request as soon as a
	// connection is free; latency is then measured from the send.
	ASAP bool
	// URLTableSize is the size of the source's URL table (Request.URL).
	URLTableSize int
	// Start is the time the schedule counts from; zero means when NewRunner
	// is called.
	Start time.Time
	// Progress, when set, is called about once a second with a snapshot,
	// from one goroutine.
	Progress func(Progress)
	// Logger receives the run's own log lines; nil discards them.
	Logger *slog.Logger

	// dial replaces the TCP dialer (tests use an in-memory network).
	dial fasthttp.DialFunc
	// timerPacing paces with the Go timer alone (tests under synctest,
	// where a timerfd would not follow the fake clock).
	timerPacing bool
}

// Progress is a snapshot of a run in progress.
type Progress struct {
	Elapsed       time.Duration
	Sent          int64
	Completed     int64
	Errors        int64
	InFlight      int64
	Late          int64
	RatePerSec    float64 // responses completed in the last whole second
	OfferedPerSec float64 // requests scheduled in the last whole second
	P99Ms         float64 // p99 latency of the requests scheduled in the last whole second
	HitRatio      float64 // since the start; NaN before any cache status was seen
	BenchCPU      float64 // share of GOMAXPROCS cores the bench used in the last second
}

// lateAfter is how far behind its schedule a request may be sent before it
// counts as late: above the Go timer's granularity (about 1 ms), which
// paces the bench where there is no timerfd.
const lateAfter = 2 * time.Millisecond

// sendEarly is how early a request may be handed over rather than slept
// for: a sleep that short costs more than it is worth at high rates. Such a
// request's latency counts from its send, never from before it.
const sendEarly = 20 * time.Microsecond

// coarseSleep is the wait above which the dispatcher uses the Go timer
// (cheap, and interruptible by the context) before sleeping precisely.
const coarseSleep = 2 * time.Millisecond

// batchSize is how many results a worker collects before handing them over.
const batchSize = 128

// errKind classifies a failed request.
type errKind uint8

const (
	errNone errKind = iota
	errConnect
	errTimeout
	errOther
)

// result is what a worker records of one request. Times are offsets from
// the run's start.
type result struct {
	at      time.Duration // scheduled
	sent    time.Duration
	done    time.Duration
	bytes   int64
	version int64 // X-Content-Version of a tracked response, 0 if none
	status  uint16
	err     errKind
	cache   cacheValue
	blocked bool // the dispatcher waited for a free worker, since this request was due
	late    bool
	dispLag time.Duration // dispatch time minus scheduled time
	errMsg  string        // the error of an errOther, for the report's examples
}

// job is a request handed from the dispatcher to a worker.
type job struct {
	req        Request
	dispatched time.Duration
	blocked    bool
}

// Runner runs one workload against one target. Create it with NewRunner;
// Run it once. RecordEdit and RecordOriginSample may be called from other
// goroutines while it runs.
type Runner struct {
	cfg                RunConfig
	log                *slog.Logger
	client             *fasthttp.HostClient
	clients            []*fasthttp.HostClient // client, then MoreTargets'
	turn               atomic.Uint64          // the next request's client
	scheme             string
	host               string // Host header default
	start              time.Time
	col                *collector
	etags              []atomic.Pointer[[]byte]
	busy               atomic.Int64
	sent               atomic.Int64
	started            atomic.Bool
	elapsed            time.Duration // written by Run before it returns
	loadStart, loadEnd *float64      // host load average, written by Run
	pacer              pacer         // used by the dispatcher only
}

// NewRunner checks cfg and prepares a run.
func NewRunner(cfg RunConfig) (*Runner, error) {
	if cfg.Connections <= 0 {
		return nil, fmt.Errorf("bench: connections must be positive, got %d", cfg.Connections)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("bench: timeout must be positive, got %v", cfg.Timeout)
	}
	if cfg.Duration <= 0 {
		return nil, fmt.Errorf("bench: duration must be positive, got %v", cfg.Duration)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var clients []*fasthttp.HostClient
	var u *url.URL
	for i, target := range append([]string{cfg.Target}, cfg.MoreTargets...) {
		hc, tu, err := newTargetClient(cfg, target)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			u = tu
		}
		clients = append(clients, hc)
	}
	hc := clients[0]
	host := cfg.Host
	if host == "" {
		host = u.Host
	}
	r := &Runner{
		cfg:     cfg,
		log:     log,
		client:  hc,
		clients: clients,
		scheme:  u.Scheme,
		host:    host,
		etags:   make([]atomic.Pointer[[]byte], max(cfg.URLTableSize, 0)),
	}
	r.start = cfg.Start
	if r.start.IsZero() {
		r.start = time.Now()
	}
	r.col = newCollector(cfg.Duration+cfg.Timeout, cfg.ASAP)
	return r, nil
}

// newTargetClient returns the client of one target.
func newTargetClient(cfg RunConfig, target string) (*fasthttp.HostClient, *url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, nil, fmt.Errorf("bench: target %q: scheme must be http or https", target)
	}
	if u.Host == "" {
		return nil, nil, fmt.Errorf("bench: target %q: no host", target)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	hc := &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    u.Scheme == "https",
		MaxConns:                 cfg.Connections,
		MaxConnWaitTimeout:       cfg.Timeout,
		ReadTimeout:              cfg.Timeout,
		WriteTimeout:             cfg.Timeout,
		MaxIdleConnDuration:      30 * time.Second,
		ReadBufferSize:           32 << 10,
		MaxResponseBodySize:      64 << 20,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		// One retry, and only when a kept-alive connection turned out to be
		// closed by the target before any byte of the answer: that is what
		// browsers do too. Any other failure is reported as it happened.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(_ *fasthttp.Request, attempts int, err error) (bool, bool) {
			return false, attempts < 2 && errors.Is(err, fasthttp.ErrConnectionClosed)
		},
		Dial: cfg.dial,
	}
	if hc.Dial == nil {
		timeout := cfg.Timeout
		hc.Dial = func(a string) (net.Conn, error) { return fasthttp.DialTimeout(a, timeout) }
	}
	return hc, u, nil
}

// Start returns the time the schedule counts from.
func (r *Runner) Start() time.Time { return r.start }

// RecordEdit records that the origin's API answered an edit that made
// version the current version of the tracked article, at time answered.
func (r *Runner) RecordEdit(answered time.Time, version int64) {
	r.col.recordEdit(answered.Sub(r.start), version)
}

// RecordOriginSample records the origin's request counter at time at.
func (r *Runner) RecordOriginSample(at time.Time, total float64) {
	r.col.recordOrigin(at.Sub(r.start), total)
}

// Run sends src's requests on schedule until the source ends, Duration or
// MaxRequests is reached, or ctx is done; then it waits for the requests in
// flight (each bounded by Timeout). A run stopped by ctx returns ctx's
// error; Report has what was measured either way.
func (r *Runner) Run(ctx context.Context, src Source) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("bench: a runner runs once")
	}
	jobs := make(chan job, r.cfg.Connections)
	batches := make(chan []result, 64)
	// Batches go back to the workers for reuse: a worker flushes whenever
	// it runs out of work, often with one result in the batch.
	free := make(chan []result, r.cfg.Connections+64)

	var workers sync.WaitGroup
	for range r.cfg.Connections {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.worker(jobs, batches, free)
		}()
	}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for b := range batches {
			r.col.add(b)
			select {
			case free <- b[:0]:
			default:
			}
		}
	}()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(stopProgress)
	}()

	r.log.LogAttrs(ctx, slog.LevelDebug, "bench run start", slog.String("target", r.cfg.Target),
		slog.Int("connections", r.cfg.Connections))
	cpu0 := processCPU()
	r.loadStart = loadAverage()
	var p pacer = timerPacer{}
	var perr error
	if !r.cfg.timerPacing {
		p, perr = newPacer()
	}
	if perr != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "bench pacing falls back to the Go timer", slog.Any("err", perr))
	}
	r.pacer = p
	err := r.dispatch(ctx, src, jobs)
	p.close()
	close(jobs)
	workers.Wait()
	close(batches)
	<-collected
	close(stopProgress)
	<-progressDone
	r.elapsed = time.Since(r.start)
	r.loadEnd = loadAverage()
	for _, c := range r.clients {
		c.CloseIdleConnections()
	}
	r.col.setCPU(processCPU()-cpu0, r.elapsed)
	if err != nil {
		return err
	}
	return ctx.Err()
}

// Report returns what the run measured; call it after Run returned. Origin
// samples and edits recorded after Run count too.
func (r *Runner) Report() *Report {
	rep := r.col.report(r.elapsed, r.cfg.Connections)
	rep.Target = strings.Join(append([]string{r.cfg.Target}, r.cfg.MoreTargets...), ", ")
	rep.StartedAt = r.start.UTC().Truncate(time.Millisecond)
	rep.HostLoad = HostLoad{Cores: hostCores(), Start: r.loadStart, End: r.loadEnd}
	return rep
}

// dispatch hands each request to the workers at its scheduled time.
func (r *Runner) dispatch(ctx context.Context, src Source, jobs chan<- job) error {
	var req Request
	done := ctx.Done()
	// blockedUntil is when the dispatcher last stopped waiting for a free
	// worker: a request due before then is late because of the pool, even
	// if its own hand-over did not wait.
	blockedUntil := time.Duration(-1)
	for n := int64(0); r.cfg.MaxRequests <= 0 || n < r.cfg.MaxRequests; n++ {
		if !src.Next(&req) {
			return nil
		}
		if !r.cfg.ASAP {
			if req.At >= r.cfg.Duration {
				return nil
			}
			if time.Since(r.start) >= r.cfg.Duration+r.cfg.Timeout {
				// So far behind that the run's time is up: count the rest
				// of the schedule as offered but not sent.
				r.countUnsent(src, &req)
				return nil
			}
			if !r.waitUntil(ctx, r.start.Add(req.At)) {
				return nil
			}
		} else if time.Since(r.start) >= r.cfg.Duration {
			return nil
		}
		if req.Slot != nil {
			select {
			case <-req.Slot.Ready():
			case <-done:
				return nil
			}
			p, err := req.Slot.Path()
			if err != nil {
				return fmt.Errorf("bench: request at %v: %w", req.At, err)
			}
			req.Path = p
		}
		j := job{req: req, dispatched: time.Since(r.start), blocked: req.At < blockedUntil}
		select {
		case jobs <- j:
		default:
			// Every worker is busy and the queue is full: the pool cannot
			// keep up. Wait, and let the request's latency show it.
			j.blocked = true
			select {
			case jobs <- j:
			case <-done:
				return nil
			}
			blockedUntil = time.Since(r.start)
		}
		r.sent.Add(1)
	}
	return nil
}

// maxUnsent bounds how much of the remaining schedule countUnsent reads.
const maxUnsent = 10_000_000

// countUnsent records req and the rest of src's schedule within Duration as
// unsent.
func (r *Runner) countUnsent(src Source, req *Request) {
	for n := 0; n < maxUnsent && req.At < r.cfg.Duration; n++ {
		r.col.recordUnsent(req.At)
		if !src.Next(req) {
			return
		}
	}
}

// waitUntil returns at due, or false when ctx is done first. The last
// stretch (below coarseSleep) is slept with sleepPrecise.
func (r *Runner) waitUntil(ctx context.Context, due time.Time) bool {
	for {
		d := time.Until(due)
		if d <= sendEarly {
			return true
		}
		if d <= coarseSleep {
			r.pacer.sleep(d)
			continue
		}
		t := time.NewTimer(d - coarseSleep/2)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// worker sends jobs and hands batches of results to the collector.
func (r *Runner) worker(jobs <-chan job, batches chan<- []result, free <-chan []result) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	uri := make([]byte, 0, 256)
	prefix := r.scheme + "://" + r.host
	batch := make([]result, 0, batchSize)
	flush := func() {
		if len(batch) > 0 {
			batches <- batch
			select {
			case batch = <-free:
			default:
				batch = make([]result, 0, batchSize)
			}
		}
	}
	for {
		var j job
		var ok bool
		select {
		case j, ok = <-jobs:
		default:
			// Nothing queued: hand over what we have before waiting, so
			// that progress and the end of the run see every result.
			flush()
			j, ok = <-jobs
		}
		if !ok {
			flush()
			return
		}
		batch = append(batch, r.do(req, resp, &j, &uri, prefix))
		if len(batch) == cap(batch) {
			flush()
		}
	}
}

// do sends one request and records its result.
func (r *Runner) do(req *fasthttp.Request, resp *fasthttp.Response, j *job, uri *[]byte, prefix string) result {
	q := &j.req
	req.Reset()
	*uri = append(append((*uri)[:0], prefix...), q.Path...)
	req.SetRequestURIBytes(*uri)
	req.UseHostHeader = true
	if q.Host != "" {
		req.Header.SetHost(q.Host)
	} else {
		req.Header.SetHost(r.host)
	}
	if q.Method != "" {
		req.Header.SetMethod(q.Method)
	}
	if q.UserAgent != "" {
		req.Header.SetUserAgent(q.UserAgent)
	}
	if q.AcceptEncoding != "" {
		req.Header.Set("Accept-Encoding", q.AcceptEncoding)
	}
	if q.Cookie != "" {
		req.Header.Set("Cookie", q.Cookie)
	}
	if q.Referer != "" {
		req.Header.SetReferer(q.Referer)
	}
	if q.Conditional && q.URL >= 0 && q.URL < len(r.etags) {
		if p := r.etags[q.URL].Load(); p != nil {
			req.Header.SetBytesV("If-None-Match", *p)
		}
	}

	r.busy.Add(1)
	sentAt := time.Now()
	client := r.client
	if len(r.clients) > 1 {
		client = r.clients[r.turn.Add(1)%uint64(len(r.clients))]
	}
	err := client.DoDeadline(req, resp, sentAt.Add(r.cfg.Timeout))
	doneAt := time.Now()
	r.busy.Add(-1)

	res := result{
		at:      q.At,
		sent:    sentAt.Sub(r.start),
		done:    doneAt.Sub(r.start),
		blocked: j.blocked,
		dispLag: j.dispatched - q.At,
	}
	if r.cfg.ASAP || res.sent < res.at {
		res.at = res.sent
		res.dispLag = 0
	}
	res.late = res.sent-res.at > lateAfter
	if err != nil {
		if res.err = classify(err); res.err == errOther {
			res.errMsg = err.Error()
		}
		return res
	}
	res.status = uint16(resp.StatusCode())
	res.bytes = int64(len(resp.Body()))
	res.cache = cacheOf(&resp.Header)
	if q.Track {
		res.version = parseVersion(resp.Header.Peek("X-Content-Version"))
	}
	if q.URL >= 0 && q.URL < len(r.etags) && res.status == fasthttp.StatusOK {
		if et := resp.Header.Peek(fasthttp.HeaderETag); len(et) > 0 {
			if p := r.etags[q.URL].Load(); p == nil || string(*p) != string(et) {
				c := append([]byte(nil), et...)
				r.etags[q.URL].Store(&c)
			}
		}
	}
	return res
}

// classify maps a transport error to its kind.
func classify(err error) errKind {
	var op *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, syscall.ECONNREFUSED),
		errors.As(err, &op) && op.Op == "dial":
		return errConnect
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, fasthttp.ErrNoFreeConns):
		return errTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout
	}
	return errOther
}

// parseVersion reads a non-negative decimal version; 0 when absent or bad.
func parseVersion(b []byte) int64 {
	var v int64
	for i, c := range b {
		if c < '0' || c > '9' || i >= 18 {
			return 0
		}
		v = v*10 + int64(c-'0')
	}
	return v
}

// progress samples the bench's CPU use and calls cfg.Progress, once a
// second until stop is closed.
func (r *Runner) progress(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastCPU, lastAt := processCPU(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			cpu := processCPU()
			r.col.recordCPU(now.Sub(r.start), cpu-lastCPU, now.Sub(lastAt))
			lastCPU, lastAt = cpu, now
			if r.cfg.Progress == nil {
				continue
			}
			p := r.col.progress(now.Sub(r.start))
			p.Sent = r.sent.Load()
			p.InFlight = r.busy.Load()
			r.cfg.Progress(p)
		}
	}
}
