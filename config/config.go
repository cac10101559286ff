// Package config holds Lakka's configuration: plain structs, their defaults,
// strict loading from one YAML file and validation.
//
// Loading is strict: an unknown key anywhere in the file is an error, and every
// error names the key path (for example "backends.servers[1].address") and what
// is wrong with it. Validate joins every problem it finds, so one run of
// "lakka config check" lists them all.
//
// The zero value of Config is not useful; start from Default() and override.
// A Config is a plain value: copy it freely, share it read-only.
package config

import (
	_ "embed"
	"slices"
	"time"
)

// Config is the whole configuration of one Lakka process. The edge reads
// Edge, Backends, Cache, Key, Routes, Compression, Purge and Log; the origin
// reads Origin and Log.
type Config struct {
	Edge     Edge     `yaml:"edge"`
	Backends Backends `yaml:"backends"`
	Cache    Cache    `yaml:"cache"`
	Key      Key      `yaml:"key"`
	Routes   []Route  `yaml:"routes"`
	// Rules are the edge's policy in three phases, like VCL's vcl_recv,
	// vcl_backend_response and vcl_deliver (docs/RULES.md); compiled by
	// package rules.
	Rules []Rule `yaml:"rules"`
	// Sticky configures the bucket cookie of the rules' sticky
	// percentages.
	Sticky Sticky `yaml:"sticky"`
	// Pools are named backend pools beside the default one
	// (backends.servers) that rules send requests to (do: {pool: NAME}):
	// a canary release, a new origin. Each has its own servers and
	// director; timeouts, limits and probes are backends'.
	Pools       map[string]Pool `yaml:"pools"`
	Compression Compression     `yaml:"compression"`
	Purge       Purge           `yaml:"purge"`
	// Cluster makes the edges of a zone share one cache: each key has one
	// owner among them, and with a shield zone one owner in the fleet
	// (docs/CLUSTER.md).
	Cluster Cluster `yaml:"cluster"`
	Admin   Admin   `yaml:"admin"`
	Log     Log     `yaml:"log"`
	Origin  Origin  `yaml:"origin"`
}

// Edge configures the client-facing listener and the admin listener.
type Edge struct {
	// Listen is the address of the client listener (host:port).
	Listen string `yaml:"listen"`
	// Admin is the address of the admin listener: /metrics, /healthz and
	// the purge API. It must differ from Listen.
	Admin string `yaml:"admin"`
	// MaxConnections bounds concurrent client connections.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP bounds concurrent connections from one client
	// address; 0 means no per-address limit.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// ReadTimeout bounds reading one request (line, headers and body).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle for longer.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line plus headers (431 beyond).
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
	// MaxURIBytes bounds the request target (414 beyond).
	MaxURIBytes ByteSize `yaml:"max_uri_bytes"`
	// MaxRequestBodyBytes bounds request bodies (413 beyond).
	MaxRequestBodyBytes ByteSize `yaml:"max_request_body_bytes"`
	// DrainDelay is how long /healthz answers 503 before the listener stops
	// on SIGTERM, so that load balancers take the node out first.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MemoryLimitBytes sets the Go runtime's soft memory limit (GOMEMLIMIT);
	// 0 derives it from cache.size_bytes.
	MemoryLimitBytes ByteSize `yaml:"memory_limit_bytes"`
	// ForwardedProto is the value sent to backends in X-Forwarded-Proto:
	// "http", or "https" when a TLS-terminating load balancer is in front.
	ForwardedProto string `yaml:"forwarded_proto"`
	// TrustedProxies lists networks (CIDR) whose X-Forwarded-For is kept and
	// appended to; from anyone else it is replaced.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ViaName is the pseudonym this node adds to Via and Cache-Status.
	ViaName string `yaml:"via_name"`
	// DebugHeaders passes Surrogate-Key and Surrogate-Control to clients.
	DebugHeaders bool `yaml:"debug_headers"`
	// NodeID names this edge in the fleet: its purge bus consumer, its
	// membership entry, its acknowledgements. Letters, digits, "-" and "_";
	// empty means the host name (other characters replaced by "-").
	NodeID string `yaml:"node_id"`
	// Zone is the availability zone the edge runs in, as the fleet reports
	// it; empty means none.
	Zone string `yaml:"zone"`
	// PIDFile, when set, holds the process id of the edge that serves:
	// after an upgrade (SIGUSR2), the new process's.
	PIDFile string `yaml:"pid_file"`
}

// Backends configures the origin servers the edge fetches from.
type Backends struct {
	// Director picks a backend per fetch: "round_robin" across healthy
	// servers, or "fallback": the first healthy server in list order.
	Director string `yaml:"director"`
	// Servers lists the backends; at least one is required to run an edge.
	Servers []Backend `yaml:"servers"`
	// ConnectTimeout bounds establishing a connection.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// FirstByteTimeout bounds the wait for the response headers after the
	// request was written.
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// BetweenBytesTimeout bounds each read of the response body.
	BetweenBytesTimeout time.Duration `yaml:"between_bytes_timeout"`
	// WriteTimeout bounds writing the request to the backend.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// FetchTimeout bounds a whole fetch (connect to last body byte).
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// IdleTimeout closes pooled keep-alive connections idle for longer.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConnections bounds connections to one backend.
	MaxConnections int `yaml:"max_connections"`
	// MaxFetches is the ceiling of the adaptive limit of concurrent fetches
	// to one backend; MinFetches its floor (0: 2, or MaxFetches if lower)
	// and InitialFetches where it starts (0: 20, within the two). The limit
	// rises while fetches are answered in time and falls when they show
	// overload (timeouts, answers slower than OverloadLatency, 503 or 429
	// from the origin).
	MaxFetches     int `yaml:"max_fetches"`
	MinFetches     int `yaml:"min_fetches"`
	InitialFetches int `yaml:"initial_fetches"`
	// OverloadLatency is the time to the response headers beyond which a
	// fetch counts as a sign of overload.
	OverloadLatency time.Duration `yaml:"overload_latency"`
	// QueueLength bounds the fetches waiting for a slot; beyond it a fetch
	// gets stale content or 503 at once.
	QueueLength int `yaml:"queue_length"`
	// QueueTimeout bounds the wait for a fetch slot.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	// MaxResponseHeaderBytes bounds a backend's response headers (502 beyond).
	MaxResponseHeaderBytes ByteSize `yaml:"max_response_header_bytes"`
	// Probe configures active health checks.
	Probe Probe `yaml:"probe"`
	// Passive configures health from real traffic.
	Passive Passive `yaml:"passive"`
	// PanicThreshold is the share of a pool's backends (0-1) that must be
	// in rotation for health to be obeyed: below it, as Envoy does, fetches
	// also go to backends that only passive health took out, so that no
	// run of failures empties the pool. Backends whose probes fail stay
	// out.
	PanicThreshold float64 `yaml:"panic_threshold"`
}

// Backend is one origin server.
type Backend struct {
	// Name labels the backend in metrics and logs; defaults to Address.
	Name string `yaml:"name"`
	// Address is host:port.
	Address string `yaml:"address"`
	// Weight is the backend's share of a round-robin director's fetches
	// relative to the others' (1-100; 0 means 1).
	Weight int `yaml:"weight"`
}

// Probe configures active health checks, like Varnish's .probe: of the
// last Window probes, at least Threshold must succeed for a backend to be
// healthy.
type Probe struct {
	// Enabled turns probing on.
	Enabled bool `yaml:"enabled"`
	// Path is requested with GET on every backend.
	Path string `yaml:"path"`
	// Host is sent as the Host header; empty uses the backend address.
	Host string `yaml:"host"`
	// Interval is the time between probes.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one probe.
	Timeout time.Duration `yaml:"timeout"`
	// Window is how many recent probes count.
	Window int `yaml:"window"`
	// Threshold is how many of them must have succeeded.
	Threshold int `yaml:"threshold"`
	// Initial is how many probes count as successful at start.
	Initial int `yaml:"initial"`
	// ExpectedStatus is the status a healthy backend answers.
	ExpectedStatus int `yaml:"expected_status"`
}

// Passive takes a backend out of rotation after consecutive fetches that
// show it is down: connections refused, unreachable or reset before an
// answer. Timeouts and slow answers do not count (they lower the fetch
// limit instead).
type Passive struct {
	// Failures is the number of consecutive failures that mark a backend
	// sick; 0 disables passive health.
	Failures int `yaml:"failures"`
	// Cooldown is how long a passively failed backend stays out.
	Cooldown time.Duration `yaml:"cooldown"`
}

// Cache configures the RAM store and the freshness defaults.
type Cache struct {
	// SizeBytes bounds the store: bodies, headers, variants, tag index and
	// per-object overhead all count.
	SizeBytes ByteSize `yaml:"size_bytes"`
	// MaxObjectBytes is the largest body stored; larger bodies are streamed
	// through to the client uncached.
	MaxObjectBytes ByteSize `yaml:"max_object_bytes"`
	// InflightBytes bounds the origin bodies the edge holds in memory at
	// once while it reads them to store them or relays them after reading;
	// 0 means twice max_object_bytes or a sixteenth of size_bytes,
	// whichever is larger. A body that does not fit is streamed through to
	// its client and not stored.
	InflightBytes ByteSize `yaml:"inflight_bytes"`
	// InflightWait is how long a fetched body waits for room in
	// inflight_bytes before it is streamed through unstored instead.
	InflightWait time.Duration `yaml:"inflight_wait"`
	// DefaultTTL is the freshness of a cacheable response that carries no
	// explicit lifetime (no max-age, s-maxage, Surrogate-Control, Expires).
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// Grace is the default window after expiry during which a stale object
	// is served while one background refresh runs (stale-while-revalidate
	// from the origin wins).
	Grace time.Duration `yaml:"grace"`
	// Keep is the default window after grace during which a stale object is
	// kept for revalidation and for serving when the origin fails
	// (stale-if-error from the origin wins).
	Keep time.Duration `yaml:"keep"`
	// HitForMissTTL is how long an uncacheable answer is remembered so that
	// later requests for it skip request coalescing.
	HitForMissTTL time.Duration `yaml:"hit_for_miss_ttl"`
	// WaitTimeout bounds how long a request waits for another request's
	// fetch of the same object.
	WaitTimeout time.Duration `yaml:"wait_timeout"`
	// StaleWait bounds how long a miss that has a stale copy stored (past
	// grace, within keep) waits for the origin: after it, the stale copy is
	// served while the fetch goes on in the background and stores its
	// result. 0 waits for the fetch, as a miss without a copy does.
	StaleWait time.Duration `yaml:"stale_wait"`
	// MaxVariants bounds the Vary variants stored per URL.
	MaxVariants int `yaml:"max_variants"`
	// StripCookies lists cookie names (globs: "_ga*") that never change a
	// response; they are removed before lookup and before forwarding.
	StripCookies []string `yaml:"strip_cookies"`
	// RefreshWorkers bounds concurrent background refreshes.
	RefreshWorkers int `yaml:"refresh_workers"`
	// RefreshQueue bounds queued background refreshes.
	RefreshQueue int `yaml:"refresh_queue"`
	// SnapshotPath, when set, is the file the edge writes its cache to on
	// the way down (SIGTERM, an upgrade) and loads at start, so that a
	// restart keeps the cache. Off by default: two edges on one machine
	// must never share the file.
	SnapshotPath string `yaml:"snapshot_path"`
}

// Key configures cache key normalisation. Whatever is removed from the key is
// removed from the forwarded request too, so the origin cannot vary on it.
type Key struct {
	// StripQuery lists query parameter names (globs: "utm_*") removed from
	// the key and the forwarded URL.
	StripQuery []string `yaml:"strip_query"`
	// SortQuery sorts query parameters (stably, by name) in the key and the
	// forwarded URL.
	SortQuery bool `yaml:"sort_query"`
}

// Route overrides caching rules for requests that match it. The first route
// whose Host and PathPrefix match wins.
type Route struct {
	// Name labels the route in logs and errors.
	Name string `yaml:"name"`
	// Host matches the request host (lower-case, no port); "*.example.com"
	// matches subdomains; empty matches every host.
	Host string `yaml:"host"`
	// PathPrefix matches the start of the normalised path; empty matches all.
	PathPrefix string `yaml:"path_prefix"`
	// Pass sends matching requests to the backend uncached.
	Pass bool `yaml:"pass"`
	// TTL, when set, replaces the freshness lifetime the origin gave.
	TTL *time.Duration `yaml:"ttl"`
	// MinTTL and MaxTTL, when set, clamp the origin's freshness lifetime.
	MinTTL *time.Duration `yaml:"min_ttl"`
	MaxTTL *time.Duration `yaml:"max_ttl"`
	// Grace and Keep, when set, replace the origin's and the defaults.
	Grace *time.Duration `yaml:"grace"`
	Keep  *time.Duration `yaml:"keep"`
	// StripSetCookie removes Set-Cookie from matching responses so that they
	// can be stored.
	StripSetCookie bool `yaml:"strip_set_cookie"`
	// IgnoreCookies removes the Cookie header from matching requests before
	// lookup and forwarding: for content that never depends on cookies.
	IgnoreCookies bool `yaml:"ignore_cookies"`
}

// Pool is a named backend pool.
type Pool struct {
	// Director is "round_robin" or "fallback"; empty takes
	// backends.director.
	Director string `yaml:"director"`
	// Servers are the pool's backends; their names default to
	// "POOL/ADDRESS".
	Servers []Backend `yaml:"servers"`
	// Probe, when set, replaces backends.probe for this pool's servers.
	Probe *Probe `yaml:"probe"`
}

// Rule is one rule: when its conditions all hold, its actions apply.
type Rule struct {
	// Name labels the rule in errors, `lakka config explain` and the
	// lakka_edge_rule_matches_total metric: letters, digits, '-' and '_',
	// unique.
	Name string `yaml:"name"`
	// Phase is when the rule runs: "request" (the default: before the
	// lookup, like vcl_recv), "response" (on an origin response before it
	// is stored, like vcl_backend_response) or "deliver" (on every answer
	// to a client, like vcl_deliver).
	Phase string `yaml:"phase"`
	// When holds the conditions; all must hold (none: always).
	When Condition `yaml:"when"`
	// Do holds the actions.
	Do Actions `yaml:"do"`
	// Final ends the phase after this rule when it matched; answering
	// actions (synthetic, redirect, deny) always do.
	Final bool `yaml:"final"`
}

// Condition is a rule's conditions. Each set field must hold; a list holds
// when any of its items does. They read the request as the client sent it.
type Condition struct {
	// Host: exact host names, or "*.example.com" for its subdomains.
	Host []string `yaml:"host"`
	// HostRegex: a regular expression on the host (without port).
	HostRegex string `yaml:"host_regex"`
	// Path: exact paths (without query).
	Path []string `yaml:"path"`
	// PathPrefix: path prefixes.
	PathPrefix []string `yaml:"path_prefix"`
	// PathRegex: a regular expression on the path and query; its
	// captures are ${1}... in the actions' templates.
	PathRegex string `yaml:"path_regex"`
	// Method: request methods.
	Method []string `yaml:"method"`
	// Query, Header, Cookie: query parameters, request headers, cookies.
	Query  []Match `yaml:"query"`
	Header []Match `yaml:"header"`
	Cookie []Match `yaml:"cookie"`
	// Client: networks (CIDR) of the client address (after trusted
	// proxies).
	Client []string `yaml:"client"`
	// Percent: the reader's sticky bucket (0-99, kept in the bucket
	// cookie) is below this.
	Percent *int `yaml:"percent"`
	// Status and ResponseHeader: the origin's response (response phase)
	// or the answer (deliver phase).
	Status         []int   `yaml:"status"`
	ResponseHeader []Match `yaml:"response_header"`
	// Not holds when its conditions do not all hold.
	Not *Condition `yaml:"not"`
}

// Match is a condition on a named value (a header, a cookie, a query
// parameter): present (the default when nothing else is set), absent
// (present: false), equal to a string, or matching a regular expression.
type Match struct {
	Name    string  `yaml:"name"`
	Present *bool   `yaml:"present"`
	Equals  *string `yaml:"equals"`
	Regex   string  `yaml:"regex"`
}

// Actions is what a matching rule does. Templates (location, header
// values, body, replace) expand ${1}... (path_regex captures), ${host},
// ${path} (with query), ${header:NAME}, ${cookie:NAME}, ${bucket} and
// ${node}.
type Actions struct {
	// Answering (request phase; they end it): an answer made by the edge,
	// a redirect, a refusal.
	Synthetic *Synthetic `yaml:"synthetic"`
	Redirect  *Redirect  `yaml:"redirect"`
	Deny      int        `yaml:"deny"`
	// Pass sends the request to the origin uncached (request phase).
	Pass bool `yaml:"pass"`
	// Pool chooses the backend pool (request phase). Its objects are
	// cached apart from other pools' unless SameContent says the pools
	// serve the same content (a new origin, not a new release).
	Pool        string `yaml:"pool"`
	SameContent bool   `yaml:"same_content"`
	// TTL, Grace, Keep set the lifetimes (request or response phase).
	TTL   *time.Duration `yaml:"ttl"`
	Grace *time.Duration `yaml:"grace"`
	Keep  *time.Duration `yaml:"keep"`
	// KeepCookies keeps only these cookies (globs) in the request;
	// DropCookies removes these; DropAllCookies removes the Cookie header
	// (request phase).
	KeepCookies    []string `yaml:"keep_cookies"`
	DropCookies    []string `yaml:"drop_cookies"`
	DropAllCookies bool     `yaml:"drop_all_cookies"`
	// Key adds request headers' values to the cache key (request phase;
	// after header actions and classify, so a header a rule set counts).
	Key []string `yaml:"key"`
	// Classify sets a request header to the first class whose expression
	// matches another header (a device class from User-Agent).
	Classify *Classify `yaml:"classify"`
	// Request headers towards the origin (request phase) and response
	// headers (response phase: stored; deliver phase: this answer only).
	SetHeaders    map[string]string `yaml:"set_headers"`
	AppendHeaders map[string]string `yaml:"append_headers"`
	RemoveHeaders []string          `yaml:"remove_headers"`
	// RewritePath replaces the path (and query) towards the origin and in
	// the key (request phase).
	RewritePath *Rewrite `yaml:"rewrite_path"`
	// SetCookie adds a Set-Cookie to the answer (deliver phase).
	SetCookie string `yaml:"set_cookie"`
}

// Synthetic is an answer made by the edge.
type Synthetic struct {
	Status  int               `yaml:"status"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
}

// Redirect answers with a redirect to Location (a template).
type Redirect struct {
	Status   int    `yaml:"status"`
	Location string `yaml:"location"`
}

// Classify sets Into to the first class whose Regex matches Header, or to
// Default.
type Classify struct {
	Header  string  `yaml:"header"`
	Into    string  `yaml:"into"`
	Classes []Class `yaml:"classes"`
	Default string  `yaml:"default"`
}

// Class is one class of Classify.
type Class struct {
	Name  string `yaml:"name"`
	Regex string `yaml:"regex"`
}

// Rewrite replaces what Regex matches in the path with Replace (a
// template; ${1}... are Regex's captures).
type Rewrite struct {
	Regex   string `yaml:"regex"`
	Replace string `yaml:"replace"`
}

// Sticky configures the bucket cookie: a reader without it is given a
// uniformly random bucket 0-99 in a Set-Cookie at delivery, a reader with
// it keeps it.
type Sticky struct {
	Cookie string        `yaml:"cookie"`
	MaxAge time.Duration `yaml:"max_age"`
}

// Compression configures how the edge stores and serves compressed bodies.
type Compression struct {
	// Enabled compresses compressible bodies once at store time.
	Enabled bool `yaml:"enabled"`
	// GzipLevel is the gzip level used at store time (1-9).
	GzipLevel int `yaml:"gzip_level"`
	// Zstd also stores a zstd form of each compressed object (made once at
	// store time, kept when at least 1/32 smaller than gzip) for clients that
	// accept zstd at least as much as gzip. Needs Enabled.
	Zstd bool `yaml:"zstd"`
	// MinBytes is the smallest body worth compressing.
	MinBytes ByteSize `yaml:"min_bytes"`
	// Types lists compressible media types; "text/*" matches a family.
	Types []string `yaml:"types"`
}

// Purge configures invalidation.
type Purge struct {
	// Token authenticates the purge API (Authorization: Bearer TOKEN);
	// LAKKA_PURGE_TOKEN overrides it. Empty disables the API.
	Token string `yaml:"token"`
	// AllowNetworks lists networks (CIDR) allowed to send the PURGE method
	// to the client listener. Behind a trusted proxy (edge.trusted_proxies)
	// the client it reports in X-Forwarded-For is checked, not the proxy.
	AllowNetworks []string `yaml:"allow_networks"`
	// Bus is the purge bus on NATS JetStream: every purge published there
	// reaches every edge. Without a URL, purges travel over HTTP only.
	Bus Bus `yaml:"bus"`
}

// Cluster configures the edge cluster. Without Listen the edge caches on
// its own.
type Cluster struct {
	// Listen is the address of the peer listener (peer fetches only,
	// authenticated with LAKKA_CLUSTER_TOKEN); empty turns clustering off.
	Listen string `yaml:"listen"`
	// Peers is a static member list; empty means the members come from
	// the purge bus's members bucket (purge.bus.url then required).
	Peers []Peer `yaml:"peers"`
	// ShieldZone, when set, is the zone whose owners fetch from the origin
	// for every other zone.
	ShieldZone string `yaml:"shield_zone"`
	// PeerTimeout bounds connecting to a peer and its answer when it holds
	// the object (or says it does not): a peer slower than that is
	// skipped. A peer that fetches from the origin is waited for as long
	// as any miss waits (cache.wait_timeout).
	PeerTimeout time.Duration `yaml:"peer_timeout"`
	// HotAfter is how many times within a minute a non-owner fetches an
	// object from its owner before it keeps a copy of its own; 0 never.
	HotAfter int `yaml:"hot_after"`
	// HotShare is the share of cache.size_bytes that such copies may take,
	// in percent.
	HotShare int `yaml:"hot_share"`
	// PreviousOwnerFor is how long after a membership change an owner that
	// misses asks the key's previous owner before the origin.
	PreviousOwnerFor time.Duration `yaml:"previous_owner_for"`
}

// Peer is a member of a static cluster.
type Peer struct {
	ID      string `yaml:"id"`
	Zone    string `yaml:"zone"`
	Address string `yaml:"address"`
}

// Bus configures the purge bus (NATS JetStream) that edges consume and
// origins, "lakka purge" and edges publish to.
type Bus struct {
	// URL is the NATS server (nats://host:4222; several, comma-separated,
	// for a cluster); empty means no bus.
	URL string `yaml:"url"`
	// Stream and Subject name the JetStream stream of purge messages and
	// its subject.
	Stream  string `yaml:"stream"`
	Subject string `yaml:"subject"`
	// MaxAge is how long the stream keeps a purge: an edge away for longer
	// soft-purges everything it stored before the gap.
	MaxAge time.Duration `yaml:"max_age"`
	// Replicas is the stream's replica count (at most the NATS cluster's
	// size).
	Replicas int `yaml:"replicas"`
	// DuplicateWindow is how long JetStream remembers message ids to drop
	// a purge published twice.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// MembersBucket is the key-value bucket edges announce themselves and
	// their last applied purge in.
	MembersBucket string `yaml:"members_bucket"`
	// CatchUpTimeout bounds how long a starting edge stays not ready
	// (/healthz 503) while it cannot reach the bus to catch up.
	CatchUpTimeout time.Duration `yaml:"catch_up_timeout"`
	// CredsFile is a NATS credentials file (JWT and NKey); User and
	// Password, or Token (LAKKA_BUS_TOKEN overrides it), authenticate
	// otherwise.
	CredsFile string `yaml:"creds_file"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	Token     string `yaml:"token"`
	// CAFile, CertFile and KeyFile configure TLS to NATS (a tls:// URL, or
	// a server that requires it); CertFile and KeyFile for client
	// certificates.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Admin closes the edge's admin listener (edge.admin): every endpoint but
// /healthz needs the admin token or a client in AllowNetworks. With
// neither configured, only /healthz (and the purge API, with purge.token)
// answers.
type Admin struct {
	// Token authenticates the admin endpoints (Authorization: Bearer
	// TOKEN); LAKKA_ADMIN_TOKEN overrides it. The purge API takes it as
	// well as purge.token.
	Token string `yaml:"token"`
	// AllowNetworks lists networks (CIDR) whose clients need no token.
	AllowNetworks []string `yaml:"allow_networks"`
	// MetricsNetworks lists networks (CIDR) that may read /metrics without
	// the token: a Prometheus scraper's.
	MetricsNetworks []string `yaml:"metrics_networks"`
	// Pprof serves Go's profiles under /debug/pprof/ (to the same clients
	// as the other admin endpoints); off by default.
	Pprof bool `yaml:"pprof"`
}

// Log configures the process log and the access log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format of the process log: text or json.
	Format string `yaml:"format"`
	// Access is where access log lines go: stdout, stderr, off, or a file.
	Access string `yaml:"access"`
	// AccessFormat is combined (NCSA combined plus cache status and time
	// taken, like varnishncsa) or json.
	AccessFormat string `yaml:"access_format"`
	// AccessHost puts the request's Host first in combined lines (as
	// Apache's vhost_combined does); the json format always has it.
	AccessHost bool `yaml:"access_host"`
	// AccessBuffer bounds queued access log lines; when full, lines are
	// dropped and counted rather than slowing requests.
	AccessBuffer int `yaml:"access_buffer"`
}

// Origin configures the bundled news origin.
type Origin struct {
	// Listen is the address the origin serves on.
	Listen string `yaml:"listen"`
	// DatabaseURL selects PostgreSQL; empty uses the embedded store.
	// DATABASE_URL overrides it.
	DatabaseURL string `yaml:"database_url"`
	// Seed is the number of generated articles on an empty store.
	Seed int `yaml:"seed"`
	// EdgeAdmins lists edge admin addresses that receive purges.
	EdgeAdmins []string `yaml:"edge_admins"`
	// SoftPurge sends soft purges (mark stale) instead of hard ones.
	SoftPurge bool `yaml:"soft_purge"`
	// Pages sets freshness per page kind.
	Pages Pages `yaml:"pages"`
	// ViewFlushInterval is how often buffered view counts are written.
	ViewFlushInterval time.Duration `yaml:"view_flush_interval"`
	// Token authenticates the admin API (/api/..., Authorization: Bearer
	// TOKEN); LAKKA_ORIGIN_TOKEN overrides it. Empty disables the API: every
	// call gets 401.
	Token string `yaml:"token"`
	// PurgeToken is sent to the edges' purge API (their purge.token);
	// LAKKA_PURGE_TOKEN overrides it.
	PurgeToken string `yaml:"purge_token"`
	// PurgeTimeout bounds one purge request to one edge.
	PurgeTimeout time.Duration `yaml:"purge_timeout"`
	// PurgeRetryMin and PurgeRetryMax bound the exponential backoff between
	// failed deliveries to one edge.
	PurgeRetryMin time.Duration `yaml:"purge_retry_min"`
	PurgeRetryMax time.Duration `yaml:"purge_retry_max"`
	// PurgePollInterval is how often the delivery worker looks for purges
	// written by other origin processes sharing the database; its own are
	// sent at once.
	PurgePollInterval time.Duration `yaml:"purge_poll_interval"`
	// PurgeMaxBacklog is how many undelivered purges an edge may fall behind
	// before it gets one full soft purge instead of the backlog.
	PurgeMaxBacklog int `yaml:"purge_max_backlog"`
	// PurgeRetention is how long purges are kept in the outbox; an edge
	// that falls behind the oldest kept purge gets one full soft purge.
	PurgeRetention time.Duration `yaml:"purge_retention"`
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Pages sets the freshness the origin announces for each kind of page.
type Pages struct {
	Front    Freshness `yaml:"front"`
	Section  Freshness `yaml:"section"`
	Article  Freshness `yaml:"article"`
	MostRead Freshness `yaml:"most_read"`
	Sitemap  Freshness `yaml:"sitemap"`
}

// Freshness is what the origin puts in Cache-Control for one kind of page.
type Freshness struct {
	MaxAge               time.Duration `yaml:"max_age"`
	StaleWhileRevalidate time.Duration `yaml:"stale_while_revalidate"`
	StaleIfError         time.Duration `yaml:"stale_if_error"`
}

// Default returns the configuration used when a key is absent.
func Default() Config {
	return Config{
		Edge: Edge{
			Listen:              "127.0.0.1:8080",
			Admin:               "127.0.0.1:8081",
			MaxConnections:      10000,
			ReadTimeout:         10 * time.Second,
			WriteTimeout:        30 * time.Second,
			IdleTimeout:         60 * time.Second,
			MaxHeaderBytes:      16 * KiB,
			MaxURIBytes:         8 * KiB,
			MaxRequestBodyBytes: 1 * MiB,
			DrainDelay:          5 * time.Second,
			ShutdownTimeout:     30 * time.Second,
			ForwardedProto:      "http",
			ViaName:             "lakka",
		},
		Backends: Backends{
			Director:               "round_robin",
			ConnectTimeout:         1 * time.Second,
			FirstByteTimeout:       15 * time.Second,
			BetweenBytesTimeout:    10 * time.Second,
			WriteTimeout:           5 * time.Second,
			FetchTimeout:           30 * time.Second,
			IdleTimeout:            60 * time.Second,
			MaxConnections:         512,
			MaxFetches:             256,
			OverloadLatency:        2 * time.Second,
			QueueLength:            1024,
			QueueTimeout:           2 * time.Second,
			PanicThreshold:         0.5,
			MaxResponseHeaderBytes: 32 * KiB,
			Probe: Probe{
				Path:           "/healthz",
				Interval:       5 * time.Second,
				Timeout:        2 * time.Second,
				Window:         8,
				Threshold:      3,
				Initial:        3,
				ExpectedStatus: 200,
			},
			Passive: Passive{
				Failures: 5,
				Cooldown: 10 * time.Second,
			},
		},
		Cache: Cache{
			SizeBytes:      256 * MiB,
			MaxObjectBytes: 8 * MiB,
			InflightWait:   100 * time.Millisecond,
			DefaultTTL:     120 * time.Second,
			Grace:          10 * time.Second,
			Keep:           0,
			HitForMissTTL:  120 * time.Second,
			WaitTimeout:    35 * time.Second,
			StaleWait:      250 * time.Millisecond,
			MaxVariants:    16,
			StripCookies:   []string{"_ga", "_ga_*", "_gid", "_gat*", "_fbp", "_fbc", "__utm*", "_gcl_*"},
			RefreshWorkers: 16,
			RefreshQueue:   4096,
		},
		Key: Key{
			StripQuery: []string{"utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid"},
		},
		Sticky: Sticky{Cookie: "lakka_bucket", MaxAge: 30 * 24 * time.Hour},
		Cluster: Cluster{
			PeerTimeout:      250 * time.Millisecond,
			HotAfter:         2,
			HotShare:         25,
			PreviousOwnerFor: 2 * time.Minute,
		},
		Compression: Compression{
			Enabled:   true,
			GzipLevel: 6,
			MinBytes:  512,
			Types: []string{
				"text/*", "application/json", "application/javascript",
				"application/xml", "application/rss+xml", "application/atom+xml",
				"application/xhtml+xml", "application/manifest+json",
				"application/ld+json", "image/svg+xml",
			},
		},
		Purge: Purge{
			Bus: Bus{
				Stream:          "LAKKA_PURGE",
				Subject:         "lakka.purge",
				MaxAge:          24 * time.Hour,
				Replicas:        1,
				DuplicateWindow: 2 * time.Minute,
				MembersBucket:   "LAKKA_EDGES",
				CatchUpTimeout:  30 * time.Second,
			},
			AllowNetworks: []string{"127.0.0.1/32", "::1/128"},
		},
		Admin: Admin{
			AllowNetworks:   []string{},
			MetricsNetworks: []string{},
		},
		Log: Log{
			Level:        "info",
			Format:       "text",
			Access:       "stdout",
			AccessFormat: "combined",
			AccessBuffer: 8192,
		},
		Origin: Origin{
			Listen:            "127.0.0.1:8000",
			SoftPurge:         true,
			ViewFlushInterval: 5 * time.Second,
			PurgeTimeout:      5 * time.Second,
			PurgeRetryMin:     250 * time.Millisecond,
			PurgeRetryMax:     30 * time.Second,
			PurgePollInterval: 2 * time.Second,
			PurgeMaxBacklog:   1000,
			PurgeRetention:    24 * time.Hour,
			ShutdownTimeout:   10 * time.Second,
			Pages: Pages{
				Front:    Freshness{MaxAge: 10 * time.Second, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 24 * time.Hour},
				Section:  Freshness{MaxAge: 30 * time.Second, StaleWhileRevalidate: 60 * time.Second, StaleIfError: 24 * time.Hour},
				Article:  Freshness{MaxAge: 300 * time.Second, StaleWhileRevalidate: 60 * time.Second, StaleIfError: 24 * time.Hour},
				MostRead: Freshness{MaxAge: 30 * time.Second, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 24 * time.Hour},
				Sitemap:  Freshness{MaxAge: 60 * time.Second, StaleWhileRevalidate: 60 * time.Second, StaleIfError: 24 * time.Hour},
			},
		},
	}
}

// Example is config/example.yaml: every key with its default, documented.
//
//go:embed example.yaml
var Example []byte

// PoolNames returns the backend pools: "default" (backends.servers) and
// the named ones, sorted.
func (c *Config) PoolNames() []string {
	names := []string{"default"}
	for n := range c.Pools {
		names = append(names, n)
	}
	slices.Sort(names[1:])
	return names
}
