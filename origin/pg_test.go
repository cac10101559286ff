package origin

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testPostgresURL returns the URL of a fresh, empty schema in the test
// database (LAKKA_TEST_DATABASE_URL), dropped when the test ends. Tests run
// in parallel and CI shares the database, so each gets its own schema. When
// PostgreSQL is unreachable it skips, or fails when CI=true.
func testPostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("LAKKA_TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL is required when CI=true (LAKKA_TEST_DATABASE_URL=%s): %v", redact(base), err)
		}
		tb.Skipf("PostgreSQL unreachable, skipping (set LAKKA_TEST_DATABASE_URL; with CI=true this fails): %v", err)
	}
	defer conn.Close(ctx)
	schema := "lakka_test_" + strings.ToLower(rand.Text())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if !strings.Contains(base, "://") { // key=value form
		return base + " search_path=" + schema
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("LAKKA_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// testLogger writes to the test log only when -v is given.
func testLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tlogWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ tb testing.TB }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// openTestPostgres returns a migrated store in a fresh schema.
func openTestPostgres(tb testing.TB) *PostgresStore {
	tb.Helper()
	ctx := context.Background()
	st, err := OpenPostgres(ctx, testPostgresURL(tb), testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return st
}

// stores lists both stores for tests that run on each.
var stores = []struct {
	name string
	open func(testing.TB) Store
}{
	{"memory", func(testing.TB) Store { return NewMemoryStore() }},
	{"postgres", func(tb testing.TB) Store { return openTestPostgres(tb) }},
}

func forEachStore(t *testing.T, fn func(t *testing.T, open func(testing.TB) Store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open)
		})
	}
}

func mustSeed(tb testing.TB, st Store, n int) {
	tb.Helper()
	ok, err := st.Seed(context.Background(), n)
	if err != nil || !ok {
		tb.Fatalf("Seed(%d) = %v, %v; want true, nil", n, ok, err)
	}
}
