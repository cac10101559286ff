package origin

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/lakka-cache/lakka/origin/pgtest"
)

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
	st, err := OpenPostgres(ctx, pgtest.URL(tb), testLogger(tb))
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
