package edge

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/purge"
)

// The admin listener: /metrics, /healthz, /api/stats, the purge API and
// profiles, on an address of its own (docs/CONTRACTS.md).

// newAdmin builds the admin listener's server.
func newAdmin(s *Server, reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("POST "+purge.APIPath, s.handlePurgeAPI)
	mux.HandleFunc("GET /api/stats", s.handleStats)
	// Profiles for ops, on the admin listener only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
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

// handlePurgeAPI serves POST /api/purge: one purge.Message, with the
// bearer token.
func (s *Server) handlePurgeAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := s.cfg.Purge.Token
	if token == "" {
		apiError(w, http.StatusForbidden, "purge API disabled: set purge.token or LAKKA_PURGE_TOKEN")
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
		s.m.purgeRefusals.WithLabelValues("token").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="lakka-purge"`)
		apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
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
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(purge.Result{Purged: n, Soft: p.Soft})
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Stats is the JSON answer of GET /api/stats on the admin listener, read by
// "lakka stats". Counters are totals since start; the client computes rates.
type Stats struct {
	Time          time.Time          `json:"time"`
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
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	st := s.store.Stats()
	out := Stats{
		Time:           now,
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
		Backends:       s.dir.Snapshots(now),
	}
	for r := range numResults {
		out.Requests[r.String()] = value(s.m.requests[r])
	}
	for _, b := range s.dir.Backends() {
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
