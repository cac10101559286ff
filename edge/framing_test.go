package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRequestFraming sends requests whose framing is ambiguous or broken
// (docs/RELIABILITY.md, promise 2): each gets 400 and the connection is closed; the
// origin sees none of them.
func TestRequestFraming(t *testing.T) {
	o := startOrigin(t, fixed("ok", "Cache-Control", "max-age=60"))
	e := startEdge(t, testConfig(o.addr()))
	f := func(name, req string) {
		t.Helper()
		status, closed := e.raw(req)
		if !strings.HasPrefix(status, "400") {
			t.Errorf("%s: status %q, want 400", name, status)
		}
		if !closed {
			t.Errorf("%s: connection left open", name)
		}
	}
	f("content-length with transfer-encoding",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	f("transfer-encoding with content-length",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n")
	f("duplicate content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
	f("same content-length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab")
	f("bad content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nab")
	f("obfuscated transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n")
	f("transfer-encoding list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n")
	f("two transfer-encodings", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	f("bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n")
	f("space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n")
	f("bare CR in header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n")
	f("missing host", "GET / HTTP/1.1\r\n\r\n")
	f("duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	f("bad host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")
	f("fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n")
	f("bad escape in target", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n")
	f("http/1.0 with transfer-encoding", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	f("userinfo in absolute target", "GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n")
	if n := o.hits.Load(); n != 0 {
		t.Errorf("origin saw %d of the bad requests", n)
	}
}

func TestLimits(t *testing.T) {
	o := startOrigin(t, fixed("ok", "Cache-Control", "max-age=60"))
	c := testConfig(o.addr())
	c.Edge.MaxHeaderBytes = 4096
	c.Edge.MaxURIBytes = 1024
	c.Edge.MaxRequestBodyBytes = 100
	e := startEdge(t, c)
	f := func(name, req, want string) {
		t.Helper()
		status, closed := e.raw(req)
		if !strings.HasPrefix(status, want) {
			t.Errorf("%s: status %q, want %s", name, status, want)
		}
		if !closed {
			t.Errorf("%s: connection left open", name)
		}
	}
	f("header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("x", 5000)+"\r\n\r\n", "431")
	f("uri too long", "GET /"+strings.Repeat("a", 2000)+" HTTP/1.1\r\nHost: a\r\n\r\n", "414")
	f("body too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n"+strings.Repeat("b", 101), "413")
	// None of these errors are stored: the next reader gets the page.
	if r := e.get("/"); r.status != 200 {
		t.Errorf("after the errors: %d", r.status)
	}
}

// TestBodyDrainedOnHit checks that a request body sent with a cached GET is
// consumed, so the next request on the connection is read correctly.
func TestBodyDrainedOnHit(t *testing.T) {
	o := startOrigin(t, fixed("page", "Cache-Control", "max-age=60"))
	e := startEdge(t, testConfig(o.addr()))
	e.get("/p")
	e.settle()
	conn, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// The body "GET /smuggled ..." must not be read as a request.
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	fmt.Fprintf(conn, "GET /p HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%sGET /p HTTP/1.1\r\nHost: %s\r\n\r\n", e.Addr(), len(smuggled), smuggled, e.Addr())
	br := bufio.NewReader(conn)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "page" {
			t.Errorf("response %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if last := o.last.Load(); last.URL.Path == "/smuggled" {
		t.Errorf("the body was read as a request")
	}
	// The GET body is not forwarded to the origin either.
	e.get("/q", "Content-Type", "text/plain")
}

func TestAbsoluteFormUsesItsHost(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "host=%s path=%s", r.Host, r.URL.RequestURI())
	})
	e := startEdge(t, testConfig(o.addr()))
	conn, err := net.Dial("tcp", e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET http://Real.Example:80/x HTTP/1.1\r\nHost: evil.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "host=real.example path=/x" {
		t.Errorf("origin saw %q, want the absolute-form host, normalised", b)
	}
	// Stored under real.example, not evil.example.
	if r := e.get("/x", "Host", "real.example"); r.get("X-Cache") != "HIT" {
		t.Errorf("real.example/x: %q, want HIT", r.get("X-Cache"))
	}
	if r := e.get("/x", "Host", "evil.example"); r.get("X-Cache") == "HIT" {
		t.Errorf("evil.example/x was a HIT: stored under the wrong key")
	}
}

func TestParseErrorsCarryXCache(t *testing.T) {
	o := startOrigin(t, fixed("ok"))
	c := testConfig(o.addr())
	c.Edge.MaxHeaderBytes = 4096
	c.Edge.MaxURIBytes = 1024
	e := startEdge(t, c)
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 5000) + "\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(conn, req)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("X-Cache") != "ERROR" || resp.Header.Get("Date") == "" {
			t.Errorf("%d answer: X-Cache %q Date %q", resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Date"))
		}
	}
}

// TestOversizedRequestSeesItsStatus: a client still sending a request
// header far over edge.max_header_bytes (or a body over the limit) reads
// the 431 (413) the edge answers instead of a connection reset: the edge
// shuts its side, then reads and discards what the client still sends
// (lingering close).
func TestOversizedRequestSeesItsStatus(t *testing.T) {
	o := startOrigin(t, fixed("ok", "Cache-Control", "max-age=60"))
	c := testConfig(o.addr())
	c.Edge.MaxHeaderBytes = 8 << 10
	c.Edge.MaxRequestBodyBytes = 1 << 10
	e := startEdge(t, c)
	f := func(name, head string, rest int, want string) {
		t.Helper()
		conn, br := e.dial()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		// A small send buffer keeps the client writing well after the
		// edge has answered (the edge's receive buffer holds ~128 KiB).
		if err := conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
			t.Fatal(err)
		}
		sent := make(chan error, 1)
		go func() {
			// The client keeps writing while the edge answers.
			_, err := conn.Write(append([]byte(head), bytes.Repeat([]byte("x"), rest)...))
			sent <- err
		}()
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Errorf("%s: read %q, %v; want %q", name, line, err, want)
		}
		if err := <-sent; err != nil {
			t.Errorf("%s: the client's write failed: %v", name, err)
		}
	}
	f("600 KB header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", 600<<10, "HTTP/1.1 431")
	f("600 KB body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 614400\r\n\r\n", 600<<10, "HTTP/1.1 413")
}
