package origin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lakka-cache/lakka/origin/surrogate"
)

// ErrNotFound is returned for an unknown article or section.
var ErrNotFound = errors.New("origin: not found")

// InvalidError is invalid input to a write; Field names the JSON field.
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return "origin: " + e.Msg
	}
	return "origin: " + e.Field + ": " + e.Msg
}

func invalidf(field, format string, args ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Section is one node of the sections tree. Path is its public URL path,
// "/" + the slugs from the root + "/", for example "/news/world/".
type Section struct {
	ID int64
	// Parent is 0 for a top-level section.
	Parent int64
	Slug   string
	Name   string
	Path   string
}

// Summary is an article as lists show it.
type Summary struct {
	ID          int64
	SectionID   int64
	Title       string
	Lead        string
	URL         string
	PublishedAt time.Time
}

// Article is one article, whole. URL is its public path: the section's
// path, then "ID-slug".
type Article struct {
	ID          int64
	SectionID   int64
	Slug        string
	Title       string
	Lead        string
	Body        string
	URL         string
	Version     int64
	PublishedAt time.Time
	UpdatedAt   time.Time
}

func (a *Article) summary() Summary {
	return Summary{ID: a.ID, SectionID: a.SectionID, Title: a.Title, Lead: a.Lead, URL: a.URL, PublishedAt: a.PublishedAt}
}

// Comment is a reader's comment on an article.
type Comment struct {
	ID        int64
	ArticleID int64
	Author    string
	Body      string
	CreatedAt time.Time
}

// FrontPage is what the front page shows.
type FrontPage struct {
	// Latest articles of the whole site, newest first.
	Latest []Summary
	// Sections has a block per top-level section that has articles, in
	// section order, with the newest articles of its whole subtree.
	Sections []SectionBlock
	// MostRead articles, most views first.
	MostRead []Summary
}

// SectionBlock is a section with some of its articles.
type SectionBlock struct {
	Section  Section
	Articles []Summary
}

// SectionPage is what a section page shows.
type SectionPage struct {
	Section Section
	// Breadcrumb lists the ancestors from the root, then Section itself.
	Breadcrumb []Section
	// Articles of the section and all its descendants, newest first.
	Articles []Summary
}

// ArticlePage is what an article page shows.
type ArticlePage struct {
	Article Article
	// Breadcrumb lists the article's section and its ancestors, root first.
	Breadcrumb []Section
	// Related are the newest other articles of the same section.
	Related []Summary
	// Comments, newest first.
	Comments []Comment
}

// SitemapEntry is one URL of the sitemap.
type SitemapEntry struct {
	Path    string
	Updated time.Time
}

// ArticleInput creates an article.
type ArticleInput struct {
	Section int64
	Title   string
	Lead    string
	Body    string
}

// ArticlePatch changes an article; nil fields stay as they are.
type ArticlePatch struct {
	Section *int64
	Title   *string
	Lead    *string
	Body    *string
}

// Purge is one row of the outbox: the tags a committed change affected.
type Purge struct {
	ID        int64
	Tags      []string
	CreatedAt time.Time
}

// Store is where the origin keeps its content. Every write commits the
// content and its purge row together or not at all (a transactional outbox),
// and purge IDs grow in commit order, so that a reader of Purges after a
// cursor never skips a committed row. Both implementations (MemoryStore and
// PostgresStore) pass the same contract tests. Safe for concurrent use.
type Store interface {
	// Sections returns the whole tree, ordered by ID (parents before
	// children).
	Sections(ctx context.Context) ([]Section, error)
	// Front returns the front page: latest articles, the newest perSection
	// of each top-level section's subtree, and the mostRead most viewed.
	Front(ctx context.Context, latest, perSection, mostRead int) (FrontPage, error)
	// SectionPage returns the section at path with its breadcrumb and the
	// newest limit articles of its subtree, or ErrNotFound.
	SectionPage(ctx context.Context, path string, limit int) (SectionPage, error)
	// ArticlePage returns an article with its breadcrumb, related articles
	// and newest comments, or ErrNotFound.
	ArticlePage(ctx context.Context, id int64, related, comments int) (ArticlePage, error)
	// Article returns one article or ErrNotFound.
	Article(ctx context.Context, id int64) (Article, error)
	// MostRead returns the n most viewed articles, most views first (ties:
	// lower ID first); articles never viewed are not listed.
	MostRead(ctx context.Context, n int) ([]Summary, error)
	// Sitemap calls yield for every section, then every article (by ID).
	Sitemap(ctx context.Context, yield func(SitemapEntry) error) error

	// CreateArticle validates in, stores a new article (version 1) and its
	// purge row.
	CreateArticle(ctx context.Context, in ArticleInput) (Article, error)
	// UpdateArticle applies p, increments the version and writes the purge
	// row; ErrNotFound for an unknown id.
	UpdateArticle(ctx context.Context, id int64, p ArticlePatch) (Article, error)
	// DeleteArticle removes an article, its views and comments, and writes
	// the purge row; ErrNotFound for an unknown id.
	DeleteArticle(ctx context.Context, id int64) error
	// AddComment stores a comment and the purge row of its article.
	AddComment(ctx context.Context, articleID int64, author, body string) (Comment, error)
	// AddViews adds view counts in one batch; unknown articles are skipped.
	AddViews(ctx context.Context, views map[int64]int64) error

	// Purges returns up to limit purge rows with ID > after, by ID.
	Purges(ctx context.Context, after int64, limit int) ([]Purge, error)
	// PurgeHead returns the ID of the newest purge row ever written (0 for
	// none) and the ID through which rows were pruned: a reader whose
	// cursor is below pruned may have missed rows.
	PurgeHead(ctx context.Context) (head, pruned int64, err error)
	// Cursor returns the ID through which purges were delivered to edge,
	// and false if the edge has no cursor yet.
	Cursor(ctx context.Context, edge string) (int64, bool, error)
	// SetCursor moves edge's cursor forward to id (never back).
	SetCursor(ctx context.Context, edge string, id int64) error
	// PrunePurges deletes purge rows created before t.
	PrunePurges(ctx context.Context, before time.Time) error

	// Seed fills an empty store: the sections tree and n deterministic
	// articles. It reports false and changes nothing if the store has
	// sections already.
	Seed(ctx context.Context, n int) (bool, error)
	// Close releases the store's resources.
	Close()
}

// Limits of article and comment fields, in characters (runes).
const (
	maxTitleRunes   = 200
	maxLeadRunes    = 1000
	maxBodyBytes    = 200 << 10
	maxAuthorRunes  = 80
	maxCommentRunes = 4000
	maxSlugBytes    = 80
)

// checkText validates one text field: valid UTF-8, no NUL or other control
// characters than newlines and tabs (when multiline), within limits.
func checkText(field, s string, required, multiline bool, maxRunes, maxBytes int) error {
	if !utf8.ValidString(s) {
		return invalidf(field, "must be valid UTF-8")
	}
	if required && strings.TrimSpace(s) == "" {
		return invalidf(field, "is required")
	}
	if maxBytes > 0 && len(s) > maxBytes {
		return invalidf(field, "must be at most %d bytes, got %d", maxBytes, len(s))
	}
	if maxRunes > 0 {
		if n := utf8.RuneCountInString(s); n > maxRunes {
			return invalidf(field, "must be at most %d characters, got %d", maxRunes, n)
		}
	}
	for _, r := range s {
		if r < ' ' && !(multiline && (r == '\n' || r == '\r' || r == '\t')) || r == 0x7f {
			return invalidf(field, "must not contain control characters")
		}
	}
	return nil
}

func (in *ArticleInput) validate() error {
	if in.Section <= 0 {
		return invalidf("section", "is required (a section id)")
	}
	if err := checkText("title", in.Title, true, false, maxTitleRunes, 0); err != nil {
		return err
	}
	if err := checkText("lead", in.Lead, false, false, maxLeadRunes, 0); err != nil {
		return err
	}
	return checkText("body", in.Body, true, true, 0, maxBodyBytes)
}

// apply returns the article a would become with p applied, validated.
func (p *ArticlePatch) apply(a Article) (ArticleInput, error) {
	in := ArticleInput{Section: a.SectionID, Title: a.Title, Lead: a.Lead, Body: a.Body}
	if p.Section != nil {
		in.Section = *p.Section
	}
	if p.Title != nil {
		in.Title = *p.Title
	}
	if p.Lead != nil {
		in.Lead = *p.Lead
	}
	if p.Body != nil {
		in.Body = *p.Body
	}
	return in, in.validate()
}

func validateComment(author, body string) error {
	if err := checkText("author", author, true, false, maxAuthorRunes, 0); err != nil {
		return err
	}
	return checkText("body", body, true, true, maxCommentRunes, 0)
}

// Slug turns a title into the ASCII slug of its URL: lower-case letters,
// digits and single hyphens, at most 80 bytes, "article" if nothing is
// left. Common Latin letters with diacritics lose them (ä → a).
func Slug(title string) string {
	b := make([]byte, 0, min(len(title), maxSlugBytes))
	hyphen := false
loop:
	for _, r := range strings.ToLower(title) {
		// A hyphen is written only before the next letter or digit, so
		// the slug never starts or ends with one.
		if f, ok := fold[r]; ok {
			r = f
		}
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			hyphen = true
			continue
		}
		if hyphen && len(b) > 0 {
			if len(b)+2 > maxSlugBytes {
				break loop
			}
			b = append(b, '-')
		}
		hyphen = false
		b = append(b, byte(r))
		if len(b) == maxSlugBytes {
			break loop
		}
	}
	if len(b) == 0 {
		return "article"
	}
	return string(b)
}

var fold = map[rune]rune{
	'ä': 'a', 'å': 'a', 'á': 'a', 'à': 'a', 'â': 'a', 'ã': 'a', 'æ': 'a',
	'ö': 'o', 'ø': 'o', 'ó': 'o', 'ò': 'o', 'ô': 'o', 'õ': 'o',
	'é': 'e', 'è': 'e', 'ê': 'e', 'ë': 'e',
	'í': 'i', 'ì': 'i', 'î': 'i', 'ï': 'i',
	'ú': 'u', 'ù': 'u', 'û': 'u', 'ü': 'u',
	'ç': 'c', 'ñ': 'n', 'š': 's', 'ž': 'z', 'ß': 's', 'ý': 'y', 'ÿ': 'y',
}

// articleURL is an article's public path: the section path, then ID-slug.
func articleURL(sectionPath string, id int64, slug string) string {
	return sectionPath + strconv.FormatInt(id, 10) + "-" + slug
}

// parseArticlePath returns the ID and slug of an article path
// ("/news/world/42-storm-hits"), and false if path is not one. The section
// part is not checked: callers redirect to the canonical URL.
func parseArticlePath(path string) (int64, bool) {
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		return 0, false
	}
	last := path[strings.LastIndexByte(path, '/')+1:]
	digits, _, _ := strings.Cut(last, "-")
	if digits == "" || len(digits) > 18 || digits[0] == '0' {
		return 0, false
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return id, true
}

// Tags of pages, as in docs/origin.md.
const (
	tagFront    = "front"
	tagMostRead = "most-read"
	tagSitemap  = "sitemap"
	tagStatic   = "static"
)

func articleTag(id int64) string { return surrogate.Key("article", id) }
func sectionTag(id int64) string { return surrogate.Key("section", id) }

// changeTags lists the tags a change touches: the article's own, the
// sections in chains (each a section and its ancestors: the pages that list
// the article), and extra page tags, without duplicates.
func changeTags(articleID int64, chains [][]int64, extra ...string) []string {
	tags := []string{articleTag(articleID)}
	seen := map[int64]bool{}
	for _, c := range chains {
		for _, id := range c {
			if !seen[id] {
				seen[id] = true
				tags = append(tags, sectionTag(id))
			}
		}
	}
	return append(tags, extra...)
}

// Tags of each kind of change.
func createTags(id int64, chain []int64) []string {
	return changeTags(id, [][]int64{chain}, tagFront, tagSitemap)
}

func updateTags(id int64, oldChain, newChain []int64) []string {
	if oldChain[0] == newChain[0] {
		return changeTags(id, nil, tagSitemap)
	}
	return changeTags(id, [][]int64{oldChain, newChain}, tagFront, tagSitemap)
}

func deleteTags(id int64, chain []int64) []string {
	return changeTags(id, [][]int64{chain}, tagFront, tagMostRead, tagSitemap)
}

func commentTags(id int64) []string { return []string{articleTag(id)} }

// now is the time stores write, at PostgreSQL's precision so that both
// stores return the same values.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
