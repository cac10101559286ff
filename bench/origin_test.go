package bench

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testSitemap = `<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://127.0.0.1:8000/</loc></url>
  <url><loc>http://127.0.0.1:8000/news/</loc><changefreq>always</changefreq></url>
  <url><loc> http://www.example.com/news/world/42-quake?x=1&amp;y=2 </loc></url>
  <url><loc>mailto:someone@example.com</loc></url>
  <url><loc>/relative/path</loc></url>
</urlset>`

func TestParseSitemap(t *testing.T) {
	paths, children, err := ParseSitemap([]byte(testSitemap))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/", "/news/", "/news/world/42-quake?x=1&y=2", "/relative/path"}, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if len(children) != 0 {
		t.Errorf("children %v", children)
	}
	index := `<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>http://o/sitemap-1.xml</loc></sitemap></sitemapindex>`
	if _, children, err = ParseSitemap([]byte(index)); err != nil || len(children) != 1 || children[0] != "/sitemap-1.xml" {
		t.Errorf("index: children %v, err %v", children, err)
	}
	for _, bad := range []string{"", "<urlset>", "not xml", "<urlset><url><loc>/a</url></urlset>"} {
		if _, _, err := ParseSitemap([]byte(bad)); err == nil {
			t.Errorf("ParseSitemap(%q): no error", bad)
		}
	}
}

func TestParseURLList(t *testing.T) {
	got, err := ParseURLList(strings.NewReader("# most popular first\n/\n\nhttp://127.0.0.1:8080/news/?a=1\n  /sport/  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/", "/news/?a=1", "/sport/"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "# only a comment\n", "/ok\nnot-a-url\n", "//host/x"} {
		if _, err := ParseURLList(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseURLList(%q): no error", bad)
		}
	}
	_, err = ParseURLList(strings.NewReader("/ok\nftp://x/y\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v does not name line 2", err)
	}
}

const testMetrics = `# HELP lakka_origin_http_requests_total Requests served by the origin, by page kind.
# TYPE lakka_origin_http_requests_total counter
lakka_origin_http_requests_total{kind="article"} 120
lakka_origin_http_requests_total{kind="front"} 30.5
lakka_origin_http_requests_total{kind="section",note="a \"quoted\" value"} 7
# TYPE other_total counter
other_total 1000
`

func TestSumCounter(t *testing.T) {
	got, err := SumCounter([]byte(testMetrics), OriginRequestsMetric)
	if err != nil {
		t.Fatal(err)
	}
	if got != 157.5 {
		t.Errorf("sum %v, want 157.5", got)
	}
	if _, err := SumCounter([]byte("other_total 1\n"), OriginRequestsMetric); err == nil {
		t.Error("missing metric: no error")
	}
	if _, err := SumCounter([]byte("garbage{"), OriginRequestsMetric); err == nil {
		t.Error("garbage: no error")
	}
}

func TestOriginClient(t *testing.T) {
	fo := newFakeOrigin(t, "secret")
	o, err := NewOrigin(fo.srv.URL+"/ignored/path", "secret", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	paths, err := o.SitemapPaths(ctx)
	if err != nil || len(paths) != len(fo.pages) {
		t.Fatalf("sitemap: %v, %v", paths, err)
	}
	secs, err := o.Sections(ctx)
	if err != nil || len(secs) != 2 {
		t.Fatalf("sections %v, %v", secs, err)
	}
	s, err := pickSection(ctx, o, "")
	if err != nil || s.Path != "/news/" {
		t.Errorf("first top-level section %+v, %v", s, err)
	}
	if s, err = pickSection(ctx, o, "/news/world/"); err != nil || s.ID != 2 {
		t.Errorf("section by path %+v, %v", s, err)
	}
	if _, err = pickSection(ctx, o, "/nope/"); err == nil {
		t.Error("unknown section: no error")
	}
	a, err := o.Publish(ctx, ArticleInput{Section: 2, Title: "t"})
	if err != nil || a.Version != 1 || !strings.HasPrefix(a.URL, "/news/world/") {
		t.Fatalf("publish %+v, %v", a, err)
	}
	if a, err = o.Edit(ctx, a.ID, ArticleInput{Body: "b"}); err != nil || a.Version != 2 {
		t.Errorf("edit %+v, %v", a, err)
	}
	if _, err = o.Edit(ctx, 999, ArticleInput{Body: "b"}); err == nil {
		t.Error("edit of an unknown article: no error")
	}
	resp, err := http.Get(fo.srv.URL + "/news/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	total, err := o.RequestsTotal(ctx)
	if err != nil || total != 1 {
		t.Errorf("requests total %v, %v", total, err)
	}

	// A wrong token is an APIError with the status.
	bad, _ := NewOrigin(fo.srv.URL, "wrong", 5*time.Second)
	_, err = bad.Sections(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := NewOrigin("127.0.0.1:8000", "", time.Second); err == nil {
		t.Error("origin without scheme: no error")
	}
}

func TestIsLoopback(t *testing.T) {
	ctx := context.Background()
	for u, want := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://127.3.4.5/": true, "http://[::1]:80": true, "http://localhost:9000": true,
		"http://10.0.0.1:8080": false, "http://192.168.1.1": false, "http://[2001:db8::1]/": false, "https://8.8.8.8": false,
	} {
		got, err := IsLoopback(ctx, u)
		if err != nil || got != want {
			t.Errorf("IsLoopback(%s) = %v, %v; want %v", u, got, err, want)
		}
	}
	if _, err := IsLoopback(ctx, "http:///nohost"); err == nil {
		t.Error("no host: no error")
	}
}

func FuzzParseSitemap(f *testing.F) {
	f.Add([]byte(testSitemap))
	f.Add([]byte(`<sitemapindex><sitemap><loc>http://o/s.xml</loc></sitemap></sitemapindex>`))
	f.Add([]byte(`<urlset><url><loc>//x</loc></url></urlset>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		paths, children, err := ParseSitemap(b)
		if err != nil {
			return
		}
		for _, p := range append(paths, children...) {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n") {
				t.Errorf("path %q", p)
			}
		}
	})
}

func FuzzParseURLList(f *testing.F) {
	f.Add([]byte("/\n/news/\nhttp://127.0.0.1/x?y\n# c\n"))
	f.Add([]byte("ftp://x\n"))
	f.Add([]byte("http://x/? 0\n")) // a space in the query, once let through
	f.Fuzz(func(t *testing.T, b []byte) {
		paths, err := ParseURLList(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if len(paths) == 0 {
			t.Error("no paths and no error")
		}
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n") {
				t.Errorf("path %q", p)
			}
		}
	})
}

func FuzzSumCounter(f *testing.F) {
	f.Add([]byte(testMetrics))
	f.Add([]byte("lakka_origin_http_requests_total 1e3\n"))
	f.Add([]byte("lakka_origin_http_requests_total NaN\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any input: an error or a sum, never a panic.
		if _, err := SumCounter(b, OriginRequestsMetric); err != nil && !strings.HasPrefix(err.Error(), "bench: metrics:") {
			t.Errorf("error %q lacks its prefix", err)
		}
	})
}
