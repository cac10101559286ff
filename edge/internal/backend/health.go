package backend

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// health tracks one backend's state from active probes (like Varnish's
// .probe with .window and .threshold) and from real fetches (consecutive
// fetches that show it is down: isDown). A backend is in rotation when both
// agree; the director may still use one that only passive health took out
// (panic routing, Director.pick).
type health struct {
	probe   config.Probe
	passive config.Passive

	mu          sync.Mutex // guards the fields below
	results     uint64     // last probe results, newest in bit 0
	count       int        // probes recorded (at most probe.Window)
	probeOK     bool
	failures    int       // consecutive fetch connection failures
	sickUntil   time.Time // passive: out of rotation until then
	lastChange  time.Time
	lastProbeOK bool
	// lastHealthy is the state last reported (metrics, transitions).
	lastHealthy atomic.Bool

	healthyGauge prometheus.Gauge
	probeOKs     prometheus.Counter
	probeFails   prometheus.Counter
	transitions  prometheus.Counter
}

func newHealth(c config.Backends, name string, m Metrics) *health {
	h := &health{
		probe:        c.Probe,
		passive:      c.Passive,
		probeOK:      true,
		healthyGauge: m.Healthy.WithLabelValues(name),
		probeOKs:     m.Probes.WithLabelValues(name, "ok"),
		probeFails:   m.Probes.WithLabelValues(name, "fail"),
		transitions:  m.Transitions.WithLabelValues(name),
		lastChange:   time.Now(),
	}
	if c.Probe.Enabled {
		// The first Initial probes count as good, so that a node that just
		// started sends traffic before Window probes have run.
		for range c.Probe.Initial {
			h.results = h.results<<1 | 1
		}
		h.count = c.Probe.Initial
		h.probeOK = c.Probe.Initial >= c.Probe.Threshold
	}
	h.lastHealthy.Store(h.probeOK)
	h.healthyGauge.Set(1)
	if !h.probeOK {
		h.healthyGauge.Set(0)
	}
	return h
}

// recordProbe adds one probe result and returns whether the backend is now
// healthy.
func (h *health) recordProbe(ok bool, now time.Time) bool {
	if ok {
		h.probeOKs.Inc()
	} else {
		h.probeFails.Inc()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	bit := uint64(0)
	if ok {
		bit = 1
	}
	h.results = h.results<<1 | bit
	h.count = min(h.count+1, h.probe.Window)
	mask := uint64(1)<<h.probe.Window - 1
	if h.probe.Window == 64 {
		mask = ^uint64(0)
	}
	good := bits.OnesCount64(h.results & mask)
	h.probeOK = good >= h.probe.Threshold
	h.lastProbeOK = ok
	return h.updateLocked(now)
}

// fetchResult records the outcome of a real fetch: fetches that show the
// backend is down count towards passive health; any other outcome
// (answers, timeouts, busy) resets the count.
func (h *health) fetchResult(down bool, now time.Time) {
	if h.passive.Failures <= 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !down {
		h.failures = 0
		h.updateLocked(now)
		return
	}
	h.failures++
	if h.failures >= h.passive.Failures {
		h.sickUntil = now.Add(h.passive.Cooldown)
		h.failures = 0
	}
	h.updateLocked(now)
}

// healthy reports whether the backend is in rotation at now.
func (h *health) healthy(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.updateLocked(now)
}

// state reports whether the backend is in rotation at now, and whether its
// probes pass (true without probes).
func (h *health) state(now time.Time) (inRotation, probeOK bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.updateLocked(now), h.probeOK
}

func (h *health) updateLocked(now time.Time) bool {
	ok := h.probeOK && !now.Before(h.sickUntil)
	if ok != h.lastHealthy.Load() {
		h.lastHealthy.Store(ok)
		h.lastChange = now
		h.transitions.Inc()
		if ok {
			h.healthyGauge.Set(1)
		} else {
			h.healthyGauge.Set(0)
		}
	}
	return ok
}

// Snapshot is a backend's state for /api/stats.
type Snapshot struct {
	Name         string    `json:"name"`
	Address      string    `json:"address"`
	Healthy      bool      `json:"healthy"`
	ProbeHealthy bool      `json:"probe_healthy"`
	ProbeWindow  string    `json:"probe_window"` // newest last, like varnishadm backend.list -p
	PassiveSick  bool      `json:"passive_sick"`
	Since        time.Time `json:"since"`
	// Fetching is the fetches in flight, FetchLimit the adaptive limit on
	// them, Queued the fetches waiting for a slot.
	Fetching   int     `json:"fetching"`
	FetchLimit float64 `json:"fetch_limit"`
	Queued     int     `json:"queued"`
}

func (b *Backend) snapshot(now time.Time) Snapshot {
	h := b.health
	healthy := h.healthy(now)
	limit, inflight, queued := b.limiter.state()
	h.mu.Lock()
	defer h.mu.Unlock()
	window := ""
	if h.probe.Enabled {
		buf := make([]byte, h.count)
		for i := range h.count {
			if h.results>>(h.count-1-i)&1 == 1 {
				buf[i] = 'H'
			} else {
				buf[i] = '-'
			}
		}
		window = string(buf)
	}
	return Snapshot{
		Name:         b.name,
		Address:      b.addr,
		Healthy:      healthy,
		ProbeHealthy: h.probeOK,
		ProbeWindow:  window,
		PassiveSick:  now.Before(h.sickUntil),
		Since:        h.lastChange,
		Fetching:     inflight,
		FetchLimit:   limit,
		Queued:       queued,
	}
}

// prober runs the active health checks of every backend until stop.
type prober struct {
	backends []*Backend
	probe    config.Probe
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	now      func() time.Time
}

func newProber(backends []*Backend, p config.Probe, now func() time.Time) *prober {
	return &prober{backends: backends, probe: p, stop: make(chan struct{}), now: now}
}

func (p *prober) start() {
	if !p.probe.Enabled {
		return
	}
	for _, b := range p.backends {
		p.wg.Add(1)
		go p.run(b)
	}
}

func (p *prober) stopAndWait() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *prober) run(b *Backend) {
	defer p.wg.Done()
	t := time.NewTicker(p.probe.Interval)
	defer t.Stop()
	for {
		b.health.recordProbe(p.check(b), p.now())
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// check sends one probe. It uses its own connection each time (not the
// fetch pool), so that a probe never waits behind fetches.
func (p *prober) check(b *Backend) bool {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(p.probe.Path)
	host := p.probe.Host
	if host == "" {
		host = b.addr
	}
	req.Header.SetHost(host)
	req.Header.Set("User-Agent", "lakka-probe")
	req.SetConnectionClose()
	c := &fasthttp.HostClient{
		Addr:                b.addr,
		MaxResponseBodySize: 64 << 10,
		ReadTimeout:         p.probe.Timeout,
		WriteTimeout:        p.probe.Timeout,
		MaxConns:            1,
	}
	if err := c.DoTimeout(req, resp, p.probe.Timeout); err != nil {
		return false
	}
	return resp.StatusCode() == p.probe.ExpectedStatus
}
