package origin

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lakka-cache/lakka/origin/pgtest"
)

// TestMigrateTwice runs the migrations on a seeded database again, from a
// second connection pool as a second origin would: nothing is applied, no
// data is lost.
func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	first, err := OpenPostgres(ctx, url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	applied, err := first.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) || len(ms) == 0 {
		t.Fatalf("first Migrate applied %v, want all %d migrations", applied, len(ms))
	}
	mustSeed(t, first, 10)

	second, err := OpenPostgres(ctx, url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	for range 2 {
		again, err := second.Migrate(ctx)
		if err != nil || len(again) != 0 {
			t.Fatalf("Migrate again = %v, %v; want nothing applied", again, err)
		}
	}
	if a, err := second.Article(ctx, 10); err != nil || a.ID != 10 {
		t.Errorf("article 10 after migrating again: %+v, %v", a, err)
	}
	var versions []int32
	rows, err := second.pool.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err == nil {
		versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil || len(versions) != len(ms) || !slices.IsSorted(versions) {
		t.Errorf("schema_migrations: %v, %v", versions, err)
	}
}

// TestMigrateConcurrently starts several migrations on an empty schema at
// once: the advisory lock lets exactly one apply each migration.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	const n = 4
	results := make(chan []string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			st, err := OpenPostgres(ctx, url, testLogger(t))
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			applied, err := st.Migrate(ctx)
			errs <- err
			results <- applied
		}()
	}
	total := 0
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		total += len(<-results)
	}
	ms, _ := loadMigrations()
	if total != len(ms) {
		t.Errorf("%d concurrent Migrate calls applied %d migrations in all, want %d", n, total, len(ms))
	}
}

// TestPostgresWriteIsAtomic makes the purge insert fail inside the
// transaction (with a trigger): the article change must not be committed
// either.
func TestPostgresWriteIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestPostgres(t)
	mustSeed(t, st, 5)
	if _, err := st.pool.Exec(ctx, `
CREATE FUNCTION refuse_purge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outbox down'; END $$;
CREATE TRIGGER refuse BEFORE INSERT ON purges FOR EACH ROW EXECUTE FUNCTION refuse_purge();`); err != nil {
		t.Fatal(err)
	}
	title := "Never committed"
	if _, err := st.UpdateArticle(ctx, 2, ArticlePatch{Title: &title}); err == nil {
		t.Fatal("update succeeded although its purge row could not be written")
	}
	if _, err := st.CreateArticle(ctx, ArticleInput{Section: 1, Title: title, Body: "b"}); err == nil {
		t.Fatal("create succeeded although its purge row could not be written")
	}
	if err := st.DeleteArticle(ctx, 3); err == nil {
		t.Fatal("delete succeeded although its purge row could not be written")
	}
	a, err := st.Article(ctx, 2)
	if err != nil || a.Title == title || a.Version != 1 {
		t.Errorf("article 2 after a failed update: %+v, %v", a, err)
	}
	if _, err := st.Article(ctx, 3); err != nil {
		t.Errorf("article 3 after a failed delete: %v", err)
	}
	if _, err := st.Article(ctx, 6); !errors.Is(err, ErrNotFound) {
		t.Errorf("article 6 after a failed create: %v, want ErrNotFound", err)
	}
}
