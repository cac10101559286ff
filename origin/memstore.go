package origin

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryStore is the embedded store: everything in RAM, lost on exit. It
// keeps the same promises as PostgresStore (one lock makes every write
// atomic and orders purge IDs by commit). Lists scan all articles, which is
// fine for demo sites of some thousand articles.
type MemoryStore struct {
	mu sync.RWMutex // guards every field below

	sections []Section        // by ID
	byID     map[int64]int    // section ID → index in sections
	byPath   map[string]int64 // section path → ID

	articles  map[int64]*Article // replaced, never changed in place
	byTime    []int64            // article IDs, newest first (published, then ID)
	nextID    int64
	views     map[int64]int64
	comments  map[int64][]Comment // oldest first
	commentID int64

	purges  []Purge // by ID
	head    int64   // newest purge ID written
	pruned  int64   // purges with ID ≤ pruned were pruned
	cursors map[string]int64
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty embedded store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		byID:     map[int64]int{},
		byPath:   map[string]int64{},
		articles: map[int64]*Article{},
		nextID:   1,
		views:    map[int64]int64{},
		comments: map[int64][]Comment{},
		cursors:  map[string]int64{},
	}
}

// Close implements Store; it does nothing.
func (m *MemoryStore) Close() {}

// Sections implements Store.
func (m *MemoryStore) Sections(context.Context) ([]Section, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.sections), nil
}

// chain returns the IDs of a section and its ancestors, nearest first, or
// nil for an unknown section. m.mu must be held.
func (m *MemoryStore) chain(id int64) []int64 {
	var c []int64
	for id != 0 {
		i, ok := m.byID[id]
		if !ok {
			return nil
		}
		c = append(c, id)
		id = m.sections[i].Parent
	}
	return c
}

// breadcrumb returns the sections of chain, root first. m.mu must be held.
func (m *MemoryStore) breadcrumb(chain []int64) []Section {
	out := make([]Section, 0, len(chain))
	for _, id := range slices.Backward(chain) {
		out = append(out, m.sections[m.byID[id]])
	}
	return out
}

// rootOf maps every section to its top-level ancestor. m.mu must be held.
func (m *MemoryStore) rootOf() map[int64]int64 {
	roots := make(map[int64]int64, len(m.sections))
	for _, s := range m.sections { // parents come first
		if s.Parent == 0 {
			roots[s.ID] = s.ID
		} else {
			roots[s.ID] = roots[s.Parent]
		}
	}
	return roots
}

// Front implements Store.
func (m *MemoryStore) Front(_ context.Context, latest, perSection, mostRead int) (FrontPage, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var f FrontPage
	roots := m.rootOf()
	blocks := map[int64][]Summary{}
	full, tops := 0, 0
	for _, s := range m.sections {
		if s.Parent == 0 {
			tops++
		}
	}
	for _, id := range m.byTime {
		a := m.articles[id]
		if len(f.Latest) < latest {
			f.Latest = append(f.Latest, a.summary())
		}
		r := roots[a.SectionID]
		if b := blocks[r]; len(b) < perSection {
			blocks[r] = append(b, a.summary())
			if len(blocks[r]) == perSection {
				full++
			}
		}
		if len(f.Latest) >= latest && full == tops {
			break
		}
	}
	for _, s := range m.sections {
		if b := blocks[s.ID]; s.Parent == 0 && len(b) > 0 {
			f.Sections = append(f.Sections, SectionBlock{Section: s, Articles: b})
		}
	}
	f.MostRead = m.mostRead(mostRead)
	return f, nil
}

// SectionPage implements Store.
func (m *MemoryStore) SectionPage(_ context.Context, path string, limit int) (SectionPage, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.byPath[path]
	if !ok {
		return SectionPage{}, ErrNotFound
	}
	p := SectionPage{Section: m.sections[m.byID[id]], Breadcrumb: m.breadcrumb(m.chain(id))}
	in := map[int64]bool{id: true}
	for _, s := range m.sections { // parents come first
		if in[s.Parent] {
			in[s.ID] = true
		}
	}
	for _, aid := range m.byTime {
		if len(p.Articles) >= limit {
			break
		}
		if a := m.articles[aid]; in[a.SectionID] {
			p.Articles = append(p.Articles, a.summary())
		}
	}
	return p, nil
}

// ArticlePage implements Store.
func (m *MemoryStore) ArticlePage(_ context.Context, id int64, related, comments int) (ArticlePage, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.articles[id]
	if !ok {
		return ArticlePage{}, ErrNotFound
	}
	p := ArticlePage{Article: *a, Breadcrumb: m.breadcrumb(m.chain(a.SectionID))}
	for _, rid := range m.byTime {
		if len(p.Related) >= related {
			break
		}
		if r := m.articles[rid]; r.SectionID == a.SectionID && r.ID != id {
			p.Related = append(p.Related, r.summary())
		}
	}
	cs := m.comments[id]
	for i := len(cs) - 1; i >= 0 && len(p.Comments) < comments; i-- {
		p.Comments = append(p.Comments, cs[i])
	}
	return p, nil
}

// Article implements Store.
func (m *MemoryStore) Article(_ context.Context, id int64) (Article, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.articles[id]
	if !ok {
		return Article{}, ErrNotFound
	}
	return *a, nil
}

// MostRead implements Store.
func (m *MemoryStore) MostRead(_ context.Context, n int) ([]Summary, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mostRead(n), nil
}

// mostRead selects the top n without sorting every count. m.mu must be held.
func (m *MemoryStore) mostRead(n int) []Summary {
	if n <= 0 {
		return nil
	}
	type entry struct{ id, views int64 }
	better := func(a, b entry) int {
		if c := cmp.Compare(b.views, a.views); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	}
	top := make([]entry, 0, n+1)
	for id, v := range m.views {
		e := entry{id, v}
		if v <= 0 || len(top) == n && better(e, top[n-1]) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, e, better)
		top = slices.Insert(top, i, e)
		if len(top) > n {
			top = top[:n]
		}
	}
	out := make([]Summary, 0, len(top))
	for _, e := range top {
		out = append(out, m.articles[e.id].summary())
	}
	return out
}

// Sitemap implements Store. It copies the entries first so that yield
// (which writes to a client) runs without the lock.
func (m *MemoryStore) Sitemap(ctx context.Context, yield func(SitemapEntry) error) error {
	m.mu.RLock()
	entries := make([]SitemapEntry, 0, len(m.sections)+len(m.articles))
	for _, s := range m.sections {
		entries = append(entries, SitemapEntry{Path: s.Path})
	}
	ids := make([]int64, 0, len(m.articles))
	for id := range m.articles {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := m.articles[id]
		entries = append(entries, SitemapEntry{Path: a.URL, Updated: a.UpdatedAt})
	}
	m.mu.RUnlock()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := yield(e); err != nil {
			return err
		}
	}
	return nil
}

// newer orders article IDs newest first. m.mu must be held.
func (m *MemoryStore) newer(a, b int64) int {
	x, y := m.articles[a], m.articles[b]
	if c := y.PublishedAt.Compare(x.PublishedAt); c != 0 {
		return c
	}
	return cmp.Compare(b, a)
}

// CreateArticle implements Store.
func (m *MemoryStore) CreateArticle(_ context.Context, in ArticleInput) (Article, error) {
	if err := in.validate(); err != nil {
		return Article{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	chain := m.chain(in.Section)
	if chain == nil {
		return Article{}, invalidf("section", "no section with id %d", in.Section)
	}
	t := now()
	a := &Article{ID: m.nextID, SectionID: in.Section, Slug: Slug(in.Title), Title: in.Title, Lead: in.Lead, Body: in.Body,
		Version: 1, PublishedAt: t, UpdatedAt: t}
	a.URL = articleURL(m.sections[m.byID[in.Section]].Path, a.ID, a.Slug)
	m.nextID++
	m.insert(a)
	m.addPurge(createTags(a.ID, chain), t)
	return *a, nil
}

// insert adds a new article. m.mu must be held.
func (m *MemoryStore) insert(a *Article) {
	m.articles[a.ID] = a
	i, _ := slices.BinarySearchFunc(m.byTime, a.ID, m.newer)
	m.byTime = slices.Insert(m.byTime, i, a.ID)
}

// UpdateArticle implements Store.
func (m *MemoryStore) UpdateArticle(_ context.Context, id int64, p ArticlePatch) (Article, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.articles[id]
	if !ok {
		return Article{}, ErrNotFound
	}
	in, err := p.apply(*old)
	if err != nil {
		return Article{}, err
	}
	newChain := m.chain(in.Section)
	if newChain == nil {
		return Article{}, invalidf("section", "no section with id %d", in.Section)
	}
	a := *old
	a.SectionID, a.Title, a.Lead, a.Body = in.Section, in.Title, in.Lead, in.Body
	a.Slug = Slug(in.Title)
	a.URL = articleURL(m.sections[m.byID[in.Section]].Path, a.ID, a.Slug)
	a.Version++
	a.UpdatedAt = now()
	m.articles[id] = &a // published time, hence byTime, unchanged
	m.addPurge(updateTags(id, m.chain(old.SectionID), newChain), a.UpdatedAt)
	return a, nil
}

// DeleteArticle implements Store.
func (m *MemoryStore) DeleteArticle(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.articles[id]
	if !ok {
		return ErrNotFound
	}
	if i, found := slices.BinarySearchFunc(m.byTime, id, m.newer); found {
		m.byTime = slices.Delete(m.byTime, i, i+1)
	}
	delete(m.articles, id)
	delete(m.views, id)
	delete(m.comments, id)
	m.addPurge(deleteTags(id, m.chain(a.SectionID)), now())
	return nil
}

// AddComment implements Store.
func (m *MemoryStore) AddComment(_ context.Context, articleID int64, author, body string) (Comment, error) {
	if err := validateComment(author, body); err != nil {
		return Comment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.articles[articleID]; !ok {
		return Comment{}, ErrNotFound
	}
	m.commentID++
	c := Comment{ID: m.commentID, ArticleID: articleID, Author: author, Body: body, CreatedAt: now()}
	m.comments[articleID] = append(m.comments[articleID], c)
	m.addPurge(commentTags(articleID), c.CreatedAt)
	return c, nil
}

// AddViews implements Store.
func (m *MemoryStore) AddViews(_ context.Context, views map[int64]int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, n := range views {
		if _, ok := m.articles[id]; ok && n > 0 {
			m.views[id] += n
		}
	}
	return nil
}

// addPurge appends a purge row. m.mu must be held.
func (m *MemoryStore) addPurge(tags []string, t time.Time) {
	m.head++
	m.purges = append(m.purges, Purge{ID: m.head, Tags: tags, CreatedAt: t})
}

// Purges implements Store.
func (m *MemoryStore) Purges(_ context.Context, after int64, limit int) ([]Purge, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(m.purges, after+1, func(p Purge, id int64) int { return cmp.Compare(p.ID, id) })
	out := make([]Purge, 0, min(limit, len(m.purges)-i))
	for _, p := range m.purges[i:] {
		if len(out) == limit {
			break
		}
		p.Tags = slices.Clone(p.Tags)
		out = append(out, p)
	}
	return out, nil
}

// PurgeHead implements Store.
func (m *MemoryStore) PurgeHead(context.Context) (int64, int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.head, m.pruned, nil
}

// Cursor implements Store.
func (m *MemoryStore) Cursor(_ context.Context, edge string) (int64, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.cursors[edge]
	return c, ok, nil
}

// SetCursor implements Store.
func (m *MemoryStore) SetCursor(_ context.Context, edge string, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.cursors[edge]; !ok || id > c {
		m.cursors[edge] = id
	}
	return nil
}

// PrunePurges implements Store.
func (m *MemoryStore) PrunePurges(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := m.purges[:0]
	for _, p := range m.purges {
		if p.CreatedAt.Before(before) {
			m.pruned = max(m.pruned, p.ID)
			continue
		}
		kept = append(kept, p)
	}
	clear(m.purges[len(kept):])
	m.purges = kept
	return nil
}

// Seed implements Store.
func (m *MemoryStore) Seed(_ context.Context, n int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sections) > 0 {
		return false, nil
	}
	m.sections = seedSections()
	for i, s := range m.sections {
		m.byID[s.ID] = i
		m.byPath[s.Path] = s.ID
	}
	m.byTime = make([]int64, 0, n)
	for i := int64(1); i <= int64(n); i++ {
		a, views := seedArticle(i, int64(n), m.sections)
		m.articles[a.ID] = &a
		if views > 0 {
			m.views[a.ID] = views
		}
	}
	for i := int64(n); i >= 1; i-- { // later articles are newer
		m.byTime = append(m.byTime, i)
	}
	m.nextID = int64(n) + 1
	return true, nil
}
