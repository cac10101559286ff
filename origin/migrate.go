package origin

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Migrations are SQL files named NNNN_what.sql, applied in order, each in
// its own transaction, and recorded in schema_migrations. They are written
// in the expand/contract style (docs/origin.md): a migration only adds what
// the running version can ignore, and removes only what no running version
// uses any more, so that a rolling deploy never needs downtime.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("BUG: migration %s is not named NNNN_what.sql", n)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("BUG: two migrations numbered %d", out[i].version)
		}
	}
	return out, nil
}

// Migrate applies the migrations the database lacks, under a session
// advisory lock (one per schema) so that origins starting together apply
// each migration once. It returns the names of those it applied; running it
// again applies nothing.
func (p *PostgresStore) Migrate(ctx context.Context) ([]string, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("origin: migrate: %w", err)
	}
	defer conn.Release()
	const key = `hashtextextended('lakka-origin-migrate/' || COALESCE(current_schema(), ''), 0)`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`); err != nil {
		return nil, fmt.Errorf("origin: migrate: lock: %w", err)
	}
	defer func() {
		// The lock must go even if ctx is done, or the pooled session would
		// keep it. If unlocking fails, closing the session releases it (and
		// Release then drops the closed connection).
		ctx := context.WithoutCancel(ctx)
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(`+key+`)`); err != nil {
			p.logger.Warn("migrate: unlock failed, closing the connection", slog.Any("error", err))
			if err := conn.Conn().Close(ctx); err != nil {
				p.logger.Warn("migrate: close connection", slog.Any("error", err))
			}
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return nil, fmt.Errorf("origin: migrate: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("origin: migrate: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("origin: migrate: %w", err)
	}
	var done []string
	for _, m := range ms {
		if slices.Contains(applied, int32(m.version)) {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// No arguments: the simple protocol runs every statement of the file.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("origin: migration %s: %w", m.name, err)
		}
		p.logger.Info("migration applied", slog.String("migration", m.name))
		done = append(done, m.name)
	}
	return done, nil
}
