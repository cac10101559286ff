package bench

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseTraceFixtures(t *testing.T) {
	for _, c := range []struct {
		file              string
		parsed, bad       int
		check             int // index among parsed records
		want              Record
		wantHostsNonEmpty bool
	}{
		{file: "nginx-combined.log", parsed: 5, bad: 2, check: 1, want: Record{
			Time: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), Remote: "10.1.2.3", Method: "GET",
			URI: "/news/world/42-quake-hits?utm_source=tw", Proto: "HTTP/1.1", Status: 200, Bytes: 20480,
			Referer: "https://t.co/", UserAgent: `Mozilla/5.0 (iPhone) "quoted" Safari`}},
		{file: "apache-combined.log", parsed: 3, bad: 3, check: 1, want: Record{
			Time: time.Date(2026, 10, 10, 13, 55, 37, 0, time.FixedZone("", -7*3600)), Remote: "2001:db8::1", Method: "GET",
			URI: "/sport/", Proto: "HTTP/1.1", Status: 200, Bytes: 8000, UserAgent: `Agent with "escaped" quotes and \ backslash`}},
		{file: "varnishncsa.log", parsed: 4, bad: 1, check: 2, want: Record{
			Time: time.Date(2026, 11, 27, 12, 0, 1, 0, time.UTC), Remote: "127.0.0.1", Method: "GET", Host: "www.example.com",
			URI: "/sitemap.xml", Proto: "HTTP/1.1", Status: 200, Bytes: 4000, UserAgent: "Googlebot/2.1",
			Cache: "HIT", Duration: 81 * time.Microsecond}},
		{file: "lakka-combined.log", parsed: 6, bad: 1, check: 0, want: Record{
			Time: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), Remote: "127.0.0.1", Method: "GET",
			URI: "/path?q", Proto: "HTTP/1.1", Status: 200, Bytes: 1234, Referer: "referer", UserAgent: "user agent",
			Cache: "HIT", Duration: 123 * time.Microsecond}},
		{file: "lakka-vhost.log", parsed: 2, bad: 1, check: 1, want: Record{
			Time: time.Date(2026, 11, 27, 12, 0, 1, 0, time.UTC), Remote: "10.0.0.7", Method: "GET", Host: "m.example.com:8080",
			URI: "/", Proto: "HTTP/1.1", Status: 200, Bytes: 5123, UserAgent: "Mozilla/5.0",
			Cache: "MISS", Duration: 12500 * time.Microsecond}},
		{file: "lakka.jsonl", parsed: 4, bad: 3, check: 0, want: Record{
			Time: time.Date(2026, 11, 27, 12, 0, 0, 123456000, time.UTC), Remote: "127.0.0.1", Method: "GET", Host: "example.com",
			URI: "/path?q", Proto: "HTTP/1.1", Status: 200, Bytes: 1234, UserAgent: "curl/8",
			Cache: "HIT", Duration: 123 * time.Microsecond}},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var recs []Record
			bad := 0
			for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				r, err := ParseTraceLine([]byte(line))
				if err != nil {
					if !errors.Is(err, ErrBadLine) {
						t.Errorf("error %v does not wrap ErrBadLine", err)
					}
					bad++
					continue
				}
				recs = append(recs, r)
			}
			if len(recs) != c.parsed || bad != c.bad {
				t.Fatalf("parsed %d, bad %d; want %d and %d", len(recs), bad, c.parsed, c.bad)
			}
			got := recs[c.check]
			// Compare instants, not zones' names.
			if !got.Time.Equal(c.want.Time) {
				t.Errorf("time %v, want %v", got.Time, c.want.Time)
			}
			got.Time, c.want.Time = time.Time{}, time.Time{}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("record %d (-want +got):\n%s", c.check, diff)
			}
		})
	}
}

func TestParseCombinedCases(t *testing.T) {
	f := func(line string, wantErr bool, check func(Record) bool) {
		t.Helper()
		r, err := ParseCombined([]byte(line))
		if (err != nil) != wantErr {
			t.Errorf("ParseCombined(%q): err %v, want error %v", line, err, wantErr)
			return
		}
		if err == nil && check != nil && !check(r) {
			t.Errorf("ParseCombined(%q) = %+v", line, r)
		}
	}
	const pre = `1.2.3.4 - - [27/Nov/2026:12:00:00 +0000] `
	f(pre+`"GET / HTTP/1.1" 200 1 "-" "-"`, false, func(r Record) bool { return r.Referer == "" && r.UserAgent == "" })
	f(pre+`"GET /a b HTTP/1.1" 200 1 "-" "-"`, true, nil) // a space in the target
	f(pre+`"GET //evil.example/ HTTP/1.1" 200 1`, true, nil)
	f(pre+`"OPTIONS * HTTP/1.1" 200 0`, false, func(r Record) bool { return r.URI == "*" })
	f(pre+`"GET /old"  200 10`, false, func(r Record) bool { return r.Proto == "" && r.URI == "/old" })
	f(pre+`"GET /x HTTP/1.1" 99 1`, true, nil)
	f(pre+`"GET /x HTTP/1.1" 200 -1`, true, nil)
	f(pre+`"GET /x HTTP/1.1" 200 1 "unterminated`, true, nil)
	f(pre+`"GET /x HTTP/1.1" 200 1 "-" "ua" 0.5 MISS`, false, func(r Record) bool {
		return r.Cache == "MISS" && r.Duration == 500*time.Millisecond
	})
	f(pre+`"GET /\x41\x2 HTTP/1.1" 200 1`, false, func(r Record) bool { return r.URI == `/A\x2` })
	f(`1.2.3.4 - - [27/Nov/2026:12:00:00 +0000 "GET / HTTP/1.1" 200 1`, true, nil)
	f(`www.example.com:8080 `+pre+`"GET /x HTTP/1.1" 200 1`, false, func(r Record) bool {
		return r.Host == "www.example.com:8080" && r.Remote == "1.2.3.4" && r.URI == "/x"
	})
	f(`a b 1.2.3.4 - - [27/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1`, true, nil) // five fields
	f(`1.2.3.4 - [27/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1`, true, nil)       // two
	f(`evil/x `+pre+`"GET / HTTP/1.1" 200 1`, true, nil)
	f(``, true, nil)
	f(strings.Repeat("x", maxLineBytes+1), true, nil)
}

func readAll(t *testing.T, src *TraceSource) []Request {
	t.Helper()
	var out []Request
	var r Request
	for src.Next(&r) {
		out = append(out, r)
	}
	return out
}

func TestTraceSourceTiming(t *testing.T) {
	// Four requests in second 0 are spread over it; one in second 2; a
	// line logged out of order is clamped.
	trace := strings.Join([]string{
		`1.1.1.1 - - [27/Nov/2026:12:00:00 +0000] "GET /a HTTP/1.1" 200 1 "-" "ua"`,
		`1.1.1.1 - - [27/Nov/2026:12:00:00 +0000] "GET /b HTTP/1.1" 200 1 "-" "ua"`,
		`garbage`,
		`1.1.1.1 - - [27/Nov/2026:12:00:00 +0000] "GET /c HTTP/1.1" 200 1 "-" "ua"`,
		`1.1.1.1 - - [27/Nov/2026:12:00:00 +0000] "POST /d HTTP/1.1" 200 1 "-" "ua"`,
		`1.1.1.1 - - [27/Nov/2026:12:00:02 +0000] "GET /e HTTP/1.1" 200 1 "-" "ua"`,
		`1.1.1.1 - - [27/Nov/2026:12:00:01 +0000] "GET /late HTTP/1.1" 200 1 "-" "ua"`,
		``,
	}, "\n")
	src, err := NewTraceSource(strings.NewReader(trace), ReplayOptions{Speed: 2, AcceptEncoding: "gzip", MaxExamples: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, src)
	var ats []time.Duration
	var paths []string
	for _, r := range got {
		ats = append(ats, r.At)
		paths = append(paths, r.Path)
		if r.AcceptEncoding != "gzip" || r.UserAgent != "ua" || r.URL != -1 {
			t.Errorf("request %+v: headers not carried", r)
		}
	}
	// At speed 2: second 0's four requests at 0, 125, 250, 375 ms; /e at
	// 1 s; /late (recorded at 0.5 s after scaling) clamped to 1 s.
	wantAts := []time.Duration{0, 125 * time.Millisecond, 250 * time.Millisecond, 375 * time.Millisecond, time.Second, time.Second}
	if diff := cmp.Diff(wantAts, ats); diff != "" {
		t.Errorf("schedule (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/a", "/b", "/c", "/d", "/e", "/late"}, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	st := src.Stats()
	if st.Lines != 7 || st.Parsed != 6 || st.Unparseable != 1 || len(st.Examples) != 1 || st.Examples[0].Line != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestTraceSourceFiltersAndHost(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "varnishncsa.log"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	zw.Close()

	src, err := NewTraceSource(&gz, ReplayOptions{Methods: []string{"get"}, PathPrefixes: []string{"/news/", "/sitemap"}})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, src)
	if len(got) != 2 || got[0].Path != "/news/world/42-quake-hits" || got[1].Path != "/sitemap.xml" {
		t.Fatalf("filtered requests %+v", got)
	}
	if got[0].Host != "www.example.com" {
		t.Errorf("host %q, want the trace's", got[0].Host)
	}
	if st := src.Stats(); st.Parsed != 4 || st.Filtered != 2 || st.Unparseable != 1 {
		t.Errorf("stats %+v", st)
	}

	// --host rewrites every request's host.
	src, _ = NewTraceSource(bytes.NewReader(b), ReplayOptions{Host: "staging.example.com"})
	for _, r := range readAll(t, src) {
		if r.Host != "staging.example.com" {
			t.Errorf("host %q not rewritten", r.Host)
		}
	}
}

func TestTraceSourceLongLine(t *testing.T) {
	long := `1.1.1.1 - - [27/Nov/2026:12:00:00 +0000] "GET /` + strings.Repeat("a", 3*maxLineBytes) + ` HTTP/1.1" 200 1`
	ok := `1.1.1.1 - - [27/Nov/2026:12:00:01 +0000] "GET /ok HTTP/1.1" 200 1`
	src, _ := NewTraceSource(strings.NewReader(long+"\n"+ok), ReplayOptions{})
	got := readAll(t, src)
	if len(got) != 1 || got[0].Path != "/ok" {
		t.Errorf("requests %+v, want only /ok", got)
	}
	if st := src.Stats(); st.Unparseable != 1 || st.Lines != 2 {
		t.Errorf("stats %+v", st)
	}
}

// fuzzSeeds adds every line of the fixture files as a seed.
func fuzzSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f.Add([]byte(line))
		}
	}
}

// checkRecord holds for every record a parser returns.
func checkRecord(t *testing.T, r Record) {
	if !isToken(r.Method) {
		t.Errorf("method %q is not a token", r.Method)
	}
	if r.URI != "*" && !strings.HasPrefix(r.URI, "/") || strings.HasPrefix(r.URI, "//") || strings.ContainsAny(r.URI, " \r\n\t") {
		t.Errorf("uri %q", r.URI)
	}
	if r.Bytes < 0 || r.Duration < 0 {
		t.Errorf("negative bytes %d or duration %v", r.Bytes, r.Duration)
	}
	if strings.ContainsAny(r.Host, " /\r\n") {
		t.Errorf("host %q", r.Host)
	}
	if r.Status < 100 || r.Status > 999 {
		t.Errorf("status %d", r.Status)
	}
}

// fuzzParser fuzzes one trace line parser: it errors with ErrBadLine or
// returns a record that holds checkRecord.
func fuzzParser(f *testing.F, parse func([]byte) (Record, error)) {
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parse(line)
		if err != nil {
			if !errors.Is(err, ErrBadLine) {
				t.Fatalf("error %v does not wrap ErrBadLine", err)
			}
			return
		}
		checkRecord(t, r)
	})
}

func FuzzParseCombined(f *testing.F) {
	fuzzSeeds(f, "nginx-combined.log", "apache-combined.log", "varnishncsa.log", "lakka-combined.log", "lakka-vhost.log")
	fuzzParser(f, ParseCombined)
}

func FuzzParseJSONLine(f *testing.F) {
	fuzzSeeds(f, "lakka.jsonl")
	fuzzParser(f, ParseJSONLine)
}
