package origin

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/origin/surrogate"
)

const testToken = "test-origin-token"

// testOrigin is an origin on a real loopback listener (httptest), without
// its background work (Serve's tests start that).
type testOrigin struct {
	srv   *Server
	ts    *httptest.Server
	store Store
	reg   *prometheus.Registry
}

func newTestOrigin(t *testing.T, st Store, edit func(*config.Origin)) *testOrigin {
	t.Helper()
	cfg := config.Default().Origin
	cfg.Token = testToken
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, st, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testOrigin{srv: srv, ts: ts, store: st, reg: reg}
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request; headers are name, value pairs.
func (o *testOrigin) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, o.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (o *testOrigin) get(t *testing.T, path string, headers ...string) response {
	t.Helper()
	return o.do(t, http.MethodGet, path, "", headers...)
}

func hasTags(h http.Header, tags ...string) bool {
	got := surrogate.Keys(h)
	for _, t := range tags {
		if !slices.Contains(got, t) {
			return false
		}
	}
	return true
}

// TestPages checks every kind of page on both stores: status, type,
// Cache-Control from the config, tags, no cookies, realistic sizes.
func TestPages(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		st := open(t)
		mustSeed(t, st, 2000)
		o := newTestOrigin(t, st, nil)
		pages := config.Default().Origin.Pages
		cc := func(f config.Freshness) string { return surrogate.Freshness(f).CacheControl() }
		a, err := st.Article(context.Background(), 1234)
		if err != nil {
			t.Fatal(err)
		}
		css, err := o.srv.assets.url("site.css")
		if err != nil {
			t.Fatal(err)
		}
		js, err := o.srv.assets.url("site.js")
		if err != nil {
			t.Fatal(err)
		}
		f := func(path string, status int, ctype, cacheControl string, minBytes, maxBytes int, tags ...string) response {
			t.Helper()
			r := o.get(t, path)
			if r.status != status {
				t.Errorf("GET %s: status %d, want %d", path, r.status, status)
			}
			if got := r.header.Get("Content-Type"); got != ctype {
				t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
			}
			if got := r.header.Get("Cache-Control"); got != cacheControl {
				t.Errorf("GET %s: Cache-Control %q, want %q", path, got, cacheControl)
			}
			if !hasTags(r.header, tags...) {
				t.Errorf("GET %s: Surrogate-Key %q, want it to include %q", path, r.header.Get(surrogate.KeyHeader), tags)
			}
			if c := r.header.Values("Set-Cookie"); len(c) > 0 {
				t.Errorf("GET %s: a cacheable page sets cookies %q", path, c)
			}
			if len(r.body) < minBytes || len(r.body) > maxBytes {
				t.Errorf("GET %s: %d bytes, want %d to %d", path, len(r.body), minBytes, maxBytes)
			}
			return r
		}
		html := "text/html; charset=utf-8"
		front := f("/", 200, html, cc(pages.Front), 30<<10, 120<<10, "front", "most-read", "section:1", "section:10", "article:2000")
		if !strings.Contains(front.body, css) || !strings.Contains(front.body, js) {
			t.Errorf("front page does not link the hashed assets %s and %s", css, js)
		}
		f("/news/", 200, html, cc(pages.Section), 30<<10, 120<<10, "section:1")
		leaf := f("/sport/football/analysis/", 200, html, cc(pages.Section), 30<<10, 120<<10, "section:123")
		if !strings.Contains(leaf.body, `<a href="/sport/">Sport</a>`) || !strings.Contains(leaf.body, `<a href="/sport/football/">Football</a>`) {
			t.Error("leaf section page has no breadcrumb of its ancestors")
		}
		art := f(a.URL, 200, html, cc(pages.Article), 36<<10, 48<<10, fmt.Sprintf("article:%d", a.ID), fmt.Sprintf("section:%d", a.SectionID))
		if art.header.Get("X-Content-Version") != "1" || art.header.Get("ETag") == "" {
			t.Errorf("article headers: X-Content-Version %q, ETag %q", art.header.Get("X-Content-Version"), art.header.Get("ETag"))
		}
		if !strings.Contains(art.body, `<h1>`+a.Title+`</h1>`) || !strings.Contains(art.body, `data-csrf="/comments/token"`) {
			t.Error("article page lacks its title or the comment form")
		}
		f("/fragments/most-read", 200, html, cc(pages.MostRead), 500, 4<<10, "most-read")
		f("/sitemap.xml", 200, "application/xml; charset=utf-8", cc(pages.Sitemap), 100<<10, 1<<20, "sitemap")
		immutable := "public, max-age=31536000, immutable"
		f(css, 200, "text/css; charset=utf-8", immutable, 1<<10, 64<<10, "static")
		f(js, 200, "text/javascript; charset=utf-8", immutable, 500, 64<<10, "static")
		health := o.get(t, "/healthz")
		if health.status != 200 || health.header.Get("Cache-Control") != "no-store" {
			t.Errorf("/healthz: %d %q", health.status, health.header.Get("Cache-Control"))
		}
	})
}

func TestNotFoundAndRedirects(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 50)
	o := newTestOrigin(t, st, nil)
	a, err := st.Article(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	f := func(path string, status int, location string, tags ...string) {
		t.Helper()
		r := o.get(t, path)
		if r.status != status || r.header.Get("Location") != location {
			t.Errorf("GET %s: %d Location %q, want %d %q", path, r.status, r.header.Get("Location"), status, location)
		}
		if !hasTags(r.header, tags...) {
			t.Errorf("GET %s: Surrogate-Key %q, want %q", path, r.header.Get(surrogate.KeyHeader), tags)
		}
		if !surrogate.Shareable(r.header) {
			t.Errorf("GET %s: %q, want a short shared lifetime", path, r.header.Get("Cache-Control"))
		}
	}
	f("/nope/", 404, "", "not-found")
	f("/nope", 404, "", "not-found")
	f("/news", 301, "/news/", "section:1")
	f("/news/world/analysis", 301, "/news/world/analysis/", "section:81")
	f(strings.TrimSuffix(a.URL, a.Slug)+"old-title", 301, a.URL, "article:7")
	f("/elsewhere/7", 301, a.URL, "article:7")
	f("/news/99999-missing", 404, "", "article:99999", "not-found")
	f("/static/site--000000000000.css", 404, "")
	f("/news/0042-leading-zero", 404, "")
	if r := o.do(t, http.MethodPost, "/", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", r.status)
	}
}

func TestConditionalAndHEAD(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 50)
	o := newTestOrigin(t, st, nil)
	a, err := st.Article(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	css, _ := o.srv.assets.url("site.css")
	for _, path := range []string{a.URL, "/", "/news/", css} {
		first := o.get(t, path)
		etag := first.header.Get("ETag")
		again := o.get(t, path, "If-None-Match", `"other", W/`+etag)
		if again.status != http.StatusNotModified || again.body != "" || again.header.Get("ETag") != etag ||
			again.header.Get("Cache-Control") != first.header.Get("Cache-Control") || again.header.Get(surrogate.KeyHeader) != first.header.Get(surrogate.KeyHeader) {
			t.Errorf("GET %s with If-None-Match: %d, %d bytes, headers %v", path, again.status, len(again.body), again.header)
		}
		head := o.do(t, http.MethodHead, path, "")
		if head.status != 200 || head.body != "" || head.header.Get("Content-Length") != fmt.Sprint(len(first.body)) {
			t.Errorf("HEAD %s: %d, %d bytes, Content-Length %q (GET had %d bytes)", path, head.status, len(head.body), head.header.Get("Content-Length"), len(first.body))
		}
	}
}

// TestAssetsHashedByContent checks that a static file's name changes
// exactly when its content does.
func TestAssetsHashedByContent(t *testing.T) {
	a := hashedName("site.css", contentHash([]byte("body{}")))
	b := hashedName("site.css", contentHash([]byte("body{}")))
	c := hashedName("site.css", contentHash([]byte("body{ }")))
	if a != b || a == c || !strings.HasPrefix(a, "site--") || !strings.HasSuffix(a, ".css") || len(a) != len("site--")+12+len(".css") {
		t.Errorf("hashed names %q, %q, %q", a, b, c)
	}
	as, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	for plain, f := range as.byPlain {
		body, err := staticFiles.ReadFile("static/" + plain)
		if err != nil || f.name != hashedName(plain, contentHash(body)) {
			t.Errorf("%s is served as %s (%v)", plain, f.name, err)
		}
	}
}

func TestSitemap(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 300)
	o := newTestOrigin(t, st, nil)
	r := o.get(t, "/sitemap.xml", "Host", "news.example:8080", "X-Forwarded-Proto", "https")
	var doc struct {
		URLs []struct {
			Loc     string `xml:"loc"`
			LastMod string `xml:"lastmod"`
		} `xml:"url"`
	}
	if err := xml.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatalf("sitemap is not XML: %v", err)
	}
	if len(doc.URLs) != 1+500+300 {
		t.Fatalf("sitemap lists %d URLs, want %d (front, sections, articles)", len(doc.URLs), 1+500+300)
	}
	a, err := st.Article(context.Background(), 300)
	if err != nil {
		t.Fatal(err)
	}
	last := doc.URLs[len(doc.URLs)-1]
	if doc.URLs[0].Loc != "https://news.example:8080/" || last.Loc != "https://news.example:8080"+a.URL || last.LastMod == "" {
		t.Errorf("sitemap entries: first %+v, last %+v", doc.URLs[0], last)
	}
	for _, u := range doc.URLs {
		if !strings.HasPrefix(u.Loc, "https://news.example:8080/") {
			t.Fatalf("URL %q is not absolute with the request's host", u.Loc)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 20)
	o := newTestOrigin(t, st, nil)
	a, err := st.Article(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/", a.URL, "/news/", "/nope/", "/fragments/most-read"} {
		o.get(t, p)
	}
	m := o.srv.metrics
	for k, want := range map[kind]float64{kindFront: 2, kindArticle: 1, kindSection: 1, kindNotFound: 1, kindMostRead: 1, kindSitemap: 0} {
		if got := testutil.ToFloat64(m.requests[k]); got != want {
			t.Errorf("requests{kind=%s} = %v, want %v", k, got, want)
		}
	}
	r := o.get(t, "/metrics")
	for _, want := range []string{
		`lakka_origin_http_requests_total{kind="front"} 2`,
		`lakka_origin_render_duration_seconds_count{kind="article"} 1`,
		`lakka_origin_query_duration_seconds_count{query="article"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("/metrics Cache-Control %q", r.header.Get("Cache-Control"))
	}
}

// TestCommentCSRF walks the comment form: the token endpoint is private and
// sets a cookie only for /comments; a POST needs both halves to match.
func TestCommentCSRF(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 20)
	o := newTestOrigin(t, st, nil)
	a, err := st.Article(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	tok := o.get(t, "/comments/token")
	if tok.status != 200 || tok.header.Get("Cache-Control") != "private, no-store" || surrogate.Shareable(tok.header) {
		t.Fatalf("token endpoint: %d %q", tok.status, tok.header.Get("Cache-Control"))
	}
	cookies, err := http.ParseSetCookie(tok.header.Get("Set-Cookie"))
	if err != nil || cookies.Name != csrfCookie || cookies.Path != "/comments" || !cookies.HttpOnly || cookies.SameSite != http.SameSiteStrictMode {
		t.Fatalf("token cookie %+v, %v", cookies, err)
	}
	token := cookies.Value
	if !strings.Contains(tok.body, `"token":"`+token+`"`) {
		t.Fatalf("token body %q does not carry the cookie's token", tok.body)
	}
	form := func(csrf, author string) string {
		return fmt.Sprintf("article=%d&author=%s&body=Well+written&csrf_token=%s", a.ID, author, csrf)
	}
	post := func(body, cookie string) response {
		t.Helper()
		h := []string{"Content-Type", "application/x-www-form-urlencoded"}
		if cookie != "" {
			h = append(h, "Cookie", csrfCookie+"="+cookie)
		}
		return o.do(t, http.MethodPost, "/comments", body, h...)
	}
	other := csrfToken()
	for _, c := range []struct{ body, cookie string }{
		{form(token, "Aino"), ""},        // no cookie: a cross-site form post
		{form("", "Aino"), token},        // no token in the form
		{form(other, "Aino"), token},     // tokens differ
		{form("short", "Aino"), "short"}, // not a token at all
	} {
		if r := post(c.body, c.cookie); r.status != http.StatusForbidden || surrogate.Shareable(r.header) {
			t.Errorf("POST %q with cookie %q: %d %q, want 403 private", c.body, c.cookie, r.status, r.header.Get("Cache-Control"))
		}
	}
	if r := post(form(token, ""), token); r.status != http.StatusBadRequest {
		t.Errorf("comment without author: %d, want 400", r.status)
	}
	r := post(form(token, "Aino"), token)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != a.URL+"#comments" {
		t.Fatalf("good comment: %d Location %q", r.status, r.header.Get("Location"))
	}
	page := o.get(t, a.URL)
	if !strings.Contains(page.body, "Well written") || !strings.Contains(page.body, "Aino") {
		t.Error("the comment is not on the article page")
	}
	ps := purgesAfter(t, st, 0)
	if len(ps) != 1 || !slices.Equal(ps[0].Tags, []string{"article:9"}) {
		t.Errorf("comment purges %+v", purgeTags(ps))
	}
	// The same cookie gets the same token back.
	again := o.get(t, "/comments/token", "Cookie", csrfCookie+"="+token)
	if !strings.Contains(again.body, token) {
		t.Errorf("token endpoint replaced a valid cookie: %q", again.body)
	}
}
