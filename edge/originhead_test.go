package edge

import (
	"errors"
	"strings"
	"testing"
)

func TestHeadCheck(t *testing.T) {
	f := func(in string, wantOK bool) {
		t.Helper()
		// Every split of the input into two reads gives the same verdict.
		for cut := 0; cut <= len(in); cut++ {
			var h headCheck
			h.start()
			n1, err := h.scan([]byte(in[:cut]))
			if err == nil {
				var n2 int
				n2, err = h.scan([]byte(in[cut:]))
				n1 += n2
			}
			if got := err == nil; got != wantOK {
				t.Fatalf("%q (cut at %d): ok %v, want %v (err %v)", in, cut, got, wantOK, err)
			}
			if err != nil {
				if !errors.Is(err, errOriginFraming) {
					t.Fatalf("%q: error %v is not errOriginFraming", in, err)
				}
				if strings.Contains(in[:n1], "\r\n\r\n") && !strings.HasPrefix(in, "HTTP/1.1 1") {
					t.Fatalf("%q: %d bytes handed on include the end of the head", in, n1)
				}
			} else if n1 != len(in) {
				t.Fatalf("%q: %d bytes handed on, want all %d", in, n1, len(in))
			}
		}
	}
	f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true)
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true)
	f("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", true)
	f("HTTP/1.1 204\r\n\r\n", true)
	f("HTTP/1.1 599 Whatever\r\n\r\n", true)
	f("HTTP/1.1 200 OK\nContent-Length: 0\n\n", true)
	f("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true)
	f("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true)
	// Body bytes after the head are not headers.
	f("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nTransfer-Encoding: chunked\r\n\r\n", true)
	f("HTTP/1.1 200 OK\r\nX-Very-Long-Header-Name-Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", true)

	f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false)
	f("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n", false)
	f("HTTP/1.1 200 OK\r\nContent-Length \t: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false)
	f("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false)
	f("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false)
	f("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", false)
	f("HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\n\r\n", false)
	f("\r\nHTTP/1.1 200 OK\r\n\r\n", false)
	f("HTTP/1.1 000 Zero\r\n\r\n", false)
	f("HTTP/1.1 099 Low\r\n\r\n", false)
	f("HTTP/1.1 101 Switching Protocols\r\n\r\n", false)
	f("HTTP/1.1 600 High\r\n\r\n", false)
	f("HTTP/1.1 2000 OK\r\n\r\n", false)
	f("HTTP/1.1 20 OK\r\n\r\n", false)
	f("HTTP/1.1  200 OK\r\n\r\n", false)
	f("HTTP/2.0 200 OK\r\n\r\n", false)
	f("HTTP/1.2 200 OK\r\n\r\n", false)
	f("http/1.1 200 OK\r\n\r\n", false)
	f("garbage\r\n\r\n", false)
}
