package edge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/slab"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// metrics are the edge's Prometheus metrics. Children with labels from
// closed sets are resolved at construction.
type metrics struct {
	// The purge bus (edge/bus.go).
	busConnected       prometheus.Gauge
	busLag             prometheus.Histogram
	busGaps            prometheus.Counter
	busApplyErrors     prometheus.Counter
	busCatchUpTimeouts prometheus.Counter
	busPublishes       *prometheus.CounterVec
	// Reloads (edge/reload.go).
	reloads      *prometheus.CounterVec
	needsUpgrade prometheus.Gauge
	// ruleMatches counts matches by rule name (rules.go; the names are
	// the configuration's rules).
	ruleMatches *prometheus.CounterVec
	// Snapshots (edge/snapshot.go): objects and seconds of the last load
	// and write, and files refused or not written.
	snapshotObjects *prometheus.GaugeVec
	snapshotSeconds *prometheus.GaugeVec
	snapshotErrors  *prometheus.CounterVec
	requests        [numResults]prometheus.Counter
	durations       [numResults]prometheus.Observer
	statuses        [6]prometheus.Counter                // 1xx..5xx, index 0 unused
	bytesSent       [numSentEncodings]prometheus.Counter // by sentEncoding
	panics          prometheus.Counter
	// badRequest is indexed by bad-request detail (detail.badRequest).
	badRequest [numDetails]prometheus.Counter

	coalesced     prometheus.Counter
	waitTimeouts  prometheus.Counter
	hitForMiss    prometheus.Counter
	stores        prometheus.Counter
	notStored     *prometheus.CounterVec
	invalidations prometheus.Counter

	// store and backends are the children the store and the backends
	// update themselves.
	store    store.Metrics
	backends backend.Metrics

	headersMade    prometheus.Counter
	decompressions prometheus.Counter
	compressions   [3]prometheus.Counter // by cachepolicy.Encoding; Identity unused
	compressedIn   prometheus.Counter
	compressedOut  [3]prometheus.Counter // by cachepolicy.Encoding; Identity unused
	gzipErrors     prometheus.Counter

	accessLogDropped prometheus.Counter

	purges        [numPurgeKinds][2]prometheus.Counter // kind, soft
	purgedObjects prometheus.Counter
	purgeDuration prometheus.Observer
	purgeRefusals *prometheus.CounterVec
	adminRefusals *prometheus.CounterVec

	staleServes prometheus.Counter
	refreshes   *prometheus.CounterVec

	// The cluster (edge/cluster.go, edge/peer.go).
	clusterMembers *prometheus.GaugeVec
	clusterFetches *prometheus.CounterVec
	shieldFetches  prometheus.Counter
	peerSeconds    *prometheus.HistogramVec
	peerRequests   *prometheus.CounterVec
}

// purgeKind is the closed set of purge kinds in metrics.
type purgeKind uint8

const (
	purgeURL purgeKind = iota
	purgeTag
	purgeAll
	numPurgeKinds
)

var purgeKindNames = [numPurgeKinds]string{"url", "tag", "all"}

// newMetrics makes and registers the edge's metrics; st returns the store
// (made after the metrics, which it uses) when a gauge is read.
func newMetrics(reg prometheus.Registerer, st func() *store.Store, bodies *backend.BodyBudget) (*metrics, error) {
	m := &metrics{}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_requests_total",
		Help: "Client requests by cache result (the X-Cache value).",
	}, []string{"cache"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lakka_edge_request_duration_seconds",
		Help:    "Time from reading a request to handing its response to the connection, by cache result.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"cache"})
	for r := range numResults {
		m.requests[r] = reqs.WithLabelValues(r.String())
		m.durations[r] = dur.WithLabelValues(r.String())
	}
	statuses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_responses_total",
		Help: "Responses to clients by status class.",
	}, []string{"code"})
	for i, c := range []string{"", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		if i > 0 {
			m.statuses[i] = statuses.WithLabelValues(c)
		}
	}
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_response_body_bytes_total",
		Help: "Response body bytes handed to clients (before transport framing; streamed bodies are not counted), by content coding sent: identity, gzip, zstd, other (passed through from the origin).",
	}, []string{"encoding"})
	for i, name := range sentEncodingNames {
		m.bytesSent[i] = sent.WithLabelValues(name)
	}
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_panics_total",
		Help: "Panics recovered in the request handler; each was answered 500.",
	})
	badRequest := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_bad_requests_total",
		Help: "Requests refused before lookup, by reason.",
	}, []string{"reason"})
	for d := firstBadRequest; d <= lastBadRequest; d++ {
		m.badRequest[d] = badRequest.WithLabelValues(d.String()) // shown as 0 before the first
	}
	m.backends.Fetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_origin_fetches_total",
		Help: "Fetches from backends, by backend and result (ok, error, timeout, busy).",
	}, []string{"backend", "result"})
	m.backends.FetchDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lakka_edge_origin_fetch_duration_seconds",
		Help:    "Time to the response headers of backend fetches.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
	}, []string{"backend"})
	m.coalesced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_coalesced_requests_total",
		Help: "Requests answered by another request's fetch (request coalescing).",
	})
	m.waitTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_coalesce_wait_timeouts_total",
		Help: "Requests that gave up waiting for another request's fetch (cache.wait_timeout).",
	})
	m.hitForMiss = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_hit_for_miss_total",
		Help: "Requests sent straight to the origin because the object is remembered as uncacheable.",
	})
	m.stores = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_cache_stores_total",
		Help: "Objects handed to the store.",
	})
	m.notStored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_cache_not_stored_total",
		Help: "Fetched responses not stored, by reason.",
	}, []string{"reason"})
	m.store.Dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_cache_store_dropped_total",
		Help: "Stores dropped by the cache under write contention.",
	})
	m.store.Evictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_cache_evictions_total",
		Help: "Objects evicted to make room or because they expired.",
	})
	m.store.Rejections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_cache_admission_rejections_total",
		Help: "New objects the store's admission policy declined.",
	})
	m.invalidations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_unsafe_invalidations_total",
		Help: "Invalidations caused by successful unsafe requests (RFC 9111 section 4.4).",
	})
	m.store.IdentityBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lakka_edge_identity_copies_bytes",
		Help: "Bytes of decoded copies of gzip-stored bodies kept for clients without gzip.",
	})
	m.store.IdentityDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_identity_copies_dropped_total",
		Help: "Decoded copies dropped to stay within their budget.",
	})
	m.store.HeaderBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lakka_edge_hit_heads_bytes",
		Help: "Bytes of whole response headers kept for hot objects (one per encoding, as of the current second), copied by their hits instead of rebuilt.",
	})
	m.headersMade = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_hit_heads_made_total",
		Help: "Whole response headers built for hot objects (about one per object, encoding and second while hits come).",
	})
	m.store.HeadersDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_hit_heads_dropped_total",
		Help: "Kept response headers dropped to stay within their budget (a 64th of cache.size_bytes).",
	})
	m.decompressions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_decompressions_total",
		Help: "Stored gzip bodies decoded for clients that do not accept gzip: once per object while its decoded copy is kept, per request for bodies too large to keep decoded.",
	})
	compressions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_compressions_total",
		Help: "Bodies compressed at store time (once per stored object and encoding, never per request), by encoding.",
	}, []string{"encoding"})
	compressedIn := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_compression_input_bytes_total",
		Help: "Decoded size of the bodies stored compressed (compressed by the edge or sent gzip by the origin); with lakka_edge_compression_output_bytes_total it gives the compression ratio.",
	})
	compressedOut := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_compression_output_bytes_total",
		Help: "Stored size of the compressed forms of those bodies, by encoding (zstd forms exist only with compression.zstd).",
	}, []string{"encoding"})
	for _, enc := range []cachepolicy.Encoding{cachepolicy.Gzip, cachepolicy.Zstd} {
		m.compressions[enc] = compressions.WithLabelValues(enc.String())
		m.compressedOut[enc] = compressedOut.WithLabelValues(enc.String())
	}
	m.compressedIn = compressedIn
	m.gzipErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_origin_corrupt_gzip_total",
		Help: "Origin responses labelled gzip whose body did not decode (or inflated beyond the limit): never stored; answered 502, or cut short when already streaming.",
	})
	m.accessLogDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_access_log_dropped_total",
		Help: "Access log lines dropped because the writer fell behind (log.access_buffer).",
	})
	purges := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_purges_total",
		Help: "Purges applied, by kind (url, tag, all) and mode (hard, soft).",
	}, []string{"kind", "mode"})
	for k := range numPurgeKinds {
		m.purges[k][0] = purges.WithLabelValues(purgeKindNames[k], "hard")
		m.purges[k][1] = purges.WithLabelValues(purgeKindNames[k], "soft")
	}
	m.purgedObjects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_purged_objects_total",
		Help: "Objects (responses and variants) removed or marked stale by purges.",
	})
	purgeDur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "lakka_edge_purge_duration_seconds",
		Help:    "Time to apply a purge on this node.",
		Buckets: prometheus.ExponentialBuckets(0.000005, 4, 10),
	})
	m.purgeDuration = purgeDur
	m.ruleMatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_rule_matches_total",
		Help: "Requests, origin responses and answers each rule matched, by rule name (config rules:).",
	}, []string{"rule"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_config_reloads_total",
		Help: "Configuration reloads (SIGHUP), by result: ok, or invalid (the file could not be read or did not validate; the running configuration stays).",
	}, []string{"result"})
	for _, r := range []string{"ok", "invalid"} {
		m.reloads.WithLabelValues(r)
	}
	m.needsUpgrade = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lakka_edge_config_needs_upgrade",
		Help: "Keys of the last reloaded configuration the running process could not take (listen addresses, the store's sizes, the logger): they wait for an upgrade or a restart.",
	})
	m.snapshotObjects = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_snapshot_objects",
		Help: "Objects in the last cache snapshot this process loaded at start or wrote (cache.snapshot_path), by op: load, write.",
	}, []string{"op"})
	m.snapshotSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_snapshot_seconds",
		Help: "How long the last cache snapshot load or write took, by op: load, write.",
	}, []string{"op"})
	m.snapshotErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_snapshot_errors_total",
		Help: "Cache snapshots refused at start (torn, foreign, corrupted: the edge starts empty) or that could not be written, by op: load, write.",
	}, []string{"op"})
	for _, op := range []string{"load", "write"} {
		m.snapshotObjects.WithLabelValues(op)
		m.snapshotSeconds.WithLabelValues(op)
		m.snapshotErrors.WithLabelValues(op)
	}
	m.busConnected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lakka_edge_purge_bus_connected",
		Help: "1 while the connection to the purge bus (purge.bus.url) is up, 0 otherwise (and without a bus).",
	})
	m.busLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "lakka_edge_purge_bus_lag_seconds",
		Help:    "Purge lag: when this edge applied a purge from the bus minus when its issuer issued it.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	m.clusterMembers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_cluster_members",
		Help: "Live members of the cluster this edge sees, by zone (itself included).",
	}, []string{"zone"})
	m.clusterFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_cluster_fetches_total",
		Help: "Misses this edge asked another edge about, by the peer's role (owner: the key's owner in this zone; previous: its owner before a membership change; shield: its owner in the shield zone) and result (hit, fetched, miss, pass, error: the origin's failure; purged: stored before a purge this edge applied, not served; fault: the peer could not be used, or did not finish within the budget, and the next candidate or the origin was asked).",
	}, []string{"role", "result"})
	m.shieldFetches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_cluster_shield_fetches_total",
		Help: "Misses the shield zone answered for this edge instead of the origin.",
	})
	m.peerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lakka_edge_cluster_peer_seconds",
		Help:    "Time of a request to a peer, by mode (lookup, fresh-lookup: answered from its cache; fetch, fresh: it may fetch from the origin).",
		Buckets: []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10},
	}, []string{"mode"})
	m.peerRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_cluster_peer_requests_total",
		Help: "Requests other edges sent to this edge's peer listener, by mode and result (hit, stale, fetched, miss, pass, busy: not fetched within the asker's budget, error; refused: no or a wrong token; bad; loop).",
	}, []string{"mode", "result"})
	m.busGaps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_purge_bus_gaps_total",
		Help: "Gaps found in the purge stream (purges that left it before this edge applied them, or a lost consumer): each soft-purged everything stored.",
	})
	m.busApplyErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_purge_bus_apply_errors_total",
		Help: "Purges from the bus this edge could not apply (a bad message, a tag or URL it refuses); acknowledged and skipped.",
	})
	m.busCatchUpTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_purge_bus_catch_up_timeouts_total",
		Help: "Starts after which the edge reported ready without having caught up with the purge bus (purge.bus.catch_up_timeout).",
	})
	m.busPublishes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_purge_bus_publishes_total",
		Help: "Purges this edge was sent (purge API, PURGE) and published to the bus, by result (ok, duplicate, error).",
	}, []string{"result"})
	for _, r := range []string{"ok", "duplicate", "error"} {
		m.busPublishes.WithLabelValues(r)
	}
	m.purgeRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_purge_refusals_total",
		Help: "Purge requests refused, by reason (token, network, request, closed, handover: answered 503 while the cache is handed to a new process).",
	}, []string{"reason"})
	for _, r := range []string{"token", "network", "request", "closed", "handover"} {
		m.purgeRefusals.WithLabelValues(r) // shown as 0 before the first
	}
	m.adminRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_admin_refusals_total",
		Help: "Admin requests (other than purges) refused, by reason: token (missing or wrong), closed (no token and no network configured).",
	}, []string{"reason"})
	for _, r := range []string{"token", "closed"} {
		m.adminRefusals.WithLabelValues(r)
	}
	m.backends.Healthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_backend_healthy",
		Help: "1 when the backend is in rotation (probes and passive health agree), else 0.",
	}, []string{"backend"})
	m.backends.Probes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_backend_probes_total",
		Help: "Health probes by backend and result (ok, fail).",
	}, []string{"backend", "result"})
	m.backends.Transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_backend_state_changes_total",
		Help: "Times a backend went in or out of rotation.",
	}, []string{"backend"})
	m.backends.FetchLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_backend_fetch_limit",
		Help: "The adaptive limit of concurrent fetches to a backend (between backends.min_fetches and backends.max_fetches).",
	}, []string{"backend"})
	m.backends.InFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_backend_fetches_in_flight",
		Help: "Fetches to a backend holding a slot (response headers awaited or body being read).",
	}, []string{"backend"})
	m.backends.Queued = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lakka_edge_backend_fetches_queued",
		Help: "Fetches waiting for a slot under a backend's fetch limit.",
	}, []string{"backend"})
	m.backends.QueueRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_backend_queue_rejections_total",
		Help: "Fetches that got no slot, by reason: full (backends.queue_length reached), timeout (waited backends.queue_timeout).",
	}, []string{"backend", "reason"})
	m.backends.Retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_backend_retries_total",
		Help: "Idempotent fetches sent again after finding their backend down (connection refused, unreachable or reset before an answer).",
	}, []string{"backend"})
	m.backends.Panic = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_backend_panic_routed_total",
		Help: "Fetches routed while fewer than backends.panic_threshold of the backends were in rotation: backends only passive health took out were used too.",
	})
	m.staleServes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lakka_edge_stale_on_error_total",
		Help: "Stale objects served because the origin failed, timed out or was unreachable (stale-if-error, keep).",
	})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_edge_background_refreshes_total",
		Help: "Background refreshes of objects served stale in grace, by result (ok, not-modified, error, dropped).",
	}, []string{"result"})
	for _, r := range []string{"ok", "not-modified", "error", "dropped"} {
		m.refreshes.WithLabelValues(r) // shown as 0 before the first
	}
	objects := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_cache_objects",
		Help: "Objects in the store (responses, variants and markers).",
	}, func() float64 { o, _ := st().Size(); return float64(o) })
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_cache_bytes",
		Help: "Bytes the stored objects count against cache.size_bytes.",
	}, func() float64 { _, b := st().Size(); return float64(b) })
	slabBytes := func(state string, v func(slab.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "lakka_edge_slab_bytes",
			Help:        "Memory of stored bodies, headers and decoded copies, kept outside the Go heap, by state: live (slots in use, by slot size), resident (pages not given back to the kernel), retained (resident pages of free slots, kept so that reuse does not fault them in again), mapped (address space).",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 { return float64(v(st().SlabStats())) })
	}
	slabLive := slabBytes("live", func(s slab.Stats) int64 { return s.Live })
	slabResident := slabBytes("resident", func(s slab.Stats) int64 { return s.Resident })
	slabRetained := slabBytes("retained", func(s slab.Stats) int64 { return s.Retained })
	slabMapped := slabBytes("mapped", func(s slab.Stats) int64 { return s.Mapped })
	slabRefused := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "lakka_edge_slab_refusals_total",
		Help: "Objects and decoded copies not kept because the slots were full (bodies still being sent to slow clients hold slots after their objects left).",
	}, func() float64 { return float64(st().SlabStats().Failed) })
	bodiesUsed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_inflight_body_bytes",
		Help: "Bytes of origin bodies held in memory now while they are read to be stored or relayed after reading (cache.inflight_bytes bounds them).",
	}, func() float64 { return float64(bodies.Used()) })
	bodiesLimit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_inflight_body_limit_bytes",
		Help: "The bound on origin bodies held in memory at once (cache.inflight_bytes, or its default).",
	}, func() float64 { return float64(bodies.Size()) })
	bodiesRefused := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "lakka_edge_inflight_body_refusals_total",
		Help: "Origin bodies (or decoded forms of them) that found no room in cache.inflight_bytes within cache.inflight_wait: streamed through to the client, not stored.",
	}, func() float64 { return float64(bodies.Refused()) })

	hotCopies := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_cluster_hot_copies",
		Help: "Copies this edge keeps of objects another edge of its zone owns (fetched from the owner cluster.hot_after times within a minute).",
	}, func() float64 {
		if st := st(); st != nil {
			n, _ := st.Copies()
			return float64(n)
		}
		return 0
	})
	hotCopyBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lakka_edge_cluster_hot_copy_bytes",
		Help: "What those copies cost of the cache (at most cluster.hot_share of cache.size_bytes).",
	}, func() float64 {
		if st := st(); st != nil {
			_, b := st.Copies()
			return float64(b)
		}
		return 0
	})
	for _, c := range []prometheus.Collector{
		reqs, dur, statuses, sent, m.panics, badRequest, m.backends.Fetches, m.backends.FetchDuration,
		m.coalesced, m.waitTimeouts, m.hitForMiss, m.stores, m.notStored, m.store.Dropped,
		m.store.Evictions, m.store.Rejections, m.invalidations, m.store.IdentityBytes, m.store.IdentityDropped,
		m.store.HeaderBytes, m.store.HeadersDropped, m.headersMade,
		m.decompressions, compressions, compressedIn, compressedOut, m.gzipErrors, m.accessLogDropped, objects, bytes,
		slabLive, slabResident, slabRetained, slabMapped, slabRefused, bodiesUsed, bodiesLimit, bodiesRefused,
		purges, m.purgedObjects, purgeDur, m.purgeRefusals, m.adminRefusals,
		m.reloads, m.needsUpgrade, m.ruleMatches, m.snapshotObjects, m.snapshotSeconds, m.snapshotErrors,
		m.busConnected, m.busLag, m.busGaps, m.busApplyErrors, m.busCatchUpTimeouts, m.busPublishes,
		m.backends.Healthy, m.backends.Probes, m.backends.Transitions, m.backends.FetchLimit, m.backends.InFlight,
		m.backends.Queued, m.backends.QueueRejections, m.backends.Retries, m.backends.Panic, m.staleServes, m.refreshes,
		m.clusterMembers, m.clusterFetches, m.shieldFetches, m.peerSeconds, m.peerRequests, hotCopies, hotCopyBytes,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// sentEncoding is the closed set of content codings counted in
// lakka_edge_response_body_bytes_total.
type sentEncoding uint8

const (
	sentIdentity sentEncoding = iota
	sentGzip
	sentZstd
	sentOther
	numSentEncodings
)

var sentEncodingNames = [numSentEncodings]string{"identity", "gzip", "zstd", "other"}
