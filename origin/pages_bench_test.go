package origin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
)

// BenchmarkPostgres100k measures the pages against PostgreSQL holding the
// seeded site with 100,000 articles in 500 sections. Seeding takes some
// seconds before the first result.
//
//	go test -run '^$' -bench Postgres100k -benchtime 2s ./origin/
func BenchmarkPostgres100k(b *testing.B) {
	ctx := context.Background()
	st := openTestPostgres(b)
	start := time.Now()
	mustSeed(b, st, 100_000)
	b.Logf("seeded 100,000 articles in %s", time.Since(start).Round(time.Millisecond))
	sections, err := st.Sections(ctx)
	if err != nil {
		b.Fatal(err)
	}
	byDepth := map[int][]string{}
	for _, s := range sections {
		d := strings.Count(s.Path, "/") - 1
		byDepth[d] = append(byDepth[d], s.Path)
	}

	// One section page query: breadcrumb and the newest 30 articles of the
	// subtree (top level: 50 sections, about 10,000 articles).
	for _, c := range []struct {
		name  string
		depth int
	}{{"top", 1}, {"middle", 2}, {"leaf", 3}} {
		b.Run("section_query/"+c.name, func(b *testing.B) {
			paths := byDepth[c.depth]
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := st.SectionPage(ctx, paths[i%len(paths)], sectionArticles); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("front_query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Front(ctx, frontLatest, frontPerSection, mostReadCount); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("article_query", func(b *testing.B) {
		b.ReportAllocs()
		id := int64(0)
		for b.Loop() {
			id = id%100_000 + 1
			if _, err := st.ArticlePage(ctx, id, relatedArticles, articleComments); err != nil {
				b.Fatal(err)
			}
		}
	})

	srv := benchServer(b, st)
	// Rendering an article page from its data: the CPU the origin spends
	// per article page besides the query.
	b.Run("article_render", func(b *testing.B) { benchRender(b, srv, 50_000) })
	// The whole article request through the handler: query, render, tags.
	b.Run("article_request", func(b *testing.B) {
		b.ReportAllocs()
		id := int64(0)
		for b.Loop() {
			id = id%100_000 + 1
			a, err := st.Article(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, a.URL, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("GET %s: %d", a.URL, rec.Code)
			}
		}
	})
}

// BenchmarkArticleRender renders an article page of the embedded store:
// the same template work without a database.
func BenchmarkArticleRender(b *testing.B) {
	st := NewMemoryStore()
	mustSeed(b, st, 5000)
	benchRender(b, benchServer(b, st), 2500)
}

func benchServer(b *testing.B, st Store) *Server {
	srv, err := New(config.Default().Origin, st, testLogger(b), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// benchRender renders article id's page from its data, again and again.
// cpu-ns/op is process CPU time (user + system, all threads) per page.
func benchRender(b *testing.B, srv *Server, id int64) {
	ctx := context.Background()
	site, err := srv.siteTree(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ap, err := srv.store.ArticlePage(ctx, id, relatedArticles, articleComments)
	if err != nil {
		b.Fatal(err)
	}
	a := &ap.Article
	v := &view{Title: a.Title, Description: a.Lead, Canonical: a.URL, Site: site, Article: &ap, Here: ap.Breadcrumb[len(ap.Breadcrumb)-1]}
	var buf bytes.Buffer
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		buf.Reset()
		if err := srv.tmpl.pages["article"].ExecuteTemplate(&buf, "layout", v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(buf.Len()), "bytes/page")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
