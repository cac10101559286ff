package edge

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// TestSlowReaderKeepsItsBody: a client reads a stored body slowly while
// its object is purged and other objects of the same size churn through
// the slots. The slot it is sent from must not be reused under it: the
// client gets the object's bytes, all of them. Three kinds of slot: a
// mapping of its own (12 MiB: more than the sockets buffer, so the edge is
// still writing it during the churn, which the test checks), a size class
// (100 KiB), and a decoded copy of a gzip-stored body (200 KiB); the
// kernel may take the smaller ones whole, then they check the paths
// that serve them.
func TestSlowReaderKeepsItsBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		html  bool
		churn int
	}{{"own-mapping", 12 << 20, false, 8}, {"size-class", 100 << 10, false, 60}, {"decoded-copy", 200 << 10, true, 60}} {
		t.Run(tc.name, func(t *testing.T) {
			bodies := map[string][]byte{}
			mk := func(p string) {
				r := rand.New(rand.NewPCG(uint64(len(bodies)), 7))
				var b []byte
				if tc.html {
					var sb strings.Builder
					for sb.Len() < tc.size {
						fmt.Fprintf(&sb, "<p>%s %d %d</p>\n", p, r.IntN(1000), sb.Len())
					}
					b = []byte(sb.String()[:tc.size])
				} else {
					b = make([]byte, tc.size)
					for i := range b {
						b[i] = byte(r.IntN(256))
					}
				}
				bodies[p] = b
			}
			for i := range tc.churn {
				mk(fmt.Sprintf("/o%d", i))
			}
			mk("/big")
			o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				if tc.html {
					w.Header().Set("Content-Type", "text/html")
				} else {
					w.Header().Set("Content-Type", "application/octet-stream")
				}
				_, _ = w.Write(bodies[r.URL.Path])
			})
			c := testConfig(o.addr())
			c.Cache.SizeBytes = 64 * config.MiB
			c.Cache.MaxObjectBytes = 16 * config.MiB
			// The client stops reading for as long as the churn takes
			// (a minute under -race on a loaded machine): the edge must
			// not give up on it meanwhile.
			c.Edge.WriteTimeout = 10 * time.Minute
			e := startEdge(t, c)
			e.get("/big")
			e.settle()
			if r := e.get("/big"); r.get("X-Cache") != "HIT" { // for HTML, the decoded copy is kept
				t.Fatalf("second request: X-Cache %q, want HIT", r.get("X-Cache"))
			}
			conn, start := openStalledReader(t, e.Addr(), "/big")
			e.do("PURGE", "/big")
			e.settle()
			if tc.size > 4<<20 {
				// The object left the store; only the body being sent
				// still holds its slot.
				if live := e.store.SlabStats().Live; live < int64(tc.size) {
					t.Fatalf("slots hold %d bytes after the purge: the body was no longer being sent, the test proves nothing", live)
				}
			}
			for range 2 {
				for i := range tc.churn {
					e.get(fmt.Sprintf("/o%d", i))
				}
				e.settle()
			}
			for i := range tc.churn {
				e.get(fmt.Sprintf("/o%d?again", i))
			}
			got := readResponseBody(t, conn, start, tc.size)
			if want := bodies["/big"]; !bytes.Equal(got, want) {
				n := min(len(got), len(want))
				for j := range n {
					if got[j] != want[j] {
						t.Fatalf("body differs at byte %d of %d: %x", j, len(got), got[j:min(j+16, n)])
					}
				}
				t.Fatalf("body of %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// openStalledReader sends GET path on a new connection to addr with a
// small receive buffer and reads until the response header is in: the
// edge is then sending the body, which the caller reads when it wants
// (readResponseBody), or not at all. It returns the connection and what
// was read so far.
func openStalledReader(t *testing.T, addr, path string) (net.Conn, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Small, but not below loopback's MSS (64 KiB): a receiver whose
	// buffer cannot hold a segment never reopens its window.
	if err := conn.(*net.TCPConn).SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path)
	var start []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(start, []byte("\r\n\r\n")) {
		if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading the header: %v", err)
		}
		start = append(start, buf[:n]...)
	}
	return conn, start
}

// readResponseBody reads the rest of a response with a body of size bytes
// from conn, out holding what was read of it already, and returns the
// body.
func readResponseBody(t *testing.T, conn net.Conn, out []byte, size int) []byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := conn.Read(buf)
		out = append(out, buf[:n]...)
		if i := bytes.Index(out, []byte("\r\n\r\n")); i >= 0 && len(out)-i-4 >= size {
			return out[i+4:]
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(out), err)
		}
	}
}
