package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// The admin listener: /healthz, /readyz, /metrics, /api/stats, the purge
// API and (when configured) profiles, on an address of its own
// (docs/CONTRACTS.md). Everything but /healthz is closed by default
// (docs/RELIABILITY.md, promise 14): it needs the admin token or a client
// in admin.allow_networks; /metrics also opens to admin.metrics_networks,
// the purge API to purge.token.

// door says who may use an admin endpoint.
type door uint8

const (
	doorAdmin   door = iota // the admin token, or admin.allow_networks
	doorMetrics             // those, or admin.metrics_networks
	doorPurge               // those, or purge.token
)

// newAdmin builds the admin listener's server.
func newAdmin(s *Server, reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /metrics", s.guard(doorMetrics, metrics.ServeHTTP))
	mux.HandleFunc("GET /api/stats", s.guard(doorAdmin, s.handleStats))
	mux.HandleFunc("GET /readyz", s.guard(doorAdmin, s.handleReady))
	mux.HandleFunc("POST "+purge.APIPath, s.guard(doorPurge, s.handlePurgeAPI))
	if s.g().pol.pprof {
		mux.HandleFunc("GET /debug/pprof/", s.guard(doorAdmin, pprof.Index))
		mux.HandleFunc("GET /debug/pprof/profile", s.guard(doorAdmin, pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/trace", s.guard(doorAdmin, pprof.Trace))
	}
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnState:         s.adminConns.track,
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() && !s.handingOver.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	}
	if !s.busReady() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("catching up on purges\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Readiness is the JSON answer of GET /readyz: the origin's side of the
// edge, for operators and their monitors. /healthz says whether the edge
// serves (a load balancer's question); this says whether its misses can
// reach an origin.
type Readiness struct {
	// Serving is false while the edge drains.
	Serving bool `json:"serving"`
	// Origin is "up" (every backend in rotation), "degraded" (some out of
	// rotation, or only passive health keeps them out: panic routing) or
	// "down" (no backend's probes pass: misses get stale copies or 503).
	Origin     string             `json:"origin"`
	InRotation int                `json:"in_rotation"`
	Backends   []backend.Snapshot `json:"backends"`
}

// handleReady answers /readyz: 200 when the edge serves and an origin
// can be reached, 503 otherwise, with the backends' states either way.
func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	out := Readiness{Serving: !s.draining.Load(), Backends: s.g().dir.Snapshots(time.Now())}
	probed := 0
	for _, b := range out.Backends {
		if b.Healthy {
			out.InRotation++
		}
		if b.ProbeHealthy {
			probed++
		}
	}
	switch {
	case probed == 0:
		out.Origin = "down"
	case out.InRotation < len(out.Backends):
		out.Origin = "degraded"
	default:
		out.Origin = "up"
	}
	status := http.StatusOK
	if !out.Serving || out.Origin == "down" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

// guard lets a request through door d, or refuses it: 403 when the door
// has no token and no network configured (it is closed), 401 otherwise.
func (s *Server) guard(d door, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pol := s.g().pol
		tokens := [2][]byte{pol.adminToken}
		nets := [2][]netip.Prefix{pol.adminNets}
		switch d {
		case doorMetrics:
			nets[1] = pol.metricsNets
		case doorPurge:
			tokens[1] = pol.purgeToken
		}
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got = strings.TrimSpace(got)
		for _, t := range tokens {
			if len(t) > 0 && subtle.ConstantTimeCompare([]byte(got), t) == 1 {
				h(w, r)
				return
			}
		}
		if a, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			if containsAddr(nets[0], a.Addr().Unmap()) || containsAddr(nets[1], a.Addr().Unmap()) {
				h(w, r)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		refusals := s.m.adminRefusals
		if d == doorPurge {
			refusals = s.m.purgeRefusals
		}
		if len(tokens[0]) == 0 && len(tokens[1]) == 0 && len(nets[0]) == 0 && len(nets[1]) == 0 {
			refusals.WithLabelValues("closed").Inc()
			msg := "closed: set admin.token (LAKKA_ADMIN_TOKEN) or admin.allow_networks"
			if d == doorPurge {
				msg = "purge API closed: set purge.token (LAKKA_PURGE_TOKEN), admin.token (LAKKA_ADMIN_TOKEN) or admin.allow_networks"
			}
			apiError(w, http.StatusForbidden, msg)
			return
		}
		refusals.WithLabelValues("token").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="lakka-admin"`)
		apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	}
}

// handlePurgeAPI serves POST /api/purge: one purge.Message (the caller
// came through doorPurge).
func (s *Server) handlePurgeAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.refusePurgeAPI(w) {
		return
	}
	msg, err := purge.Decode(r.Body)
	if err != nil {
		s.m.purgeRefusals.WithLabelValues("request").Inc()
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.purger.compile(msg)
	if err != nil {
		s.m.purgeRefusals.WithLabelValues("request").Inc()
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := s.purger.apply(p, msg.ID, msg.Issuer)
	res := purge.Result{Purged: n, Soft: p.Soft, Bus: s.publish(msg)}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Stats is the JSON answer of GET /api/stats on the admin listener, read by
// "lakka stats". Counters are totals since start; the client computes rates.
type Stats struct {
	Time time.Time `json:"time"`
	// Version is the binary's (SetVersion) and PID its process's: after an
	// upgrade both say which process serves.
	Version       string             `json:"version,omitempty"`
	PID           int                `json:"pid"`
	UptimeSeconds float64            `json:"uptime_seconds"`
	Draining      bool               `json:"draining"`
	Requests      map[string]float64 `json:"requests"` // by X-Cache value
	OriginFetches float64            `json:"origin_fetches"`
	OriginErrors  float64            `json:"origin_errors"`
	StaleOnError  float64            `json:"stale_on_error"`
	Coalesced     float64            `json:"coalesced"`
	Purges        float64            `json:"purges"`
	Objects       float64            `json:"objects"`
	Bytes         float64            `json:"bytes"`
	BudgetBytes   float64            `json:"budget_bytes"`
	Evictions     float64            `json:"evictions"`
	// Tags is the number of distinct Surrogate-Key tags indexed.
	Tags int `json:"tags"`
	// IdentityBytes and HitHeaderBytes are the pools of hot objects'
	// extras: decoded copies and kept hit headers.
	IdentityBytes  int64              `json:"identity_bytes"`
	HitHeaderBytes int64              `json:"hit_header_bytes"`
	Backends       []backend.Snapshot `json:"backends"`
	// Node and Zone name the edge in the fleet; Bus is its purge bus
	// consumer (nil without a bus).
	Node string      `json:"node"`
	Zone string      `json:"zone,omitempty"`
	Bus  *bus.Status `json:"bus,omitempty"`
	// Reload is the last configuration reload (nil: none yet).
	Reload *ReloadStatus `json:"reload,omitempty"`
	// Cluster is the edge cluster as this edge sees it (nil without one).
	Cluster *ClusterStats `json:"cluster,omitempty"`
}

// ClusterStats is the cluster part of Stats.
type ClusterStats struct {
	// Listen is the peer listener; ShieldZone the shield zone, if any.
	Listen     string `json:"listen"`
	ShieldZone string `json:"shield_zone,omitempty"`
	// Static says the members come from cluster.peers, not the bus.
	Static  bool            `json:"static"`
	Members []ClusterMember `json:"members"`
	// HotCopies and HotCopyBytes are the copies kept of objects other
	// edges own.
	HotCopies    int64   `json:"hot_copies"`
	HotCopyBytes int64   `json:"hot_copy_bytes"`
	Forwarded    float64 `json:"forwarded"` // misses asked of peers
	PeerFaults   float64 `json:"peer_faults"`
	PeerServed   float64 `json:"peer_served"` // peer requests answered
}

// ClusterMember is a member in ClusterStats.
type ClusterMember struct {
	ID   string `json:"id"`
	Zone string `json:"zone"`
	Addr string `json:"addr"`
	Self bool   `json:"self,omitempty"`
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	st := s.store.Stats()
	out := Stats{
		Time:           now,
		Version:        s.version,
		PID:            os.Getpid(),
		UptimeSeconds:  now.Sub(s.started).Seconds(),
		Draining:       s.draining.Load(),
		Requests:       map[string]float64{},
		Objects:        float64(st.Objects),
		Bytes:          float64(st.Bytes),
		BudgetBytes:    float64(s.cfg.Cache.SizeBytes),
		StaleOnError:   value(s.m.staleServes),
		Coalesced:      value(s.m.coalesced),
		Evictions:      value(s.m.store.Evictions),
		Purges:         value(s.m.purgedObjects),
		Tags:           st.Tags,
		IdentityBytes:  st.IdentityBytes,
		HitHeaderBytes: st.HeaderBytes,
		Backends:       s.g().dir.Snapshots(now),
		Node:           bus.NodeName(s.cfg.Edge.NodeID),
		Zone:           s.cfg.Edge.Zone,
	}
	if s.bus != nil {
		st := s.bus.consumer().Status()
		out.Bus = &st
	}
	out.Reload = s.lastReload.Load()
	if c := s.cluster; c != nil {
		out.Cluster = c.stats()
	}
	for r := range numResults {
		out.Requests[r.String()] = value(s.m.requests[r])
	}
	for _, b := range s.g().dir.Backends() {
		ok, errs, timeouts, busy := b.Counters()
		out.OriginFetches += value(ok) + value(errs) + value(timeouts)
		out.OriginErrors += value(errs) + value(timeouts) + value(busy)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// value reads a counter or gauge.
func value(m interface{ Write(*dto.Metric) error }) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}

// adminConns counts the admin listener's connections that have a request
// on its way: accepted and not yet read, or being answered. net/http's
// Shutdown drops a request it reads after Shutdown began, unanswered; at
// an upgrade that is a load balancer's /healthz on a connection this
// process accepted just before, while the new process already serves.
// drainAdmin waits for them first.
type adminConns struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
	busy  int
}

func (a *adminConns) track(c net.Conn, st http.ConnState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		a.state = make(map[net.Conn]http.ConnState)
	}
	wasBusy := false
	if prev, ok := a.state[c]; ok {
		wasBusy = prev == http.StateNew || prev == http.StateActive
	}
	isBusy := st == http.StateNew || st == http.StateActive
	switch {
	case wasBusy && !isBusy:
		a.busy--
	case !wasBusy && isBusy:
		a.busy++
	}
	if st == http.StateClosed || st == http.StateHijacked {
		delete(a.state, c)
	} else {
		a.state[c] = st
	}
}

func (a *adminConns) idle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.busy == 0
}

// drainAdmin stops the admin listener the way the client listener stops:
// no new connections in this process (after a hand-over the socket stays
// open in the new one), answers without keep-alive, and every request
// already accepted answered (up to a second, or ctx), before
// http.Server.Shutdown.
func (s *Server) drainAdmin(ctx context.Context) error {
	s.admin.SetKeepAlivesEnabled(false)
	if s.adminLn != nil {
		_ = s.adminLn.Close()
	}
	deadline := time.Now().Add(time.Second)
	for !s.adminConns.idle() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	if err := s.admin.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		return err // the listener it closes again was closed above
	}
	return nil
}
