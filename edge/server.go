// Package edge is Lakka's caching reverse proxy: the fasthttp server, cache
// keys, the RAM store (ristretto) with its tag and URL index, request
// coalescing, backend fetches, grace and revalidation, compression, purges,
// metrics and the access log.
//
// The rules of the cache (what may be stored, for how long, under which key)
// live in package cachepolicy; this package applies them to real traffic.
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
	"net/http/pprof"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
)

// route is a compiled config.Route.
type route struct {
	name          string
	pass          bool
	ignoreCookies bool
	rules         cachepolicy.Rules
}

// Server is one edge node. Its methods are safe for concurrent use.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	m        *metrics
	store    *store
	flights  *flights
	dir      *director
	access   *accessLog
	refresh  *refresher
	keyRules cachepolicy.KeyRules
	matches  []cachepolicy.RouteMatch
	routes   []route
	defaults cachepolicy.Rules
	trusted  []netip.Prefix
	purgers  []netip.Prefix
	token    string
	// zstd makes the stored zstd forms (compression.zstd); nil when off.
	zstd    *zstd.Encoder
	via     []byte // "1.1 lakka"
	cacheSt []byte // "lakka"

	fast    *fasthttp.Server
	admin   *http.Server
	ln      net.Listener
	adminLn net.Listener

	probes  *prober
	started time.Time

	// clock is the time of freshness decisions (seams.clock).
	clock freshnessClock

	draining atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup // background goroutines owned by the server
	states   sync.Pool      // *reqState
	closing  sync.Once
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
	dial func(addr string, timeout time.Duration) (net.Conn, error)
}

// freshnessClock gives the time of freshness decisions (RELIABILITY
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

func newServer(cfg config.Config, logger *slog.Logger, reg *prometheus.Registry, seams seams) (*Server, error) {
	if seams.clock == nil {
		seams.clock = monotonicClock{}
	}
	s := &Server{
		clock:   seams.clock,
		cfg:     cfg,
		log:     logger,
		flights: newFlights(),
		stop:    make(chan struct{}),
		via:     []byte("1.1 " + cfg.Edge.ViaName),
		cacheSt: []byte(cfg.Edge.ViaName),
		keyRules: cachepolicy.KeyRules{
			StripQuery: cfg.Key.StripQuery,
			SortQuery:  cfg.Key.SortQuery,
		},
		defaults: cachepolicy.Rules{
			DefaultTTL: cfg.Cache.DefaultTTL,
			Grace:      cfg.Cache.Grace,
			Keep:       cfg.Cache.Keep,
		},
		token: cfg.Purge.Token,
	}
	s.states.New = func() any { return new(reqState) }
	for _, r := range cfg.Routes {
		s.matches = append(s.matches, cachepolicy.RouteMatch{Host: r.Host, PathPrefix: r.PathPrefix})
		rules := s.defaults
		rules.TTL, rules.MinTTL, rules.MaxTTL = r.TTL, r.MinTTL, r.MaxTTL
		rules.RouteGrace, rules.RouteKeep = r.Grace, r.Keep
		rules.StripSetCookie = r.StripSetCookie
		s.routes = append(s.routes, route{name: r.Name, pass: r.Pass, ignoreCookies: r.IgnoreCookies, rules: rules})
	}
	var err error
	if s.trusted, err = prefixes("edge.trusted_proxies", cfg.Edge.TrustedProxies); err != nil {
		return nil, err
	}
	if s.purgers, err = prefixes("purge.allow_networks", cfg.Purge.AllowNetworks); err != nil {
		return nil, err
	}

	s.m, err = newMetrics(reg, func() (float64, float64) {
		return float64(s.store.objects.Load()), float64(s.store.bytes.Load())
	})
	if err != nil {
		return nil, fmt.Errorf("edge: metrics: %w", err)
	}
	s.store, err = newStore(cfg.Budget(), s.m)
	if err != nil {
		return nil, fmt.Errorf("edge: store: %w", err)
	}
	if cfg.Compression.Enabled && cfg.Compression.Zstd {
		if s.zstd, err = newZstdEncoder(); err != nil {
			s.store.close()
			return nil, fmt.Errorf("edge: zstd: %w", err)
		}
	}
	s.dir = newDirector(cfg.Backends, s.m, seams.dial)
	s.access, err = newAccessLog(cfg.Log, s.m)
	if err != nil {
		s.store.close()
		return nil, err
	}
	s.refresh = newRefresher(s, cfg.Cache.RefreshWorkers, cfg.Cache.RefreshQueue)
	s.probes = newProber(s.dir.backends, cfg.Backends.Probe, time.Now)

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
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("POST /api/purge", s.handlePurgeAPI)
	mux.HandleFunc("GET /api/stats", s.handleStats)
	// Profiles for ops, on the admin listener only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.admin = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
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

// Listen binds the client and admin listeners.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Edge.Listen)
	if err != nil {
		return fmt.Errorf("edge: listen %s: %w", s.cfg.Edge.Listen, err)
	}
	aln, err := net.Listen("tcp", s.cfg.Edge.Admin)
	if err != nil {
		ln.Close()
		return fmt.Errorf("edge: admin listen %s: %w", s.cfg.Edge.Admin, err)
	}
	s.ln, s.adminLn = ln, aln
	return nil
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
	s.log.Info("edge listening", "addr", s.Addr(), "admin", s.AdminAddr(), "backends", len(s.dir.backends))
	s.started = time.Now()
	s.refresh.start()
	s.probes.start()
	adminErr := make(chan error, 1)
	go func() {
		err := s.admin.Serve(s.adminLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		adminErr <- err
	}()
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
	s.log.Info("edge draining", "drain_delay", s.cfg.Edge.DrainDelay)
	t := time.NewTimer(s.cfg.Edge.DrainDelay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	err := s.fast.ShutdownWithContext(ctx)
	if aerr := s.admin.Shutdown(ctx); err == nil {
		err = aerr
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
		close(s.stop)
		s.refresh.stopAndWait()
		s.probes.stopAndWait()
		s.wg.Wait()
		s.access.close()
		s.store.close()
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// handleParseError answers requests fasthttp could not parse: 431 for
// headers over edge.max_header_bytes, 413 for bodies over the limit, 408
// for slow clients, 400 for everything else. fasthttp closes the
// connection afterwards.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	status, reason := fasthttp.StatusBadRequest, "parse"
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		status, reason = fasthttp.StatusRequestHeaderFieldsTooLarge, "header-too-large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason = fasthttp.StatusRequestEntityTooLarge, "body-too-large"
	case errors.As(err, &ne) && ne.Timeout():
		status, reason = fasthttp.StatusRequestTimeout, "timeout"
	}
	s.m.badRequest.WithLabelValues(reason).Inc()
	s.m.requests[resError].Inc()
	var hr headReader
	hr.start(&ctx.Response.Header, status, nil, time.Now())
	writeError(ctx, status)
	ctx.Response.Header.Set("X-Cache", "ERROR")
	ctx.Response.Header.Set("Cache-Status", s.cfg.Edge.ViaName+"; fwd=miss; detail="+reason)
	ctx.SetConnectionClose()
}

// logPanic records a recovered panic.
func (s *Server) logPanic(p any) {
	s.m.panics.Inc()
	s.log.Error("panic in request handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
}

// now is the time of freshness decisions.
func (s *Server) now() time.Time {
	return s.clock.at(time.Now())
}

// prefixes parses the CIDR list at key (validated already).
func prefixes(key string, nets []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("edge: %s[%d]: %w", key, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}
