package edge

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// TestBodyBudgetFullStreamsThrough fills cache.inflight_bytes with one
// slow storable body and checks that other misses are neither buffered nor
// refused meanwhile: their bodies, of known length or chunked, are streamed
// through whole, marked detail=body-budget and not stored (nor remembered
// as uncacheable: once the budget has room, the next request stores them).
func TestBodyBudgetFullStreamsThrough(t *testing.T) {
	const slowSize, otherSize = 200 << 10, 100 << 10
	slowBody := strings.Repeat("s", slowSize)
	otherBody := bytes.Repeat([]byte("0123456789abcdef"), otherSize/16)
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "max-age=60")
		switch r.URL.Path {
		case "/slow":
			w.Header().Set("Content-Length", strconv.Itoa(slowSize))
			io.WriteString(w, slowBody[:slowSize/2])
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, slowBody[slowSize/2:])
		case "/chunked":
			for i := 0; i < len(otherBody); i += 10 << 10 {
				w.Write(otherBody[i : i+10<<10])
				w.(http.Flusher).Flush()
			}
		default:
			w.Header().Set("Content-Length", strconv.Itoa(otherSize))
			w.Write(otherBody)
		}
	})
	c := testConfig(o.addr())
	c.Cache.MaxObjectBytes = 256 * config.KiB
	c.Cache.InflightBytes = 512 * config.KiB // /slow's storable share: 2 x 256 KiB
	c.Cache.InflightWait = 50 * time.Millisecond
	e := startEdge(t, c)
	if got := e.abs.bodies.Size(); got != 512<<10 {
		t.Fatalf("budget %d bytes, want %d (cache.inflight_bytes)", got, 512<<10)
	}

	slow := make(chan response, 1)
	go func() { slow <- doURL(t, http.MethodGet, e.url+"/slow", "") }()
	deadline := time.Now().Add(5 * time.Second)
	for e.abs.bodies.Used() != 512<<10 {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("the slow body holds %d bytes of the budget, want all %d", e.abs.bodies.Used(), 512<<10)
		}
		time.Sleep(5 * time.Millisecond)
	}

	for _, path := range []string{"/other", "/chunked"} {
		r := e.get(path)
		if r.status != 200 || r.body != string(otherBody) {
			t.Errorf("%s while the budget is full: status %d, %d bytes; want 200 and the whole %d", path, r.status, len(r.body), otherSize)
		}
		if got := r.get("Cache-Status"); got != "lakka; fwd=miss; detail=body-budget" {
			t.Errorf("%s: Cache-Status %q, want detail=body-budget", path, got)
		}
	}
	if got := counter(e.m.notStored.WithLabelValues("body-budget")); got != 2 {
		t.Errorf("not stored for the budget: %v, want 2", got)
	}
	if got := e.abs.bodies.Refused(); got < 2 {
		t.Errorf("refusals counted %d, want at least 2", got)
	}

	close(release)
	if r := <-slow; r.status != 200 || r.body != slowBody || !strings.HasSuffix(r.get("Cache-Status"), "stored") {
		t.Fatalf("/slow: status %d, %d bytes, Cache-Status %q; want 200, %d bytes, stored", r.status, len(r.body), r.get("Cache-Status"), slowSize)
	}
	if got := e.abs.bodies.Used(); got != 0 {
		t.Errorf("%d bytes of the budget still taken after the fetches ended", got)
	}
	for _, path := range []string{"/other", "/chunked"} {
		if r := e.get(path); r.get("X-Cache") != "MISS" || !strings.HasSuffix(r.get("Cache-Status"), "stored") || r.body != string(otherBody) {
			t.Errorf("%s once there is room: X-Cache %s, Cache-Status %q; want a stored MISS", path, r.get("X-Cache"), r.get("Cache-Status"))
		}
		if r := e.get(path); r.get("X-Cache") != "HIT" || r.body != string(otherBody) {
			t.Errorf("%s after it was stored: X-Cache %s, want HIT", path, r.get("X-Cache"))
		}
	}
}

// TestBodyBudgetRelayedBodyHoldsItsShare checks that a body the edge read
// and relays without storing (no-store) keeps its share of the budget
// until the client has it, and gives it back then. 12 MiB: more than the
// sockets buffer, so the edge is still writing it while the client reads
// nothing (as in TestSlowReaderKeepsItsBody).
func TestBodyBudgetRelayedBodyHoldsItsShare(t *testing.T) {
	const size = 12 << 20
	body := bytes.Repeat([]byte("no-store body. "), size/15+1)[:size]
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	})
	c := testConfig(o.addr())
	c.Cache.MaxObjectBytes = 16 * config.MiB
	e := startEdge(t, c)
	share := bodyBufSize(size) // not storable: once

	conn, start := openStalledReader(t, e.Addr(), "/nostore")
	// The origin's part is over (the edge read the body whole); the
	// client's is not.
	time.Sleep(200 * time.Millisecond)
	if got := e.abs.bodies.Used(); got != share {
		t.Fatalf("a relayed body the client has not read holds %d bytes of the budget, want %d", got, share)
	}
	if got := readResponseBody(t, conn, start, size); !bytes.Equal(got, body) {
		t.Fatalf("relayed body: %d bytes, or different bytes; want the origin's %d", len(got), size)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.abs.bodies.Used() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the budget still taken after the client read its body", e.abs.bodies.Used())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
