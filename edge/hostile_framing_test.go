package edge

import (
	"strings"
	"testing"
)

// TestRequestFramingHostile adds to TestRequestFraming: request lines and
// chunked bodies that parsers disagree on are refused and the connection
// closed; what is accepted reaches the origin re-framed, so the origin
// cannot read it differently (docs/RELIABILITY.md, promise 2).
func TestRequestFramingHostile(t *testing.T) {
	o := startRecorder(t, fixed("ok", "Cache-Control", "max-age=60"))
	e := startEdge(t, testConfig(o.addr()))
	refused := func(name, req string) {
		t.Helper()
		status, closed := e.raw(req)
		if !strings.HasPrefix(status, "400") || !closed {
			t.Errorf("%s: %q closed=%v, want 400 and the connection closed", name, status, closed)
		}
	}
	refused("LF-only chunk lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n")
	refused("bare LF after the last chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\n\n")
	refused("hex prefix in chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")
	refused("chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n")
	refused("space before chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n")
	refused("framing headers in the trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 5\r\nHost: evil\r\n\r\n")
	refused("empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n")
	refused("double space in the request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("tab in the request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n")
	refused("extra token after the version", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n")
	refused("HTTP/0.9 request line", "GET /\r\nHost: a\r\n\r\n")
	refused("header line starting with a space", "GET / HTTP/1.1\r\nHost: a\r\n X-A: b\r\n\r\n")
	refused("space before the Host colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n")
	refused("space in Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
	refused("empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n")
	refused("Content-Length twice on GET", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n")
	refused("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
	refused("non-http absolute target", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("asterisk target on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("bad escape in the query", "GET /?a=%zz HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("bad method token", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n")
	if n := len(o.requests()); n != 0 {
		t.Errorf("the origin saw %d of the refused requests", n)
	}

	// Accepted: the origin gets the decoded body with its own framing, and
	// a folded header as one line.
	accepted := func(name, req, wantBody, wantXA string) {
		t.Helper()
		before := len(o.requests())
		// Connection: close, so that raw need not wait to see it stay open.
		status, _ := e.raw(strings.Replace(req, "Host: a\r\n", "Host: a\r\nConnection: close\r\n", 1))
		if !strings.HasPrefix(status, "200") {
			t.Errorf("%s: %q, want 200", name, status)
			return
		}
		s := o.requests()
		if len(s) != before+1 {
			t.Errorf("%s: origin saw %d requests, want 1", name, len(s)-before)
			return
		}
		got := s[len(s)-1]
		if got.body != wantBody || got.header.Get("X-A") != wantXA || got.header.Get("Transfer-Encoding") != "" {
			t.Errorf("%s: origin got body %q X-A %q TE %q, want %q %q", name, got.body, got.header.Get("X-A"),
				got.header.Get("Transfer-Encoding"), wantBody, wantXA)
		}
	}
	accepted("chunk extension", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", "hello", "")
	accepted("upper-case chunked", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "hi", "")
	accepted("leading zeros in Content-Length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\nhello", "hello", "")
	accepted("obs-fold is unfolded", "GET /fold HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "", "b c")
	accepted("chunked GET body is not forwarded", "GET /chunked-get HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "", "")
}
