// Package origin is Lakka's bundled news origin: a lean news site on
// net/http and html/template (sections tree, articles, front page, most-read
// list, sitemap, content-hashed static files, a comment form) over one of
// two stores: the embedded in-memory store or PostgreSQL through pgx.
//
// It is written as the origin a caching edge wants in front of it: every
// page is the same for every reader, carries Surrogate-Key tags for all it
// shows and Cache-Control with stale-while-revalidate and stale-if-error;
// every change commits a purge row with the content (a transactional
// outbox) and Delivery sends it to the edges' purge API. Per-reader state
// (the comment form's CSRF token, view counts) goes through small
// uncacheable endpoints. See docs/origin.md.
package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/origin/surrogate"
)

// Server is the origin's HTTP side plus the work beside it: the view
// counter's flushes and the purge delivery. Create it with New, serve with
// Serve (or use it as an http.Handler in tests). Safe for concurrent use.
type Server struct {
	cfg      config.Origin
	store    Store
	logger   *slog.Logger
	metrics  *serverMetrics
	gatherer prometheus.Gatherer // nil: no /metrics
	assets   *assets
	tmpl     *templates
	views    *viewCounter
	delivery *Delivery
	handler  http.Handler

	site   atomic.Pointer[siteTree] // loaded on first use
	siteMu sync.Mutex               // serialises loading site
}

// New returns the origin serving st with cfg. It registers its metrics
// with reg; if reg is also a prometheus.Gatherer (a *prometheus.Registry
// is), /metrics serves it.
func New(cfg config.Origin, st Store, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	m, err := newServerMetrics(reg)
	if err != nil {
		return nil, err
	}
	a, err := loadAssets()
	if err != nil {
		return nil, err
	}
	t, err := parseTemplates(a)
	if err != nil {
		return nil, err
	}
	d, err := NewDelivery(cfg, st, logger, reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		store:    st,
		logger:   logger,
		metrics:  m,
		assets:   a,
		tmpl:     t,
		views:    newViewCounter(st, logger, m),
		delivery: d,
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	}
	if cfg.Token == "" {
		logger.Warn("admin API disabled: no token (set LAKKA_ORIGIN_TOKEN or origin.token)")
	}
	mux := http.NewServeMux()
	s.routes(mux)
	// The middleware keeps errors and cookies out of shared caches, whatever
	// a handler does.
	if s.handler, err = surrogate.Middleware(mux, surrogate.Options{}); err != nil {
		return nil, err
	}
	return s, nil
}

// UseBus publishes every purge on the purge bus (Delivery.UseBus); call it
// before Serve.
func (s *Server) UseBus(p Publisher) { s.delivery.UseBus(p) }

// handlerFunc serves a request and says what kind it was.
type handlerFunc func(w http.ResponseWriter, r *http.Request) kind

// counted counts requests by the kind their handler reports.
func (s *Server) counted(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.requests[h(w, r)].Inc()
	})
}

func (s *Server) routes(mux *http.ServeMux) {
	fixed := func(k kind, h http.HandlerFunc) http.Handler {
		return s.counted(func(w http.ResponseWriter, r *http.Request) kind { h(w, r); return k })
	}
	// GET patterns serve HEAD too.
	mux.Handle("GET /{$}", s.counted(s.serveFront))
	mux.Handle("GET /fragments/most-read", s.counted(s.serveMostRead))
	mux.Handle("GET /sitemap.xml", s.counted(s.serveSitemap))
	mux.Handle("GET /static/{file}", s.counted(s.serveStatic))
	mux.Handle("GET /healthz", fixed(kindHealth, s.serveHealth))
	mux.Handle("GET /metrics", fixed(kindMetrics, s.serveMetrics))
	mux.Handle("POST /views/{id}", s.counted(s.serveView))
	mux.Handle("GET /comments/token", fixed(kindComment, s.serveCommentToken))
	mux.Handle("POST /comments", s.counted(s.serveComment))
	mux.Handle("GET /api/sections", s.api(s.apiSections))
	mux.Handle("GET /api/articles/{id}", s.api(s.apiGetArticle))
	mux.Handle("POST /api/articles", s.api(s.apiCreateArticle))
	mux.Handle("PUT /api/articles/{id}", s.api(s.apiUpdateArticle))
	mux.Handle("DELETE /api/articles/{id}", s.api(s.apiDeleteArticle))
	mux.Handle("GET /api/", s.api(func(http.ResponseWriter, *http.Request) error {
		return errAPINotFound
	}))
	mux.Handle("GET /", s.counted(s.servePath))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	s.write(w, r, []byte("ok\n"))
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.gatherer == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// write writes a response body. A failed write means that the client has
// gone: worth a debug line, no more.
func (s *Server) write(w http.ResponseWriter, r *http.Request, b []byte) {
	if _, err := w.Write(b); err != nil && s.logger.Enabled(r.Context(), slog.LevelDebug) {
		s.logger.LogAttrs(r.Context(), slog.LevelDebug, "write response", slog.String("path", r.URL.Path), slog.Any("error", err))
	}
}

// Serve answers HTTP on ln and runs the view counter and the purge delivery
// until ctx is done; then it stops taking requests, lets those in flight
// finish (up to origin.shutdown_timeout), writes the buffered view counts,
// stops the delivery and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	if err := s.delivery.Start(bg); err != nil {
		return fmt.Errorf("origin: start purge delivery: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.views.run(bg, s.cfg.ViewFlushInterval, s.cfg.ShutdownTimeout) })
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute, // the sitemap of a large site
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var err error
	select {
	case err = <-served:
		err = fmt.Errorf("origin: serve: %w", err)
	case <-ctx.Done():
		s.logger.Info("origin shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		if serr := hs.Shutdown(sctx); serr != nil {
			err = fmt.Errorf("origin: shutdown: %w", serr)
		}
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("origin: serve: %w", serr))
		}
	}
	stopBG() // the view counter flushes once more
	wg.Wait()
	s.delivery.Wait()
	return err
}
