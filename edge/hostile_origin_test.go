package edge

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// hostileConfig is testConfig with short per-phase fetch timeouts, so that
// every broken origin is answered quickly.
func hostileConfig(backend string) config.Config {
	c := testConfig(backend)
	c.Backends.ConnectTimeout = time.Second
	c.Backends.FirstByteTimeout = 300 * time.Millisecond
	c.Backends.BetweenBytesTimeout = 200 * time.Millisecond
	c.Backends.FetchTimeout = time.Second
	c.Backends.MaxResponseHeaderBytes = 8 << 10
	c.Cache.MaxObjectBytes = 64 << 10
	return c
}

// TestHostileOrigin answers the first request of each case with broken or
// hostile bytes (docs/RELIABILITY.md, promises 1, 2 and 5): the client gets a
// 502/504 quickly, nothing is stored, the origin connection is not reused,
// and the next request is served normally.
func TestHostileOrigin(t *testing.T) {
	// framed says the broken answer was framed correctly, so the edge may
	// keep its connection.
	check := func(name string, bad func(conn net.Conn), framed bool, wantStatus ...int) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
				if n == 1 {
					bad(conn)
					return
				}
				writeAll(conn, goodResponse)
			})
			e := startEdge(t, hostileConfig(o.addr()))
			start := time.Now()
			r := e.get("/x")
			took := time.Since(start)
			ok := false
			for _, s := range wantStatus {
				ok = ok || r.status == s
			}
			if !ok {
				t.Errorf("status %d (X-Cache %q, body %q), want one of %v", r.status, r.get("X-Cache"), r.body, wantStatus)
			}
			if took > 3*time.Second {
				t.Errorf("took %s, want a quick answer", took)
			}
			if r.status >= 500 && r.get("X-Cache") != "ERROR" {
				t.Errorf("X-Cache %q, want ERROR", r.get("X-Cache"))
			}
			e.settle()
			r = e.get("/x")
			if r.status != 200 || r.body != "good" {
				t.Fatalf("next request: %d %q, want 200 good", r.status, r.body)
			}
			if r.get("X-Cache") == "HIT" {
				t.Errorf("next request was a HIT: the broken answer was stored")
			}
			if n := o.reqs.Load(); n != 2 {
				t.Errorf("origin saw %d requests, want 2", n)
			}
			if !framed && o.conn(2) == o.conn(1) {
				t.Errorf("the connection that carried the broken answer was reused")
			}
			if r := e.get("/x"); r.get("X-Cache") != "HIT" || r.body != "good" {
				t.Errorf("third request: %q %q, want a HIT of the good answer", r.get("X-Cache"), r.body)
			}
		})
	}
	f := func(name string, bad func(conn net.Conn), wantStatus ...int) {
		t.Helper()
		check(name, bad, false, wantStatus...)
	}
	hang := func(conn net.Conn) {
		// Keep the connection open until the test ends (the edge must time
		// out on its own).
		buf := make([]byte, 1)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Read(buf)
	}
	send := func(s string) func(net.Conn) {
		return func(conn net.Conn) { writeAll(conn, s) }
	}
	sendClose := func(s string) func(net.Conn) {
		return func(conn net.Conn) { writeAll(conn, s); conn.Close() }
	}
	cc := "Cache-Control: max-age=60\r\n"

	f("truncated body", sendClose("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 100\r\n\r\nonly ten!!"), 502)
	f("truncated body, connection kept open", func(conn net.Conn) {
		writeAll(conn, "HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 100\r\n\r\nonly ten!!")
		hang(conn)
	}, 502, 504)
	f("truncated chunked body", sendClose("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), 502)
	f("bad chunk size", sendClose("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 502)
	f("chunk longer than announced", sendClose("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n"), 502)
	f("content-length with transfer-encoding", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("transfer-encoding with content-length", send("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("duplicate content-length", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 502)
	f("same content-length twice", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 502)
	f("bad content-length", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: +5\r\n\r\nhello"), 502)
	f("negative content-length", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: -1\r\n\r\nhello"), 502)
	f("content-length list", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 5, 5\r\n\r\nhello"), 502)
	f("unknown transfer-encoding", send("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("obfuscated transfer-encoding", send("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("two transfer-encodings", send("HTTP/1.1 200 OK\r\n"+cc+"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("http/1.0 with transfer-encoding", sendClose("HTTP/1.0 200 OK\r\n"+cc+"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("space before colon in content-length", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Length : 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 502)
	f("bare CR in a header", send("HTTP/1.1 200 OK\r\n"+cc+"X-A: b\rc\r\nContent-Length: 5\r\n\r\nhello"), 502)
	f("NUL in a header", send("HTTP/1.1 200 OK\r\n"+cc+"X-A: b\x00c\r\nContent-Length: 5\r\n\r\nhello"), 502)
	f("obsolete line folding", send("HTTP/1.1 200 OK\r\n"+cc+"X-A: b\r\n c\r\nContent-Length: 5\r\n\r\nhello"), 502)
	f("header without colon", send("HTTP/1.1 200 OK\r\n"+cc+"garbage line\r\nContent-Length: 5\r\n\r\nhello"), 502)
	f("huge headers", send("HTTP/1.1 200 OK\r\n"+cc+"X-Big: "+strings.Repeat("x", 16<<10)+"\r\nContent-Length: 5\r\n\r\nhello"), 502)
	f("many headers", send("HTTP/1.1 200 OK\r\n"+cc+strings.Repeat("X-A: b\r\n", 4000)+"Content-Length: 5\r\n\r\nhello"), 502)
	f("garbage", sendClose("this is not http at all\r\n\r\n"), 502)
	f("binary garbage", sendClose("\x00\x01\x02\xff\xfe\r\n\r\n"), 502)
	f("status line without status", sendClose("HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 502)
	f("non-numeric status", sendClose("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"), 502)
	f("status 000", send("HTTP/1.1 000 Zero\r\n"+cc+"Content-Length: 4\r\n\r\nzero"), 502)
	f("status 099", send("HTTP/1.1 099 Low\r\n"+cc+"Content-Length: 4\r\n\r\nzero"), 502)
	f("status 600", send("HTTP/1.1 600 High\r\n"+cc+"Content-Length: 4\r\n\r\nhigh"), 502)
	f("status 999", send("HTTP/1.1 999 High\r\n"+cc+"Content-Length: 4\r\n\r\nhigh"), 502)
	f("four-digit status", sendClose("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"), 502)
	f("unknown protocol", sendClose("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 502)
	f("101 switching protocols", send("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), 502)
	f("final 1xx with a body", send("HTTP/1.1 103 Early Hints\r\n"+cc+"Content-Length: 4\r\n\r\nhint"), 200, 502, 504)
	// A fresh connection that fails is not retried (docs/RELIABILITY.md, promise 6).
	f("empty answer", sendClose(""), 502)
	f("reset before the headers", func(conn net.Conn) {
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}, 502)
	f("reset mid-body", func(conn net.Conn) {
		writeAll(conn, "HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 100\r\n\r\nfirst part")
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}, 502)
	f("reset mid-headers", func(conn net.Conn) {
		writeAll(conn, "HTTP/1.1 200 OK\r\n"+cc+"Content-Le")
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}, 502)
	f("no answer", hang, 504)
	f("slow-loris headers", func(conn net.Conn) {
		head := "HTTP/1.1 200 OK\r\n" + cc + "X-Slow: " + strings.Repeat("x", 100)
		dribble(conn, head[:40], 50*time.Millisecond)
		hang(conn)
	}, 504)
	f("slow-loris body", func(conn net.Conn) {
		writeAll(conn, "HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 1000\r\n\r\n")
		dribble(conn, strings.Repeat("x", 40), 50*time.Millisecond)
	}, 502, 504)
	f("body stops", func(conn net.Conn) {
		writeAll(conn, "HTTP/1.1 200 OK\r\n"+cc+"Content-Length: 1000\r\n\r\nsome")
		hang(conn)
	}, 502, 504)
	check("304 to an unconditional request", send("HTTP/1.1 304 Not Modified\r\n"+cc+"ETag: \"x\"\r\n\r\n"), true, 502)
	// Answers with more bytes than their framing says: the rest must not
	// become the answer to the next request on the connection.
	evil := "HTTP/1.1 200 OK\r\n" + cc + "Content-Length: 4\r\n\r\nevil"
	check("204 with a body", send("HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\n\r\n"+evil), true, 204)
	check("304 with a body", send("HTTP/1.1 304 Not Modified\r\n"+cc+"\r\n"+evil), true, 502)
	check("more bytes than Content-Length", send("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok"+evil), true, 200)
	check("bytes after the last chunk", send("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"+evil), true, 200)
	check("bad gzip", send("HTTP/1.1 200 OK\r\n"+cc+"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!"), true, 502)
}

// TestOriginRetryOnlyReusedConnection checks when the edge sends a fetch
// again (docs/RELIABILITY.md, promise 6). A pooled connection the origin closed
// while idle is found closed before anything is written on it, so any
// request goes on a new connection. A reused connection closed after the
// request was written but before any answer byte (the keep-alive race) is
// retried for GET and HEAD only. A fresh connection that fails, or an
// answer cut after its first byte, is never retried (TestHostileOrigin).
func TestOriginRetryOnlyReusedConnection(t *testing.T) {
	// dropSecond: the origin reads request 2 and closes without answering;
	// otherwise it closes the connection after answering request 1.
	f := func(name, method string, dropSecond bool, wantStatus int, wantReqs int64) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
				if dropSecond && n == 2 {
					conn.Close()
					return
				}
				writeAll(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok")
				if !dropSecond && n == 1 {
					conn.Close() // while the edge thinks the connection idles
				}
			})
			e := startEdge(t, hostileConfig(o.addr()))
			if r := e.do(method, "/first"); r.status != 200 {
				t.Fatalf("first: %d", r.status)
			}
			if !dropSecond {
				eventually(t, "the origin to close the idle connection", func() bool {
					o.mu.Lock()
					defer o.mu.Unlock()
					return len(o.conns) == 0
				})
			}
			r := e.do(method, "/second")
			if r.status != wantStatus {
				t.Errorf("second: %d, want %d", r.status, wantStatus)
			}
			if n := o.reqs.Load(); n != wantReqs {
				t.Errorf("origin saw %d requests, want %d", n, wantReqs)
			}
		})
	}
	f("GET on a connection closed while idle", http.MethodGet, false, 200, 2)
	f("HEAD on a connection closed while idle", http.MethodHead, false, 200, 2)
	f("POST on a connection closed while idle", http.MethodPost, false, 200, 2)
	f("GET dropped after it was written", http.MethodGet, true, 200, 3)
	f("HEAD dropped after it was written", http.MethodHead, true, 200, 3)
	f("POST dropped after it was written", http.MethodPost, true, 502, 2)
	f("DELETE dropped after it was written", http.MethodDelete, true, 502, 2)
}

// TestOriginUnsolicitedBytes: bytes an origin sends on an idle keep-alive
// connection (a body on a 204, a second answer to one request) arrive
// after the edge finished reading the answer. They must not be read as the
// answer to the next request sent on that connection (response queue
// poisoning): the edge does not reuse a connection with unread bytes.
func TestOriginUnsolicitedBytes(t *testing.T) {
	f := func(name, first, extra string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sendExtra := make(chan struct{})
			extraSent := make(chan struct{})
			o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
				if n == 1 {
					writeAll(conn, first)
					<-sendExtra
					writeAll(conn, extra)
					close(extraSent)
					return
				}
				writeAll(conn, goodResponse)
			})
			e := startEdge(t, hostileConfig(o.addr()))
			e.get("/first")
			close(sendExtra)
			<-extraSent
			// On loopback the extra bytes are in the edge's receive buffer
			// once the origin's write returned.
			for i := range 3 {
				r := e.get(fmt.Sprintf("/next%d", i))
				if r.body == "evil" || r.status != 200 || r.body != "good" {
					t.Errorf("request %d after the extra bytes: %d %q (X-Cache %s), want 200 good", i, r.status, r.body, r.get("X-Cache"))
				}
			}
		})
	}
	evil := "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\nevil"
	f("204 then a body", "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\n\r\n", evil)
	f("second answer", "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok", evil)
	f("garbage after the answer", "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok", "garbage\r\n\r\n")
}

// TestOriginDateValidated: the origin's Date is kept when it is an
// HTTP-date; a blank or garbage one is replaced by the edge's own, on
// misses, hits and relayed answers (RFC 9110 §6.6.1), so that clients
// always get a usable Date.
func TestOriginDateValidated(t *testing.T) {
	good := "Mon, 02 Jan 2006 15:04:05 GMT"
	for _, tc := range []struct{ name, date, cc string }{
		{"valid", good, "max-age=60"},
		{"valid, relayed", good, "no-store"},
		{"blank", " ", "max-age=60"},
		{"blank, relayed", " ", "no-store"},
		{"garbage", "yesterday", "max-age=60"},
		{"garbage, relayed", "yesterday", "no-store"},
		{"empty", "", "max-age=60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
				writeAll(conn, "HTTP/1.1 200 OK\r\nDate: "+tc.date+"\r\nCache-Control: "+tc.cc+"\r\nContent-Length: 2\r\n\r\nok")
			})
			e := startEdge(t, hostileConfig(o.addr()))
			for i := range 2 {
				r := e.get("/d")
				got := r.get("Date")
				if _, err := http.ParseTime(got); err != nil {
					t.Errorf("request %d (%s): Date %q is not an HTTP-date", i, r.get("X-Cache"), got)
				}
				if tc.date == good && got != good {
					t.Errorf("request %d (%s): Date %q, want the origin's %q", i, r.get("X-Cache"), got, good)
				}
				e.settle()
			}
		})
	}
}

// TestOriginGzipBomb: a small gzip body that decodes to far more than the
// edge allows is not stored and not decoded for clients; gzip clients of a
// no-store answer get the origin's bytes as they are.
func TestOriginGzipBomb(t *testing.T) {
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zeros := make([]byte, 1<<20)
	for range 16 { // 16 MiB of zeros, about 16 KiB compressed
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	bomb := zbuf.String()
	o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
		cc := "max-age=60"
		if strings.HasPrefix(req.URL.Path, "/nostore") {
			cc = "no-store"
		}
		writeAll(conn, fmt.Sprintf("HTTP/1.1 200 OK\r\nCache-Control: %s\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", cc, len(bomb), bomb))
	})
	e := startEdge(t, hostileConfig(o.addr())) // max_object_bytes 64 KiB: decoded at most 512 KiB
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, tc := range []struct {
		path, ae   string
		wantStatus int
	}{
		{"/bomb", "gzip", 502},
		{"/bomb", "", 502},
		{"/nostore", "", 502},
		{"/nostore-gz", "gzip", 200},
	} {
		for i := range 2 {
			r := e.get(tc.path, "Accept-Encoding", tc.ae)
			if r.status != tc.wantStatus || r.get("X-Cache") == "HIT" {
				t.Errorf("%s (Accept-Encoding %q) request %d: %d %s, want %d", tc.path, tc.ae, i, r.status, r.get("X-Cache"), tc.wantStatus)
			}
			if r.status == 200 && r.body != bomb {
				t.Errorf("%s: a gzip client did not get the origin's bytes", tc.path)
			}
			e.settle()
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("the edge allocated %d MiB for 16 KiB bombs", grew>>20)
	}
}

// TestOriginEndlessBody: an origin that never ends its body (chunks
// forever) is streamed to the client (it is too large to store) and cut by
// backends.fetch_timeout; nothing is stored, the fetch slot is released,
// and the edge keeps serving.
func TestOriginEndlessBody(t *testing.T) {
	o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
		if req.URL.Path != "/endless" {
			writeAll(conn, goodResponse)
			return
		}
		writeAll(conn, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 4096, strings.Repeat("e", 4096))
		for range 1 << 16 { // at most 256 MiB; the edge hangs up long before
			if _, err := conn.Write([]byte(chunk)); err != nil {
				return
			}
		}
		conn.Close()
	})
	c := hostileConfig(o.addr())
	c.Backends.MaxFetches = 1
	c.Backends.QueueTimeout = 3 * time.Second
	e := startEdge(t, c)
	for i := range 2 {
		start := time.Now()
		resp, err := client.Get(e.url + "/endless")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("request %d: an endless body ended cleanly after %d bytes", i, n)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("request %d: took %s (fetch_timeout %s)", i, d, c.Backends.FetchTimeout)
		}
		if resp.Header.Get("X-Cache") == "HIT" {
			t.Errorf("request %d: served from cache", i)
		}
		e.settle()
	}
	if r := e.get("/good"); r.status != 200 || r.body != "good" {
		t.Errorf("after the endless bodies: %d %q", r.status, r.body)
	}
}

// TestOriginInterimResponses: informational answers before the final one
// (100 Continue, 103 Early Hints) are consumed; the final answer is served
// and stored, without the interim answers' fields.
func TestOriginInterimResponses(t *testing.T) {
	o := startRawOrigin(t, func(n int64, conn net.Conn, req *http.Request) {
		writeAll(conn, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </evil.css>; rel=preload\r\n\r\n"+goodResponse)
	})
	e := startEdge(t, hostileConfig(o.addr()))
	for i, want := range []string{"MISS", "HIT"} {
		r := e.get("/i")
		if r.status != 200 || r.body != "good" || r.get("X-Cache") != want {
			t.Errorf("request %d: %d %q %s, want 200 good %s", i, r.status, r.body, r.get("X-Cache"), want)
		}
		if r.get("Link") != "" {
			t.Errorf("request %d: the 103's Link reached the client: %q", i, r.get("Link"))
		}
		e.settle()
	}
}
