package edge

import (
	"encoding/json"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
)

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
	Backends      []backendSnapshot  `json:"backends"`
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	st := Stats{
		Time:          now,
		UptimeSeconds: now.Sub(s.started).Seconds(),
		Draining:      s.draining.Load(),
		Requests:      map[string]float64{},
		Objects:       float64(s.store.objects.Load()),
		Bytes:         float64(s.store.bytes.Load()),
		BudgetBytes:   float64(s.cfg.Cache.SizeBytes),
		StaleOnError:  value(s.m.staleServes),
		Coalesced:     value(s.m.coalesced),
		Evictions:     value(s.m.evictions),
		Purges:        value(s.m.purgedObjects),
	}
	for r := range numResults {
		st.Requests[r.String()] = value(s.m.requests[r])
	}
	for _, b := range s.dir.backends {
		st.OriginFetches += value(b.okFetches) + value(b.errFetches) + value(b.timeoutFetches)
		st.OriginErrors += value(b.errFetches) + value(b.timeoutFetches) + value(b.busyFetches)
		st.Backends = append(st.Backends, b.snapshot(now))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(st)
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
