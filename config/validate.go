package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate checks every value and returns all problems joined, each naming
// its key path.
func (c *Config) Validate() error {
	v := &validator{}
	c.validateEdge(v)
	c.validateBackends(v)
	c.validateCache(v)
	c.validateKey(v)
	c.validateRoutes(v)
	c.validatePools(v)
	c.validateCompression(v)
	c.validatePurge(v)
	c.validateCluster(v)
	c.validateAdmin(v)
	c.validateLog(v)
	c.validateOrigin(v)
	return errors.Join(v.errs...)
}

// ValidateEdge is Validate plus what an edge needs to start: at least one
// backend. "lakka edge" calls it once, after its flags and environment;
// edge.New does not validate again.
func (c *Config) ValidateEdge() error {
	err := c.Validate()
	if len(c.Backends.Servers) == 0 {
		err = errors.Join(err, errors.New("backends.servers: at least one backend is required (config file or --backend)"))
	}
	return err
}

type validator struct{ errs []error }

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) addr(key, a string, required bool) {
	if a == "" {
		if required {
			v.errorf(key, "required (host:port)")
		}
		return
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		v.errorf(key, "%q is not host:port", a)
		return
	}
	if strings.ContainsAny(host, " /") {
		v.errorf(key, "%q has an invalid host", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		v.errorf(key, "%q has an invalid port", a)
	}
}

func (v *validator) positive(key string, n int) {
	if n <= 0 {
		v.errorf(key, "must be greater than 0, got %d", n)
	}
}

func (v *validator) nonNegative(key string, n int) {
	if n < 0 {
		v.errorf(key, "must not be negative, got %d", n)
	}
}

func (v *validator) duration(key string, d time.Duration, allowZero bool) {
	switch {
	case d < 0:
		v.errorf(key, "must not be negative, got %s", d)
	case d == 0 && !allowZero:
		v.errorf(key, "must be greater than 0")
	}
}

func (v *validator) size(key string, b ByteSize, lo ByteSize) {
	if b < lo {
		v.errorf(key, "must be at least %s, got %s", lo, b)
	}
}

func (v *validator) networks(key string, nets []string) {
	for i, n := range nets {
		if _, err := netip.ParsePrefix(n); err != nil {
			v.errorf(fmt.Sprintf("%s[%d]", key, i), "%q is not a network in CIDR form (e.g. 10.0.0.0/8)", n)
		}
	}
}

func (v *validator) globs(key string, globs []string) {
	for i, g := range globs {
		k := fmt.Sprintf("%s[%d]", key, i)
		if g == "" {
			v.errorf(k, "empty pattern")
			continue
		}
		if _, err := path.Match(g, ""); err != nil {
			v.errorf(k, "%q is not a valid pattern", g)
		}
	}
}

func (c *Config) validateEdge(v *validator) {
	e := &c.Edge
	v.addr("edge.listen", e.Listen, true)
	v.addr("edge.admin", e.Admin, true)
	if e.Listen != "" && e.Listen == e.Admin && !strings.HasSuffix(e.Listen, ":0") {
		v.errorf("edge.admin", "must differ from edge.listen (%s)", e.Listen)
	}
	v.positive("edge.max_connections", e.MaxConnections)
	v.nonNegative("edge.max_connections_per_ip", e.MaxConnectionsPerIP)
	v.duration("edge.read_timeout", e.ReadTimeout, false)
	v.duration("edge.write_timeout", e.WriteTimeout, false)
	v.duration("edge.idle_timeout", e.IdleTimeout, false)
	v.size("edge.max_header_bytes", e.MaxHeaderBytes, 1*KiB)
	v.size("edge.max_uri_bytes", e.MaxURIBytes, 256)
	if e.MaxURIBytes > e.MaxHeaderBytes {
		v.errorf("edge.max_uri_bytes", "must not exceed edge.max_header_bytes (%s)", e.MaxHeaderBytes)
	}
	v.size("edge.max_request_body_bytes", e.MaxRequestBodyBytes, 0)
	v.duration("edge.drain_delay", e.DrainDelay, true)
	v.duration("edge.shutdown_timeout", e.ShutdownTimeout, false)
	v.size("edge.memory_limit_bytes", e.MemoryLimitBytes, 0)
	if e.MemoryLimitBytes != 0 && e.MemoryLimitBytes < c.Cache.SizeBytes {
		v.errorf("edge.memory_limit_bytes", "must be larger than cache.size_bytes (%s), or 0 to derive it", c.Cache.SizeBytes)
	}
	if e.ForwardedProto != "http" && e.ForwardedProto != "https" {
		v.errorf("edge.forwarded_proto", "must be http or https, got %q", e.ForwardedProto)
	}
	v.networks("edge.trusted_proxies", e.TrustedProxies)
	if e.ViaName == "" || strings.ContainsAny(e.ViaName, " \t,;\"\r\n") {
		v.errorf("edge.via_name", "must be a single token without spaces, commas or quotes, got %q", e.ViaName)
	}
}

func (c *Config) validateBackends(v *validator) {
	b := &c.Backends
	if b.Director != "round_robin" && b.Director != "fallback" {
		v.errorf("backends.director", "must be round_robin or fallback, got %q", b.Director)
	}
	names := map[string]int{}
	for i, s := range b.Servers {
		key := fmt.Sprintf("backends.servers[%d]", i)
		v.addr(key+".address", s.Address, true)
		name := s.Name
		if name == "" {
			name = s.Address
		}
		if j, dup := names[name]; dup {
			v.errorf(key+".name", "%q is already used by backends.servers[%d]", name, j)
		}
		names[name] = i
		if s.Weight < 0 || s.Weight > 100 {
			v.errorf(key+".weight", "must be 1-100 (0: 1), got %d", s.Weight)
		}
	}
	v.duration("backends.connect_timeout", b.ConnectTimeout, false)
	v.duration("backends.first_byte_timeout", b.FirstByteTimeout, false)
	v.duration("backends.between_bytes_timeout", b.BetweenBytesTimeout, false)
	v.duration("backends.write_timeout", b.WriteTimeout, false)
	v.duration("backends.fetch_timeout", b.FetchTimeout, false)
	v.duration("backends.idle_timeout", b.IdleTimeout, false)
	v.positive("backends.max_connections", b.MaxConnections)
	v.positive("backends.max_fetches", b.MaxFetches)
	v.nonNegative("backends.min_fetches", b.MinFetches)
	if b.MinFetches > b.MaxFetches {
		v.errorf("backends.min_fetches", "must not exceed backends.max_fetches (%d), got %d", b.MaxFetches, b.MinFetches)
	}
	v.nonNegative("backends.initial_fetches", b.InitialFetches)
	if lo := b.FetchFloor(); b.InitialFetches != 0 && (b.InitialFetches < lo || b.InitialFetches > b.MaxFetches) {
		v.errorf("backends.initial_fetches", "must be between the floor (%d) and backends.max_fetches (%d), got %d", lo, b.MaxFetches, b.InitialFetches)
	}
	v.duration("backends.overload_latency", b.OverloadLatency, false)
	v.nonNegative("backends.queue_length", b.QueueLength)
	v.duration("backends.queue_timeout", b.QueueTimeout, true)
	if b.PanicThreshold < 0 || b.PanicThreshold > 1 {
		v.errorf("backends.panic_threshold", "must be between 0 and 1, got %g", b.PanicThreshold)
	}
	v.size("backends.max_response_header_bytes", b.MaxResponseHeaderBytes, 1*KiB)
	p := &b.Probe
	if p.Enabled {
		if !strings.HasPrefix(p.Path, "/") {
			v.errorf("backends.probe.path", "must start with /, got %q", p.Path)
		}
		v.duration("backends.probe.interval", p.Interval, false)
		v.duration("backends.probe.timeout", p.Timeout, false)
		v.positive("backends.probe.window", p.Window)
		if p.Window > 64 {
			v.errorf("backends.probe.window", "must be at most 64, got %d", p.Window)
		}
		if p.Threshold <= 0 || p.Threshold > p.Window {
			v.errorf("backends.probe.threshold", "must be between 1 and backends.probe.window (%d), got %d", p.Window, p.Threshold)
		}
		if p.Initial < 0 || p.Initial > p.Window {
			v.errorf("backends.probe.initial", "must be between 0 and backends.probe.window (%d), got %d", p.Window, p.Initial)
		}
		if p.ExpectedStatus < 100 || p.ExpectedStatus > 599 {
			v.errorf("backends.probe.expected_status", "must be an HTTP status, got %d", p.ExpectedStatus)
		}
	}
	v.nonNegative("backends.passive.failures", b.Passive.Failures)
	if b.Passive.Failures > 0 {
		v.duration("backends.passive.cooldown", b.Passive.Cooldown, false)
	}
}

func (c *Config) validateCache(v *validator) {
	k := &c.Cache
	v.size("cache.size_bytes", k.SizeBytes, 1*MiB)
	v.size("cache.max_object_bytes", k.MaxObjectBytes, 1)
	if k.MaxObjectBytes > k.SizeBytes/2 {
		v.errorf("cache.max_object_bytes", "must be at most half of cache.size_bytes (%s), got %s", k.SizeBytes, k.MaxObjectBytes)
	}
	if k.InflightBytes != 0 && k.InflightBytes < 2*k.MaxObjectBytes {
		v.errorf("cache.inflight_bytes", "must be 0 (automatic) or at least twice cache.max_object_bytes (%s), got %s", 2*k.MaxObjectBytes, k.InflightBytes)
	}
	v.duration("cache.inflight_wait", k.InflightWait, true)
	v.duration("cache.default_ttl", k.DefaultTTL, true)
	v.duration("cache.grace", k.Grace, true)
	v.duration("cache.keep", k.Keep, true)
	v.duration("cache.hit_for_miss_ttl", k.HitForMissTTL, true)
	v.duration("cache.wait_timeout", k.WaitTimeout, false)
	v.duration("cache.stale_wait", k.StaleWait, true)
	v.positive("cache.max_variants", k.MaxVariants)
	v.globs("cache.strip_cookies", k.StripCookies)
	v.positive("cache.refresh_workers", k.RefreshWorkers)
	v.positive("cache.refresh_queue", k.RefreshQueue)
}

func (c *Config) validateKey(v *validator) {
	v.globs("key.strip_query", c.Key.StripQuery)
}

// poolName is the shape of a pool name: it labels metrics and keys.
var poolName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (c *Config) validatePools(v *validator) {
	for name, p := range c.Pools {
		key := "pools." + name
		if !poolName.MatchString(name) || name == "default" {
			v.errorf(key, "a pool name is 1-32 lower-case letters, digits, '-' or '_', and not \"default\" (the default pool is backends.servers)")
		}
		switch p.Director {
		case "", "round_robin", "fallback":
		default:
			v.errorf(key+".director", "must be round_robin or fallback, got %q", p.Director)
		}
		if len(p.Servers) == 0 {
			v.errorf(key+".servers", "a pool needs at least one server")
		}
		for i, s := range p.Servers {
			v.addr(fmt.Sprintf("%s.servers[%d].address", key, i), s.Address, true)
			if s.Weight < 0 || s.Weight > 100 {
				v.errorf(fmt.Sprintf("%s.servers[%d].weight", key, i), "must be 1-100 (0: 1), got %d", s.Weight)
			}
		}
	}
	if c.Sticky.Cookie == "" || strings.ContainsAny(c.Sticky.Cookie, "=;, \t\"") {
		v.errorf("sticky.cookie", "must be a cookie name, got %q", c.Sticky.Cookie)
	}
	v.duration("sticky.max_age", c.Sticky.MaxAge, false)
}

func (c *Config) validateRoutes(v *validator) {
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Host != "" {
			h := strings.TrimPrefix(r.Host, "*.")
			if h == "" || strings.ContainsAny(h, "*/: ") || h != strings.ToLower(h) {
				v.errorf(key+".host", "must be a lower-case host name, optionally starting with \"*.\", got %q", r.Host)
			}
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			v.errorf(key+".path_prefix", "must start with /, got %q", r.PathPrefix)
		}
		for _, d := range []struct {
			name string
			d    *time.Duration
		}{{"ttl", r.TTL}, {"min_ttl", r.MinTTL}, {"max_ttl", r.MaxTTL}, {"grace", r.Grace}, {"keep", r.Keep}} {
			if d.d != nil {
				v.duration(key+"."+d.name, *d.d, true)
			}
		}
		if r.MinTTL != nil && r.MaxTTL != nil && *r.MinTTL > *r.MaxTTL {
			v.errorf(key+".min_ttl", "must not exceed max_ttl (%s)", *r.MaxTTL)
		}
		if r.Pass && (r.TTL != nil || r.MinTTL != nil || r.MaxTTL != nil || r.StripSetCookie) {
			v.errorf(key+".pass", "a pass route stores nothing: remove ttl, min_ttl, max_ttl and strip_set_cookie")
		}
	}
}

func (c *Config) validateCompression(v *validator) {
	z := &c.Compression
	if z.GzipLevel < 1 || z.GzipLevel > 9 {
		v.errorf("compression.gzip_level", "must be between 1 and 9, got %d", z.GzipLevel)
	}
	v.size("compression.min_bytes", z.MinBytes, 0)
	for i, t := range z.Types {
		major, minor, ok := strings.Cut(t, "/")
		switch {
		case !ok || major == "" || minor == "" || strings.ContainsAny(t, " ;,") || t != strings.ToLower(t):
			v.errorf(fmt.Sprintf("compression.types[%d]", i), "must be a lower-case media type such as text/html or text/*, got %q", t)
		case compressedAlready(major, minor):
			v.errorf(fmt.Sprintf("compression.types[%d]", i), "%s bodies are compressed already (images, video, audio, archives, WOFF fonts are never compressed again); remove it", t)
		}
	}
}

// compressedAlready reports whether a media type (or family, minor "*")
// holds bodies in a compressed format, which compressing again only makes
// larger.
func compressedAlready(major, minor string) bool {
	switch major {
	case "video", "audio":
		return true
	case "image":
		// SVG is XML text; BMP and icons are mostly uncompressed.
		return minor != "svg+xml" && minor != "bmp" && minor != "x-icon" && minor != "vnd.microsoft.icon"
	case "font":
		return minor == "*" || minor == "woff" || minor == "woff2"
	case "application":
		switch minor {
		case "zip", "gzip", "x-gzip", "zstd", "x-bzip2", "x-xz", "x-7z-compressed", "vnd.rar", "x-rar-compressed", "x-compress", "font-woff":
			return true
		}
	}
	return false
}

func (c *Config) validatePurge(v *validator) {
	if strings.ContainsAny(c.Purge.Token, " \t\r\n") {
		v.errorf("purge.token", "must not contain whitespace")
	}
	v.networks("purge.allow_networks", c.Purge.AllowNetworks)
	c.validateBus(v)
}

func (c *Config) validateCluster(v *validator) {
	cl := &c.Cluster
	v.duration("cluster.peer_timeout", cl.PeerTimeout, false)
	v.duration("cluster.previous_owner_for", cl.PreviousOwnerFor, true)
	v.nonNegative("cluster.hot_after", cl.HotAfter)
	if cl.HotShare < 0 || cl.HotShare > 90 {
		v.errorf("cluster.hot_share", "must be a percentage of cache.size_bytes from 0 to 90, got %d", cl.HotShare)
	}
	if cl.Listen == "" {
		if len(cl.Peers) > 0 || cl.ShieldZone != "" {
			v.errorf("cluster.listen", "required when cluster.peers or cluster.shield_zone is set (the address other edges fetch from)")
		}
		return
	}
	v.addr("cluster.listen", cl.Listen, true)
	if (cl.Listen == c.Edge.Listen || cl.Listen == c.Edge.Admin) && !strings.HasSuffix(cl.Listen, ":0") {
		v.errorf("cluster.listen", "must differ from edge.listen and edge.admin, got %s", cl.Listen)
	}
	if c.Edge.NodeID == "" {
		v.errorf("edge.node_id", "required with cluster.listen: peers name each other by node id")
	}
	if c.Edge.Zone == "" {
		v.errorf("edge.zone", "required with cluster.listen: ownership is per zone")
	}
	if len(cl.Peers) == 0 && c.Purge.Bus.URL == "" {
		v.errorf("cluster.peers", "required without purge.bus.url: the members come from a static list or from the purge bus")
	}
	if host, _, err := net.SplitHostPort(cl.Listen); err == nil && len(cl.Peers) == 0 {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			v.errorf("cluster.listen", "%q listens on every address, and the purge bus would announce it as such: give the address the other edges reach this one at", cl.Listen)
		}
	}
	zones := map[string]bool{c.Edge.Zone: true}
	ids := map[string]bool{c.Edge.NodeID: true}
	for i, p := range cl.Peers {
		key := fmt.Sprintf("cluster.peers[%d]", i)
		switch {
		case !natsName(p.ID):
			v.errorf(key+".id", "must be 1 to 64 letters, digits, - or _, got %q", p.ID)
		case ids[p.ID]:
			v.errorf(key+".id", "%q appears twice (edge.node_id counts): every member needs its own id", p.ID)
		}
		ids[p.ID] = true
		if p.Zone == "" || strings.ContainsAny(p.Zone, " \t\r\n") || len(p.Zone) > 64 {
			v.errorf(key+".zone", "required, at most 64 characters without spaces, got %q", p.Zone)
		}
		zones[p.Zone] = true
		v.addr(key+".address", p.Address, true)
	}
	if cl.ShieldZone != "" && len(cl.Peers) > 0 && !zones[cl.ShieldZone] {
		v.errorf("cluster.shield_zone", "%q is not the zone of this edge or of any peer", cl.ShieldZone)
	}
}

func (c *Config) validateAdmin(v *validator) {
	if strings.ContainsAny(c.Admin.Token, " \t\r\n") {
		v.errorf("admin.token", "must not contain whitespace")
	}
	v.networks("admin.allow_networks", c.Admin.AllowNetworks)
	v.networks("admin.metrics_networks", c.Admin.MetricsNetworks)
}

func (c *Config) validateLog(v *validator) {
	l := &c.Log
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorf("log.level", "must be debug, info, warn or error, got %q", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		v.errorf("log.format", "must be text or json, got %q", l.Format)
	}
	if l.Access == "" {
		v.errorf("log.access", "must be stdout, stderr, off or a file path")
	}
	if l.AccessFormat != "combined" && l.AccessFormat != "json" {
		v.errorf("log.access_format", "must be combined or json, got %q", l.AccessFormat)
	}
	v.positive("log.access_buffer", l.AccessBuffer)
}

func (c *Config) validateOrigin(v *validator) {
	o := &c.Origin
	v.addr("origin.listen", o.Listen, true)
	v.nonNegative("origin.seed", o.Seed)
	for i, a := range o.EdgeAdmins {
		v.addr(fmt.Sprintf("origin.edge_admins[%d]", i), a, true)
	}
	v.duration("origin.view_flush_interval", o.ViewFlushInterval, false)
	if strings.ContainsAny(o.Token, " \t\r\n") {
		v.errorf("origin.token", "must not contain whitespace")
	}
	if strings.ContainsAny(o.PurgeToken, " \t\r\n") {
		v.errorf("origin.purge_token", "must not contain whitespace")
	}
	v.duration("origin.purge_timeout", o.PurgeTimeout, false)
	v.duration("origin.purge_retry_min", o.PurgeRetryMin, false)
	v.duration("origin.purge_retry_max", o.PurgeRetryMax, false)
	if o.PurgeRetryMax < o.PurgeRetryMin {
		v.errorf("origin.purge_retry_max", "must not be less than origin.purge_retry_min (%s)", o.PurgeRetryMin)
	}
	v.duration("origin.purge_poll_interval", o.PurgePollInterval, false)
	v.positive("origin.purge_max_backlog", o.PurgeMaxBacklog)
	v.duration("origin.purge_retention", o.PurgeRetention, false)
	v.duration("origin.shutdown_timeout", o.ShutdownTimeout, false)
	for _, p := range []struct {
		name string
		f    Freshness
	}{{"front", o.Pages.Front}, {"section", o.Pages.Section}, {"article", o.Pages.Article}, {"most_read", o.Pages.MostRead}, {"sitemap", o.Pages.Sitemap}} {
		key := "origin.pages." + p.name
		v.duration(key+".max_age", p.f.MaxAge, true)
		v.duration(key+".stale_while_revalidate", p.f.StaleWhileRevalidate, true)
		v.duration(key+".stale_if_error", p.f.StaleIfError, true)
	}
}

// natsName matches what NATS accepts in stream, consumer and bucket names
// and in key-value keys, and what Lakka accepts as a node id.
func natsName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (c *Config) validateBus(v *validator) {
	b := &c.Purge.Bus
	if c.Edge.NodeID != "" && !natsName(c.Edge.NodeID) {
		v.errorf("edge.node_id", "must be 1 to 64 letters, digits, - or _, got %q", c.Edge.NodeID)
	}
	if strings.ContainsAny(c.Edge.Zone, " \t\r\n") || len(c.Edge.Zone) > 64 {
		v.errorf("edge.zone", "must be at most 64 characters without spaces, got %q", c.Edge.Zone)
	}
	if b.URL != "" {
		for _, u := range strings.Split(b.URL, ",") {
			u = strings.TrimSpace(u)
			scheme, rest, ok := strings.Cut(u, "://")
			if !ok || (scheme != "nats" && scheme != "tls") || rest == "" {
				v.errorf("purge.bus.url", "must be nats://host:port or tls://host:port (comma-separated for a cluster), got %q", u)
			}
		}
	}
	if !natsName(b.Stream) {
		v.errorf("purge.bus.stream", "must be 1 to 64 letters, digits, - or _, got %q", b.Stream)
	}
	if !natsName(b.MembersBucket) {
		v.errorf("purge.bus.members_bucket", "must be 1 to 64 letters, digits, - or _, got %q", b.MembersBucket)
	}
	if b.Subject == "" || strings.ContainsAny(b.Subject, " \t*>") || strings.HasPrefix(b.Subject, ".") || strings.HasSuffix(b.Subject, ".") || strings.Contains(b.Subject, "..") {
		v.errorf("purge.bus.subject", "must be a literal NATS subject (tokens separated by dots, no wildcards), got %q", b.Subject)
	}
	v.duration("purge.bus.max_age", b.MaxAge, false)
	if b.Replicas < 1 || b.Replicas > 5 {
		v.errorf("purge.bus.replicas", "must be 1 to 5, got %d", b.Replicas)
	}
	v.duration("purge.bus.duplicate_window", b.DuplicateWindow, false)
	if b.DuplicateWindow > b.MaxAge && b.MaxAge > 0 {
		v.errorf("purge.bus.duplicate_window", "must not exceed purge.bus.max_age (%s), got %s", b.MaxAge, b.DuplicateWindow)
	}
	v.duration("purge.bus.catch_up_timeout", b.CatchUpTimeout, false)
	if (b.User == "") != (b.Password == "") {
		v.errorf("purge.bus.user", "user and password go together")
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		v.errorf("purge.bus.cert_file", "cert_file and key_file go together")
	}
}
