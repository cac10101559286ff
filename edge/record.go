package edge

import (
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
	// counts its announced length, if any; a stored body sent as a stream
	// (setBody) counts as sent.
	var n int
	switch {
	case r.sent >= 0 && ctx.Response.IsBodyStream():
		n = r.sent
		s.m.countSent(&ctx.Response.Header, n)
	case ctx.Response.IsBodyStream():
		n = max(ctx.Response.Header.ContentLength(), 0)
	default:
		n = len(ctx.Response.Body())
		s.m.countSent(&ctx.Response.Header, n)
	}
	r.g.access.log(ctx, r, status, n, elapsed)
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

// accessLog writes one line per request off the hot path. The handler
// formats its line in the request's scratch buffer and appends it to the
// current batch under a mutex: one lock and one copy per line, no
// allocation and no hand-off to another goroutine. A writer goroutine swaps
// the batch for an empty one every flushInterval, or sooner once it holds
// flushBytes, and writes it with one call. When log.access_buffer lines
// are waiting, the writer is behind: new lines are dropped and counted,
// never waited for. Reopen (SIGUSR1) reopens a file log, for logrotate.
type accessLog struct {
	json bool
	host bool   // combined format: the Host first (log.access_host)
	path string // the file written, "" for stdout and stderr
	max  int    // log.access_buffer
	m    *metrics

	mu      sync.Mutex // guards batch and pending
	batch   []byte
	pending int // lines in batch

	// out, file and spare belong to the writer goroutine.
	out   io.Writer
	file  *os.File
	spare []byte

	stamp  atomic.Pointer[logStamp]
	wake   chan struct{}   // the batch is large
	reopen chan chan error // Reopen's requests
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

const (
	flushInterval = 100 * time.Millisecond
	flushBytes    = 64 << 10
)

// logStamp is the time of one second as the two formats write it.
type logStamp struct {
	sec      int64
	combined []byte // "27/Nov/2026:12:00:00 +0000"
	iso      []byte // "2026-11-27T12:00:00" (UTC)
}

// newAccessLog opens the access log; it returns nil (logging off) for
// "off".
func newAccessLog(c config.Log, m *metrics) (*accessLog, error) {
	a := &accessLog{json: c.AccessFormat == "json", host: c.AccessHost, max: c.AccessBuffer, m: m,
		wake: make(chan struct{}, 1), reopen: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{})}
	switch c.Access {
	case "off":
		return nil, nil
	case "stdout":
		a.out = os.Stdout
	case "stderr":
		a.out = os.Stderr
	default:
		a.path = c.Access
		if err := a.openFile(); err != nil {
			return nil, err
		}
	}
	go a.run()
	return a, nil
}

// openFile opens (or reopens) the log file. Writer goroutine only, once
// running.
func (a *accessLog) openFile() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("log.access: %w", err)
	}
	if a.file != nil {
		_ = a.file.Close()
	}
	a.out, a.file = f, f
	return nil
}

func (a *accessLog) run() {
	defer close(a.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			a.flush()
			if a.file != nil {
				_ = a.file.Close()
			}
			return
		case <-t.C:
			a.flush()
		case <-a.wake:
			a.flush()
		case done := <-a.reopen:
			a.flush()
			if a.path == "" {
				done <- nil
				continue
			}
			done <- a.openFile()
		}
	}
}

// flush writes the current batch. Writer goroutine only.
func (a *accessLog) flush() {
	a.mu.Lock()
	b := a.batch
	a.batch, a.pending = a.spare[:0], 0
	a.mu.Unlock()
	if len(b) > 0 {
		_, _ = a.out.Write(b) // a failing log writer must not stop the edge
	}
	a.spare = b
}

// Reopen reopens the access log file (after logrotate moved it), writing
// what is pending to the old one first. A log on stdout or stderr is
// left as it is.
func (a *accessLog) Reopen() error {
	if a == nil {
		return nil
	}
	done := make(chan error, 1)
	select {
	case a.reopen <- done:
		return <-done
	case <-a.done:
		return nil
	}
}

// close writes what is pending and stops the writer.
func (a *accessLog) close() {
	if a == nil {
		return
	}
	a.once.Do(func() {
		close(a.stop)
		<-a.done
	})
}

// log queues the line of one request.
func (a *accessLog) log(ctx *fasthttp.RequestCtx, r *request, status, n int, elapsed time.Duration) {
	if a == nil {
		return
	}
	if a.json {
		r.scratch = a.appendJSON(r.scratch[:0], ctx, r, status, n, elapsed)
	} else {
		r.scratch = a.appendCombined(r.scratch[:0], ctx, r, status, n, elapsed)
	}
	a.mu.Lock()
	if a.pending >= a.max {
		a.mu.Unlock()
		a.m.accessLogDropped.Inc()
		return
	}
	a.batch = append(a.batch, r.scratch...)
	a.pending++
	large := len(a.batch) >= flushBytes
	a.mu.Unlock()
	if large {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// stampOf returns the formatted second of t, made once per second.
func (a *accessLog) stampOf(t time.Time) *logStamp {
	sec := t.Unix()
	if s := a.stamp.Load(); s != nil && s.sec == sec {
		return s
	}
	s := &logStamp{
		sec:      sec,
		combined: t.AppendFormat(nil, "02/Jan/2006:15:04:05 -0700"),
		iso:      t.UTC().AppendFormat(nil, "2006-01-02T15:04:05"),
	}
	a.stamp.Store(s)
	return s
}

// appendFraction appends v/unit with digits decimals (v ≥ 0), as
// strconv.AppendFloat would, without floating point.
func appendFraction(b []byte, v, unit int64, digits int) []byte {
	b = strconv.AppendInt(b, v/unit, 10)
	b = append(b, '.')
	frac := v % unit
	for d := unit / 10; d > 0 && digits > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
		digits--
	}
	return b
}

// appendCombined formats NCSA combined plus the X-Cache value and the
// seconds taken, like varnishncsa with those two fields added:
//
//	127.0.0.1 - - [27/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1234 "-" "curl/8" HIT 0.000123
//
// With log.access_host the Host comes first, as in Apache's
// vhost_combined: "www.example.com 127.0.0.1 - - [...".
func (a *accessLog) appendCombined(b []byte, ctx *fasthttp.RequestCtx, r *request, status, n int, elapsed time.Duration) []byte {
	if a.host {
		b = appendLogField(b, ctx.Request.Header.Host())
		b = append(b, ' ')
	}
	b = appendIP(b, ctx)
	b = append(b, " - - ["...)
	b = append(b, a.stampOf(r.began).combined...)
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
	b = appendFraction(b, max(int64(elapsed/time.Microsecond), 0), 1e6, 6)
	return append(b, '\n')
}

// appendJSON formats one JSON object per line (docs/CONTRACTS.md).
func (a *accessLog) appendJSON(b []byte, ctx *fasthttp.RequestCtx, r *request, status, n int, elapsed time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = append(b, a.stampOf(r.began).iso...)
	b = append(b, '.')
	b = appendPadded(b, int64(r.began.Nanosecond()/1000), 6)
	b = append(b, 'Z')
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
	b = appendFraction(b, max(int64(elapsed/time.Microsecond), 0), 1e3, 3)
	return append(b, "}\n"...)
}

// appendPadded appends v (≥ 0) in at least width digits, zeros first.
func appendPadded(b []byte, v int64, width int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], v, 10)
	for range width - len(d) {
		b = append(b, '0')
	}
	return append(b, d...)
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
