package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/origin"
	"github.com/lakka-cache/lakka/purge/bus"
)

// originFlags are the flags of "lakka origin" and "lakka origin migrate".
type originFlags struct {
	file        string
	databaseURL string
	listen      string
	seed        int
	edgeAdmins  []string
	busURL      string
}

func newOriginCmd() *cobra.Command {
	var o originFlags
	cmd := &cobra.Command{
		Use:   "origin",
		Short: "Run the bundled news origin (embedded store or PostgreSQL)",
		Long: `Run the bundled news site: front page, section pages, article pages, a
most-read fragment, sitemap.xml and content-hashed static files, with an
admin JSON API under /api (bearer token LAKKA_ORIGIN_TOKEN), /metrics and
/healthz.

Without a database URL it uses the embedded in-memory store. With one
(--database-url, or DATABASE_URL) it uses PostgreSQL and applies the
migrations at start. --seed N fills an empty store with the sections tree
and N generated articles, the same for every run.

Every page carries Surrogate-Key tags and Cache-Control from origin.pages;
every change is purged on each --edge-admin edge (POST /api/purge, bearer
token LAKKA_PURGE_TOKEN) and, with --purge-bus, published on the purge bus
for every edge (one message per outbox row, marked sent once JetStream
stored it). SIGTERM stops taking requests, lets those in
flight finish, writes the buffered view counts and exits 0.

Flags override the configuration file (origin section); see
"lakka config default" and docs/origin.md.`,
		Example: `  lakka origin --listen 127.0.0.1:8000 --seed 500
  LAKKA_ORIGIN_TOKEN=s3cret LAKKA_PURGE_TOKEN=t0ken lakka origin --seed 500 --edge-admin 127.0.0.1:8081
  lakka origin --database-url postgres://postgres@127.0.0.1:5432/lakka_news --seed 100000 --purge-bus nats://127.0.0.1:4222
  lakka origin migrate --database-url postgres://postgres@127.0.0.1:5432/lakka_news`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd)
			if err != nil {
				return err
			}
			return runOrigin(cmd, cfg)
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.file, "config", "", "configuration file (YAML)")
	pf.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL (origin.database_url; DATABASE_URL); empty: embedded store")
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "listen address host:port (origin.listen)")
	f.IntVar(&o.seed, "seed", 0, "generate the sections tree and N articles into an empty store (origin.seed)")
	f.StringArrayVar(&o.edgeAdmins, "edge-admin", nil, "edge admin address host:port that receives purges, repeatable (origin.edge_admins)")
	f.StringVar(&o.busURL, "purge-bus", "", "publish purges on this NATS JetStream URL, for every edge (purge.bus.url)")
	cmd.AddCommand(newOriginMigrateCmd(&o))
	return cmd
}

func newOriginMigrateCmd(o *originFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the origin's database migrations and exit",
		Long: `Apply the SQL migrations the database lacks, under an advisory lock, each in
its own transaction; running it again applies nothing. "lakka origin"
does the same at start: use this to migrate before a rolling deploy.`,
		Example: "  lakka origin migrate --database-url postgres://postgres@127.0.0.1:5432/lakka_news",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd)
			if err != nil {
				return err
			}
			if cfg.Origin.DatabaseURL == "" {
				return usagef("origin migrate needs a database: --database-url URL or DATABASE_URL")
			}
			logger, err := newLogger(cfg.Log, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			st, err := origin.OpenPostgres(cmd.Context(), cfg.Origin.DatabaseURL, logger)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(applied) == 0 {
				_, err = fmt.Fprintln(out, "migrations: up to date")
				return err
			}
			for _, name := range applied {
				if _, err := fmt.Fprintln(out, "applied", name); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// config builds the configuration: defaults, the file, the environment
// (DATABASE_URL, LAKKA_ORIGIN_TOKEN, LAKKA_PURGE_TOKEN), then the flags.
func (o *originFlags) config(cmd *cobra.Command) (config.Config, error) {
	cfg := config.Default()
	if o.file != "" {
		var err error
		if cfg, err = config.ReadFile(o.file); err != nil {
			return cfg, &usageError{err}
		}
	}
	oc := &cfg.Origin
	if u := os.Getenv("DATABASE_URL"); u != "" {
		oc.DatabaseURL = u
	}
	if t := os.Getenv("LAKKA_ORIGIN_TOKEN"); t != "" {
		oc.Token = t
	}
	if t := os.Getenv("LAKKA_PURGE_TOKEN"); t != "" {
		oc.PurgeToken = t
	}
	f := cmd.Flags()
	if f.Changed("database-url") {
		oc.DatabaseURL = o.databaseURL
	}
	if f.Changed("listen") {
		if _, _, err := net.SplitHostPort(o.listen); err != nil {
			return cfg, usagef("--listen %q: want host:port", o.listen)
		}
		oc.Listen = o.listen
	}
	if f.Changed("seed") {
		if o.seed < 0 {
			return cfg, usagef("--seed must not be negative, got %d", o.seed)
		}
		oc.Seed = o.seed
	}
	if f.Changed("purge-bus") {
		cfg.Purge.Bus.URL = o.busURL
	}
	if f.Changed("edge-admin") {
		for _, a := range o.edgeAdmins {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return cfg, usagef("--edge-admin %q: want host:port", a)
			}
		}
		oc.EdgeAdmins = o.edgeAdmins
	}
	// The one validation: file, environment and flags together.
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%v\n(flags: --listen is origin.listen, --database-url origin.database_url, --seed origin.seed, --edge-admin origin.edge_admins, --purge-bus purge.bus.url)", err)
	}
	return cfg, nil
}

func runOrigin(cmd *cobra.Command, cfg config.Config) error {
	logger, err := newLogger(cfg.Log, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st, err := origin.Open(ctx, cfg.Origin, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	seeded, err := st.Seed(ctx, cfg.Origin.Seed)
	if err != nil {
		return err
	}
	if seeded {
		logger.Info("store seeded", slog.Int("articles", cfg.Origin.Seed), slog.Duration("took", time.Since(start)))
	} else if cfg.Origin.Seed > 0 {
		logger.Info("store not empty: seed skipped")
	}
	reg := prometheus.NewRegistry()
	srv, err := origin.New(cfg.Origin, st, logger, reg)
	if err != nil {
		return err
	}
	if cfg.Purge.Bus.URL != "" {
		// Retry: the origin starts without its bus; the rows wait in the
		// outbox until it is back.
		b, err := bus.Connect(cfg.Purge.Bus, bus.Options{Name: "lakka origin", Retry: true, Log: logger})
		if err != nil {
			return err
		}
		defer b.Close()
		srv.UseBus(b)
	}
	ln, err := net.Listen("tcp", cfg.Origin.Listen)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	logger.Info("origin listening", slog.String("addr", ln.Addr().String()),
		slog.Any("edge_admins", cfg.Origin.EdgeAdmins), slog.String("purge_bus", cfg.Purge.Bus.URL))
	notify := func(state string) {
		if err := sdNotify(state); err != nil {
			logger.Warn("service manager notification", "err", err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	// Under systemd (Type=notify): ready now that the store is open
	// and seeded and the listener open (a connection made before Serve
	// accepts it waits in the listen queue, it is not refused), stopping
	// when SIGTERM starts the shutdown.
	notify("READY=1\nSTATUS=serving")
	select {
	case err = <-served:
	case <-ctx.Done():
		notify("STOPPING=1\nSTATUS=stopping")
		err = <-served
	}
	if err != nil {
		return err
	}
	logger.Info("origin stopped")
	return nil
}
