package backend

import (
	"errors"
	"strings"
	"testing"
)

func TestFramingCheck(t *testing.T) {
	f := func(in string, wantOK bool) {
		t.Helper()
		// Every split of the input into two reads gives the same verdict.
		for cut := 0; cut <= len(in); cut++ {
			var h framingCheck
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
				if !errors.Is(err, ErrFraming) {
					t.Fatalf("%q: error %v is not ErrFraming", in, err)
				}
				if strings.Contains(in[:n1], "\r\n\r\n") && !strings.HasPrefix(in, "HTTP/1.1 1") {
					t.Fatalf("%q: %d bytes handed on include the end of the header", in, n1)
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
	// Body bytes after the header are not headers.
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

// FuzzFramingCheck: the response framing check never hands on more than it was
// given, and its verdict does not depend on how the bytes are split into
// reads.
func FuzzFramingCheck(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 000 X\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		verdict := func(parts ...[]byte) (int, error) {
			var h framingCheck
			h.start()
			total := 0
			for _, p := range parts {
				n, err := h.scan(p)
				if n < 0 || n > len(p) {
					t.Fatalf("scan handed on %d of %d bytes", n, len(p))
				}
				total += n
				if err != nil {
					return total, err
				}
			}
			return total, nil
		}
		k := int(cut) % (len(in) + 1)
		n1, err1 := verdict(in)
		n2, err2 := verdict(in[:k], in[k:])
		if (err1 == nil) != (err2 == nil) || n1 != n2 {
			t.Fatalf("%q: whole %d %v, split at %d: %d %v", in, n1, err1, k, n2, err2)
		}
		if err1 == nil && n1 != len(in) {
			t.Fatalf("%q: accepted but handed on %d bytes", in, n1)
		}
	})
}
