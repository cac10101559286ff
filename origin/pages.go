package origin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"hash/fnv"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lakka-cache/lakka/origin/surrogate"
)

// How much each page shows.
const (
	frontLatest     = 20
	frontPerSection = 5
	mostReadCount   = 10
	sectionArticles = 30
	relatedArticles = 8
	articleComments = 20
)

// Freshness of answers that have no configured page kind.
var (
	notFoundFreshness = surrogate.Freshness{MaxAge: 10 * time.Second, StaleIfError: time.Hour}
	staticFreshness   = surrogate.Freshness{MaxAge: 365 * 24 * time.Hour}
)

// siteTree is the sections tree with its navigation pre-rendered. Sections
// change only by seeding, so the tree is loaded once.
type siteTree struct {
	roots  []*sectionNode
	byPath map[string]*sectionNode
	// Nav and Footer are the same on every page.
	Nav    template.HTML
	Footer template.HTML
}

type sectionNode struct {
	Section
	Children []*sectionNode
}

// siteTree returns the sections tree, loading it on first use. An empty
// tree is not kept: the store may be seeded later (by another origin).
func (s *Server) siteTree(ctx context.Context) (*siteTree, error) {
	if t := s.site.Load(); t != nil {
		return t, nil
	}
	s.siteMu.Lock()
	defer s.siteMu.Unlock()
	if t := s.site.Load(); t != nil {
		return t, nil
	}
	start := time.Now()
	sections, err := s.store.Sections(ctx)
	since(s.metrics.query[querySections], start)
	if err != nil {
		return nil, err
	}
	t := &siteTree{byPath: make(map[string]*sectionNode, len(sections))}
	byID := make(map[int64]*sectionNode, len(sections))
	for _, sec := range sections { // parents come first
		n := &sectionNode{Section: sec}
		byID[sec.ID] = n
		t.byPath[sec.Path] = n
		if p := byID[sec.Parent]; p != nil {
			p.Children = append(p.Children, n)
		} else {
			t.roots = append(t.roots, n)
		}
	}
	var b bytes.Buffer
	if err := s.tmpl.partials.ExecuteTemplate(&b, "nav", t.roots); err != nil {
		return nil, err
	}
	t.Nav = template.HTML(b.String()) // rendered by html/template: safe
	b.Reset()
	if err := s.tmpl.partials.ExecuteTemplate(&b, "footer", t.roots); err != nil {
		return nil, err
	}
	t.Footer = template.HTML(b.String())
	if len(sections) > 0 {
		s.site.Store(t)
	}
	return t, nil
}

// view is what page templates get.
type view struct {
	Title       string
	Description string
	Canonical   string
	Site        *siteTree
	Front       *FrontPage
	Section     *SectionPage
	Children    []*sectionNode
	Article     *ArticlePage
	Here        Section
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// page is one rendered answer and what the edge needs to know about it.
type page struct {
	status  int
	ctype   string
	body    []byte
	tags    []string
	fresh   surrogate.Freshness
	version int64 // X-Content-Version when > 0
}

// render executes a page template into a pooled buffer and sends it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, k kind, tmpl string, v *view, p page) kind {
	b := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(b)
	b.Reset()
	start := time.Now()
	err := s.tmpl.pages[tmpl].ExecuteTemplate(b, "layout", v)
	since(s.metrics.render[k], start)
	if err != nil {
		return s.fail(w, r, "render "+tmpl, err)
	}
	p.body = b.Bytes()
	p.ctype = "text/html; charset=utf-8"
	s.send(w, r, p)
	return k
}

// send writes p with its headers: Cache-Control, Surrogate-Key, an ETag
// (a hash of the body, so that the edge can revalidate with
// If-None-Match and get a 304 without the body), Content-Length.
func (s *Server) send(w http.ResponseWriter, r *http.Request, p page) {
	h := w.Header()
	h.Set("Content-Type", p.ctype)
	surrogate.SetFreshness(h, p.fresh)
	if err := surrogate.AddKeys(h, p.tags...); err != nil {
		// Tags come from IDs and constants; an invalid one is a bug, and
		// the page must then not be cached untagged.
		s.fail(w, r, "tag page", err)
		return
	}
	if p.version > 0 {
		h.Set("X-Content-Version", strconv.FormatInt(p.version, 10))
	}
	hash := fnv.New64a()
	hash.Write(p.body) // never fails
	etag := `"` + strconv.FormatUint(hash.Sum64(), 36) + `"`
	h.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(p.body)))
	status := p.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		s.write(w, r, p.body)
	}
}

// etagMatch reports whether an If-None-Match value matches etag, by the
// weak comparison of RFC 9110 section 13.1.2.
func etagMatch(inm, etag string) bool {
	// Weak comparison (RFC 9110 §8.8.3.2), as If-None-Match asks: the
	// opaque tags, whichever side is weak.
	opaque := strings.TrimPrefix(etag, "W/")
	for c := range strings.SplitSeq(inm, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.TrimPrefix(c, "W/") == opaque {
			return true
		}
	}
	return false
}

// fail answers 500 (uncacheable, see Middleware) and logs err.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, what string, err error) kind {
	if errors.Is(r.Context().Err(), context.Canceled) {
		return kindError // the client left
	}
	s.logger.Error(what, slog.String("path", r.URL.Path), slog.Any("error", err))
	http.Error(w, "internal error", http.StatusInternalServerError)
	return kindError
}

// query times a store call.
func (s *Server) query(q query, fn func() error) error {
	start := time.Now()
	err := fn()
	since(s.metrics.query[q], start)
	return err
}

func summaryTags(tags []string, lists ...[]Summary) []string {
	for _, l := range lists {
		for _, a := range l {
			tags = append(tags, articleTag(a.ID))
		}
	}
	return tags
}

func (s *Server) serveFront(w http.ResponseWriter, r *http.Request) kind {
	site, err := s.siteTree(r.Context())
	if err != nil {
		return s.fail(w, r, "sections", err)
	}
	var f FrontPage
	if err := s.query(queryFront, func() (err error) {
		f, err = s.store.Front(r.Context(), frontLatest, frontPerSection, mostReadCount)
		return err
	}); err != nil {
		return s.fail(w, r, "front page", err)
	}
	tags := []string{tagFront, tagMostRead}
	for _, b := range f.Sections {
		tags = append(tags, sectionTag(b.Section.ID))
		tags = summaryTags(tags, b.Articles)
	}
	tags = summaryTags(tags, f.Latest, f.MostRead)
	return s.render(w, r, kindFront, "front", &view{Title: "Front page", Description: "The latest news.", Canonical: "/", Site: site, Front: &f},
		page{tags: tags, fresh: surrogate.Freshness(s.cfg.Pages.Front)})
}

// servePath serves section and article pages, which live under their
// paths, and answers 404 for the rest.
func (s *Server) servePath(w http.ResponseWriter, r *http.Request) kind {
	path := r.URL.Path
	if id, ok := parseArticlePath(path); ok {
		return s.serveArticle(w, r, id)
	}
	site, err := s.siteTree(r.Context())
	if err != nil {
		return s.fail(w, r, "sections", err)
	}
	if !strings.HasSuffix(path, "/") {
		if n := site.byPath[path+"/"]; n != nil {
			return s.redirect(w, r, n.Path, []string{sectionTag(n.ID)}, surrogate.Freshness(s.cfg.Pages.Section))
		}
		return s.notFound(w, r, site, nil)
	}
	// Unknown paths are answered from the cached tree, not the database.
	n := site.byPath[path]
	if n == nil {
		return s.notFound(w, r, site, nil)
	}
	var sp SectionPage
	if err := s.query(querySection, func() (err error) {
		sp, err = s.store.SectionPage(r.Context(), path, sectionArticles)
		return err
	}); errors.Is(err, ErrNotFound) {
		return s.notFound(w, r, site, nil)
	} else if err != nil {
		return s.fail(w, r, "section page", err)
	}
	tags := summaryTags([]string{sectionTag(sp.Section.ID)}, sp.Articles)
	return s.render(w, r, kindSection, "section", &view{Title: sp.Section.Name, Canonical: sp.Section.Path, Site: site, Section: &sp, Children: n.Children},
		page{tags: tags, fresh: surrogate.Freshness(s.cfg.Pages.Section)})
}

func (s *Server) serveArticle(w http.ResponseWriter, r *http.Request, id int64) kind {
	site, err := s.siteTree(r.Context())
	if err != nil {
		return s.fail(w, r, "sections", err)
	}
	var ap ArticlePage
	err = s.query(queryArticle, func() (err error) {
		ap, err = s.store.ArticlePage(r.Context(), id, relatedArticles, articleComments)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		// Tagged, so that creating the article purges a cached 404.
		return s.notFound(w, r, site, []string{articleTag(id)})
	}
	if err != nil {
		return s.fail(w, r, "article page", err)
	}
	a := &ap.Article
	tags := []string{articleTag(a.ID), sectionTag(a.SectionID)}
	fresh := surrogate.Freshness(s.cfg.Pages.Article)
	if r.URL.Path != a.URL {
		// The title or section changed, or the link was mangled: one URL
		// per article.
		return s.redirect(w, r, a.URL, tags, fresh)
	}
	v := &view{Title: a.Title, Description: a.Lead, Canonical: a.URL, Site: site, Article: &ap}
	if n := len(ap.Breadcrumb); n > 0 {
		v.Here = ap.Breadcrumb[n-1]
	}
	return s.render(w, r, kindArticle, "article", v, page{tags: summaryTags(tags, ap.Related), fresh: fresh, version: a.Version})
}

func (s *Server) serveMostRead(w http.ResponseWriter, r *http.Request) kind {
	var list []Summary
	if err := s.query(queryMostRead, func() (err error) {
		list, err = s.store.MostRead(r.Context(), mostReadCount)
		return err
	}); err != nil {
		return s.fail(w, r, "most read", err)
	}
	b := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(b)
	b.Reset()
	start := time.Now()
	err := s.tmpl.partials.ExecuteTemplate(b, "mostread", list)
	since(s.metrics.render[kindMostRead], start)
	if err != nil {
		return s.fail(w, r, "render most read", err)
	}
	s.send(w, r, page{ctype: "text/html; charset=utf-8", body: b.Bytes(),
		tags: summaryTags([]string{tagMostRead}, list), fresh: surrogate.Freshness(s.cfg.Pages.MostRead)})
	return kindMostRead
}

func (s *Server) redirect(w http.ResponseWriter, r *http.Request, to string, tags []string, fresh surrogate.Freshness) kind {
	w.Header().Set("Location", to)
	s.send(w, r, page{status: http.StatusMovedPermanently, ctype: "text/html; charset=utf-8",
		body: []byte(`<a href="` + template.HTMLEscapeString(to) + `">Moved permanently</a>` + "\n"), tags: tags, fresh: fresh})
	return kindRedirect
}

// notFound answers 404 with a short lifetime, so that the edge absorbs
// floods of made-up URLs without keeping them long.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request, site *siteTree, tags []string) kind {
	s.render(w, r, kindNotFound, "notfound", &view{Title: "Page not found", Site: site},
		page{status: http.StatusNotFound, tags: append(tags, "not-found"), fresh: notFoundFreshness})
	return kindNotFound
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) kind {
	f := s.assets.byHashed[r.PathValue("file")]
	if f == nil {
		// An old or made-up hash: not found, briefly cached.
		w.Header().Set("Cache-Control", notFoundFreshness.CacheControl())
		http.NotFound(w, r)
		return kindNotFound
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", staticFreshness.CacheControl()+", immutable")
	h.Set("ETag", f.etag)
	h.Set(surrogate.KeyHeader, tagStatic)
	if etagMatch(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return kindStatic
	}
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	if r.Method != http.MethodHead {
		s.write(w, r, f.body)
	}
	return kindStatic
}

// serveSitemap streams every page URL. Absolute URLs take the request's
// host (the edge keys its cache by host). A store error after the first
// byte aborts the connection, so that the edge never stores a truncated
// sitemap as complete.
func (s *Server) serveSitemap(w http.ResponseWriter, r *http.Request) kind {
	scheme := "http"
	if r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	base := scheme + "://" + r.Host
	h := w.Header()
	h.Set("Content-Type", "application/xml; charset=utf-8")
	surrogate.SetFreshness(h, surrogate.Freshness(s.cfg.Pages.Sitemap))
	h.Set(surrogate.KeyHeader, tagSitemap)
	if r.Method == http.MethodHead {
		return kindSitemap
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	line := func(path string, updated time.Time) error {
		if _, err := bw.WriteString("<url><loc>"); err != nil {
			return err
		}
		if err := xml.EscapeText(bw, []byte(base+path)); err != nil {
			return err
		}
		end := "</loc></url>\n"
		if !updated.IsZero() {
			end = "</loc><lastmod>" + updated.UTC().Format(time.RFC3339) + "</lastmod></url>\n"
		}
		_, err := bw.WriteString(end)
		return err
	}
	_, err := bw.WriteString(xml.Header + `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">` + "\n")
	if err == nil {
		err = line("/", time.Time{})
	}
	if err == nil {
		err = s.query(querySitemap, func() error {
			return s.store.Sitemap(r.Context(), func(e SitemapEntry) error { return line(e.Path, e.Updated) })
		})
	}
	if err == nil {
		if _, err = bw.WriteString("</urlset>\n"); err == nil {
			err = bw.Flush()
		}
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.logger.Error("sitemap", slog.Any("error", err))
		}
		panic(http.ErrAbortHandler) // net/http closes the connection mid-body
	}
	return kindSitemap
}

// serveView counts one view of an article (a beacon from site.js). It
// writes nothing to the store: counts are flushed in batches.
func (s *Server) serveView(w http.ResponseWriter, r *http.Request) kind {
	w.Header().Set("Cache-Control", "no-store")
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "bad article id", http.StatusBadRequest)
		return kindView
	}
	s.views.add(id)
	w.WriteHeader(http.StatusNoContent)
	return kindView
}
