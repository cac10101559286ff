package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Record is one request read from an access log.
type Record struct {
	Time      time.Time
	Remote    string
	Method    string
	Host      string // empty when the log does not record it
	URI       string // path and query, starting with "/" (or "*")
	Proto     string
	Status    int
	Bytes     int64
	Referer   string
	UserAgent string
	Cache     string        // cache status when logged (Lakka, varnishncsa with %{Varnish:hitmiss}x)
	Duration  time.Duration // time taken when logged; 0 otherwise
}

// ErrBadLine wraps every reason a trace line cannot be parsed.
var ErrBadLine = errors.New("bench: unparseable trace line")

func badLine(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadLine}, args...)...)
}

// maxLineBytes bounds one trace line; longer lines are unparseable.
const maxLineBytes = 64 << 10

// ParseTraceLine parses one access log line in any supported format: a JSON
// object (Lakka's json access log) or NCSA combined (nginx, Apache,
// varnishncsa, Lakka's combined log with cache status and time taken).
func ParseTraceLine(line []byte) (Record, error) {
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] == '{' {
		return ParseJSONLine(line)
	}
	return ParseCombined(line)
}

// ParseCombined parses an NCSA combined log line:
//
//	host ident user [02/Jan/2006:15:04:05 -0700] "GET /path HTTP/1.1" 200 1234 "referer" "agent" [CACHE] [SECONDS]
//
// or the same with the virtual host first (Apache's vhost_combined,
// Lakka's log.access_host), which then sets Host.
// Trailing fields after the user agent are optional: a cache status word
// (Lakka's X-Cache, or a varnishncsa format with hit/miss) and the time
// taken in seconds. Quoted fields may escape quotes as \" (Apache) or
// \x22 (nginx); \xHH escapes are decoded.
func ParseCombined(line []byte) (Record, error) {
	var r Record
	s := string(bytes.TrimSpace(line))
	if len(s) > maxLineBytes {
		return r, badLine("line longer than %d bytes", maxLineBytes)
	}
	// Three fields before the [time]: remote, ident, user. Four: the
	// virtual host first (Apache's vhost_combined, Lakka's
	// log.access_host).
	var head [4]string
	var ok bool
	n := 0
	for ; n < len(head); n++ {
		s = strings.TrimLeft(s, " ")
		if s == "" || s[0] == '[' {
			break
		}
		head[n], s, _ = cutField(s)
	}
	switch {
	case n == 3:
		r.Remote = head[0]
	case n == 4 && strings.HasPrefix(s, "["):
		if strings.ContainsAny(head[0], "/\"") || head[0] == "-" {
			return r, badLine("virtual host %q", truncate(head[0]))
		}
		r.Host, r.Remote = head[0], head[1]
	case n < 3:
		return r, badLine("%d fields before [time], want remote, ident and user", n)
	default:
		return r, badLine("no [time]")
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return r, badLine("unterminated [time]")
	}
	t, err := time.Parse("02/Jan/2006:15:04:05 -0700", s[1:end])
	if err != nil {
		return r, badLine("time %q", s[1:end])
	}
	r.Time = t
	s = strings.TrimLeft(s[end+1:], " ")
	var reqLine string
	if reqLine, s, ok = cutQuoted(s); !ok {
		return r, badLine("no quoted request line")
	}
	if err := r.setRequestLine(reqLine); err != nil {
		return r, err
	}
	var f string
	if f, s, ok = cutField(s); !ok {
		return r, badLine("no status")
	}
	if r.Status, err = strconv.Atoi(f); err != nil || r.Status < 100 || r.Status > 999 {
		return r, badLine("status %q", f)
	}
	if f, s, ok = cutField(s); !ok {
		return r, badLine("no bytes")
	}
	if f != "-" {
		if r.Bytes, err = strconv.ParseInt(f, 10, 64); err != nil || r.Bytes < 0 {
			return r, badLine("bytes %q", f)
		}
	}
	// Common log format ends here; combined adds referer and agent.
	for _, q := range [...]struct {
		dst  *string
		name string
	}{{&r.Referer, "referer"}, {&r.UserAgent, "user agent"}} {
		if s == "" {
			return r, nil
		}
		if *q.dst, s, ok = cutQuoted(s); !ok {
			return r, badLine("no quoted %s", q.name)
		}
		if *q.dst == "-" {
			*q.dst = ""
		}
	}
	// Optional trailing fields: a cache status word and seconds taken.
	for s != "" {
		if f, s, ok = cutField(s); !ok {
			break
		}
		if sec, err := strconv.ParseFloat(f, 64); err == nil {
			if sec >= 0 && sec < 1e6 {
				r.Duration = time.Duration(sec * float64(time.Second))
			}
			continue
		}
		if r.Cache == "" && isWord(f) {
			r.Cache = strings.ToUpper(f)
		}
	}
	return r, nil
}

// setRequestLine splits "METHOD URI PROTO" (PROTO may be missing, as in
// HTTP/0.9) and normalises an absolute-form URI to its path and host.
func (r *Record) setRequestLine(s string) error {
	method, rest, ok := strings.Cut(s, " ")
	if !ok || !isToken(method) {
		return badLine("request line %q", truncate(s))
	}
	r.Method = method
	rest = strings.TrimLeft(rest, " ")
	uri := rest
	if i := strings.LastIndexByte(rest, ' '); i >= 0 && strings.HasPrefix(rest[i+1:], "HTTP/") {
		uri, r.Proto = strings.TrimRight(rest[:i], " "), rest[i+1:]
	}
	return r.setURI(uri)
}

// setURI checks uri and stores its path and query; an absolute URI also
// sets Host.
func (r *Record) setURI(uri string) error {
	if uri == "*" || strings.HasPrefix(uri, "/") {
		if strings.ContainsAny(uri, " \t\r\n") || strings.HasPrefix(uri, "//") {
			return badLine("uri %q", truncate(uri))
		}
		r.URI = uri
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return badLine("uri %q", truncate(uri))
	}
	r.Host = u.Host
	r.URI = u.RequestURI()
	// "http://host//x" has the path "//x", which a client would send as
	// a scheme-relative reference: refused like "//x" itself.
	if !strings.HasPrefix(r.URI, "/") || strings.HasPrefix(r.URI, "//") || strings.ContainsAny(r.URI, " \t\r\n") {
		return badLine("uri %q", truncate(uri))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// cutField returns the next space-separated field of s and the rest.
func cutField(s string) (field, rest string, ok bool) {
	s = strings.TrimLeft(s, " ")
	if s == "" {
		return "", "", false
	}
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", true
}

// cutQuoted returns the next double-quoted field of s, unescaped, and the rest.
func cutQuoted(s string) (field, rest string, ok bool) {
	s = strings.TrimLeft(s, " ")
	if !strings.HasPrefix(s, `"`) {
		return "", "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], true
		case c == '\\' && i+1 < len(s):
			switch n := s[i+1]; {
			case n == 'x' && i+3 < len(s) && isHex(s[i+2]) && isHex(s[i+3]):
				v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
				b.WriteByte(byte(v))
				i += 3
			case n == '"' || n == '\\':
				b.WriteByte(n)
				i++
			default:
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (c < 'a' || c > 'z') && s[i] != '_' && s[i] != '-' {
			return false
		}
	}
	return s != ""
}

// jsonLine is Lakka's JSON access log line (docs/CONTRACTS.md).
type jsonLine struct {
	Time       string   `json:"time"`
	Remote     string   `json:"remote"`
	Method     string   `json:"method"`
	Host       string   `json:"host"`
	URI        string   `json:"uri"`
	Proto      string   `json:"proto"`
	Status     int      `json:"status"`
	Bytes      int64    `json:"bytes"`
	Referer    string   `json:"referer"`
	UserAgent  string   `json:"user_agent"`
	Cache      string   `json:"cache"`
	DurationMs *float64 `json:"duration_ms"`
}

// ParseJSONLine parses one line of Lakka's JSON access log. Unknown keys
// are ignored; time, method and uri are required.
func ParseJSONLine(line []byte) (Record, error) {
	var r Record
	if len(line) > maxLineBytes {
		return r, badLine("line longer than %d bytes", maxLineBytes)
	}
	var j jsonLine
	if err := json.Unmarshal(line, &j); err != nil {
		return r, badLine("json: %v", err)
	}
	t, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return r, badLine("time %q", truncate(j.Time))
	}
	if !isToken(j.Method) {
		return r, badLine("method %q", truncate(j.Method))
	}
	if j.Status < 100 || j.Status > 999 {
		return r, badLine("status %d", j.Status)
	}
	r = Record{Time: t, Remote: j.Remote, Method: j.Method, Proto: j.Proto, Status: j.Status,
		Bytes: j.Bytes, Referer: j.Referer, UserAgent: j.UserAgent, Cache: strings.ToUpper(j.Cache)}
	if err := r.setURI(j.URI); err != nil {
		return Record{}, err
	}
	if j.Host != "" {
		if strings.ContainsAny(j.Host, " \t\r\n/") {
			return Record{}, badLine("host %q", truncate(j.Host))
		}
		r.Host = j.Host
	}
	if j.DurationMs != nil && *j.DurationMs >= 0 && *j.DurationMs < 1e9 {
		r.Duration = time.Duration(*j.DurationMs * float64(time.Millisecond))
	}
	return r, nil
}

// ReplayOptions select and time the requests of a trace.
type ReplayOptions struct {
	// Speed scales the recorded timing: 2 replays twice as fast. Ignored
	// when the runner sends as fast as possible.
	Speed float64
	// Methods keeps only these methods (upper case); empty keeps all.
	Methods []string
	// PathPrefixes keeps only URIs starting with one of them; empty keeps all.
	PathPrefixes []string
	// Host rewrites the Host of every request; empty keeps the trace's host
	// where it recorded one (else the target's host is sent).
	Host string
	// AcceptEncoding is sent with every request (traces do not record it).
	AcceptEncoding string
	// MaxExamples bounds the unparseable lines kept as examples.
	MaxExamples int
}

// TraceSource replays a trace. Timestamps with whole seconds (combined
// logs) are spread evenly over their second, so that a busy second does not
// become one burst; time going backwards (logs are written at completion)
// is clamped to the previous request's time.
type TraceSource struct {
	opts   ReplayOptions
	sc     *bufio.Reader
	stats  TraceStats
	first  time.Time
	last   time.Duration
	group  []Record // records sharing one whole-second timestamp
	gi     int
	next   *Record // read ahead: first record of the next group
	readEr error
}

// maxGroup bounds the records of one second buffered for spreading.
const maxGroup = 1 << 17

// NewTraceSource reads a trace from rd; a gzip stream is detected and
// decompressed.
func NewTraceSource(rd io.Reader, opts ReplayOptions) (*TraceSource, error) {
	br := bufio.NewReaderSize(rd, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("bench: trace: %w", err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	if !(opts.Speed > 0) {
		opts.Speed = 1
	}
	for i, m := range opts.Methods {
		opts.Methods[i] = strings.ToUpper(m)
	}
	return &TraceSource{opts: opts, sc: br}, nil
}

// Stats returns the line counts so far.
func (t *TraceSource) Stats() TraceStats { return t.stats }

// Err returns the read error that ended the trace, if any.
func (t *TraceSource) Err() error { return t.readEr }

// readLine returns the next line without its newline; a line longer than
// maxLineBytes is returned truncated to maxLineBytes+1 bytes.
func (t *TraceSource) readLine() ([]byte, bool) {
	var line []byte
	for {
		frag, err := t.sc.ReadSlice('\n')
		if len(line) <= maxLineBytes {
			line = append(line, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err != io.EOF {
				t.readEr = fmt.Errorf("bench: read trace: %w", err)
			}
			if len(line) == 0 {
				return nil, false
			}
		}
		return bytes.TrimRight(line, "\r\n"), true
	}
}

// nextRecord returns the next record that passes the filters.
func (t *TraceSource) nextRecord() (*Record, bool) {
	for {
		line, ok := t.readLine()
		if !ok {
			return nil, false
		}
		t.stats.Lines++
		if len(bytes.TrimSpace(line)) == 0 {
			t.stats.Lines--
			continue
		}
		rec, err := ParseTraceLine(line)
		if err != nil {
			t.stats.Unparseable++
			if len(t.stats.Examples) < t.opts.MaxExamples {
				t.stats.Examples = append(t.stats.Examples, BadLineNote{Line: t.stats.Lines, Reason: err.Error()})
			}
			continue
		}
		t.stats.Parsed++
		if !t.keep(&rec) {
			t.stats.Filtered++
			continue
		}
		return &rec, true
	}
}

func (t *TraceSource) keep(r *Record) bool {
	if r.URI == "*" {
		return false // OPTIONS *: not a resource to replay
	}
	if len(t.opts.Methods) > 0 {
		found := false
		for _, m := range t.opts.Methods {
			found = found || m == r.Method
		}
		if !found {
			return false
		}
	}
	if len(t.opts.PathPrefixes) > 0 {
		for _, p := range t.opts.PathPrefixes {
			if strings.HasPrefix(r.URI, p) {
				return true
			}
		}
		return false
	}
	return true
}

// fillGroup reads the records sharing the next timestamp.
func (t *TraceSource) fillGroup() bool {
	t.group, t.gi = t.group[:0], 0
	first := t.next
	t.next = nil
	if first == nil {
		var ok bool
		if first, ok = t.nextRecord(); !ok {
			return false
		}
	}
	t.group = append(t.group, *first)
	if first.Time.Nanosecond() != 0 {
		return true // sub-second timestamps are used as they are
	}
	for len(t.group) < maxGroup {
		r, ok := t.nextRecord()
		if !ok {
			break
		}
		if !r.Time.Equal(first.Time) {
			t.next = r
			break
		}
		t.group = append(t.group, *r)
	}
	return true
}

// Next implements Source.
func (t *TraceSource) Next(q *Request) bool {
	if t.gi >= len(t.group) && !t.fillGroup() {
		return false
	}
	rec := &t.group[t.gi]
	if t.first.IsZero() {
		t.first = rec.Time
	}
	offset := rec.Time.Sub(t.first)
	if rec.Time.Nanosecond() == 0 && len(t.group) > 1 {
		offset += time.Duration(t.gi) * time.Second / time.Duration(len(t.group))
	}
	at := time.Duration(float64(offset) / t.opts.Speed)
	if at < t.last {
		at = t.last
	}
	t.last = at
	t.gi++
	*q = Request{
		At:             at,
		Method:         rec.Method,
		Path:           rec.URI,
		Host:           rec.Host,
		URL:            -1,
		UserAgent:      rec.UserAgent,
		Referer:        rec.Referer,
		AcceptEncoding: t.opts.AcceptEncoding,
	}
	if t.opts.Host != "" {
		q.Host = t.opts.Host
	}
	return true
}
