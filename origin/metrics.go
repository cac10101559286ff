package origin

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// kind is what a request was for: the label of the request counter and of
// render latency. The set is closed: never a path or an ID.
type kind string

const (
	kindFront    kind = "front"
	kindSection  kind = "section"
	kindArticle  kind = "article"
	kindMostRead kind = "most_read"
	kindSitemap  kind = "sitemap"
	kindStatic   kind = "static"
	kindRedirect kind = "redirect"
	kindNotFound kind = "not_found"
	kindView     kind = "view"
	kindComment  kind = "comment"
	kindAPI      kind = "api"
	kindHealth   kind = "health"
	kindMetrics  kind = "metrics"
	kindError    kind = "error"
)

var kinds = []kind{kindFront, kindSection, kindArticle, kindMostRead, kindSitemap, kindStatic, kindRedirect,
	kindNotFound, kindView, kindComment, kindAPI, kindHealth, kindMetrics, kindError}

// query names a store call, the label of query latency.
type query string

const (
	queryFront    query = "front"
	querySection  query = "section"
	queryArticle  query = "article"
	queryMostRead query = "most_read"
	querySitemap  query = "sitemap"
	querySections query = "sections"
	queryAPIRead  query = "api_read"
	queryAPIWrite query = "api_write"
	queryComment  query = "comment"
	queryViews    query = "views"
)

var queries = []query{queryFront, querySection, queryArticle, queryMostRead, querySitemap, querySections,
	queryAPIRead, queryAPIWrite, queryComment, queryViews}

// serverMetrics are the page and store metrics; children are resolved at
// construction so that requests only look them up in a map.
type serverMetrics struct {
	requests map[kind]prometheus.Counter
	render   map[kind]prometheus.Observer
	query    map[query]prometheus.Observer
	views    prometheus.Counter
	dropped  prometheus.Counter
	flushErr prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lakka_origin_http_requests_total",
		Help: "Requests the origin answered, by page kind.",
	}, []string{"kind"})
	render := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lakka_origin_render_duration_seconds",
		Help:    "Time to render a page from its data (templates, no store), by page kind.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
	}, []string{"kind"})
	queryH := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lakka_origin_query_duration_seconds",
		Help:    "Time of store calls, by query.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"query"})
	m := &serverMetrics{
		requests: map[kind]prometheus.Counter{},
		render:   map[kind]prometheus.Observer{},
		query:    map[query]prometheus.Observer{},
		views: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakka_origin_views_total",
			Help: "Article views counted (beacons received), before batching.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakka_origin_views_dropped_total",
			Help: "Views not counted because the buffer of pending counts was full.",
		}),
		flushErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lakka_origin_view_flush_errors_total",
			Help: "Failed writes of a batch of view counts (the counts are kept for the next flush).",
		}),
	}
	for _, k := range kinds {
		m.requests[k] = requests.WithLabelValues(string(k))
		m.render[k] = render.WithLabelValues(string(k))
	}
	for _, q := range queries {
		m.query[q] = queryH.WithLabelValues(string(q))
	}
	for _, c := range []prometheus.Collector{requests, render, queryH, m.views, m.dropped, m.flushErr} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("origin: register metrics: %w", err)
		}
	}
	return m, nil
}

// since observes the seconds elapsed since start.
func since(o prometheus.Observer, start time.Time) {
	o.Observe(time.Since(start).Seconds())
}

// deliveryMetrics describe the purge outbox and its delivery, per edge.
type deliveryMetrics struct {
	depth      *prometheus.GaugeVec
	lag        *prometheus.GaugeVec
	deliveries *prometheus.CounterVec
	failures   *prometheus.CounterVec
	full       *prometheus.CounterVec
}

// Reasons a delivery fails, the label of the failure counter.
const (
	failUnauthorized = "unauthorized" // the edge refused the token (401, 403)
	failRejected     = "rejected"     // the edge refused the request (other 4xx)
	failUnavailable  = "unavailable"  // network error, timeout or 5xx
	failStore        = "store"        // reading the outbox failed
)

func newDeliveryMetrics(reg prometheus.Registerer) (*deliveryMetrics, error) {
	m := &deliveryMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakka_origin_outbox_depth",
			Help: "Purges written but not yet delivered to the edge (counted up to origin.purge_max_backlog + 1), or, for edge=\"purge-bus\", not yet stored on the purge bus.",
		}, []string{"edge"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lakka_origin_outbox_lag_seconds",
			Help: "Age of the oldest purge not yet delivered to the edge; 0 when caught up.",
		}, []string{"edge"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakka_origin_purge_deliveries_total",
			Help: "Purge requests the edge accepted.",
		}, []string{"edge"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakka_origin_purge_delivery_failures_total",
			Help: "Failed purge deliveries, by reason: unauthorized, rejected, unavailable, store.",
		}, []string{"edge", "reason"}),
		full: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakka_origin_purge_full_total",
			Help: "Full soft purges sent to an edge instead of a backlog it fell too far behind on.",
		}, []string{"edge"}),
	}
	for _, c := range []prometheus.Collector{m.depth, m.lag, m.deliveries, m.failures, m.full} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("origin: register metrics: %w", err)
		}
	}
	return m, nil
}
