package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/purge"
)

const testPurgeToken = "test-purge-token"

// fakeEdge is an edge purge API on loopback that records what it gets and
// can be down, refuse the token or reject requests.
type fakeEdge struct {
	ts   *httptest.Server
	addr string

	mu   sync.Mutex // guards mode
	mode string     // up, down, unauthorized, reject-tags

	attempts chan string        // every request's mode, as it arrives
	purges   chan purge.Message // accepted purges
}

func newFakeEdge(t *testing.T) *fakeEdge {
	e := &fakeEdge{mode: "up", attempts: make(chan string, 1000), purges: make(chan purge.Message, 1000)}
	e.ts = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.ts.Close)
	e.addr = strings.TrimPrefix(e.ts.URL, "http://")
	return e
}

func (e *fakeEdge) set(mode string) {
	e.mu.Lock()
	e.mode = mode
	e.mu.Unlock()
}

func (e *fakeEdge) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	mode := e.mode
	e.mu.Unlock()
	e.attempts <- mode
	p, err := purge.Decode(r.Body)
	switch {
	case mode == "down":
		// Like a process that is gone: the connection closes unanswered.
		conn, _, herr := http.NewResponseController(w).Hijack()
		if herr == nil {
			herr = conn.Close()
		}
		if herr != nil {
			panic(herr)
		}
	case r.Method != http.MethodPost || r.URL.Path != "/api/purge" || r.Header.Get("Content-Type") != "application/json" || err != nil:
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
	case mode == "unauthorized" || r.Header.Get("Authorization") != "Bearer "+testPurgeToken:
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
	case mode == "reject-tags" && !p.All:
		http.Error(w, `{"error":"bad tag"}`, http.StatusBadRequest)
	default:
		e.purges <- p
		fmt.Fprintf(w, `{"purged":1,"soft":%v}`, p.Soft)
	}
}

// next waits for the next accepted purge.
func (e *fakeEdge) next(t *testing.T) purge.Message {
	t.Helper()
	select {
	case p := <-e.purges:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("edge %s got no purge", e.addr)
		return purge.Message{}
	}
}

// waitAttempts waits for n more requests to arrive.
func (e *fakeEdge) waitAttempts(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-e.attempts:
		case <-time.After(10 * time.Second):
			t.Fatalf("edge %s got no request", e.addr)
		}
	}
}

// waitFreshAttempt waits until a request that began after this call
// arrived: requests to one edge are sequential, so the second to arrive
// after the ones already there began after the first had its answer.
func (e *fakeEdge) waitFreshAttempt(t *testing.T) {
	t.Helper()
	for len(e.attempts) > 0 {
		<-e.attempts
	}
	e.waitAttempts(t, 2)
}

// cursorStore lets tests wait for the cursors the delivery writes.
type cursorStore struct {
	Store
	mu      sync.Mutex // guards latest and changed
	latest  map[string]int64
	changed chan struct{} // closed and replaced on every write
}

func (c *cursorStore) SetCursor(ctx context.Context, edge string, id int64) error {
	err := c.Store.SetCursor(ctx, edge, id)
	if err == nil {
		c.mu.Lock()
		c.latest[edge] = max(c.latest[edge], id)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	return err
}

// waitCursor waits until edge's cursor reaches id.
func (c *cursorStore) waitCursor(t *testing.T, edge string, id int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		reached, changed := c.latest[edge] >= id, c.changed
		c.mu.Unlock()
		if reached {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("cursor of %s never reached %d", edge, id)
		}
	}
}

// logBuffer collects log lines, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runningOrigin is an origin serving with its background work, as the
// command runs it.
type runningOrigin struct {
	srv   *Server
	store *cursorStore
	reg   *prometheus.Registry
	url   string
	log   *logBuffer
	stop  func() error
}

func startOrigin(t *testing.T, st Store, edit func(*config.Origin)) *runningOrigin {
	t.Helper()
	cfg := config.Default().Origin
	cfg.Token = testToken
	cfg.PurgeToken = testPurgeToken
	cfg.PurgeRetryMin = time.Millisecond
	cfg.PurgeRetryMax = 20 * time.Millisecond
	cfg.PurgePollInterval = time.Hour // only notifications and retries drive it
	if edit != nil {
		edit(&cfg)
	}
	cs := &cursorStore{Store: st, latest: map[string]int64{}, changed: make(chan struct{})}
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, cs, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	o := &runningOrigin{srv: srv, store: cs, reg: reg, url: "http://" + ln.Addr().String(), log: logs}
	var once sync.Once
	var stopErr error
	o.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("Serve did not return")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := o.stop(); err != nil {
			t.Error(err)
		}
	})
	return o
}

// update changes article id's lead through the admin API and returns the
// ID of the purge row it wrote.
func (o *runningOrigin) update(t *testing.T, id int64, lead string) int64 {
	t.Helper()
	body, err := json.Marshal(map[string]string{"lead": lead})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, fmt.Sprintf("%s/api/articles/%d", o.url, id), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT article %d: %d %v", id, resp.StatusCode, err)
	}
	head, _, err := o.store.PurgeHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return head
}

func (o *runningOrigin) failures(edge, reason string) float64 {
	return testutil.ToFloat64(o.srv.delivery.m.failures.WithLabelValues(edge, reason))
}

func TestDeliverySendsEveryChange(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		st := open(t)
		mustSeed(t, st, 10)
		a, b := newFakeEdge(t), newFakeEdge(t)
		o := startOrigin(t, st, func(c *config.Origin) { c.EdgeAdmins = []string{a.addr, b.addr} })
		id := o.update(t, 3, "first")
		for _, e := range []*fakeEdge{a, b} {
			p := e.next(t)
			if !p.Soft || p.All || !slices.Equal(p.Tags, []string{"article:3", "sitemap"}) {
				t.Errorf("edge %s got %+v", e.addr, p)
			}
			o.store.waitCursor(t, e.addr, id)
		}
		id = o.update(t, 4, "second")
		if p := a.next(t); !slices.Contains(p.Tags, "article:4") {
			t.Errorf("second purge %+v", p)
		}
		o.store.waitCursor(t, a.addr, id)
		if got := testutil.ToFloat64(o.srv.delivery.m.deliveries.WithLabelValues(a.addr)); got != 2 {
			t.Errorf("deliveries to %s = %v, want 2", a.addr, got)
		}
	})
}

// withOneEdge starts an origin on a seeded embedded store that delivers
// to one fake edge, which starts in mode.
func withOneEdge(t *testing.T, mode string, edit func(*config.Origin)) (*fakeEdge, *runningOrigin, Store) {
	t.Helper()
	st := NewMemoryStore()
	mustSeed(t, st, 10)
	e := newFakeEdge(t)
	e.set(mode)
	o := startOrigin(t, st, func(c *config.Origin) {
		c.EdgeAdmins = []string{e.addr}
		if edit != nil {
			edit(c)
		}
	})
	return e, o, st
}

func TestDeliveryHardPurge(t *testing.T) {
	e, o, _ := withOneEdge(t, "up", func(c *config.Origin) { c.SoftPurge = false })
	o.update(t, 2, "x")
	if p := e.next(t); p.Soft {
		t.Errorf("soft_purge: false sent %+v", p)
	}
}

// TestDeliveryCatchesUp takes an edge down while articles change: the
// other edge gets its purges at once; the down one, when it returns, gets
// every purge it missed, in order.
func TestDeliveryCatchesUp(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		st := open(t)
		mustSeed(t, st, 10)
		down, up := newFakeEdge(t), newFakeEdge(t)
		down.set("down")
		o := startOrigin(t, st, func(c *config.Origin) { c.EdgeAdmins = []string{down.addr, up.addr} })
		var last int64
		for i := int64(1); i <= 3; i++ {
			last = o.update(t, i, "while down")
			if p := up.next(t); !slices.Contains(p.Tags, fmt.Sprintf("article:%d", i)) {
				t.Errorf("the edge that is up got %+v", p)
			}
		}
		down.waitAttempts(t, 3) // failed and retried
		if o.failures(down.addr, failUnavailable) == 0 {
			t.Error("no unavailable failure counted")
		}
		if c, _, _ := o.store.Cursor(t.Context(), down.addr); c >= last {
			t.Errorf("cursor of the down edge moved to %d", c)
		}
		if !strings.Contains(o.log.String(), "edge unreachable") {
			t.Error("the unreachable edge was not logged")
		}
		down.set("up")
		var tags []string
		for !slices.Contains(tags, "article:3") {
			tags = append(tags, down.next(t).Tags...)
		}
		if i1, i2, i3 := slices.Index(tags, "article:1"), slices.Index(tags, "article:2"), slices.Index(tags, "article:3"); i1 < 0 || i1 > i2 || i2 > i3 {
			t.Errorf("caught-up tags %q: missing or out of order", tags)
		}
		o.store.waitCursor(t, down.addr, last)
	})
}

// TestDeliveryFullPurgeWhenFarBehind: an edge more than purge_max_backlog
// purges behind, or behind pruned rows, gets one full soft purge.
func TestDeliveryFullPurgeWhenFarBehind(t *testing.T) {
	e, o, st := withOneEdge(t, "down", func(c *config.Origin) { c.PurgeMaxBacklog = 2 })
	var last int64
	for i := int64(1); i <= 3; i++ {
		last = o.update(t, i, "x")
	}
	e.waitFreshAttempt(t) // it has seen all three
	e.set("up")
	if p := e.next(t); !p.All || !p.Soft || len(p.Tags) != 0 {
		t.Errorf("far behind: got %+v, want a full soft purge", p)
	}
	o.store.waitCursor(t, e.addr, last)
	if got := testutil.ToFloat64(o.srv.delivery.m.full.WithLabelValues(e.addr)); got != 1 {
		t.Errorf("full purges = %v, want 1", got)
	}

	// Behind pruned rows: also a full purge.
	e.set("down")
	last = o.update(t, 4, "y")
	if err := st.PrunePurges(t.Context(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.waitFreshAttempt(t) // it has seen the pruning
	e.set("up")
	if p := e.next(t); !p.All {
		t.Errorf("behind pruned rows: got %+v, want a full purge", p)
	}
	o.store.waitCursor(t, e.addr, last)
}

// TestDeliveryReportsUnauthorized: an edge that refuses the token is
// logged and counted, its purges stay queued, and they go out once the
// token is accepted.
func TestDeliveryReportsUnauthorized(t *testing.T) {
	e, o, st := withOneEdge(t, "unauthorized", nil)
	last := o.update(t, 5, "x")
	e.waitAttempts(t, 2)
	if o.failures(e.addr, failUnauthorized) == 0 {
		t.Error("lakka_origin_purge_delivery_failures_total{reason=unauthorized} not counted")
	}
	if logs := o.log.String(); !strings.Contains(logs, "does not accept the purge token") || !strings.Contains(logs, "level=ERROR") ||
		strings.Contains(logs, testPurgeToken) {
		t.Errorf("log does not report the refused token as an error (or leaks it):\n%s", logs)
	}
	if c, _, _ := st.Cursor(t.Context(), e.addr); c >= last {
		t.Errorf("cursor moved past an unauthorized purge: %d", c)
	}
	e.set("up")
	if p := e.next(t); !slices.Contains(p.Tags, "article:5") {
		t.Errorf("after the token is accepted: %+v", p)
	}
	o.store.waitCursor(t, e.addr, last)
}

// TestDeliveryRejectedFallsBackToFull: a purge the edge cannot read is
// replaced by a full soft purge, so that later purges do not queue behind
// it forever.
func TestDeliveryRejectedFallsBackToFull(t *testing.T) {
	e, o, _ := withOneEdge(t, "reject-tags", nil)
	last := o.update(t, 6, "x")
	if p := e.next(t); !p.All {
		t.Errorf("after a rejected purge: %+v, want a full purge", p)
	}
	o.store.waitCursor(t, e.addr, last)
	if o.failures(e.addr, failRejected) != 1 {
		t.Errorf("rejected = %v, want 1", o.failures(e.addr, failRejected))
	}
}

// TestDeliveryNewEdgeStartsAtHead: an edge configured after changes were
// made starts at the newest purge, not at the beginning of the outbox.
func TestDeliveryNewEdgeStartsAtHead(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 10)
	title := "before"
	if _, err := st.UpdateArticle(t.Context(), 1, ArticlePatch{Title: &title}); err != nil {
		t.Fatal(err)
	}
	e := newFakeEdge(t)
	o := startOrigin(t, st, func(c *config.Origin) { c.EdgeAdmins = []string{e.addr} })
	o.update(t, 2, "after")
	if p := e.next(t); slices.Contains(p.Tags, "article:1") || !slices.Contains(p.Tags, "article:2") {
		t.Errorf("new edge got %+v", p)
	}
}

func TestMergeRows(t *testing.T) {
	rows := []Purge{{ID: 1, Tags: []string{"a", "b"}}, {ID: 2, Tags: []string{"b", "c"}}, {ID: 3, Tags: []string{"d"}}}
	batch, tags := mergeRows(rows)
	if len(batch) != 3 || !slices.Equal(tags, []string{"a", "b", "c", "d"}) {
		t.Errorf("mergeRows = %d rows, %q", len(batch), tags)
	}
	many := make([]string, batchTags)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	big := []Purge{{ID: 1, Tags: many}, {ID: 2, Tags: []string{"x"}}}
	if batch, tags := mergeRows(big); len(batch) != 1 || len(tags) != batchTags {
		t.Errorf("mergeRows over the tag limit = %d rows, %d tags; want the first row alone", len(batch), len(tags))
	}
	var long []Purge
	for i := range batchRows + 5 {
		long = append(long, Purge{ID: int64(i + 1), Tags: []string{"x"}})
	}
	if batch, _ := mergeRows(long); len(batch) != batchRows {
		t.Errorf("mergeRows of %d rows took %d, want %d", len(long), len(batch), batchRows)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for n, want := range map[int]time.Duration{1: lo, 2: 2 * lo, 3: 4 * lo, 5: 16 * lo, 6: hi, 60: hi} {
		for range 20 {
			if got := backoff(lo, hi, n); got < want/2 || got > want {
				t.Errorf("backoff(%d) = %s, want between %s and %s", n, got, want/2, want)
			}
		}
	}
}
