// Package edge is Lakka's caching reverse proxy: the fasthttp server and
// the story of each request through it, stage by stage, one file each
// (docs/ARCHITECTURE.md walks a HIT and a MISS through them):
//
//	accept.go   the root handler, the checks on a request as read, the story
//	key.go      the request's cache key and route
//	hit.go      lookup, and serving a stored object (304, ranges, encodings)
//	miss.go     coalescing and fetching a miss, passes
//	upstream.go the request the origin receives
//	absorb.go   an origin response into a stored entry
//	relay.go    the client's response: cache headers, relayed bodies, errors
//	refresh.go  background refreshes of objects served in grace
//	purge.go    purges: the PURGE method, the admin API's, §4.4 invalidation
//	admin.go    the admin listener: /metrics, /healthz, /api/stats, purges
//
// The parts with invariants of their own are sub-packages that import only
// downward: internal/store (the RAM cache, its index and pools),
// internal/backend (origin connections, health, framing checks),
// internal/coding (gzip and zstd) and internal/cachekey (the key format).
// The rules of the cache (what may be stored, for how long, under which
// key) live in package cachepolicy; this package applies them to traffic.
//
// A Server is built by New from a validated config.Config, started with
// Listen and Serve (or Run), and stopped with Shutdown.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/store"
	"github.com/lakka-cache/lakka/purge/bus"
)

// Server is one edge node. Its methods are safe for concurrent use.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	m       *metrics
	store   *store.Store
	flights *flights
	abs     *absorber
	purger  *purger
	refresh *refresher
	// gen is the current generation (reload.go); reloadMu serialises
	// reloads, lastReload is the last one's outcome.
	gen        atomic.Pointer[generation]
	reloadMu   sync.Mutex
	lastReload atomic.Pointer[ReloadStatus]
	// bus is the purge bus; nil without purge.bus.url.
	bus *purgeBus
	// cluster is the edge cluster; nil without cluster.listen.
	cluster *edgeCluster
	// busApplied is seams.busApplied.
	busApplied func(time.Duration)
	// dial is seams.dial, for the backends a reload builds.
	dial backend.Dialer
	// listen opens the listeners (SetListen; default net.Listen).
	listen func(network, addr string) (net.Listener, error)
	// clock is the time of freshness decisions (seams.clock).
	clock freshnessClock

	fast    *fasthttp.Server
	admin   *http.Server
	ln      net.Listener
	adminLn net.Listener
	started time.Time

	draining atomic.Bool
	// handingOver says the listening sockets went to a new process (an
	// upgrade): this one stops at once and /healthz stays 200.
	handingOver atomic.Bool
	// version is the binary's, for /api/stats (SetVersion).
	version string
	// purgesHeld makes purges answer 503 while an upgrade hands the cache
	// over (HoldPurges).
	purgesHeld atomic.Bool
	// snapshotLoaded says objects came from cache.snapshot_path at start,
	// as of purge bus position snapshotFrom (set before the edge serves).
	snapshotLoaded bool
	snapshotFrom   bus.Position
	// adminConns counts the admin connections with a request on its way
	// (drainAdmin).
	adminConns adminConns
	// lingering holds a token per connection in a lingering close.
	lingering chan struct{}
	requests  sync.Pool // *request
	closing   sync.Once
}

// New builds a Server from a configuration that passed
// config.ValidateEdge (New does not check it again: the command validates
// the file, its flags and environment together, once). It does not listen.
func New(cfg config.Config, logger *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	return newServer(cfg, logger, reg, seams{})
}

// seams are what tests may give a Server in place of the real thing, at
// construction; their zero values are production's.
type seams struct {
	// clock is the freshness clock (default: the monotonic clock as it
	// is); tests of expiry and clock jumps give one they can move.
	clock freshnessClock
	// dial opens backend connections (default: net.Dialer with
	// backends.connect_timeout); tests wrap the connections.
	dial backend.Dialer
	// busApplied observes the lag of each purge applied from the bus
	// (default: only the histogram); figures need every value.
	busApplied func(lag time.Duration)
	// listen opens the listeners (default net.Listen); cluster tests
	// hand each edge the peer listener its peers were told of.
	listen func(network, addr string) (net.Listener, error)
}

// freshnessClock gives the time of freshness decisions (docs/RELIABILITY.md,
// promise 9: monotonic). at takes a reading of Go's clock (a request's own
// start time, time.Now()) to the edge's time, so that a hit reads the clock
// no more than fasthttp already did.
type freshnessClock interface {
	at(t time.Time) time.Time
}

// monotonicClock is production's freshness clock: Go's monotonic clock,
// unchanged.
type monotonicClock struct{}

func (monotonicClock) at(t time.Time) time.Time { return t }

func newServer(cfg config.Config, logger *slog.Logger, reg *prometheus.Registry, sm seams) (*Server, error) {
	if sm.clock == nil {
		sm.clock = monotonicClock{}
	}
	s := &Server{cfg: cfg, log: logger, clock: sm.clock, flights: newFlights(), lingering: make(chan struct{}, maxLingering), busApplied: sm.busApplied, listen: sm.listen}
	s.requests.New = func() any { return &request{s: s} }
	var err error
	if _, err := newPolicy(&cfg, nil); err != nil {
		return nil, err // before anything is registered or started
	}
	if err := checkSnapshotPath(cfg.Cache.SnapshotPath); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	bodies := backend.NewBodyBudget(cfg.Budget().Bodies)
	s.m, err = newMetrics(reg, func() *store.Store { return s.store }, bodies)
	if err != nil {
		return nil, fmt.Errorf("edge: metrics: %w", err)
	}
	// Set by Listen, read by scrapes that start after it.
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_purge_bus_pending",
		Help: "Purges on the bus this edge has still to apply, as of its last fetch.",
	}, func() float64 {
		if s.bus == nil {
			return 0
		}
		return float64(s.bus.consumer().Status().Pending)
	})); err != nil {
		return nil, fmt.Errorf("edge: metrics: %w", err)
	}
	// What dashboards and alerts compare with: readiness as /healthz
	// says it, and the configured cache size.
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_ready",
		Help: "1 while /healthz answers 200 (serving, caught up with the purge bus, not draining), 0 otherwise.",
	}, func() float64 {
		if (s.draining.Load() && !s.handingOver.Load()) || !s.busReady() {
			return 0
		}
		return 1
	})); err != nil {
		return nil, fmt.Errorf("edge: metrics: %w", err)
	}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_cache_limit_bytes",
		Help: "cache.size_bytes: what lakka_edge_cache_bytes may reach; the process's resident memory stays within 1.25 times it plus 48 MiB.",
	}, func() float64 { return float64(cfg.Cache.SizeBytes) })); err != nil {
		return nil, fmt.Errorf("edge: metrics: %w", err)
	}
	if s.store, err = store.New(cfg.Budget(), cfg.Cache.MaxVariants, s.m.store); err != nil {
		return nil, fmt.Errorf("edge: store: %w", err)
	}
	if s.abs, err = newAbsorber(&cfg, s.store, bodies, s.m, logger, s.now); err != nil {
		s.store.Close()
		return nil, err
	}
	access, err := newAccessLog(cfg.Log, s.m)
	if err != nil {
		s.store.Close()
		return nil, err
	}
	s.dial = sm.dial
	pol, err := newPolicy(&cfg, s.m.ruleMatches)
	if err != nil {
		s.store.Close()
		return nil, err
	}
	s.gen.Store(&generation{cfg: &cfg, pol: pol, dir: backend.New(cfg.Backends, s.m.backends, sm.dial, s.now), access: access,
		pools: newPools(&cfg, s.m.backends, sm.dial, s.now)})
	s.purger = &purger{store: s.store, gen: &s.gen, m: s.m, log: logger, now: s.now}
	s.refresh = newRefresher(s.refreshOne, s.fetchInBackground, s.m.refreshes.WithLabelValues("dropped"), cfg.Cache.RefreshWorkers, cfg.Cache.RefreshQueue)
	s.fast = &fasthttp.Server{
		Handler:                       s.handle,
		ErrorHandler:                  s.handleParseError,
		Name:                          "",
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		Concurrency:                   cfg.Edge.MaxConnections,
		MaxConnsPerIP:                 cfg.Edge.MaxConnectionsPerIP,
		ReadBufferSize:                int(cfg.Edge.MaxHeaderBytes),
		ReadTimeout:                   cfg.Edge.ReadTimeout,
		WriteTimeout:                  cfg.Edge.WriteTimeout,
		IdleTimeout:                   cfg.Edge.IdleTimeout,
		MaxRequestBodySize:            int(cfg.Edge.MaxRequestBodyBytes),
		CloseOnShutdown:               true,
		SecureErrorLogMessage:         true,
		Logger:                        fasthttpLogger{logger},
	}
	s.admin = newAdmin(s, reg)
	initClusterSeries(s.m, cfg.Edge.Zone, cfg.Cluster.Listen != "")
	if cfg.Cluster.Listen != "" {
		if s.cluster, err = newCluster(s, &cfg); err != nil {
			s.store.Close()
			return nil, fmt.Errorf("edge: %w", err)
		}
	}
	return s, nil
}

// fasthttpLogger routes fasthttp's own messages into slog.
type fasthttpLogger struct{ l *slog.Logger }

// Printf logs at debug level: fasthttp reports every malformed request a
// client sends here, which must not let clients flood the log (they are
// counted in lakka_edge_bad_requests_total).
func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
	}
}

// Listen binds the client and admin listeners and, with a purge bus,
// starts consuming it (the edge is not ready until it caught up).
func (s *Server) Listen() error {
	listen := s.listen
	if listen == nil {
		listen = net.Listen
	}
	ln, err := listen("tcp", s.cfg.Edge.Listen)
	if err != nil {
		return fmt.Errorf("edge: listen %s: %w", s.cfg.Edge.Listen, err)
	}
	aln, err := listen("tcp", s.cfg.Edge.Admin)
	if err != nil {
		ln.Close()
		return fmt.Errorf("edge: admin listen %s: %w", s.cfg.Edge.Admin, err)
	}
	s.ln, s.adminLn = ln, aln
	if c := s.cluster; c != nil {
		if c.ln, err = listen("tcp", s.cfg.Cluster.Listen); err != nil {
			ln.Close()
			aln.Close()
			return fmt.Errorf("edge: cluster listen %s: %w", s.cfg.Cluster.Listen, err)
		}
		c.self.Addr = c.ln.Addr().String()
		c.setView(c.staticMembers())
	}
	s.loadSnapshot()
	if s.cfg.Purge.Bus.URL != "" {
		// Here rather than in Serve: the bus announces the admin address,
		// and catching up starts as early as possible.
		if err := s.startBus(); err != nil {
			ln.Close()
			aln.Close()
			if s.cluster != nil {
				s.cluster.ln.Close()
			}
			return fmt.Errorf("edge: %w", err)
		}
	}
	return nil
}

// SetVersion records the binary's version for /api/stats; call it before
// Serve.
func (s *Server) SetVersion(v string) { s.version = v }

// HandOver tells the edge that a new process serves its sockets (an
// upgrade): the coming Shutdown skips the drain delay, and /healthz, on
// the socket they share, keeps answering 200.
func (s *Server) HandOver() { s.handingOver.Store(true) }

// SetListen replaces how Listen opens its listeners: an upgrade passes
// the previous process's sockets this way. Call it before Listen.
func (s *Server) SetListen(listen func(network, addr string) (net.Listener, error)) {
	s.listen = listen
}

// Addr returns the client listener's address (after Listen).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// AdminAddr returns the admin listener's address (after Listen).
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Serve serves until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if s.ln == nil {
		return errors.New("edge: Serve before Listen")
	}
	s.log.Info("edge listening", "addr", s.Addr(), "admin", s.AdminAddr(), "backends", len(s.g().dir.Backends()))
	s.started = time.Now()
	s.refresh.start()
	s.g().dir.Start()
	for _, d := range s.g().pools {
		d.Start()
	}
	if c := s.cluster; c != nil {
		c.served.Add(1)
		go func() {
			defer c.served.Done()
			if err := c.server.Serve(c.ln); err != nil && !s.draining.Load() {
				s.log.Error("cluster: peer listener failed", "addr", c.self.Addr, "err", err)
			}
		}()
	}
	adminErr := make(chan error, 1)
	go func() {
		err := s.admin.Serve(s.adminLn)
		if errors.Is(err, http.ErrServerClosed) || s.draining.Load() {
			err = nil // drainAdmin closed the listener
		}
		adminErr <- err
	}()
	if s.snapshotLoaded && s.bus != nil {
		// What the snapshot holds is served only once every purge
		// issued since it was written is applied (/healthz says 503
		// meanwhile; in an upgrade the old process serves).
		s.waitCaughtUp()
	}
	err := s.fast.Serve(s.ln)
	if err != nil && !s.draining.Load() {
		return fmt.Errorf("edge: serve: %w", err)
	}
	return <-adminErr
}

// Run listens and serves until ctx is done, then shuts down gracefully
// (drain delay, in-flight requests finish, bounded by edge.shutdown_timeout).
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	select {
	case err := <-errc:
		s.closeBackground()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Edge.DrainDelay+s.cfg.Edge.ShutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return err
	}
	return <-errc
}

// Shutdown drains the node: /healthz turns 503 at once so that load
// balancers stop sending traffic, then after edge.drain_delay the listener
// closes, keep-alive connections are closed as their requests finish, and
// Shutdown returns when in-flight requests are done or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	delay := s.cfg.Edge.DrainDelay
	if s.handingOver.Load() {
		delay = 0 // the sockets stay open in the next process
	}
	s.log.Info("edge draining", "drain_delay", delay)
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	err := s.fast.ShutdownWithContext(ctx)
	if aerr := s.drainAdmin(ctx); err == nil {
		err = aerr
	}
	if c := s.cluster; c != nil {
		// Last: peers asked this edge for what it owned while it drained.
		if cerr := c.server.ShutdownWithContext(ctx); err == nil {
			err = cerr
		}
		c.served.Wait()
	}
	s.closeBackground()
	if err != nil {
		return fmt.Errorf("edge: shutdown: %w", err)
	}
	s.log.Info("edge stopped")
	return nil
}

// closeBackground stops the server's goroutines and releases the store.
func (s *Server) closeBackground() {
	s.closing.Do(func() {
		if s.cluster != nil {
			s.cluster.stop()
		}
		if s.bus != nil {
			s.bus.stop() // before the store closes: it applies purges
		}
		if !s.handingOver.Load() {
			// After the bus stopped: the position recorded is the
			// cache's. (After a hand-over the new process has the
			// cache; a file written now would be older than its.)
			_ = s.WriteSnapshot()
		}
		s.refresh.stopAndWait(s.dropJob)
		g := s.g()
		g.dir.Stop()
		for _, d := range g.pools {
			d.Stop()
		}
		g.access.close()
		s.store.Close()
	})
}

// ReopenLog reopens the access log file, writing what is pending to the
// old one first (after logrotate moved it: SIGUSR1). A log on stdout or
// stderr, or none, is left as it is.
func (s *Server) ReopenLog() error { return s.g().access.Reopen() }

// now is the time of freshness decisions.
func (s *Server) now() time.Time {
	return s.clock.at(time.Now())
}

// logPanic records a recovered panic.
func (s *Server) logPanic(p any) {
	s.m.panics.Inc()
	s.log.Error("panic in request handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
}
