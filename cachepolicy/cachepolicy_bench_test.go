package cachepolicy

import (
	"testing"
	"time"
)

// benchSink keeps results alive so that the compiler cannot drop calls.
var benchSink bool

// hitCall is one call the edge makes on the hit path, with ordinary input.
type hitCall struct {
	name string
	f    func()
}

// hitPath returns the calls the edge makes on a cache hit. Each must not
// allocate (alloc_test.go) and each is benchmarked (BenchmarkHitPath). The
// calls share one buffer with room to spare, as the edge reuses one.
func hitPath() []hitCall {
	buf := make([]byte, 0, 4096)
	routes := []RouteMatch{
		{Host: "static.example.com", PathPrefix: "/assets/"},
		{Host: "*.example.com", PathPrefix: "/api/"},
		{PathPrefix: "/news/"},
	}
	const (
		target    = "/news/2024/01/storm-hits-the-coast?utm_source=twitter&page=2&utm_medium=social&id=42"
		absTarget = "http://www.example.com/news/2024/../2024/./storm%2dhits?b=2&a=1"
		cookie    = "_ga=GA1.2.123456789.1700000000; _gid=GA1.2.987654321.1700000000; csrftoken=abcdef; session=xyz"
		ims       = "Mon, 01 Jan 2024 12:00:00 GMT"
		ae        = "gzip, deflate, br, zstd"
		cc        = "public, max-age=300, s-maxage=600, stale-while-revalidate=30, stale-if-error=86400"
		sc        = "max-age=60, max-age=3600+60;lakka, no-store;other"
	)
	lastModified := time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC)
	parsedAE := ParseAcceptEncoding([]byte(ae))
	cookieGlobs := []string{"_ga*", "_gid", "__utm?"}
	d := NewDirectives()
	return []hitCall{
		{"NormalizeTarget", func() { buf, _, _ = NormalizeTarget(buf[:0], []byte(target), nil) }},
		{"NormalizeTarget/strip", func() { buf, _, _ = NormalizeTarget(buf[:0], []byte(target), stripRules) }},
		{"NormalizeTarget/sort", func() { buf, _, _ = NormalizeTarget(buf[:0], []byte(target), sortRules) }},
		{"NormalizeTarget/strip+sort", func() { buf, _, _ = NormalizeTarget(buf[:0], []byte(target), bothRules) }},
		{"NormalizeTarget/absolute", func() { buf, _, _ = NormalizeTarget(buf[:0], []byte(absTarget), bothRules) }},
		{"NormalizeHost", func() { buf, _ = NormalizeHost(buf[:0], []byte("WWW.Example.COM.:80")) }},
		{"NormalizeHost/IPv6", func() { buf, _ = NormalizeHost(buf[:0], []byte("[2001:DB8::1]:8080")) }},
		{"Glob", func() { benchSink = Glob("utm_*", []byte("utm_campaign")) }},
		{"MatchRoute", func() { benchSink = MatchRoute(routes, []byte("www.example.com"), []byte("/news/a")) >= 0 }},
		{"HostWithoutPort", func() { benchSink = len(HostWithoutPort([]byte("www.example.com:8080"))) > 0 }},
		{"ETagMatchWeak", func() { benchSink = ETagMatchWeak([]byte(`"a", W/"b", "67ab43"`), []byte(`W/"67ab43"`)) }},
		{"NotModifiedSince", func() { benchSink = NotModifiedSince([]byte(ims), lastModified) }},
		{"ParseAcceptEncoding", func() { benchSink = ParseAcceptEncoding([]byte(ae)).GzipQ > 0 }},
		{"ParseAcceptEncoding/q", func() { benchSink = ParseAcceptEncoding([]byte("br;q=1.0, gzip;q=0.8, *;q=0.1")).GzipQ > 0 }},
		{"Choose", func() { e, _ := parsedAE.Choose(true, true); benchSink = e == Gzip }},
		{"StripCookies", func() { buf = StripCookies(buf[:0], []byte(cookie), cookieGlobs) }},
		{"Directives.Parse", func() { d.Reset(); d.Parse([]byte(cc)) }},
		{"Directives.ParseTargeted", func() { d.Reset(); d.ParseTargeted([]byte(sc), "lakka") }},
		{"ParseRange", func() { _, _, benchSink, _ = ParseRange([]byte("bytes=0-1023"), 40960) }},
		{"AppendHTTPDate", func() { buf = AppendHTTPDate(buf[:0], lastModified) }},
	}
}

func BenchmarkHitPath(b *testing.B) {
	for _, c := range hitPath() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.f()
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	req := request()
	resp := response(200, "Cache-Control: public, max-age=300, stale-while-revalidate=30, stale-if-error=86400", dateT0, `ETag: "x"`, "Age: 3")
	rules := baseRules
	b.ReportAllocs()
	for b.Loop() {
		_ = Decide(req, resp, t0, t0.Add(20*time.Millisecond), rules)
	}
}

func BenchmarkParseVary(b *testing.B) {
	names := make([]string, 0, MaxVaryFields)
	b.ReportAllocs()
	for b.Loop() {
		names, _ = ParseVary(names[:0], []byte("Accept-Encoding, Accept-Language"))
	}
}

func BenchmarkParseSurrogateKeys(b *testing.B) {
	tags := make([]string, 0, MaxTags)
	v := []byte("front section-news article-42 article-43 author-7 most-read")
	b.ReportAllocs()
	for b.Loop() {
		tags, _ = ParseSurrogateKeys(tags[:0], v)
	}
}

func BenchmarkParseHTTPDate(b *testing.B) {
	for _, c := range []struct{ name, in string }{
		{"IMF-fixdate", "Mon, 01 Jan 2024 12:00:00 GMT"},
		{"RFC850", "Monday, 01-Jan-24 12:00:00 GMT"},
		{"asctime", "Mon Jan  1 12:00:00 2024"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, benchSink = ParseHTTPDate([]byte(c.in))
			}
		})
	}
}
