package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// outbox is what delivery needs of a Store.
type outbox interface {
	Purges(ctx context.Context, after int64, limit int) ([]Purge, error)
	PurgeHead(ctx context.Context) (head, pruned int64, err error)
	Cursor(ctx context.Context, edge string) (int64, bool, error)
	SetCursor(ctx context.Context, edge string, id int64) error
	PrunePurges(ctx context.Context, before time.Time) error
}

// Limits of one purge request.
const (
	batchRows     = 100  // purge rows merged into one request
	batchTags     = 1000 // tags in one request, unless one row has more
	pruneInterval = time.Minute
)

// Delivery sends the purges of the outbox to every configured edge's purge
// API (POST /api/purge), at least once, in order, with a cursor per edge
// kept in the store. A failed delivery is retried with exponential backoff;
// an edge that was down catches up when it returns, or gets one full soft
// purge when it fell more than origin.purge_max_backlog purges behind or
// behind pruned rows. Purges are idempotent, so repeating one (after a
// crash between sending and moving the cursor) is harmless.
type Delivery struct {
	cfg    config.Origin
	store  outbox
	logger *slog.Logger
	m      *deliveryMetrics
	client *http.Client
	edges  []*edgeState
	wg     sync.WaitGroup // the loops Start began
}

// Publisher is the purge bus as delivery uses it (*bus.Bus).
type Publisher interface {
	// Ensure creates the stream (or checks it) before the first publish.
	Ensure(ctx context.Context) error
	Publish(ctx context.Context, m purge.Message) (bus.Published, error)
	URL() string
}

// busCursor is the purge bus's cursor in the outbox, beside the edges'.
const busCursor = "purge-bus"

// edgeState is one edge's delivery loop state (or the bus's).
type edgeState struct {
	addr string
	// bus, when set, is where this loop publishes: one message per row;
	// ensured says its stream was made.
	bus     Publisher
	ensured bool
	// wake is signalled (without blocking) when a purge was committed.
	wake chan struct{}
	// depth, lag, deliveries, full and failures are this edge's metric
	// children.
	depth, lag       prometheus.Gauge
	deliveries, full prometheus.Counter
	failures         map[string]prometheus.Counter
}

// NewDelivery returns a delivery worker for cfg.EdgeAdmins; Run starts it.
func NewDelivery(cfg config.Origin, st outbox, logger *slog.Logger, reg prometheus.Registerer) (*Delivery, error) {
	m, err := newDeliveryMetrics(reg)
	if err != nil {
		return nil, err
	}
	d := &Delivery{
		cfg:    cfg,
		store:  st,
		logger: logger,
		m:      m,
		client: &http.Client{
			Timeout: cfg.PurgeTimeout,
			// Redirects from a purge API are a misconfiguration: report them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	seen := map[string]bool{}
	for _, addr := range cfg.EdgeAdmins {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		d.edges = append(d.edges, m.target(addr))
	}
	if len(d.edges) > 0 && cfg.PurgeToken == "" {
		logger.Warn("purge token is empty: edges will refuse purges (set LAKKA_PURGE_TOKEN or origin.purge_token)")
	}
	return d, nil
}

// target is the delivery state of an edge address (or the bus's cursor).
func (m *deliveryMetrics) target(addr string) *edgeState {
	e := &edgeState{
		addr:       addr,
		wake:       make(chan struct{}, 1),
		depth:      m.depth.WithLabelValues(addr),
		lag:        m.lag.WithLabelValues(addr),
		deliveries: m.deliveries.WithLabelValues(addr),
		full:       m.full.WithLabelValues(addr),
		failures:   map[string]prometheus.Counter{},
	}
	for _, r := range []string{failUnauthorized, failRejected, failUnavailable, failStore} {
		e.failures[r] = m.failures.WithLabelValues(addr, r)
	}
	return e
}

// UseBus makes delivery publish every purge row on the purge bus too, as
// one message whose id is the row's (origin:ROW:CREATED-MICROSECONDS, the
// same however often it is published), marking a row sent only when
// JetStream has stored it: a bus outage loses nothing, and delivery
// resumes after it. Its metrics use the edge label "purge-bus". Call it
// before Start.
func (d *Delivery) UseBus(p Publisher) {
	e := d.m.target(busCursor)
	e.bus = p
	d.edges = append(d.edges, e)
}

// Notify tells the workers that a purge was committed. It never blocks.
func (d *Delivery) Notify() {
	for _, e := range d.edges {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// Start gives every edge without a cursor one at the newest purge (a new
// edge has nothing cached from before), then delivers in the background
// until ctx is done. Wait waits for the background work to stop.
func (d *Delivery) Start(ctx context.Context) error {
	head, _, err := d.store.PurgeHead(ctx)
	if err != nil {
		return err
	}
	for _, e := range d.edges {
		if _, ok, err := d.store.Cursor(ctx, e.addr); err != nil {
			return err
		} else if !ok {
			if err := d.store.SetCursor(ctx, e.addr, head); err != nil {
				return err
			}
		}
	}
	for _, e := range d.edges {
		d.wg.Go(func() { d.loop(ctx, e) })
	}
	d.wg.Go(func() { d.prune(ctx) })
	return nil
}

// Wait returns when the work Start began has stopped.
func (d *Delivery) Wait() { d.wg.Wait() }

// loop is one edge's worker: deliver what is pending, then wait for a
// notification or the poll interval; after a failure, back off (ignoring
// notifications, so that a down edge is not hammered by every change).
func (d *Delivery) loop(ctx context.Context, e *edgeState) {
	poll := time.NewTicker(d.cfg.PurgePollInterval)
	defer poll.Stop()
	failures := 0
	for {
		more, err := d.step(ctx, e)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			if more {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
			case <-poll.C:
			}
			continue
		}
		failures++
		t := time.NewTimer(backoff(d.cfg.PurgeRetryMin, d.cfg.PurgeRetryMax, failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff is the wait before retry n (from 1): min doubled n-1 times, at
// most max, with jitter in its upper half so that origins restarting
// together spread out.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// errDelivery is a failed delivery, already logged and counted.
var errDelivery = errors.New("origin: purge delivery failed")

// step delivers one batch to e. It reports whether more may be pending.
func (d *Delivery) step(ctx context.Context, e *edgeState) (bool, error) {
	if e.bus != nil {
		return d.stepBus(ctx, e)
	}
	cursor, head, pruned, rows, err := d.outbox(ctx, e, d.cfg.PurgeMaxBacklog+1)
	if err != nil {
		return false, err
	}
	e.depth.Set(float64(len(rows)))
	if cursor < pruned || len(rows) > d.cfg.PurgeMaxBacklog {
		// Too far behind: one full soft purge covers every row committed
		// before it is sent, so the cursor may move to the newest known.
		through := head
		if len(rows) > 0 {
			through = max(through, rows[len(rows)-1].ID)
		}
		d.logger.Warn("edge fell behind, sending a full soft purge",
			slog.String("edge", e.addr), slog.Int64("cursor", cursor), slog.Int64("head", through), slog.Int64("pruned", pruned))
		if err := d.sendFull(ctx, e); err != nil {
			return false, err
		}
		return d.advance(ctx, e, through)
	}
	if len(rows) == 0 {
		return false, nil
	}
	batch, tags := mergeRows(rows)
	status, err := d.send(ctx, e, purge.Message{Tags: tags, Soft: d.cfg.SoftPurge, IssuedAt: batch[0].CreatedAt.UTC(), Issuer: issuer})
	switch {
	case err != nil:
		return false, err
	case status == statusRejected:
		// The edge cannot read this purge; a full soft purge covers it and
		// keeps later purges from queueing behind it forever.
		if err := d.sendFull(ctx, e); err != nil {
			return false, err
		}
	}
	e.deliveries.Inc()
	return d.advance(ctx, e, batch[len(batch)-1].ID)
}

func (d *Delivery) advance(ctx context.Context, e *edgeState, id int64) (bool, error) {
	if err := d.store.SetCursor(ctx, e.addr, id); err != nil {
		if ctx.Err() == nil {
			e.failures[failStore].Inc()
			d.logger.Error("purge outbox: move cursor", slog.String("edge", e.addr), slog.Any("error", err))
		}
		return false, errDelivery
	}
	if d.logger.Enabled(ctx, slog.LevelDebug) {
		d.logger.LogAttrs(ctx, slog.LevelDebug, "purges delivered", slog.String("edge", e.addr), slog.Int64("through", id))
	}
	return true, nil
}

// mergeRows takes leading rows (at most batchRows, and batchTags tags
// unless the first row alone has more) and the union of their tags.
func mergeRows(rows []Purge) ([]Purge, []string) {
	seen := map[string]bool{}
	var tags []string
	n := 0
	for _, r := range rows[:min(len(rows), batchRows)] {
		var add []string
		for _, t := range r.Tags {
			if !seen[t] && !slices.Contains(add, t) {
				add = append(add, t)
			}
		}
		if n > 0 && len(tags)+len(add) > batchTags {
			break
		}
		for _, t := range add {
			seen[t] = true
		}
		tags = append(tags, add...)
		n++
	}
	return rows[:n], tags
}

// issuer names the bundled origin in the purges it sends.
const issuer = "lakka origin"

func (d *Delivery) sendFull(ctx context.Context, e *edgeState) error {
	status, err := d.send(ctx, e, purge.Message{All: true, Soft: true, IssuedAt: time.Now().UTC(), Issuer: issuer})
	if err != nil {
		return err
	}
	if status == statusRejected {
		return errDelivery // already logged and counted
	}
	e.full.Inc()
	return nil
}

type sendStatus int

const (
	statusOK sendStatus = iota
	statusRejected
)

// send posts one purge to e. A refused token or an unreachable edge is an
// error (logged and counted); an edge that rejects the request itself
// (another 4xx) is reported as statusRejected.
func (d *Delivery) send(ctx context.Context, e *edgeState, m purge.Message) (sendStatus, error) {
	_, err := purge.Send(ctx, d.client, e.addr, d.cfg.PurgeToken, m)
	var se *purge.StatusError
	switch {
	case err == nil:
		return statusOK, nil
	case !errors.As(err, &se):
		if ctx.Err() == nil {
			e.failures[failUnavailable].Inc()
			d.logger.Warn("purge delivery failed: edge unreachable", slog.String("edge", e.addr), slog.Any("error", err))
		}
		return 0, errDelivery
	case se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden:
		e.failures[failUnauthorized].Inc()
		d.logger.Error("purge delivery refused: the edge does not accept the purge token (check LAKKA_PURGE_TOKEN)",
			slog.String("edge", e.addr), slog.Int("status", se.Status))
		return 0, errDelivery
	case se.Status >= 400 && se.Status < 500 && se.Status != http.StatusRequestTimeout && se.Status != http.StatusTooManyRequests:
		e.failures[failRejected].Inc()
		d.logger.Error("purge delivery rejected by the edge", slog.String("edge", e.addr), slog.Int("status", se.Status),
			slog.String("answer", se.Message), slog.Bool("all", m.All))
		return statusRejected, nil
	default:
		e.failures[failUnavailable].Inc()
		d.logger.Warn("purge delivery failed", slog.String("edge", e.addr), slog.Int("status", se.Status))
		return 0, errDelivery
	}
}

// outbox reads e's cursor, up to limit rows after it, then the newest row
// id and the pruned mark (after the rows: rows pruned before the read
// would otherwise be skipped unseen), and sets e's lag. A store error is
// logged and counted, and returned as errDelivery.
func (d *Delivery) outbox(ctx context.Context, e *edgeState, limit int) (cursor, head, pruned int64, rows []Purge, err error) {
	fail := func(err error) (int64, int64, int64, []Purge, error) {
		if ctx.Err() == nil {
			e.failures[failStore].Inc()
			d.logger.Error("purge outbox", slog.String("edge", e.addr), slog.Any("error", err))
		}
		return 0, 0, 0, nil, errDelivery
	}
	if cursor, _, err = d.store.Cursor(ctx, e.addr); err != nil { // Start made it
		return fail(err)
	}
	if rows, err = d.store.Purges(ctx, cursor, limit); err != nil {
		return fail(err)
	}
	if head, pruned, err = d.store.PurgeHead(ctx); err != nil {
		return fail(err)
	}
	if len(rows) > 0 {
		e.lag.Set(time.Since(rows[0].CreatedAt).Seconds())
	} else {
		e.lag.Set(0)
	}
	return cursor, head, pruned, rows, nil
}

// rowID is the bus message id of an outbox row: its id and creation time,
// so that a store whose ids restart (the embedded one) never reuses one.
func rowID(r Purge) string {
	return fmt.Sprintf("origin:%d:%d", r.ID, r.CreatedAt.UnixMicro())
}

// stepBus publishes up to batchRows rows, one message each, in order, and
// moves the bus's cursor past those JetStream stored.
func (d *Delivery) stepBus(ctx context.Context, e *edgeState) (bool, error) {
	cursor, head, pruned, rows, err := d.outbox(ctx, e, batchRows)
	if err != nil {
		return false, err
	}
	e.depth.Set(float64(max(head-cursor, 0)))
	if !e.ensured {
		if err := e.bus.Ensure(ctx); err != nil {
			if ctx.Err() == nil {
				e.failures[failUnavailable].Inc()
				d.logger.Warn("purge bus unavailable; the rows stay in the outbox", slog.String("bus", e.bus.URL()), slog.Any("error", err))
			}
			return false, errDelivery
		}
		e.ensured = true
	}
	publish := func(m purge.Message) error {
		if _, err := e.bus.Publish(ctx, m); err != nil {
			e.ensured = false // the stream may have gone: make it again
			if ctx.Err() == nil {
				e.failures[failUnavailable].Inc()
				d.logger.Warn("purge bus publish failed; the rows stay in the outbox", slog.String("bus", e.bus.URL()), slog.Any("error", err))
			}
			return errDelivery
		}
		return nil
	}
	if cursor < pruned {
		// Rows were pruned before the bus had them: one full soft purge,
		// named by what it covers, so that a retry is the same message.
		d.logger.Warn("purge bus fell behind pruned rows, publishing a full soft purge", slog.Int64("cursor", cursor), slog.Int64("pruned", pruned))
		m := purge.Message{ID: fmt.Sprintf("origin:full:%d:%d", cursor, head), All: true, Soft: true, IssuedAt: time.Now().UTC(), Issuer: issuer}
		if err := publish(m); err != nil {
			return false, err
		}
		e.full.Inc()
		return d.advance(ctx, e, head)
	}
	if len(rows) == 0 {
		return false, nil
	}
	last := cursor
	for _, r := range rows {
		m := purge.Message{ID: rowID(r), Tags: r.Tags, Soft: d.cfg.SoftPurge, IssuedAt: r.CreatedAt.UTC(), Issuer: issuer}
		if err := m.Check(); err != nil {
			// No edge could apply it: a full soft purge covers it.
			e.failures[failRejected].Inc()
			d.logger.Error("purge row cannot be published; publishing a full soft purge instead", slog.Int64("row", r.ID), slog.Any("error", err))
			m = purge.Message{ID: rowID(r) + ":full", All: true, Soft: true, IssuedAt: r.CreatedAt.UTC(), Issuer: issuer}
		}
		if err := publish(m); err != nil {
			if last > cursor {
				_, _ = d.advance(ctx, e, last)
			}
			return false, err
		}
		e.deliveries.Inc()
		last = r.ID
	}
	return d.advance(ctx, e, last)
}

// prune deletes purges older than the retention, every pruneInterval.
func (d *Delivery) prune(ctx context.Context) {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.store.PrunePurges(ctx, time.Now().Add(-d.cfg.PurgeRetention)); err != nil && ctx.Err() == nil {
			d.logger.Error("prune purge outbox", slog.Any("error", err))
		}
	}
}
