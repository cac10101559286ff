package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge"
)

func newEdgeCmd() *cobra.Command {
	var (
		file      string
		listen    string
		admin     string
		backends  []string
		pools     []string
		cacheSize config.ByteSize
		nodeID    string
		zone      string
		busURL    string
	)
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Run a caching edge node in front of one or more backends",
		Long: `Run a caching reverse proxy: responses are kept in RAM (bounded by
cache.size_bytes), freshness comes from the origin's headers, concurrent
misses share one origin fetch, stale objects are served while they are
refreshed. The admin listener serves /healthz to anyone, and /metrics,
/api/stats and the purge API with the admin token (admin.token or
LAKKA_ADMIN_TOKEN; the purge API also takes LAKKA_PURGE_TOKEN) or to the
networks admin.allow_networks lists.
With --purge-bus (purge.bus.url) the edge consumes every purge published
on the NATS JetStream purge bus, as the durable consumer --node-id, and
answers /healthz 503 until it has applied those it missed; purges sent to
it (purge API, PURGE) are published there for every other edge.
SIGHUP reloads the configuration (the file, the environment and these
flags again): routes, key rules, cache defaults, cookies, tokens,
networks, backends and the access log change for new requests, the cache
and connections stay; an invalid file changes nothing (logged, counted,
shown by lakka stats); keys that need new sockets or a new store (listen
addresses, cache sizes) are reported as needing an upgrade.
SIGUSR2 upgrades in place: the binary at the same path starts with the
listening sockets, and this process exits once it serves (edge.pid_file
names the new one).
SIGTERM drains the node (healthz 503, then the listener closes, in-flight
requests finish) and exits 0. SIGUSR1 reopens the access log file (for
logrotate).
With cache.snapshot_path set, the cache is written to that file on the
way down (SIGTERM, and SIGUSR2 before the new process starts) and loaded
at start, Age still counting; with a purge bus, purges issued meanwhile
are applied before anything loaded is served. A torn or foreign file is
refused (renamed *.refused) and the edge starts empty.

Flags override the configuration file; see "lakka config default" for
every key.`,
		Example: `  lakka edge --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 --backend 127.0.0.1:8000
  lakka edge --config /etc/lakka/lakka.yaml --cache-size 2GiB`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The configuration: the file, the environment, the flags,
			// validated once. SIGHUP builds it again the same way.
			load := func() (config.Config, error) {
				cfg := config.Default()
				if file != "" {
					var err error
					if cfg, err = config.ReadFile(file); err != nil {
						return cfg, &usageError{err}
					}
				}
				if t := os.Getenv("LAKKA_PURGE_TOKEN"); t != "" {
					cfg.Purge.Token = t
				}
				if t := os.Getenv("LAKKA_ADMIN_TOKEN"); t != "" {
					cfg.Admin.Token = t
				}
				f := cmd.Flags()
				if f.Changed("listen") {
					cfg.Edge.Listen = listen
				}
				if f.Changed("admin") {
					cfg.Edge.Admin = admin
				}
				if f.Changed("backend") {
					cfg.Backends.Servers = nil
					for _, b := range backends {
						cfg.Backends.Servers = append(cfg.Backends.Servers, config.Backend{Address: b})
					}
				}
				// --pool NAME=ADDR (repeatable) replaces the servers of a
				// pool the file names; default is backends.servers.
				replaced := map[string]bool{}
				for _, p := range pools {
					name, addr, ok := strings.Cut(p, "=")
					if !ok || name == "" || addr == "" {
						return cfg, usagef("--pool %q: want NAME=HOST:PORT", p)
					}
					b := config.Backend{Address: addr}
					if name == "default" {
						if !replaced[name] {
							cfg.Backends.Servers = nil
						}
						cfg.Backends.Servers = append(cfg.Backends.Servers, b)
					} else {
						pl, ok := cfg.Pools[name]
						if !ok {
							return cfg, usagef("--pool %s=%s: the configuration has no pool %q (pools: %s)", name, addr, name, strings.Join(cfg.PoolNames(), ", "))
						}
						if !replaced[name] {
							pl.Servers = nil
						}
						pl.Servers = append(pl.Servers, b)
						cfg.Pools[name] = pl
					}
					replaced[name] = true
				}
				if f.Changed("cache-size") {
					cfg.Cache.SizeBytes = cacheSize
				}
				if f.Changed("node-id") {
					cfg.Edge.NodeID = nodeID
				}
				if f.Changed("zone") {
					cfg.Edge.Zone = zone
				}
				if f.Changed("purge-bus") {
					cfg.Purge.Bus.URL = busURL
				}
				if err := cfg.ValidateEdge(); err != nil {
					return cfg, usagef("%v", flagNames(err))
				}
				return cfg, nil
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			return runEdge(cmd, cfg, load)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "configuration file (YAML)")
	f.StringVar(&listen, "listen", "", "client listener address (edge.listen)")
	f.StringVar(&admin, "admin", "", "admin listener address: /metrics, /healthz, purge API (edge.admin)")
	f.StringArrayVar(&backends, "backend", nil, "backend address host:port, repeatable (backends.servers)")
	f.StringArrayVar(&pools, "pool", nil, "NAME=HOST:PORT, repeatable: replaces the servers of pool NAME (pools.NAME.servers; default is backends.servers)")
	f.Var(&cacheSize, "cache-size", "cache size in bytes, e.g. 512MiB (cache.size_bytes)")
	f.StringVar(&nodeID, "node-id", "", "this edge's name in the fleet; default the host name (edge.node_id)")
	f.StringVar(&zone, "zone", "", "the availability zone this edge runs in (edge.zone)")
	f.StringVar(&busURL, "purge-bus", "", "consume and publish purges on this NATS JetStream URL (purge.bus.url)")
	return cmd
}

// flagNames adds the flag name to validation errors about keys that have
// a flag, so that the user knows what to change.
func flagNames(err error) error {
	return fmt.Errorf("%w\n(flags: --listen is edge.listen, --admin edge.admin, --backend backends.servers, --pool pools.NAME.servers, --cache-size cache.size_bytes, --node-id edge.node_id, --zone edge.zone, --purge-bus purge.bus.url)", err)
}

func runEdge(cmd *cobra.Command, cfg config.Config, load func() (config.Config, error)) error {
	// SIGHUP and SIGUSR2 are ours from the start: their default would end
	// the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	logger, err := newLogger(cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.Budget().MemoryLimit)
	}
	notify := func(state string) {
		if err := sdNotify(state); err != nil {
			logger.Warn("service manager notification", "err", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := edge.New(cfg, logger, reg)
	if err != nil {
		return err
	}
	srv.SetVersion(buildVersion())
	// The listening sockets come from the previous process after an
	// upgrade (SIGUSR2), and go to the next one.
	upg, err := tableflip.New(tableflip.Options{PIDFile: cfg.Edge.PIDFile})
	if err != nil {
		return fmt.Errorf("edge: upgrades: %w", err)
	}
	defer upg.Stop()
	srv.SetListen(upg.Listen)
	if err := srv.Listen(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var handedOver atomic.Bool
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr2:
			}
			// Two processes must never read one purge bus consumer:
			// this one stops before the next starts, and resumes if the
			// upgrade fails.
			logger.Info("upgrade: starting the new process")
			srv.PauseBus()
			// The cache goes to the new process through
			// cache.snapshot_path (when set): written after the bus
			// stopped, with purges held until the new process serves.
			srv.HoldPurges(true)
			if err := srv.WriteSnapshot(); err != nil {
				logger.Warn("upgrade: going on without the cache", "err", err)
			}
			if err := upg.Upgrade(); err != nil {
				logger.Error("upgrade failed; this process keeps serving", "err", err)
				srv.RemoveSnapshot()
				srv.HoldPurges(false)
				srv.ResumeBus()
				continue
			}
			logger.Info("upgrade: the new process serves; this one finishes its requests and exits")
			handedOver.Store(true)
			srv.HandOver()
			stop()
			return
		}
	}()
	// SIGUSR1 reopens the access log file (logrotate); SIGHUP reloads
	// the configuration.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				notify(reloadingState())
				next, err := load()
				if err != nil {
					srv.ReloadFailed(err)
				} else if r, err := srv.Reload(next); err == nil && len(r.NeedsUpgrade) > 0 {
					logger.Warn("reloaded; these keys keep their running values until an upgrade or a restart", "needs_upgrade", r.NeedsUpgrade)
				}
				notify("READY=1")
			case <-usr1:
				if err := srv.ReopenLog(); err != nil {
					logger.Error("reopen the access log", "err", err)
				} else {
					logger.Info("access log reopened")
				}
			}
		}
	}()
	// Under systemd (Type=notify): ready once the edge serves (caught up
	// with its purge bus), stopping when it drains.
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for !srv.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		if err := upg.Ready(); err != nil {
			logger.Error("upgrade: ready", "err", err)
		}
		if upg.HasParent() {
			// The previous process hands over to this one: the service
			// manager follows the new main process (NotifyAccess=all).
			notify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=serving (upgraded)", os.Getpid()))
		} else {
			notify("READY=1\nSTATUS=serving")
		}
		<-ctx.Done()
		if !handedOver.Load() {
			notify("STOPPING=1\nSTATUS=draining")
		}
	}()
	return srv.Run(ctx)
}
