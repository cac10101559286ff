package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOrigin is an origin and a caching target in one test server: it
// serves a sitemap, the admin API and metrics like the bundled origin, and
// pages with X-Cache (MISS the first time a path is asked, HIT after) and
// X-Content-Version. An edited article's new version is served only once
// purgeDelay has passed since the API answered the edit, like an edge
// whose purge takes that long.
type fakeOrigin struct {
	srv        *httptest.Server
	token      string
	pages      []string
	purgeDelay time.Duration

	mu        sync.Mutex // guards the fields below
	seen      map[string]bool
	misses    int
	articles  map[int64]*fakeArticle
	nextID    int64
	firstNew  map[int64]time.Time // first time each version was served
	answeredV map[int64]time.Time // when the API answered each version
}

type fakeArticle struct {
	Article
	editedAt time.Time
	shown    int64 // version the "edge" serves
}

func newFakeOrigin(t *testing.T, token string) *fakeOrigin {
	t.Helper()
	f := &fakeOrigin{
		token: token, seen: map[string]bool{}, articles: map[int64]*fakeArticle{}, nextID: 100,
		firstNew: map[int64]time.Time{}, answeredV: map[int64]time.Time{},
		pages: []string{"/", "/news/", "/news/world/"},
	}
	for i := 1; i <= 20; i++ {
		f.pages = append(f.pages, "/news/world/"+strconv.Itoa(i)+"-story")
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOrigin) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	return true
}

// article finds the article of an /api/articles/{id} request, or answers
// 401 or 404 and returns nil. Callers hold mu.
func (f *fakeOrigin) article(w http.ResponseWriter, r *http.Request) *fakeArticle {
	if !f.authorized(w, r) {
		return nil
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/api/articles/"), 10, 64)
	a, ok := f.articles[id]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	return a
}

func (f *fakeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch p := r.URL.Path; {
	case p == "/sitemap.xml":
		var b strings.Builder
		b.WriteString(`<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">`)
		for _, pg := range f.pages {
			fmt.Fprintf(&b, "<url><loc>http://%s%s</loc></url>", r.Host, pg)
		}
		b.WriteString(`</urlset>`)
		w.Write([]byte(b.String()))
	case p == "/metrics":
		fmt.Fprintf(w, "# TYPE %s counter\n%s{kind=\"page\"} %d\n", OriginRequestsMetric, OriginRequestsMetric, f.misses)
	case p == "/api/sections":
		if f.authorized(w, r) {
			w.Write([]byte(`[{"id":1,"parent":null,"slug":"news","path":"/news/","name":"News"},{"id":2,"parent":1,"slug":"world","path":"/news/world/","name":"World"}]`))
		}
	case p == "/api/articles" && r.Method == http.MethodPost:
		if !f.authorized(w, r) {
			return
		}
		var in ArticleInput
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Section == 0 || in.Title == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.nextID++
		sec := "/news/"
		if in.Section == 2 {
			sec = "/news/world/"
		}
		a := &fakeArticle{Article: Article{ID: f.nextID, Section: in.Section, Title: in.Title, Version: 1,
			URL: sec + strconv.FormatInt(f.nextID, 10) + "-breaking"}, shown: 1}
		f.articles[a.ID] = a
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(a.Article)
	case strings.HasPrefix(p, "/api/articles/") && r.Method == http.MethodGet:
		if a := f.article(w, r); a != nil {
			json.NewEncoder(w).Encode(a.Article)
		}
	case strings.HasPrefix(p, "/api/articles/") && r.Method == http.MethodPut:
		a := f.article(w, r)
		if a == nil {
			return
		}
		a.Version++
		a.editedAt = time.Now()
		f.answeredV[a.Version] = a.editedAt
		json.NewEncoder(w).Encode(a.Article)
	default:
		cache := "HIT"
		if !f.seen[p] {
			f.seen[p] = true
			f.misses++
			cache = "MISS"
		}
		for _, a := range f.articles {
			if a.URL != p {
				continue
			}
			if a.shown < a.Version && time.Since(a.editedAt) >= f.purgeDelay {
				a.shown = a.Version
			}
			if _, ok := f.firstNew[a.shown]; !ok {
				f.firstNew[a.shown] = time.Now()
			}
			w.Header().Set("X-Content-Version", strconv.FormatInt(a.shown, 10))
		}
		w.Header().Set("X-Cache", cache)
		w.Header().Set("ETag", `"`+p+`"`)
		if r.Header.Get("If-None-Match") == `"`+p+`"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("<html>" + p + "</html>"))
	}
}
