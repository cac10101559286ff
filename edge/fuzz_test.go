package edge

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// FuzzCountRaw checks the raw header counter against a plain reading of
// the same bytes: one count (or presence) per line whose name (before the
// first colon) is the header, in any case. A header the counter misses
// would skip a security check on the hit path.
func FuzzCountRaw(f *testing.F) {
	for _, s := range []string{
		"Host: a\r\nContent-Length: 1\r\n",
		"host: a\r\nHOST: b\r\ncookie: x\r\nCookie: y\r\nTransfer-Encoding: chunked\r\n",
		":\r\n\r\nContent-Length\r\ncontent-length:5",
		"Content-Length : 5\r\nX: Host: a\n",
		"AUTHORIZATION: x\r\nif-none-match: y\r\nRange: bytes=0-1\r\nIf-Range: z\r\n",
		"Cache-Control: only-if-cached\nConnection: close\nIf-Modified-Since: d\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := countRaw(raw)
		want := rawCounts{complete: len(raw) > 0}
		for _, line := range strings.Split(string(raw), "\n") {
			name, _, ok := strings.Cut(line, ":")
			if !ok || name == "" {
				continue
			}
			switch {
			case strings.EqualFold(name, "content-length"):
				want.contentLength++
			case strings.EqualFold(name, "transfer-encoding"):
				want.transferEncoding++
			case strings.EqualFold(name, "host"):
				want.host++
			case strings.EqualFold(name, "cookie"):
				want.cookie++
			case strings.EqualFold(name, "authorization"):
				want.authorization = true
			case strings.EqualFold(name, "cache-control"):
				want.cacheControl = true
			case strings.EqualFold(name, "range"):
				want.rangeHdr = true
			case strings.EqualFold(name, "if-range"):
				want.ifRange = true
			case strings.EqualFold(name, "if-none-match"):
				want.ifNoneMatch = true
			case strings.EqualFold(name, "if-modified-since"):
				want.ifModifiedSince = true
			case strings.EqualFold(name, "connection"):
				want.connection = true
			}
		}
		// strings.EqualFold folds Unicode (e.g. the Kelvin sign K); header
		// names are ASCII, and so is countRaw's comparison.
		if got != want && isASCII(raw) {
			t.Errorf("countRaw(%q) = %+v, want %+v", raw, got, want)
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzAccessLogLine formats access log lines for arbitrary request fields:
// a combined line is exactly one line whose quoted fields cannot be
// forged, a JSON line is one valid JSON object whose fields read back as
// what the client sent (invalid UTF-8 as U+FFFD).
func FuzzAccessLogLine(f *testing.F) {
	f.Add([]byte("GET"), []byte("/a?b=c"), []byte("example.com"), []byte("https://r/"), []byte("curl/8"))
	f.Add([]byte("GET"), []byte("/\"x\" 200 5 \"-\"\n127.0.0.1 - -"), []byte("h"), []byte("\x00\x1b[31m"), []byte("ua\\\"\r\n"))
	f.Add([]byte("P\xffST"), []byte("/\xc3\x28"), []byte("\u2028"), []byte("\x7f"), []byte("\xed\xa0\x80"))
	f.Fuzz(func(t *testing.T, method, uri, host, referer, ua []byte) {
		var ctx fasthttp.RequestCtx
		h := &ctx.Request.Header
		h.SetMethodBytes(method)
		h.SetRequestURIBytes(uri)
		h.SetHostBytes(host)
		h.SetRefererBytes(referer)
		h.SetUserAgentBytes(ua)
		rs := &request{began: time.Unix(1700000000, 0), result: resHit}
		a := &accessLog{}

		line := a.appendCombined(nil, &ctx, rs, 200, 5, time.Millisecond)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("combined line is not one line: %q", line)
		}
		quotes := 0
		for i, c := range line[:len(line)-1] {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("combined line has byte %#x at %d: %q", c, i, line)
			}
			if c == '"' {
				quotes++
			}
		}
		if quotes != 6 {
			t.Fatalf("combined line has %d quotes, want 6 (request, referer, user agent): %q", quotes, line)
		}

		js := a.appendJSON(nil, &ctx, rs, 200, 5, time.Millisecond)
		if bytes.IndexByte(js, '\n') != len(js)-1 {
			t.Fatalf("JSON line is not one line: %q", js)
		}
		var got map[string]any
		if err := json.Unmarshal(js, &got); err != nil {
			t.Fatalf("JSON line does not parse: %v: %q", err, js)
		}
		for field, sent := range map[string][]byte{
			"method": h.Method(), "uri": h.RequestURI(), "host": h.Host(),
			"referer": h.Referer(), "user_agent": h.UserAgent(),
		} {
			if want := replaceInvalidUTF8(sent); got[field] != want {
				t.Errorf("%s: logged %q, sent %q", field, got[field], sent)
			}
		}
	})
}

// replaceInvalidUTF8 replaces each byte that does not start a valid UTF-8
// sequence with U+FFFD, as appendJSONString does.
func replaceInvalidUTF8(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// FuzzLogSafe: appendLogSafe output is printable ASCII without quotes, and
// reads back as its input.
func FuzzLogSafe(f *testing.F) {
	f.Add([]byte("plain"))
	f.Add([]byte("\"\\\x00\xff\n\\x41"))
	f.Fuzz(func(t *testing.T, v []byte) {
		out := appendLogSafe(nil, v)
		var back []byte
		for i := 0; i < len(out); i++ {
			c := out[i]
			if c < 0x20 || c >= 0x7f || c == '"' {
				t.Fatalf("appendLogSafe(%q) = %q: byte %#x", v, out, c)
			}
			if c == '\\' {
				if i+3 >= len(out) || out[i+1] != 'x' {
					t.Fatalf("appendLogSafe(%q) = %q: bare backslash at %d", v, out, i)
				}
				n, err := strconv.ParseUint(string(out[i+2:i+4]), 16, 8)
				if err != nil {
					t.Fatalf("appendLogSafe(%q) = %q: bad escape at %d", v, out, i)
				}
				back = append(back, byte(n))
				i += 3
				continue
			}
			back = append(back, c)
		}
		if !bytes.Equal(back, v) {
			t.Fatalf("appendLogSafe(%q) = %q reads back as %q", v, out, back)
		}
	})
}

// FuzzResponseStartDate starts client responses with any status the edge may
// relay and any Date an origin may send (through originDate, as the edge
// does): it never panics, a Date is always sent, and it is the origin's
// when that is a valid HTTP-date.
func FuzzResponseStartDate(f *testing.F) {
	f.Add(200, []byte("Mon, 02 Jan 2006 15:04:05 GMT"))
	f.Add(599, []byte(" : \x00\r\nX: y"))
	f.Add(100, []byte(""))
	f.Fuzz(func(t *testing.T, status int, date []byte) {
		if status < 100 || status > 599 {
			return // the backend's framing check refuses anything else
		}
		var rs responseStart
		var h fasthttp.ResponseHeader
		d := originDate(date)
		rs.status(&h, status, d, time.Unix(1700000000, 0))
		if h.StatusCode() != status {
			t.Fatalf("status %d, want %d", h.StatusCode(), status)
		}
		got := h.Peek(fasthttp.HeaderDate)
		if _, ok := cachepolicy.ParseHTTPDate(got); !ok || bytes.ContainsAny(got, "\r\n") {
			t.Fatalf("Date %q from %q", got, date)
		}
		if d != nil && !bytes.Equal(got, date) {
			t.Fatalf("Date %q, origin sent the valid %q", got, date)
		}
		// Even unchecked values never break the header.
		rs.status(&h, status, date, time.Unix(1700000000, 0))
		if len(h.Peek(fasthttp.HeaderDate)) == 0 {
			t.Fatalf("no Date for %q", date)
		}
	})
}

// FuzzChooseEncoding: whatever the client's Accept-Encoding says, a gzip
// body is served gzip only to a client that named gzip (or "*") with a
// non-zero weight; identity bodies are always served as they are.
func FuzzChooseEncoding(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*", "*;q=0, identity", "br, x-gzip;q=0.5", "GZIP ; Q=0.001", "identity;q=0, gzip;q=0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ae []byte) {
		acc := cachepolicy.ParseAcceptEncoding(ae)
		e := &store.Entry{Enc: cachepolicy.Gzip}
		got := chooseEncoding(e, acc)
		lower := strings.ToLower(string(ae))
		if got == cachepolicy.Gzip && !strings.Contains(lower, "gzip") && !strings.Contains(lower, "*") {
			t.Fatalf("Accept-Encoding %q: served gzip", ae)
		}
		if got == cachepolicy.Gzip && acc.GzipQ <= 0 {
			t.Fatalf("Accept-Encoding %q: served gzip with q=%d", ae, acc.GzipQ)
		}
		if chooseEncoding(&store.Entry{Enc: cachepolicy.Identity}, acc) != cachepolicy.Identity {
			t.Fatalf("Accept-Encoding %q: an identity body served encoded", ae)
		}
	})
}
