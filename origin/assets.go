package origin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"path"
	"strings"
	"time"
)

//go:embed static
var staticFiles embed.FS

//go:embed templates
var templateFiles embed.FS

// asset is one static file, served under a name that contains the hash of
// its content ("site--3f2a9c1b0d4e.css"), so that it can be cached for a
// year: a new version has a new name.
type asset struct {
	name        string // hashed name
	contentType string
	etag        string
	body        []byte
}

// assets maps plain names ("site.css") and hashed names to the files.
type assets struct {
	byPlain  map[string]*asset
	byHashed map[string]*asset
}

// contentHash is the first 12 hex digits of the content's SHA-256.
func contentHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:6])
}

// hashedName inserts hash before the extension: site.css → site--<hash>.css.
func hashedName(name, hash string) string {
	ext := path.Ext(name)
	return strings.TrimSuffix(name, ext) + "--" + hash + ext
}

func loadAssets() (*assets, error) {
	a := &assets{byPlain: map[string]*asset{}, byHashed: map[string]*asset{}}
	err := fs.WalkDir(staticFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(p)
		if err != nil {
			return err
		}
		plain := strings.TrimPrefix(p, "static/")
		ct := mime.TypeByExtension(path.Ext(plain))
		if ct == "" {
			ct = "application/octet-stream"
		}
		hash := contentHash(body)
		f := &asset{name: hashedName(plain, hash), contentType: ct, etag: `"` + hash + `"`, body: body}
		a.byPlain[plain] = f
		a.byHashed[f.name] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("origin: static files: %w", err)
	}
	return a, nil
}

// url returns the hashed URL of a static file: the template function
// "asset". An unknown name fails the page render (a bug in a template).
func (a *assets) url(plain string) (string, error) {
	f, ok := a.byPlain[plain]
	if !ok {
		return "", fmt.Errorf("origin: no static file %q", plain)
	}
	return "/static/" + f.name, nil
}

// templates are the parsed page templates, one set per page.
type templates struct {
	pages    map[string]*template.Template // front, section, article, notfound
	partials *template.Template            // nav, footer, mostread
}

func parseTemplates(a *assets) (*templates, error) {
	funcs := template.FuncMap{
		"asset":      a.url,
		"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"date":       func(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") },
		"paragraphs": paragraphs,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("origin: templates: %w", err)
	}
	t := &templates{pages: map[string]*template.Template{}, partials: base}
	for _, page := range []string{"front", "section", "article", "notfound"} {
		c, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("origin: templates: %w", err)
		}
		if t.pages[page], err = c.ParseFS(templateFiles, "templates/"+page+".html"); err != nil {
			return nil, fmt.Errorf("origin: templates: %w", err)
		}
	}
	return t, nil
}

// paragraphs splits an article body on blank lines.
func paragraphs(body string) []string {
	var out []string
	for p := range strings.SplitSeq(strings.ReplaceAll(body, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
