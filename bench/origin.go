package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// OriginRequestsMetric is the origin's request counter (docs/CONTRACTS.md).
const OriginRequestsMetric = "lakka_origin_http_requests_total"

// maxAPIBytes bounds what the bench reads from the origin's API, sitemap and
// metrics.
const maxAPIBytes = 32 << 20

// Origin talks to the bundled origin's admin API, sitemap and metrics. It
// is safe for concurrent use.
type Origin struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// Section is a section of the origin's site.
type Section struct {
	ID     int64  `json:"id"`
	Parent *int64 `json:"parent"`
	Slug   string `json:"slug"`
	Path   string `json:"path"`
	Name   string `json:"name"`
}

// Article is an article as the origin's API returns it.
type Article struct {
	ID      int64  `json:"id"`
	Section int64  `json:"section"`
	Slug    string `json:"slug"`
	Title   string `json:"title"`
	Lead    string `json:"lead"`
	Body    string `json:"body"`
	URL     string `json:"url"`
	Version int64  `json:"version"`
}

// ArticleInput is the body of a create or an edit; empty fields are left out.
type ArticleInput struct {
	Section int64  `json:"section,omitempty"`
	Title   string `json:"title,omitempty"`
	Lead    string `json:"lead,omitempty"`
	Body    string `json:"body,omitempty"`
}

// NewOrigin returns a client of the origin at base (scheme, host, port).
// token is the API's bearer token (LAKKA_ORIGIN_TOKEN); it is never logged.
func NewOrigin(base, token string, timeout time.Duration) (*Origin, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("bench: origin %q: %w", base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bench: origin %q: want http://host:port", base)
	}
	u.Path, u.RawQuery = "", ""
	return &Origin{base: u, token: token, hc: &http.Client{Timeout: timeout}}, nil
}

// APIError is a non-success answer of the origin's API; callers wrap it
// with the request it answered.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("status %d: %s", e.Status, e.Body)
}

func (o *Origin) do(ctx context.Context, method, path string, in, out any, auth bool) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("bench: origin api %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("bench: origin api %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		return fmt.Errorf("bench: origin api %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBytes))
	if err != nil {
		return fmt.Errorf("bench: origin api %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("bench: origin api %s %s: %w", method, path,
			&APIError{Status: resp.StatusCode, Body: truncate(strings.TrimSpace(string(b)))})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("bench: origin api %s %s: %w", method, path, err)
	}
	return nil
}

// Sections lists the site's sections.
func (o *Origin) Sections(ctx context.Context) ([]Section, error) {
	var s []Section
	return s, o.do(ctx, http.MethodGet, "/api/sections", nil, &s, true)
}

// Article reads an article.
func (o *Origin) Article(ctx context.Context, id int64) (Article, error) {
	var a Article
	return a, o.do(ctx, http.MethodGet, "/api/articles/"+strconv.FormatInt(id, 10), nil, &a, true)
}

// Publish creates an article.
func (o *Origin) Publish(ctx context.Context, in ArticleInput) (Article, error) {
	var a Article
	return a, o.do(ctx, http.MethodPost, "/api/articles", in, &a, true)
}

// Edit changes an article; the answer comes after the change and its purge
// are committed, and carries the new version.
func (o *Origin) Edit(ctx context.Context, id int64, in ArticleInput) (Article, error) {
	var a Article
	return a, o.do(ctx, http.MethodPut, "/api/articles/"+strconv.FormatInt(id, 10), in, &a, true)
}

// get fetches a path of the origin whole.
func (o *Origin) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.base.String()+path, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: origin %s: %w", path, err)
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: origin %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: origin %s: status %d", path, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBytes))
	if err != nil {
		return nil, fmt.Errorf("bench: origin %s: %w", path, err)
	}
	return b, nil
}

// maxSitemaps bounds the child sitemaps of a sitemap index that are read.
const maxSitemaps = 100

// SitemapPaths returns the paths (with query) of the origin's sitemap.xml,
// following one level of sitemap index, in the sitemap's order.
func (o *Origin) SitemapPaths(ctx context.Context) ([]string, error) {
	b, err := o.get(ctx, "/sitemap.xml")
	if err != nil {
		return nil, err
	}
	paths, children, err := ParseSitemap(b)
	if err != nil {
		return nil, err
	}
	for i, c := range children {
		if i >= maxSitemaps {
			break
		}
		cb, err := o.get(ctx, c)
		if err != nil {
			return nil, err
		}
		p, _, err := ParseSitemap(cb)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p...)
	}
	if len(paths) == 0 {
		return nil, errors.New("bench: sitemap.xml lists no URL")
	}
	return paths, nil
}

// RequestsTotal reads the origin's /metrics and sums the request counter.
func (o *Origin) RequestsTotal(ctx context.Context) (float64, error) {
	b, err := o.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	return SumCounter(b, OriginRequestsMetric)
}

// SumCounter parses Prometheus text exposition and sums every series of the
// named counter. A missing metric is an error.
func SumCounter(text []byte, name string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return 0, fmt.Errorf("bench: metrics: %w", err)
	}
	f, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("bench: metrics: no %s", name)
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, nil
}

// sitemapXML covers a urlset and a sitemap index.
type sitemapXML struct {
	URLs     []sitemapLoc `xml:"url"`
	Sitemaps []sitemapLoc `xml:"sitemap"`
}

type sitemapLoc struct {
	Loc string `xml:"loc"`
}

// ParseSitemap parses a sitemap (urlset) or sitemap index. It returns the
// paths (with query) of the URLs listed, and the paths of child sitemaps.
// Locations that are not http(s) URLs or absolute paths are skipped.
func ParseSitemap(b []byte) (paths, children []string, err error) {
	var s sitemapXML
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	if err := d.Decode(&s); err != nil {
		return nil, nil, fmt.Errorf("bench: sitemap: %w", err)
	}
	for _, u := range s.URLs {
		if p, ok := pathOf(u.Loc); ok {
			paths = append(paths, p)
		}
	}
	for _, u := range s.Sitemaps {
		if p, ok := pathOf(u.Loc); ok {
			children = append(children, p)
		}
	}
	return paths, children, nil
}

// pathOf returns the path and query of an absolute http(s) URL or of a path.
func pathOf(loc string) (string, bool) {
	loc = strings.TrimSpace(loc)
	// url.Parse lets spaces and control bytes through in a query; a request
	// line cannot carry them, so such a line is not a URL we can replay.
	if strings.ContainsFunc(loc, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", false
	}
	if strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") {
		u, err := url.Parse(loc)
		if err != nil {
			return "", false
		}
		return u.RequestURI(), true
	}
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	return u.RequestURI(), true
}

// ParseURLList parses a list of URLs or paths, one a line; blank lines and
// lines starting with # are skipped. Lines that are neither an http(s) URL
// nor an absolute path are errors, reported with their line number.
func ParseURLList(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, ok := pathOf(line)
		if !ok {
			return nil, fmt.Errorf("bench: url list line %d: %q is not a URL or absolute path", n, truncate(line))
		}
		paths = append(paths, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: url list line %d: %w", n+1, err)
	}
	if len(paths) == 0 {
		return nil, errors.New("bench: url list has no URL")
	}
	return paths, nil
}
