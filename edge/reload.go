package edge

import (
	"reflect"
	"strings"
	"time"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/backend"
)

// generation is what a configuration reload replaces at once: the
// compiled policy (routes, key rules, tokens, networks), the backends and
// the access log, with the configuration they came from. A request takes
// the current generation when it starts and keeps it to its end; a reload
// never changes one under it.
type generation struct {
	cfg    *config.Config
	pol    *policy
	dir    *backend.Director
	access *accessLog
	// pools are the named backend pools (config pools:), for rules.
	pools map[string]*backend.Director
}

// g returns the current generation.
func (s *Server) g() *generation { return s.gen.Load() }

// Reloaded is what a reload did.
type Reloaded struct {
	// NeedsUpgrade lists the keys whose new values the running process
	// cannot take (new sockets, a new store, the process's logger): they
	// keep their running values until an upgrade or a restart.
	NeedsUpgrade []string
}

// ReloadStatus is the last reload, for /api/stats and "lakka stats".
type ReloadStatus struct {
	At           time.Time `json:"at"`
	OK           bool      `json:"ok"`
	Error        string    `json:"error,omitempty"`
	NeedsUpgrade []string  `json:"needs_upgrade,omitempty"`
}

// retireAfter is how long a replaced access log stays open for the
// requests that started under it.
const retireAfter = 30 * time.Second

// Reload swaps in cfg: the policy (routes, key rules, cache defaults,
// cookies, tokens and networks, names), the backends and their probes,
// the access log. Requests in flight finish under the generation they
// started with; the cache, connections and listeners stay. A cfg that
// does not pass config.ValidateEdge changes nothing: the error (naming
// each key) is logged, counted and returned. Keys that need new sockets
// or a new store keep their running values and are reported.
func (s *Server) Reload(cfg config.Config) (Reloaded, error) {
	if err := cfg.ValidateEdge(); err != nil {
		s.ReloadFailed(err)
		return Reloaded{}, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.g()
	applied := reloadable(*old.cfg, cfg)
	needs := diffKeys("", reflect.ValueOf(applied), reflect.ValueOf(cfg))
	pol, err := newPolicy(&applied, s.m.ruleMatches)
	if err != nil {
		s.ReloadFailed(err)
		return Reloaded{}, err
	}
	next := &generation{cfg: &applied, pol: pol, dir: old.dir, access: old.access, pools: old.pools}
	if !reflect.DeepEqual(old.cfg.Log, applied.Log) {
		if next.access, err = newAccessLog(applied.Log, s.m); err != nil {
			s.ReloadFailed(err)
			return Reloaded{}, err
		}
	}
	if !reflect.DeepEqual(old.cfg.Backends, applied.Backends) {
		next.dir = backend.New(applied.Backends, s.m.backends, s.dial, s.now)
		next.dir.Start()
	}
	if !reflect.DeepEqual(old.cfg.Backends, applied.Backends) || !reflect.DeepEqual(old.cfg.Pools, applied.Pools) {
		next.pools = newPools(&applied, s.m.backends, s.dial, s.now)
		for _, d := range next.pools {
			d.Start()
		}
	}
	s.gen.Store(next)
	if next.dir != old.dir {
		old.dir.Stop() // its probes; fetches in flight on it finish
	}
	for name, d := range old.pools {
		if next.pools[name] != d {
			d.Stop()
		}
	}
	if next.access != old.access {
		retired := old.access
		time.AfterFunc(retireAfter, retired.close)
	}
	s.m.reloads.WithLabelValues("ok").Inc()
	s.m.needsUpgrade.Set(float64(len(needs)))
	s.lastReload.Store(&ReloadStatus{At: time.Now(), OK: true, NeedsUpgrade: needs})
	s.log.Info("configuration reloaded", "backends", len(next.dir.Backends()), "routes", len(applied.Routes), "needs_upgrade", needs)
	return Reloaded{NeedsUpgrade: needs}, nil
}

// ReloadFailed records a reload that could not happen (the file could not
// be read, or did not validate): the edge keeps running as it was.
func (s *Server) ReloadFailed(err error) {
	s.m.reloads.WithLabelValues("invalid").Inc()
	s.lastReload.Store(&ReloadStatus{At: time.Now(), Error: err.Error()})
	s.log.Error("configuration not reloaded: keeping the running one", "err", err)
}

// reloadable returns running with the parts of next a reload applies.
func reloadable(running, next config.Config) config.Config {
	out := running
	out.Routes = next.Routes
	out.Rules, out.Sticky, out.Pools = next.Rules, next.Sticky, next.Pools
	out.Key = next.Key
	out.Backends = next.Backends
	out.Purge.Token = next.Purge.Token
	out.Purge.AllowNetworks = next.Purge.AllowNetworks
	out.Admin.Token = next.Admin.Token
	out.Admin.AllowNetworks = next.Admin.AllowNetworks
	out.Admin.MetricsNetworks = next.Admin.MetricsNetworks
	out.Log.Access = next.Log.Access
	out.Log.AccessFormat = next.Log.AccessFormat
	out.Log.AccessHost = next.Log.AccessHost
	out.Log.AccessBuffer = next.Log.AccessBuffer
	out.Cache.SnapshotPath = next.Cache.SnapshotPath
	c := &out.Cache
	c.DefaultTTL, c.Grace, c.Keep = next.Cache.DefaultTTL, next.Cache.Grace, next.Cache.Keep
	c.StripCookies = next.Cache.StripCookies
	c.StaleWait, c.WaitTimeout = next.Cache.StaleWait, next.Cache.WaitTimeout
	e := &out.Edge
	e.ViaName, e.ForwardedProto, e.TrustedProxies = next.Edge.ViaName, next.Edge.ForwardedProto, next.Edge.TrustedProxies
	e.DebugHeaders, e.MaxURIBytes = next.Edge.DebugHeaders, next.Edge.MaxURIBytes
	return out
}

// diffKeys lists the YAML key paths where a and b (structs of the same
// type) differ, to the deepest struct field.
func diffKeys(prefix string, a, b reflect.Value) []string {
	if a.Kind() != reflect.Struct {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{prefix}
	}
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		out = append(out, diffKeys(key, a.Field(i), b.Field(i))...)
	}
	return out
}
