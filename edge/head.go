package edge

import (
	"bufio"
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// headReader parses a small response head into a fasthttp ResponseHeader.
//
// fasthttp manages Date itself: setting it through the header API is
// ignored, and with Server.NoDefaultDate it sends none. The only way to
// send the origin's Date (RELIABILITY promise 9) is for it to arrive the
// way parsed headers do, so every response starts by parsing
// "HTTP/1.1 <status>\r\nContent-Length: 0\r\nDate: <date>\r\n\r\n" into
// the response header (which keeps the server's NoDefaultDate); the other
// headers are added after. The buffers are per request and reused.
type headReader struct {
	block []byte
	rd    bytes.Reader
	br    *bufio.Reader
}

// start resets h to status and date (an HTTP date; the current time when
// empty).
func (hr *headReader) start(h *fasthttp.ResponseHeader, status int, date []byte, now time.Time) {
	b := append(hr.block[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(status)...)
	b = append(b, "\r\nContent-Length: 0\r\nDate: "...)
	if len(date) > 0 && validDate(date) {
		b = append(b, date...)
	} else {
		b = cachepolicy.AppendHTTPDate(b, now)
	}
	b = append(b, "\r\n\r\n"...)
	hr.block = b
	hr.rd.Reset(b)
	if hr.br == nil {
		hr.br = bufio.NewReaderSize(&hr.rd, 256)
	} else {
		hr.br.Reset(&hr.rd)
	}
	if err := h.Read(hr.br); err != nil {
		// Only our own bytes are parsed here.
		panic("BUG: edge: parse response head " + strconv.Quote(string(b)) + ": " + err.Error())
	}
	h.SetContentLength(0)
}

// validDate reports whether a Date value is safe to place in a header
// line: printable ASCII only.
func validDate(b []byte) bool {
	if len(b) > 64 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
