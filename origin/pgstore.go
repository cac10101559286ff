package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakka-cache/lakka/config"
)

// PostgresStore keeps the site in PostgreSQL through a pgx pool. Pages are
// read with one query each (one round trip: the article page sends its
// queries as one batch), and every write is one transaction that also
// inserts the purge row.
type PostgresStore struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

var _ Store = (*PostgresStore)(nil)

// OpenPostgres connects to the database at url (a PostgreSQL URL or DSN;
// a search_path parameter selects the schema). It does not migrate: call
// Migrate.
func OpenPostgres(ctx context.Context, url string, logger *slog.Logger) (*PostgresStore, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("origin: database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("origin: connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("origin: connect to postgres %s:%d: %w", pc.ConnConfig.Host, pc.ConnConfig.Port, err)
	}
	return &PostgresStore{pool: pool, logger: logger}, nil
}

// Close implements Store.
func (p *PostgresStore) Close() { p.pool.Close() }

func (p *PostgresStore) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, p.pool, fn)
}

// Sections implements Store.
func (p *PostgresStore) Sections(ctx context.Context) ([]Section, error) {
	rows, err := p.pool.Query(ctx, `SELECT id, COALESCE(parent_id, 0), slug, name, path FROM sections ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("origin: sections: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSection)
	if err != nil {
		return nil, fmt.Errorf("origin: sections: %w", err)
	}
	return out, nil
}

func scanSection(row pgx.CollectableRow) (Section, error) {
	var s Section
	err := row.Scan(&s.ID, &s.Parent, &s.Slug, &s.Name, &s.Path)
	return s, err
}

// summaryColumns are scanned by scanSummary; a is articles, s its section.
const summaryColumns = `a.id, a.section_id, a.slug, a.title, a.lead, s.path, a.published_at`

func scanSummary(row pgx.CollectableRow) (Summary, error) {
	var (
		m          Summary
		slug, path string
	)
	if err := row.Scan(&m.ID, &m.SectionID, &slug, &m.Title, &m.Lead, &path, &m.PublishedAt); err != nil {
		return m, err
	}
	m.URL = articleURL(path, m.ID, slug)
	m.PublishedAt = m.PublishedAt.UTC()
	return m, nil
}

// frontQuery is the whole front page in one query: the latest articles, the
// newest of each top-level section's subtree (the recursive part maps every
// section to its root; each section contributes at most $2 from its index),
// and the most read.
const frontQuery = `
WITH RECURSIVE tree (id, root) AS (
	SELECT id, id FROM sections WHERE parent_id IS NULL
	UNION ALL
	SELECT s.id, t.root FROM sections s JOIN tree t ON s.parent_id = t.id
),
latest AS (
	SELECT 0 AS block, 0::bigint AS root, a.id, a.published_at
	FROM articles a ORDER BY a.published_at DESC, a.id DESC LIMIT $1
),
per_root AS (
	SELECT 1 AS block, r.id AS root, x.id, x.published_at
	FROM sections r
	CROSS JOIN LATERAL (
		SELECT y.id, y.published_at
		FROM tree t
		CROSS JOIN LATERAL (
			SELECT a.id, a.published_at FROM articles a
			WHERE a.section_id = t.id
			ORDER BY a.published_at DESC, a.id DESC LIMIT $2
		) y
		WHERE t.root = r.id
		ORDER BY y.published_at DESC, y.id DESC LIMIT $2
	) x
	WHERE r.parent_id IS NULL
),
most AS (
	SELECT 2 AS block, 0::bigint AS root, v.article_id AS id,
		row_number() OVER (ORDER BY v.views DESC, v.article_id) AS rn
	FROM (SELECT article_id, views FROM article_views WHERE views > 0
		ORDER BY views DESC, article_id LIMIT $3) v
),
blocks AS (
	SELECT block, root, id, row_number() OVER (PARTITION BY block, root ORDER BY published_at DESC, id DESC) AS rn
	FROM (SELECT * FROM latest UNION ALL SELECT * FROM per_root) l
	UNION ALL
	SELECT block, root, id, rn FROM most
)
SELECT b.block, COALESCE(r.id, 0), COALESCE(r.slug, ''), COALESCE(r.name, ''), COALESCE(r.path, ''),
	` + summaryColumns + `
FROM blocks b
JOIN articles a ON a.id = b.id
JOIN sections s ON s.id = a.section_id
LEFT JOIN sections r ON r.id = b.root AND b.block = 1
ORDER BY b.block, b.root, b.rn`

// Front implements Store.
func (p *PostgresStore) Front(ctx context.Context, latest, perSection, mostRead int) (FrontPage, error) {
	rows, err := p.pool.Query(ctx, frontQuery, latest, perSection, mostRead)
	if err != nil {
		return FrontPage{}, fmt.Errorf("origin: front page: %w", err)
	}
	defer rows.Close()
	var f FrontPage
	for rows.Next() {
		var (
			block      int
			root       Section
			slug, path string
			m          Summary
		)
		if err := rows.Scan(&block, &root.ID, &root.Slug, &root.Name, &root.Path,
			&m.ID, &m.SectionID, &slug, &m.Title, &m.Lead, &path, &m.PublishedAt); err != nil {
			return FrontPage{}, fmt.Errorf("origin: front page: %w", err)
		}
		m.URL = articleURL(path, m.ID, slug)
		m.PublishedAt = m.PublishedAt.UTC()
		switch block {
		case 0:
			f.Latest = append(f.Latest, m)
		case 1:
			if n := len(f.Sections); n == 0 || f.Sections[n-1].Section.ID != root.ID {
				f.Sections = append(f.Sections, SectionBlock{Section: root})
			}
			b := &f.Sections[len(f.Sections)-1]
			b.Articles = append(b.Articles, m)
		default:
			f.MostRead = append(f.MostRead, m)
		}
	}
	if err := rows.Err(); err != nil {
		return FrontPage{}, fmt.Errorf("origin: front page: %w", err)
	}
	return f, nil
}

// sectionQuery is a section page in one query: the breadcrumb (ancestors,
// walked up recursively) and the newest $2 articles of the whole subtree
// (walked down recursively; each section contributes at most $2 from its
// index, then the newest $2 of those win).
const sectionQuery = `
WITH RECURSIVE self AS (
	SELECT id FROM sections WHERE path = $1
),
sub (id) AS (
	SELECT id FROM self
	UNION ALL
	SELECT s.id FROM sections s JOIN sub ON s.parent_id = sub.id
),
crumbs (id, parent_id, slug, name, path, depth) AS (
	SELECT s.id, s.parent_id, s.slug, s.name, s.path, 0 FROM sections s JOIN self USING (id)
	UNION ALL
	SELECT s.id, s.parent_id, s.slug, s.name, s.path, c.depth + 1 FROM sections s JOIN crumbs c ON s.id = c.parent_id
),
top AS (
	SELECT x.id, x.published_at
	FROM sub CROSS JOIN LATERAL (
		SELECT a.id, a.published_at FROM articles a
		WHERE a.section_id = sub.id
		ORDER BY a.published_at DESC, a.id DESC LIMIT $2
	) x
	ORDER BY x.published_at DESC, x.id DESC LIMIT $2
)
SELECT 0 AS part, -c.depth AS ord, c.id, COALESCE(c.parent_id, 0), c.slug, c.name, '', c.path, NULL::timestamptz
FROM crumbs c
UNION ALL
SELECT 1, row_number() OVER (ORDER BY t.published_at DESC, t.id DESC), ` + summaryColumns + `
FROM top t JOIN articles a ON a.id = t.id JOIN sections s ON s.id = a.section_id
ORDER BY part, ord`

// SectionPage implements Store.
func (p *PostgresStore) SectionPage(ctx context.Context, path string, limit int) (SectionPage, error) {
	rows, err := p.pool.Query(ctx, sectionQuery, path, limit)
	if err != nil {
		return SectionPage{}, fmt.Errorf("origin: section page: %w", err)
	}
	defer rows.Close()
	var sp SectionPage
	for rows.Next() {
		var (
			part, ord int64
			id, ref   int64
			slug, nm  string
			lead, pth string
			published *time.Time
		)
		if err := rows.Scan(&part, &ord, &id, &ref, &slug, &nm, &lead, &pth, &published); err != nil {
			return SectionPage{}, fmt.Errorf("origin: section page: %w", err)
		}
		if part == 0 {
			sp.Breadcrumb = append(sp.Breadcrumb, Section{ID: id, Parent: ref, Slug: slug, Name: nm, Path: pth})
			continue
		}
		sp.Articles = append(sp.Articles, Summary{ID: id, SectionID: ref, Title: nm, Lead: lead,
			URL: articleURL(pth, id, slug), PublishedAt: published.UTC()})
	}
	if err := rows.Err(); err != nil {
		return SectionPage{}, fmt.Errorf("origin: section page: %w", err)
	}
	if len(sp.Breadcrumb) == 0 {
		return SectionPage{}, ErrNotFound
	}
	sp.Section = sp.Breadcrumb[len(sp.Breadcrumb)-1]
	return sp, nil
}

const articleColumns = `a.id, a.section_id, a.slug, a.title, a.lead, a.body, s.path, a.version, a.published_at, a.updated_at`

func scanArticle(row pgx.Row) (Article, error) {
	var (
		a    Article
		path string
	)
	if err := row.Scan(&a.ID, &a.SectionID, &a.Slug, &a.Title, &a.Lead, &a.Body, &path, &a.Version, &a.PublishedAt, &a.UpdatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return a, ErrNotFound
		}
		return a, err
	}
	a.URL = articleURL(path, a.ID, a.Slug)
	a.PublishedAt, a.UpdatedAt = a.PublishedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

const articleQuery = `SELECT ` + articleColumns + ` FROM articles a JOIN sections s ON s.id = a.section_id WHERE a.id = $1`

// Article implements Store.
func (p *PostgresStore) Article(ctx context.Context, id int64) (Article, error) {
	a, err := scanArticle(p.pool.QueryRow(ctx, articleQuery, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return a, fmt.Errorf("origin: article %d: %w", id, err)
	}
	return a, err
}

// ArticlePage implements Store: four queries sent as one batch, one round
// trip.
func (p *PostgresStore) ArticlePage(ctx context.Context, id int64, related, comments int) (ArticlePage, error) {
	var (
		ap  ArticlePage
		b   pgx.Batch
		err error
	)
	b.Queue(articleQuery, id).QueryRow(func(row pgx.Row) error {
		ap.Article, err = scanArticle(row)
		return err
	})
	b.Queue(`
WITH RECURSIVE crumbs (id, parent_id, slug, name, path, depth) AS (
	SELECT s.id, s.parent_id, s.slug, s.name, s.path, 0
	FROM sections s JOIN articles a ON a.section_id = s.id WHERE a.id = $1
	UNION ALL
	SELECT s.id, s.parent_id, s.slug, s.name, s.path, c.depth + 1 FROM sections s JOIN crumbs c ON s.id = c.parent_id
)
SELECT id, COALESCE(parent_id, 0), slug, name, path FROM crumbs ORDER BY depth DESC`, id).Query(func(rows pgx.Rows) error {
		ap.Breadcrumb, err = pgx.CollectRows(rows, scanSection)
		return err
	})
	b.Queue(`SELECT `+summaryColumns+` FROM articles a JOIN sections s ON s.id = a.section_id
WHERE a.section_id = (SELECT section_id FROM articles WHERE id = $1) AND a.id <> $1
ORDER BY a.published_at DESC, a.id DESC LIMIT $2`, id, related).Query(func(rows pgx.Rows) error {
		ap.Related, err = pgx.CollectRows(rows, scanSummary)
		return err
	})
	b.Queue(`SELECT id, article_id, author, body, created_at FROM comments WHERE article_id = $1 ORDER BY id DESC LIMIT $2`,
		id, comments).Query(func(rows pgx.Rows) error {
		ap.Comments, err = pgx.CollectRows(rows, scanComment)
		return err
	})
	if err := p.pool.SendBatch(ctx, &b).Close(); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ArticlePage{}, err
		}
		return ArticlePage{}, fmt.Errorf("origin: article page %d: %w", id, err)
	}
	return ap, nil
}

func scanComment(row pgx.CollectableRow) (Comment, error) {
	var c Comment
	err := row.Scan(&c.ID, &c.ArticleID, &c.Author, &c.Body, &c.CreatedAt)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

// MostRead implements Store.
func (p *PostgresStore) MostRead(ctx context.Context, n int) ([]Summary, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+summaryColumns+`
FROM (SELECT article_id, views FROM article_views WHERE views > 0 ORDER BY views DESC, article_id LIMIT $1) v
JOIN articles a ON a.id = v.article_id JOIN sections s ON s.id = a.section_id
ORDER BY v.views DESC, v.article_id`, n)
	if err != nil {
		return nil, fmt.Errorf("origin: most read: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSummary)
	if err != nil {
		return nil, fmt.Errorf("origin: most read: %w", err)
	}
	return out, nil
}

// Sitemap implements Store. It streams rows: yield runs while a pooled
// connection is held.
func (p *PostgresStore) Sitemap(ctx context.Context, yield func(SitemapEntry) error) error {
	rows, err := p.pool.Query(ctx, `
SELECT 0 AS part, id, path, '' AS slug, NULL::timestamptz FROM sections
UNION ALL
SELECT 1, a.id, s.path, a.slug, a.updated_at FROM articles a JOIN sections s ON s.id = a.section_id
ORDER BY part, id`)
	if err != nil {
		return fmt.Errorf("origin: sitemap: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			part, id   int64
			path, slug string
			updated    *time.Time
		)
		if err := rows.Scan(&part, &id, &path, &slug, &updated); err != nil {
			return fmt.Errorf("origin: sitemap: %w", err)
		}
		e := SitemapEntry{Path: path}
		if part == 1 {
			e = SitemapEntry{Path: articleURL(path, id, slug), Updated: updated.UTC()}
		}
		if err := yield(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("origin: sitemap: %w", err)
	}
	return nil
}

// chain returns the IDs of a section and its ancestors, nearest first, and
// the section's path; no IDs for an unknown section.
func chain(ctx context.Context, tx pgx.Tx, id int64) ([]int64, string, error) {
	rows, err := tx.Query(ctx, `
WITH RECURSIVE c (id, parent_id, path, depth) AS (
	SELECT id, parent_id, path, 0 FROM sections WHERE id = $1
	UNION ALL
	SELECT s.id, s.parent_id, s.path, c.depth + 1 FROM sections s JOIN c ON s.id = c.parent_id
)
SELECT id, path FROM c ORDER BY depth`, id)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var (
		ids  []int64
		path string
	)
	for rows.Next() {
		var (
			sid int64
			p   string
		)
		if err := rows.Scan(&sid, &p); err != nil {
			return nil, "", err
		}
		if len(ids) == 0 {
			path = p
		}
		ids = append(ids, sid)
	}
	return ids, path, rows.Err()
}

// addPurge writes the purge row of the change in tx. The advisory lock,
// held until tx ends, makes purge IDs commit in order: a later writer gets
// its ID only after this one committed.
func addPurge(ctx context.Context, tx pgx.Tx, tags []string, t time.Time) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('lakka-origin-outbox/' || current_schema(), 0))`); err != nil {
		return fmt.Errorf("lock outbox: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO purges (tags, created_at) VALUES ($1, $2)`, tags, t); err != nil {
		return fmt.Errorf("insert purge: %w", err)
	}
	return nil
}

// CreateArticle implements Store.
func (p *PostgresStore) CreateArticle(ctx context.Context, in ArticleInput) (Article, error) {
	if err := in.validate(); err != nil {
		return Article{}, err
	}
	var a Article
	err := p.tx(ctx, func(tx pgx.Tx) error {
		ids, path, err := chain(ctx, tx, in.Section)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return invalidf("section", "no section with id %d", in.Section)
		}
		t := now()
		a = Article{SectionID: in.Section, Slug: Slug(in.Title), Title: in.Title, Lead: in.Lead, Body: in.Body,
			Version: 1, PublishedAt: t, UpdatedAt: t}
		if err := tx.QueryRow(ctx, `INSERT INTO articles (section_id, slug, title, lead, body, version, published_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id`, a.SectionID, a.Slug, a.Title, a.Lead, a.Body, t).Scan(&a.ID); err != nil {
			return fmt.Errorf("insert article: %w", err)
		}
		a.URL = articleURL(path, a.ID, a.Slug)
		return addPurge(ctx, tx, createTags(a.ID, ids), t)
	})
	if err != nil {
		return Article{}, wrapWrite("create article", err)
	}
	return a, nil
}

// wrapWrite adds context to store errors, leaving ErrNotFound and
// *InvalidError for callers to branch on.
func wrapWrite(what string, err error) error {
	var ie *InvalidError
	if err == nil || errors.Is(err, ErrNotFound) || errors.As(err, &ie) {
		return err
	}
	return fmt.Errorf("origin: %s: %w", what, err)
}

// UpdateArticle implements Store.
func (p *PostgresStore) UpdateArticle(ctx context.Context, id int64, patch ArticlePatch) (Article, error) {
	var a Article
	err := p.tx(ctx, func(tx pgx.Tx) error {
		old, err := scanArticle(tx.QueryRow(ctx, articleQuery+` FOR UPDATE OF a`, id))
		if err != nil {
			return err
		}
		in, err := patch.apply(old)
		if err != nil {
			return err
		}
		oldIDs, _, err := chain(ctx, tx, old.SectionID)
		if err != nil {
			return err
		}
		newIDs, path, err := chain(ctx, tx, in.Section)
		if err != nil {
			return err
		}
		if len(newIDs) == 0 {
			return invalidf("section", "no section with id %d", in.Section)
		}
		a = old
		a.SectionID, a.Title, a.Lead, a.Body, a.Slug = in.Section, in.Title, in.Lead, in.Body, Slug(in.Title)
		a.URL = articleURL(path, a.ID, a.Slug)
		a.UpdatedAt = now()
		if err := tx.QueryRow(ctx, `UPDATE articles SET section_id = $2, slug = $3, title = $4, lead = $5, body = $6,
	version = version + 1, updated_at = $7 WHERE id = $1 RETURNING version`,
			id, a.SectionID, a.Slug, a.Title, a.Lead, a.Body, a.UpdatedAt).Scan(&a.Version); err != nil {
			return fmt.Errorf("update article: %w", err)
		}
		return addPurge(ctx, tx, updateTags(id, oldIDs, newIDs), a.UpdatedAt)
	})
	if err != nil {
		return Article{}, wrapWrite(fmt.Sprintf("update article %d", id), err)
	}
	return a, nil
}

// DeleteArticle implements Store.
func (p *PostgresStore) DeleteArticle(ctx context.Context, id int64) error {
	err := p.tx(ctx, func(tx pgx.Tx) error {
		var section int64
		if err := tx.QueryRow(ctx, `DELETE FROM articles WHERE id = $1 RETURNING section_id`, id).Scan(&section); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			return fmt.Errorf("delete article: %w", err)
		}
		ids, _, err := chain(ctx, tx, section)
		if err != nil {
			return err
		}
		return addPurge(ctx, tx, deleteTags(id, ids), now())
	})
	return wrapWrite(fmt.Sprintf("delete article %d", id), err)
}

// AddComment implements Store.
func (p *PostgresStore) AddComment(ctx context.Context, articleID int64, author, body string) (Comment, error) {
	if err := validateComment(author, body); err != nil {
		return Comment{}, err
	}
	c := Comment{ArticleID: articleID, Author: author, Body: body, CreatedAt: now()}
	err := p.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO comments (article_id, author, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			articleID, author, body, c.CreatedAt).Scan(&c.ID)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23503" { // foreign_key_violation
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("insert comment: %w", err)
		}
		return addPurge(ctx, tx, commentTags(articleID), c.CreatedAt)
	})
	if err != nil {
		return Comment{}, wrapWrite(fmt.Sprintf("comment on article %d", articleID), err)
	}
	return c, nil
}

// AddViews implements Store: one statement for the whole batch, rows
// locked in ID order so that concurrent batches cannot deadlock.
func (p *PostgresStore) AddViews(ctx context.Context, views map[int64]int64) error {
	ids := make([]int64, 0, len(views))
	for id, n := range views {
		if n > 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	counts := make([]int64, len(ids))
	for i, id := range ids {
		counts[i] = views[id]
	}
	_, err := p.pool.Exec(ctx, `
INSERT INTO article_views (article_id, views)
SELECT t.id, t.n FROM unnest($1::bigint[], $2::bigint[]) AS t (id, n)
WHERE EXISTS (SELECT 1 FROM articles a WHERE a.id = t.id)
ORDER BY t.id
ON CONFLICT (article_id) DO UPDATE SET views = article_views.views + EXCLUDED.views`, ids, counts)
	if err != nil {
		return fmt.Errorf("origin: add views: %w", err)
	}
	return nil
}

// Purges implements Store.
func (p *PostgresStore) Purges(ctx context.Context, after int64, limit int) ([]Purge, error) {
	rows, err := p.pool.Query(ctx, `SELECT id, tags, created_at FROM purges WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("origin: purges: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Purge, error) {
		var pg Purge
		err := row.Scan(&pg.ID, &pg.Tags, &pg.CreatedAt)
		pg.CreatedAt = pg.CreatedAt.UTC()
		return pg, err
	})
	if err != nil {
		return nil, fmt.Errorf("origin: purges: %w", err)
	}
	return out, nil
}

// PurgeHead implements Store.
func (p *PostgresStore) PurgeHead(ctx context.Context) (head, pruned int64, err error) {
	err = p.pool.QueryRow(ctx, `SELECT GREATEST(COALESCE((SELECT max(id) FROM purges), 0), pruned), pruned FROM purge_floor`).Scan(&head, &pruned)
	if err != nil {
		return 0, 0, fmt.Errorf("origin: purge head: %w", err)
	}
	return head, pruned, nil
}

// Cursor implements Store.
func (p *PostgresStore) Cursor(ctx context.Context, edge string) (int64, bool, error) {
	var c int64
	err := p.pool.QueryRow(ctx, `SELECT delivered FROM purge_cursors WHERE edge = $1`, edge).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("origin: cursor of %s: %w", edge, err)
	}
	return c, true, nil
}

// SetCursor implements Store.
func (p *PostgresStore) SetCursor(ctx context.Context, edge string, id int64) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO purge_cursors (edge, delivered, updated_at) VALUES ($1, $2, now())
ON CONFLICT (edge) DO UPDATE SET delivered = GREATEST(purge_cursors.delivered, EXCLUDED.delivered), updated_at = now()`, edge, id)
	if err != nil {
		return fmt.Errorf("origin: set cursor of %s: %w", edge, err)
	}
	return nil
}

// PrunePurges implements Store.
func (p *PostgresStore) PrunePurges(ctx context.Context, before time.Time) error {
	_, err := p.pool.Exec(ctx, `
WITH d AS (DELETE FROM purges WHERE created_at < $1 RETURNING id)
UPDATE purge_floor SET pruned = GREATEST(pruned, COALESCE((SELECT max(id) FROM d), 0))`, before)
	if err != nil {
		return fmt.Errorf("origin: prune purges: %w", err)
	}
	return nil
}

// Seed implements Store. It copies rows with COPY, generating articles as
// PostgreSQL reads them, in one transaction under an advisory lock so that
// origins starting together seed once.
func (p *PostgresStore) Seed(ctx context.Context, n int) (bool, error) {
	seeded := false
	err := p.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('lakka-origin-seed/' || current_schema(), 0))`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sections)`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		sections := seedSections()
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sections"}, []string{"id", "parent_id", "slug", "name", "path"},
			pgx.CopyFromSlice(len(sections), func(i int) ([]any, error) {
				s := sections[i]
				var parent *int64
				if s.Parent != 0 {
					parent = &s.Parent
				}
				return []any{s.ID, parent, s.Slug, s.Name, s.Path}, nil
			})); err != nil {
			return fmt.Errorf("copy sections: %w", err)
		}
		var viewIDs, viewCounts []int64
		i := int64(0)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"articles"},
			[]string{"id", "section_id", "slug", "title", "lead", "body", "version", "published_at", "updated_at"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == int64(n) {
					return nil, nil
				}
				i++
				a, views := seedArticle(i, int64(n), sections)
				if views > 0 {
					viewIDs, viewCounts = append(viewIDs, a.ID), append(viewCounts, views)
				}
				return []any{a.ID, a.SectionID, a.Slug, a.Title, a.Lead, a.Body, a.Version, a.PublishedAt, a.UpdatedAt}, nil
			})); err != nil {
			return fmt.Errorf("copy articles: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"article_views"}, []string{"article_id", "views"},
			pgx.CopyFromSlice(len(viewIDs), func(i int) ([]any, error) { return []any{viewIDs[i], viewCounts[i]}, nil })); err != nil {
			return fmt.Errorf("copy views: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('articles', 'id'), COALESCE(max(id), 0) + 1, false) FROM articles`); err != nil {
			return fmt.Errorf("article ids: %w", err)
		}
		seeded = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("origin: seed: %w", err)
	}
	if seeded {
		// Outside the transaction (VACUUM cannot run in one): sets the
		// visibility map, so that section pages scan the index only.
		if _, err := p.pool.Exec(ctx, `VACUUM (ANALYZE) sections, articles, article_views`); err != nil {
			return true, fmt.Errorf("origin: seed: vacuum: %w", err)
		}
	}
	return seeded, nil
}

// Open returns the store cfg selects: PostgreSQL at cfg.DatabaseURL,
// migrated, or the embedded store when that is empty.
func Open(ctx context.Context, cfg config.Origin, logger *slog.Logger) (Store, error) {
	if cfg.DatabaseURL == "" {
		logger.Info("store: embedded, in memory")
		return NewMemoryStore(), nil
	}
	p, err := OpenPostgres(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return nil, err
	}
	if _, err := p.Migrate(ctx); err != nil {
		p.Close()
		return nil, err
	}
	logger.Info("store: postgres, migrated")
	return p, nil
}
