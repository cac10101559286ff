package edge

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// What a request leaves behind when it is done: its metrics and its
// access log line.

// record updates metrics and queues the access log line.
func (s *Server) record(r *request) {
	ctx := r.ctx
	status := ctx.Response.StatusCode()
	if c := status / 100; c >= 1 && c <= 5 {
		s.m.statuses[c].Inc()
	}
	s.m.requests[r.result].Inc()
	elapsed := time.Since(r.began)
	s.m.durations[r.result].Observe(elapsed.Seconds())
	// Body on a streamed response would read the whole stream into memory
	// before it is sent (and turn a read error into the body): a stream
	// counts its announced length, if any.
	var n int
	if ctx.Response.IsBodyStream() {
		n = max(ctx.Response.Header.ContentLength(), 0)
	} else {
		n = len(ctx.Response.Body())
		s.m.countSent(&ctx.Response.Header, n)
	}
	s.access.log(ctx, r, status, n, elapsed)
}

// countSent adds n body bytes sent with the response header h.
func (m *metrics) countSent(h *fasthttp.ResponseHeader, n int) {
	if n <= 0 {
		return
	}
	enc := sentOther
	switch ce := h.ContentEncoding(); {
	case len(ce) == 0:
		enc = sentIdentity
	case equalFold(ce, "gzip"):
		enc = sentGzip
	case equalFold(ce, "zstd"):
		enc = sentZstd
	}
	m.bytesSent[enc].Add(float64(n))
}

// accessLog writes one line per request off the hot path: the handler
// formats the line into a pooled buffer and hands it to a writer goroutine
// over a bounded channel; when the writer falls behind, lines are dropped
// and counted rather than slowing requests down.
type accessLog struct {
	json   bool
	out    io.Writer
	closer io.Closer
	lines  chan *[]byte
	// free recycles line buffers. Unlike a sync.Pool it is not emptied by
	// garbage collection, so the hit path stays free of allocations once
	// enough buffers circulate; created bounds how many ever exist.
	free    chan *[]byte
	created atomic.Int64
	done    chan struct{}
	m       *metrics
	once    sync.Once
}

// newAccessLog opens the access log; it returns nil (logging off) for
// "off".
func newAccessLog(c config.Log, m *metrics) (*accessLog, error) {
	a := &accessLog{json: c.AccessFormat == "json", m: m}
	switch c.Access {
	case "off":
		return nil, nil
	case "stdout":
		a.out = os.Stdout
	case "stderr":
		a.out = os.Stderr
	default:
		f, err := os.OpenFile(c.Access, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log.access: %w", err)
		}
		a.out, a.closer = f, f
	}
	a.lines = make(chan *[]byte, c.AccessBuffer)
	a.free = make(chan *[]byte, c.AccessBuffer+1)
	a.done = make(chan struct{})
	go a.run()
	return a, nil
}

func (a *accessLog) run() {
	defer close(a.done)
	w := bufio.NewWriterSize(a.out, 64<<10)
	for {
		b, ok := <-a.lines
		if !ok {
			_ = w.Flush()
			return
		}
		_, _ = w.Write(*b) // a failing log writer must not stop the edge
		a.put(b)
		if len(a.lines) == 0 {
			_ = w.Flush()
		}
	}
}

func (a *accessLog) put(b *[]byte) {
	if cap(*b) > 16<<10 {
		a.created.Add(-1)
		return
	}
	*b = (*b)[:0]
	select {
	case a.free <- b:
	default:
		a.created.Add(-1)
	}
}

// get returns a line buffer, or nil when every buffer is in use (the
// writer is behind: the line is dropped).
func (a *accessLog) get() *[]byte {
	select {
	case b := <-a.free:
		return b
	default:
	}
	if a.created.Add(1) > int64(cap(a.free)) {
		a.created.Add(-1)
		return nil
	}
	b := make([]byte, 0, 512)
	return &b
}

// close flushes what is queued and stops the writer.
func (a *accessLog) close() {
	if a == nil {
		return
	}
	a.once.Do(func() {
		close(a.lines)
		<-a.done
		if a.closer != nil {
			_ = a.closer.Close()
		}
	})
}

// log queues the line of one request.
func (a *accessLog) log(ctx *fasthttp.RequestCtx, r *request, status, n int, elapsed time.Duration) {
	if a == nil {
		return
	}
	bp := a.get()
	if bp == nil {
		a.m.accessLogDropped.Inc()
		return
	}
	if a.json {
		*bp = a.appendJSON(*bp, ctx, r, status, n, elapsed)
	} else {
		*bp = a.appendCombined(*bp, ctx, r, status, n, elapsed)
	}
	select {
	case a.lines <- bp:
	default:
		a.m.accessLogDropped.Inc()
		a.put(bp)
	}
}

// appendCombined formats NCSA combined plus the X-Cache value and the
// seconds taken, like varnishncsa with those two fields added:
//
//	127.0.0.1 - - [27/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1234 "-" "curl/8" HIT 0.000123
func (a *accessLog) appendCombined(b []byte, ctx *fasthttp.RequestCtx, r *request, status, n int, elapsed time.Duration) []byte {
	b = appendIP(b, ctx)
	b = append(b, " - - ["...)
	b = r.began.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendLogSafe(b, ctx.Method())
	b = append(b, ' ')
	b = appendLogSafe(b, ctx.Request.Header.RequestURI())
	b = append(b, ' ')
	b = appendLogSafe(b, ctx.Request.Header.Protocol())
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if n > 0 {
		b = strconv.AppendInt(b, int64(n), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " \""...)
	b = appendLogField(b, ctx.Request.Header.Referer())
	b = append(b, "\" \""...)
	b = appendLogField(b, ctx.Request.Header.UserAgent())
	b = append(b, "\" "...)
	b = append(b, resultNames[r.result]...)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, elapsed.Seconds(), 'f', 6, 64)
	return append(b, '\n')
}

// appendJSON formats one JSON object per line (docs/CONTRACTS.md).
func (a *accessLog) appendJSON(b []byte, ctx *fasthttp.RequestCtx, r *request, status, n int, elapsed time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = r.began.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, `","remote":"`...)
	b = appendIP(b, ctx)
	b = append(b, `","method":`...)
	b = appendJSONString(b, ctx.Method())
	b = append(b, `,"host":`...)
	b = appendJSONString(b, ctx.Request.Header.Host())
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, ctx.Request.Header.RequestURI())
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, ctx.Request.Header.Protocol())
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, ctx.Request.Header.Referer())
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, ctx.Request.Header.UserAgent())
	b = append(b, `,"cache":"`...)
	b = append(b, resultNames[r.result]...)
	b = append(b, `","duration_ms":`...)
	b = strconv.AppendFloat(b, float64(elapsed)/1e6, 'f', 3, 64)
	return append(b, "}\n"...)
}

func appendIP(b []byte, ctx *fasthttp.RequestCtx) []byte {
	if a, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		return a.Unmap().AppendTo(b)
	}
	return append(b, '-')
}

// appendLogField appends a header value for a quoted log field, "-" when
// empty.
func appendLogField(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	return appendLogSafe(b, v)
}

// appendLogSafe escapes quotes, backslashes and non-printable bytes as
// \xHH, so that a client cannot forge log lines.
func appendLogSafe(b, v []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString appends v as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b, v []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, v[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
