package edge

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/rules"
)

// policy is the configuration compiled into what requests consult: key
// rules, routes, networks, names. It is read-only once built (a reload
// will build a new one and swap it).
type policy struct {
	keyRules cachepolicy.KeyRules
	matches  []cachepolicy.RouteMatch
	routes   []route
	defaults cachepolicy.Rules
	trusted  []netip.Prefix // edge.trusted_proxies
	purgers  []netip.Prefix // purge.allow_networks
	// The admin listener's doors: tokens (empty: none) and networks.
	adminToken, purgeToken []byte
	adminNets, metricsNets []netip.Prefix
	pprof                  bool
	// stripCookies are cache.strip_cookies' globs.
	stripCookies []string

	name           []byte // edge.via_name: the cache's name in Cache-Status
	via            []byte // "1.1 " + name
	forwardedProto string
	debugHeaders   bool
	maxURIBytes    int

	// The rules (rules.go), their match counters (by rule index), the
	// bucket cookie and the node's name for ${node}.
	rules        *rules.Set
	ruleMatches  []prometheus.Counter
	stickyCookie string
	stickyMaxAge int64 // seconds
	node         string
}

// route is a compiled config.Route.
type route struct {
	name          string
	pass          bool
	ignoreCookies bool
	rules         cachepolicy.Rules
}

// newPolicy compiles a validated configuration; matches (nil: not
// counted) gives the rules' match counters.
func newPolicy(cfg *config.Config, matches *prometheus.CounterVec) (*policy, error) {
	p := &policy{
		keyRules: cachepolicy.KeyRules{
			StripQuery: cfg.Key.StripQuery,
			SortQuery:  cfg.Key.SortQuery,
		},
		defaults: cachepolicy.Rules{
			DefaultTTL: cfg.Cache.DefaultTTL,
			Grace:      cfg.Cache.Grace,
			Keep:       cfg.Cache.Keep,
		},
		stripCookies:   cfg.Cache.StripCookies,
		name:           []byte(cfg.Edge.ViaName),
		via:            []byte("1.1 " + cfg.Edge.ViaName),
		forwardedProto: cfg.Edge.ForwardedProto,
		debugHeaders:   cfg.Edge.DebugHeaders,
		maxURIBytes:    int(cfg.Edge.MaxURIBytes),
		adminToken:     []byte(cfg.Admin.Token),
		purgeToken:     []byte(cfg.Purge.Token),
		pprof:          cfg.Admin.Pprof,
	}
	for _, r := range cfg.Routes {
		p.matches = append(p.matches, cachepolicy.RouteMatch{Host: r.Host, PathPrefix: r.PathPrefix})
		rules := p.defaults
		rules.TTL, rules.MinTTL, rules.MaxTTL = r.TTL, r.MinTTL, r.MaxTTL
		rules.RouteGrace, rules.RouteKeep = r.Grace, r.Keep
		rules.StripSetCookie = r.StripSetCookie
		p.routes = append(p.routes, route{name: r.Name, pass: r.Pass, ignoreCookies: r.IgnoreCookies, rules: rules})
	}
	p.node = cmp.Or(cfg.Edge.NodeID, cfg.Edge.ViaName)
	// The bucket cookie is the edge's own: never forwarded, never a
	// reason to pass, with or without rules that read it (a canary that
	// ended leaves it with readers for weeks).
	p.stripCookies = append(slices.Clip(p.stripCookies), cfg.Sticky.Cookie)
	p.stickyCookie, p.stickyMaxAge = cfg.Sticky.Cookie, int64(cfg.Sticky.MaxAge.Seconds())
	var err error
	if p.rules, err = rules.Compile(cfg.Rules, rules.Options{Pools: cfg.PoolNames(), Node: p.node}); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	for i := range p.rules.Len() {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
		if matches != nil {
			c = matches.WithLabelValues(p.rules.Name(i))
		}
		p.ruleMatches = append(p.ruleMatches, c)
	}
	if p.trusted, err = prefixes("edge.trusted_proxies", cfg.Edge.TrustedProxies); err != nil {
		return nil, err
	}
	if p.purgers, err = prefixes("purge.allow_networks", cfg.Purge.AllowNetworks); err != nil {
		return nil, err
	}
	if p.adminNets, err = prefixes("admin.allow_networks", cfg.Admin.AllowNetworks); err != nil {
		return nil, err
	}
	if p.metricsNets, err = prefixes("admin.metrics_networks", cfg.Admin.MetricsNetworks); err != nil {
		return nil, err
	}
	return p, nil
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
