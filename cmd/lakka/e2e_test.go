package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge"
	"github.com/lakka-cache/lakka/origin"
)

// The end-to-end test: an origin and an edge on loopback, in this process.
// A reader gets an article through the edge (cached), an editor updates it
// through the origin's API, and the edge serves the new version within one
// second: the origin's outbox delivered a soft purge of the article's tag.
// Then the same with the edge stopped during the update and started again.

const (
	e2eAdminToken = "e2e-origin-token"
	e2ePurgeToken = "e2e-purge-token"
	freshWithin   = time.Second
)

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// e2eEdge is an edge node running in this process.
type e2eEdge struct {
	srv  *edge.Server
	stop context.CancelFunc
	done chan error
}

// startEdge starts an edge in front of backend, on listen and admin
// (127.0.0.1:0 for new ports).
func startEdge(t *testing.T, backend, listen, admin string) *e2eEdge {
	t.Helper()
	return startEdgeConfig(t, e2eConfig(backend, listen, admin))
}

// e2eConfig is the configuration of the tests' in-process edges.
func e2eConfig(backend, listen, admin string) config.Config {
	c := config.Default()
	c.Edge.Listen, c.Edge.Admin = listen, admin
	c.Edge.DrainDelay = 0
	c.Edge.ShutdownTimeout = 5 * time.Second
	c.Log.Access = "off"
	c.Cache.SizeBytes = 64 * config.MiB
	c.Cache.MaxObjectBytes = config.MiB
	c.Purge.Token = e2ePurgeToken
	c.Backends.Servers = []config.Backend{{Address: backend}}
	return c
}

// startEdgeConfig starts an in-process edge with c until the test ends.
func startEdgeConfig(t *testing.T, c config.Config) *e2eEdge {
	t.Helper()
	srv, err := edge.New(c, testLog(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &e2eEdge{srv: srv, stop: cancel, done: make(chan error, 1)}
	go func() { e.done <- srv.Run(ctx) }()
	t.Cleanup(func() { e.shutdown(t) })
	return e
}

func (e *e2eEdge) shutdown(t *testing.T) {
	e.stop()
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("edge: %v", err)
		}
		e.done <- nil // later calls return at once
	case <-time.After(30 * time.Second):
		t.Fatal("edge did not stop")
	}
}

// read GETs url and returns the status, X-Cache and X-Content-Version.
func read(t *testing.T, url string) (int, string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.Atoi(resp.Header.Get("X-Content-Version"))
	return resp.StatusCode, resp.Header.Get("X-Cache"), v
}

// cached reads url through the edge until it is served from cache.
func cached(t *testing.T, url string, version int) {
	t.Helper()
	for range 5 {
		status, xcache, v := read(t, url)
		if status != 200 || v != version {
			t.Fatalf("GET %s: %d version %d, want 200 version %d", url, status, v, version)
		}
		if xcache == "HIT" {
			return
		}
	}
	t.Fatalf("GET %s: never a HIT", url)
}

// servesWithin reads url until the edge serves version, and fails if that
// takes longer than limit after since.
func servesWithin(t *testing.T, url string, version int, since time.Time, limit time.Duration) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		status, xcache, v := read(t, url)
		if status == 200 && v == version {
			t.Logf("version %d through the edge (%s) %s after the update", version, xcache, time.Since(since).Round(time.Millisecond))
			return
		}
		if time.Since(since) > limit {
			t.Fatalf("the edge still serves version %d (%s) %s after the update, want %d within %s", v, xcache, time.Since(since), version, limit)
		}
		<-tick.C
	}
}

func updateArticle(t *testing.T, originURL string, id int64, title string) int {
	t.Helper()
	resp, body := httpDo(t, "PUT", fmt.Sprintf("%s/api/articles/%d", originURL, id), `{"title":"`+title+`"}`,
		"Authorization", "Bearer "+e2eAdminToken, "Content-Type", "application/json")
	var a struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT article %d: %d %s", id, resp.StatusCode, body)
	}
	return a.Version
}

func TestEndToEndEdgeServesUpdates(t *testing.T) {
	t.Setenv("LAKKA_PURGE_TOKEN", e2ePurgeToken) // the edge reads it too
	ctx := context.Background()
	st := origin.NewMemoryStore()
	if _, err := st.Seed(ctx, 50); err != nil {
		t.Fatal(err)
	}
	a, err := st.Article(ctx, 12)
	if err != nil {
		t.Fatal(err)
	}

	// The origin's listener first: the edge needs its address, the origin
	// the edge's admin address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, ln.Addr().String(), "127.0.0.1:0", "127.0.0.1:0")
	edgeAddr, adminAddr := e.srv.Addr(), e.srv.AdminAddr()
	serveE2EOrigin(t, st, ln, adminAddr)
	originURL := "http://" + ln.Addr().String()
	page := "http://" + edgeAddr + a.URL

	// Read through the edge until cached, update, read the new version.
	cached(t, page, 1)
	cached(t, "http://"+edgeAddr+"/", 0)
	v := updateArticle(t, originURL, a.ID, a.Title+" (updated)")
	servesWithin(t, page, v, time.Now(), freshWithin)

	// The edge stopped during the update: the purge waits in the outbox
	// and reaches the edge when it is back on the same addresses.
	cached(t, page, v)
	e.shutdown(t)
	v = updateArticle(t, originURL, a.ID, a.Title+" (updated again)")
	startEdge(t, ln.Addr().String(), edgeAddr, adminAddr)
	servesWithin(t, page, v, time.Now(), freshWithin)
	cached(t, page, v)

	// Delivery to the restarted edge works: another update reaches its
	// cached copy through a purge, within a second.
	start := time.Now()
	v = updateArticle(t, originURL, a.ID, a.Title+" (third)")
	servesWithin(t, page, v, start, freshWithin)
}

// partition forwards TCP connections to a target until cut: while cut, it
// closes every new connection at once, as an unreachable edge looks to the
// origin's purge delivery.
type partition struct {
	ln  net.Listener
	cut atomic.Bool
}

func newPartition(t *testing.T, target string) *partition {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.cut.Load() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

// TestEndToEndUnreachableEdgeCatchesUp: an edge the origin cannot reach
// keeps serving its cached copy; the purge waits in the outbox and, when
// the edge is reachable again, the edge serves the new version within a
// second.
func TestEndToEndUnreachableEdgeCatchesUp(t *testing.T) {
	t.Setenv("LAKKA_PURGE_TOKEN", e2ePurgeToken)
	ctx := context.Background()
	st := origin.NewMemoryStore()
	if _, err := st.Seed(ctx, 20); err != nil {
		t.Fatal(err)
	}
	a, err := st.Article(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, ln.Addr().String(), "127.0.0.1:0", "127.0.0.1:0")
	link := newPartition(t, e.srv.AdminAddr())
	serveE2EOrigin(t, st, ln, link.ln.Addr().String())
	originURL := "http://" + ln.Addr().String()
	page := "http://" + e.srv.Addr() + a.URL

	cached(t, page, 1)
	link.cut.Store(true)
	// A new lead, not a new title: the URL (built from the title) stays.
	resp, body := httpDo(t, "PUT", fmt.Sprintf("%s/api/articles/%d", originURL, a.ID), `{"lead":"Corrected while the edge was unreachable."}`,
		"Authorization", "Bearer "+e2eAdminToken, "Content-Type", "application/json")
	var upd struct {
		Version int    `json:"version"`
		URL     string `json:"url"`
	}
	if err := json.Unmarshal([]byte(body), &upd); err != nil || resp.StatusCode != 200 || upd.URL != a.URL {
		t.Fatalf("PUT lead: %d %s", resp.StatusCode, body)
	}
	v := upd.Version
	// The article's max-age is minutes: cut off, the edge keeps its copy.
	if _, xcache, got := read(t, page); got != 1 || xcache != "HIT" {
		t.Fatalf("while unreachable: version %d (%s), want the cached version 1", got, xcache)
	}
	restored := time.Now()
	link.cut.Store(false)
	servesWithin(t, page, v, restored, freshWithin)
	// Same URL: the new version came from the purge (soft: served stale
	// once, refreshed in the background), not from a redirect.
	if _, xcache, got := read(t, page); got != v || xcache != "HIT" {
		t.Errorf("after catching up: version %d (%s), want %d HIT", got, xcache, v)
	}
}

// serveE2EOrigin serves an origin on st and ln that delivers its purges to
// the edge admin address, retrying fast; it stops when the test ends.
func serveE2EOrigin(t *testing.T, st origin.Store, ln net.Listener, edgeAdmin string) {
	t.Helper()
	oc := config.Default().Origin
	oc.PurgeToken = e2ePurgeToken
	oc.EdgeAdmins = []string{edgeAdmin}
	serveOrigin(t, st, ln, oc, nil)
}

// serveOrigin serves an origin with oc (its admin token set, retries made
// fast) on st and ln, publishing on pub when it is not nil; it stops when
// the test ends.
func serveOrigin(t *testing.T, st origin.Store, ln net.Listener, oc config.Origin, pub origin.Publisher) {
	t.Helper()
	oc.Token = e2eAdminToken
	oc.PurgeRetryMin, oc.PurgeRetryMax = 10*time.Millisecond, 100*time.Millisecond
	srv, err := origin.New(oc, st, testLog(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if pub != nil {
		srv.UseBus(pub)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("origin: %v", err)
		}
	})
}
