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
// "HTTP/1.1 <status>\r\nDate: <date>\r\n\r\n" into
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
	// No Content-Length line: fasthttp sends the body's length, and a
	// parsed "Content-Length: 0" would go out as is on a 304 (where it
	// must be the 200's length or absent, RFC 9110 §8.6). Parsing a head
	// without one marks the connection for closing; that is undone below.
	b = append(b, "\r\nDate: "...)
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
	h.ResetConnectionClose()
	if status != fasthttp.StatusNotModified && status != fasthttp.StatusNoContent && status >= 200 {
		h.SetContentLength(0)
	}
}

// validDate reports whether a Date value is safe to place in a header
// line: printable ASCII only, not blank at either end (fasthttp would trim
// it to nothing, and the response would go out without a Date).
func validDate(b []byte) bool {
	if len(b) > 64 || len(b) == 0 || b[0] == ' ' || b[len(b)-1] == ' ' {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// originDate returns an origin's Date value when it is an HTTP-date the
// edge can send on (RELIABILITY promise 9 keeps the origin's Date), nil
// otherwise: then the edge sends its own (RFC 9110 §6.6.1: a recipient
// that forwards a response without a usable Date adds one).
func originDate(b []byte) []byte {
	if !validDate(b) {
		return nil
	}
	if _, ok := cachepolicy.ParseHTTPDate(b); !ok {
		return nil
	}
	return b
}
