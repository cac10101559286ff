package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lakka-cache/lakka/bench"
	"github.com/lakka-cache/lakka/config"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test an edge: a modelled breaking-news spike, a replayed trace, and report comparison",
		Long: `bench measures an edge from outside, over HTTP: a Lakka edge, Varnish, nginx
or a staging edge. It is open-loop: requests are sent at their scheduled
times whatever the latency of earlier ones, and latency is measured from the
schedule. See docs/bench.md.`,
		Example: `  lakka bench spike --target http://127.0.0.1:8080 --origin http://127.0.0.1:8000 --out out/spike
  lakka bench replay --trace access.log --target http://127.0.0.1:8080 --speed 2
  lakka bench compare out/lakka out/varnish out/nginx`,
	}
	cmd.AddCommand(newBenchSpikeCmd(), newBenchReplayCmd(), newBenchCompareCmd(), newBenchTargetCmd(), newBenchPurgeRelayCmd())
	return cmd
}

func newBenchPurgeRelayCmd() *cobra.Command {
	var listen, peer, target, originURL, logLevel string
	cmd := &cobra.Command{
		Use:   "purge-relay",
		Short: "Relay the origin's purges (Lakka's purge API) to Varnish or nginx, for comparisons",
		Long: `purge-relay listens where the origin sends purges to an edge's admin
listener (POST /api/purge, bearer token LAKKA_PURGE_TOKEN when set) and
forwards them to a peer cache: Varnish gets tags as an xkey PURGE (soft
purges as xkey.softpurge) and URLs as PURGE requests; nginx (ngx_cache_purge)
has no tags and gets PURGE requests of URLs: with --origin, the bundled
origin's tags become the URL of the page each names (front, most-read,
section:N, article:N). "make bench-peers" uses it.`,
		Example: `  lakka bench purge-relay --listen 127.0.0.1:19301 --peer varnish --target http://127.0.0.1:19381`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkBaseURL("--target", target); err != nil {
				return err
			}
			log, err := benchLogger(logLevel, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var origin *bench.Origin
			if originURL != "" {
				if err := checkBaseURL("--origin", originURL); err != nil {
					return err
				}
				if origin, err = bench.NewOrigin(originURL, os.Getenv("LAKKA_ORIGIN_TOKEN"), 5*time.Second); err != nil {
					return usagef("--origin: %v", err)
				}
			}
			r, err := bench.NewPurgeRelay(listen, peer, target, os.Getenv("LAKKA_PURGE_TOKEN"), origin, log)
			if err != nil {
				return usagef("--listen, --peer or --target: %v", err)
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			served := make(chan error, 1)
			go func() { served <- r.Serve() }()
			fmt.Fprintf(cmd.OutOrStdout(), "lakka bench purge-relay listening on http://%s/ for %s at %s\n", r.Addr(), peer, target)
			select {
			case err := <-served:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Shutdown(sctx); err != nil {
				return err
			}
			return <-served
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:19301", "address the origin sends purges to (its --edge-admin)")
	cmd.Flags().StringVar(&peer, "peer", "varnish", "kind of peer: varnish or nginx")
	cmd.Flags().StringVar(&target, "target", "", "base URL of the peer's client listener, e.g. http://127.0.0.1:19381")
	cmd.Flags().StringVar(&originURL, "origin", "", "for nginx: the bundled origin's base URL, to turn its tags into page URLs (API token from LAKKA_ORIGIN_TOKEN)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	return cmd
}

func newBenchTargetCmd() *cobra.Command {
	var (
		listen    string
		bodyBytes int
	)
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Serve a trivial target (same small body, X-Cache: HIT) to measure the bench's own ceiling",
		Long: `target answers every request at once with the same body and "X-Cache: HIT".
A run against it measures the bench, not a cache: give the target and the
bench a core each (taskset) and raise the rate until the bench reports that
it is the limit. It prints its address and serves until interrupted.`,
		Example: `  taskset -c 1 lakka bench target --listen 127.0.0.1:9000 &
  taskset -c 0 lakka bench spike --target http://127.0.0.1:9000 --origin http://127.0.0.1:9000 \
    --urls bench/testdata/urls.txt --spike-at 1h --rate 50000 --duration 10s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bodyBytes < 0 || bodyBytes > 64<<20 {
				return usagef("--body-bytes: must be between 0 and 64MiB, got %d", bodyBytes)
			}
			t, err := bench.NewTrivialTarget(listen, bodyBytes)
			if err != nil {
				return usagef("--listen: %v", err)
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			served := make(chan error, 1)
			go func() { served <- t.Serve() }()
			fmt.Fprintf(cmd.OutOrStdout(), "lakka bench target listening on http://%s/\n", t.Addr())
			select {
			case err := <-served:
				return err
			case <-ctx.Done():
			}
			if err := t.Close(); err != nil {
				return err
			}
			return <-served
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9000", "address to listen on")
	cmd.Flags().IntVar(&bodyBytes, "body-bytes", 64, "size of the response body")
	return cmd
}

// benchRunFlags are the flags every load-generating subcommand has.
type benchRunFlags struct {
	target      string   // the first of targets
	targets     []string // --target
	host        string
	connections int
	timeout     time.Duration
	duration    time.Duration
	maxRequests int64
	out         string
	label       string
	allowRemote bool
	origin      string
	logLevel    string
}

func (f *benchRunFlags) register(fs *pflag.FlagSet, duration time.Duration) {
	fs.StringSliceVar(&f.targets, "target", nil, "base URL of the edge under test, e.g. http://127.0.0.1:8080 (required); several (repeated or comma-separated) share the requests in turn, all with the first one's Host, as a load balancer in front of a fleet would")
	fs.StringVar(&f.host, "host", "", "Host header to send (default: the target's host)")
	fs.IntVar(&f.connections, "connections", 64, "connections to the target; also the bound on requests in flight")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "timeout of one request")
	fs.DurationVar(&f.duration, "duration", duration, "length of the run: no request is scheduled after it")
	fs.Int64Var(&f.maxRequests, "max-requests", 10_000_000, "stop after sending this many requests")
	fs.StringVar(&f.out, "out", "", "directory to write report.json and report.html into")
	fs.StringVar(&f.label, "label", "", "name of this run in reports and comparisons (default: the target's host)")
	fs.BoolVar(&f.allowRemote, "allow-remote", false, "allow a target or origin outside loopback")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level of the bench's own messages: debug, info, warn or error")
}

// check validates the common flags; messages name the flag.
func (f *benchRunFlags) check(ctx context.Context) error {
	if len(f.targets) == 0 || f.targets[0] == "" {
		return usagef("--target is required")
	}
	f.target = f.targets[0]
	for _, t := range f.targets {
		if err := checkBaseURL("--target", t); err != nil {
			return err
		}
	}
	if f.origin != "" {
		if err := checkBaseURL("--origin", f.origin); err != nil {
			return err
		}
	}
	switch {
	case f.connections <= 0:
		return usagef("--connections: must be positive, got %d", f.connections)
	case f.timeout <= 0:
		return usagef("--timeout: must be positive, got %v", f.timeout)
	case f.duration <= 0:
		return usagef("--duration: must be positive, got %v", f.duration)
	case f.maxRequests <= 0:
		return usagef("--max-requests: must be positive, got %d", f.maxRequests)
	}
	if f.allowRemote {
		return nil
	}
	urls := []struct{ flag, url string }{{"--origin", f.origin}}
	for _, t := range f.targets {
		urls = append(urls, struct{ flag, url string }{"--target", t})
	}
	for _, u := range urls {
		if u.url == "" {
			continue
		}
		ok, err := bench.IsLoopback(ctx, u.url)
		if err != nil {
			return usagef("%s: %v", u.flag, err)
		}
		if !ok {
			return usagef("%s: %s is not on loopback; pass --allow-remote to load-test it", u.flag, u.url)
		}
	}
	return nil
}

// start checks the common flags and returns the bench's logger.
func (f *benchRunFlags) start(ctx context.Context, cmd *cobra.Command) (*slog.Logger, error) {
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return benchLogger(f.logLevel, cmd.ErrOrStderr())
}

func checkBaseURL(flag, raw string) error {
	if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
		return usagef("%s: want a URL like http://127.0.0.1:8080, got %q", flag, raw)
	}
	return nil
}

func (f *benchRunFlags) runConfig(progress func(bench.Progress)) bench.RunConfig {
	return bench.RunConfig{
		Target:      f.target,
		MoreTargets: f.targets[1:],
		Host:        f.host,
		Connections: f.connections,
		Timeout:     f.timeout,
		Duration:    f.duration,
		MaxRequests: f.maxRequests,
		Progress:    progress,
	}
}

// settings records the flags as given, for the report.
func settings(fs *pflag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "help" {
			m[fl.Name] = fl.Value.String()
		}
	})
	return m
}

// benchLogger returns the bench's logger on w.
func benchLogger(level string, w io.Writer) (*slog.Logger, error) {
	l, err := newLogger(config.Log{Level: level, Format: "text"}, w)
	if err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	return l, nil
}

// progressPrinter returns a live one-line progress display on w when w is a
// terminal, and nil (quiet) otherwise; done ends the line.
func progressPrinter(w io.Writer) (progress func(bench.Progress), done func()) {
	f, ok := w.(*os.File)
	if !ok {
		return nil, func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil, func() {}
	}
	printed := false
	progress = func(p bench.Progress) {
		hit := "-"
		if !math.IsNaN(p.HitRatio) {
			hit = fmt.Sprintf("%.1f%%", 100*p.HitRatio)
		}
		fmt.Fprintf(f, "\r\x1b[K%5.0fs  %7.0f/%-7.0f req/s  p99 %7.2f ms  hit %6s  errors %d  in flight %d  late %d",
			p.Elapsed.Seconds(), p.RatePerSec, p.OfferedPerSec, p.P99Ms, hit, p.Errors, p.InFlight, p.Late)
		printed = true
	}
	return progress, func() {
		if printed {
			fmt.Fprintln(f)
		}
	}
}

// signalContext is cancelled by SIGINT or SIGTERM, so that a run stopped
// by hand still reports what it measured.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// finish prints the summary, writes the report files, and turns an
// interrupted run into exit status 130.
func finish(cmd *cobra.Command, rep *bench.Report, f *benchRunFlags, fs *pflag.FlagSet, runErr error) error {
	if rep == nil {
		return runErr
	}
	rep.Settings = settings(fs)
	rep.Label = f.label
	if rep.Label == "" {
		rep.Label = strings.TrimPrefix(strings.TrimPrefix(f.target, "http://"), "https://")
	}
	if err := rep.WriteSummary(cmd.OutOrStdout()); err != nil {
		return err
	}
	if f.out != "" {
		if err := rep.WriteFiles(f.out); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s, %s\n",
			filepath.Join(f.out, "report.json"), filepath.Join(f.out, "report.html"))
	}
	if errors.Is(runErr, context.Canceled) {
		return &exitError{code: 130, err: errors.New("bench interrupted; the report covers the run so far")}
	}
	if runErr == nil && rep.Requests > 0 && rep.Responses == 0 {
		// A load tester who mistyped --target must not read a table of
		// fast "latencies" as a result.
		return fmt.Errorf("bench: no request got an answer (connect errors %d, timeouts %d, other %d): is --target %s right and up?",
			rep.Errors.Connect, rep.Errors.Timeout, rep.Errors.Other, f.target)
	}
	return runErr
}

func newBenchSpikeCmd() *cobra.Command {
	var (
		f         benchRunFlags
		urls      string
		section   string
		editEvery time.Duration
		m         = bench.DefaultSpikeModel()
		seed      int64
	)
	cmd := &cobra.Command{
		Use:   "spike",
		Short: "Run a modelled breaking-news spike: Zipf traffic, then a new article that takes the rate up while it is edited",
		Long: `spike models a breaking-news day against --target. Page URLs come from the
origin's /sitemap.xml (or --urls FILE, most popular first), drawn with Zipf
popularity, plus a share on the front page. At --spike-at an article is
published through the origin's API (POST /api/articles, token from
LAKKA_ORIGIN_TOKEN) and the rate ramps to --spike-x times --rate over
--ramp, concentrated on the article, its section and the front page; the
article is edited every --edit-every, and the report gives each edit's
freshness lag: the time until the target serves the new X-Content-Version.`,
		Example: `  LAKKA_ORIGIN_TOKEN=demo-origin-token lakka bench spike \
    --target http://127.0.0.1:8080 --origin http://127.0.0.1:8000 \
    --duration 60s --rate 200 --spike-at 15s --spike-x 10 --ramp 10s --out out/spike`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.origin == "" {
				return usagef("--origin is required")
			}
			m.Seed = uint64(seed)
			m.Duration = f.duration
			if err := checkSpikeFlags(m, editEvery); err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			log, err := f.start(ctx, cmd)
			if err != nil {
				return err
			}
			if urls != "" {
				fh, err := os.Open(urls)
				if err != nil {
					return usagef("--urls: %v", err)
				}
				m.Paths, err = bench.ParseURLList(fh)
				fh.Close()
				if err != nil {
					return usagef("--urls: %v", err)
				}
			}
			if m.HasSpike() && os.Getenv("LAKKA_ORIGIN_TOKEN") == "" {
				return usagef("LAKKA_ORIGIN_TOKEN is not set: the spike publishes its article through the origin's API (make run's is demo-origin-token)")
			}
			progress, done := progressPrinter(cmd.ErrOrStderr())
			rep, runErr := bench.Spike(ctx, bench.SpikeConfig{
				Model:       m,
				Run:         f.runConfig(progress),
				Origin:      f.origin,
				OriginToken: os.Getenv("LAKKA_ORIGIN_TOKEN"),
				EditEvery:   editEvery,
				Section:     section,
			}, log)
			done()
			return finish(cmd, rep, &f, cmd.Flags(), runErr)
		},
	}
	fs := cmd.Flags()
	f.register(fs, time.Minute)
	fs.StringVar(&f.origin, "origin", "", "base URL of the origin: sitemap, API and metrics, e.g. http://127.0.0.1:8000 (required)")
	fs.StringVar(&urls, "urls", "", "file of page URLs or paths, one a line, most popular first (default: the origin's sitemap.xml)")
	fs.Int64Var(&seed, "seed", 1, "seed of the workload: the same seed draws the same requests")
	fs.Float64Var(&m.BaseRate, "rate", m.BaseRate, "base request rate per second, before the spike")
	fs.Float64Var(&m.ZipfExponent, "zipf", m.ZipfExponent, "Zipf exponent of page popularity (rank k gets 1/k^s)")
	fs.Float64Var(&m.FrontShare, "front-share", m.FrontShare, "share of the base traffic on the front page")
	fs.DurationVar(&m.SpikeAt, "spike-at", m.SpikeAt, "when the article is published and the ramp starts (≥ --duration: no spike)")
	fs.Float64Var(&m.SpikeX, "spike-x", m.SpikeX, "the spike's rate as a multiple of --rate")
	fs.DurationVar(&m.Ramp, "ramp", m.Ramp, "how long the rate takes to reach its peak")
	fs.DurationVar(&editEvery, "edit-every", 5*time.Second, "time between edits of the article during the spike (0: no edit)")
	fs.StringVar(&section, "section", "", "path of the section the article is published in (default: the first top-level section)")
	fs.Float64Var(&m.ArticleShare, "article-share", m.ArticleShare, "share of the spike's extra traffic on the article")
	fs.Float64Var(&m.SectionShare, "section-share", m.SectionShare, "share of the spike's extra traffic on the article's section")
	fs.Float64Var(&m.FrontSpikeShare, "front-spike-share", m.FrontSpikeShare, "share of the spike's extra traffic on the front page")
	fs.Float64Var(&m.Clients.SessionCookieShare, "session-cookies", m.Clients.SessionCookieShare, "share of requests with a session cookie")
	fs.Float64Var(&m.Clients.TrackingCookieShare, "tracking-cookies", m.Clients.TrackingCookieShare, "share of requests with analytics cookies only")
	fs.Float64Var(&m.Clients.ConditionalShare, "conditional", m.Clients.ConditionalShare, "share of requests sent with If-None-Match when an ETag is known")
	return cmd
}

// checkSpikeFlags validates the model's flags; messages name the flag.
func checkSpikeFlags(m bench.SpikeModel, editEvery time.Duration) error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	share := func(flag string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return usagef("%s: must be between 0 and 1, got %v", flag, v)
		}
		return nil
	}
	switch {
	case !(m.BaseRate > 0) || !finite(m.BaseRate):
		return usagef("--rate: must be positive, got %v", m.BaseRate)
	case !(m.SpikeX >= 1) || !finite(m.SpikeX):
		return usagef("--spike-x: must be at least 1, got %v", m.SpikeX)
	case !(m.ZipfExponent >= 0) || !finite(m.ZipfExponent):
		return usagef("--zipf: must be 0 or more, got %v", m.ZipfExponent)
	case m.SpikeAt < 0:
		return usagef("--spike-at: must not be negative, got %v", m.SpikeAt)
	case m.Ramp < 0:
		return usagef("--ramp: must not be negative, got %v", m.Ramp)
	case editEvery < 0:
		return usagef("--edit-every: must not be negative, got %v", editEvery)
	}
	for _, s := range []struct {
		flag string
		v    float64
	}{
		{"--front-share", m.FrontShare}, {"--article-share", m.ArticleShare}, {"--section-share", m.SectionShare},
		{"--front-spike-share", m.FrontSpikeShare}, {"--session-cookies", m.Clients.SessionCookieShare},
		{"--tracking-cookies", m.Clients.TrackingCookieShare}, {"--conditional", m.Clients.ConditionalShare},
	} {
		if err := share(s.flag, s.v); err != nil {
			return err
		}
	}
	if m.ArticleShare+m.SectionShare+m.FrontSpikeShare <= 0 {
		return usagef("--article-share, --section-share, --front-spike-share: at least one must be positive")
	}
	if m.Clients.SessionCookieShare+m.Clients.TrackingCookieShare > 1 {
		return usagef("--session-cookies and --tracking-cookies: add up to more than 1")
	}
	return nil
}

func newBenchReplayCmd() *cobra.Command {
	var (
		f       benchRunFlags
		trace   string
		speed   float64
		asap    bool
		opts    bench.ReplayOptions
		methods []string
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay an access log (nginx, Apache, varnishncsa, Lakka combined or JSON) against an edge",
		Long: `replay sends the requests of an access log to --target with their recorded
timing scaled by --speed, or as fast as the connections allow with --max.
Formats: NCSA combined as written by nginx, Apache and varnishncsa, Lakka's
combined access log (with cache status and seconds taken), and Lakka's JSON
lines; a .gz trace is decompressed. Unparseable lines are counted and
reported, never fatal. Without --max, latency is measured from each
request's scheduled time; with --max, from its send.`,
		Example: `  lakka bench replay --trace /var/log/nginx/access.log --target http://127.0.0.1:8080 --speed 2
  lakka bench replay --trace bench/testdata/lakka-combined.log --target http://127.0.0.1:8080 --max --host www.example.com`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if trace == "" {
				return usagef("--trace is required")
			}
			if cmd.Flags().Changed("speed") && asap {
				return usagef("--speed and --max: choose one")
			}
			if !(speed > 0) || math.IsInf(speed, 0) {
				return usagef("--speed: must be positive, got %v", speed)
			}
			for _, m := range methods {
				if m == "" || strings.ContainsAny(m, " \t/") {
					return usagef("--method: bad method %q", m)
				}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			log, err := f.start(ctx, cmd)
			if err != nil {
				return err
			}
			fh, err := os.Open(trace)
			if err != nil {
				return usagef("--trace: %v", err)
			}
			defer fh.Close()
			opts.Speed = speed
			opts.Methods = methods
			opts.Host = f.host
			progress, done := progressPrinter(cmd.ErrOrStderr())
			rc := f.runConfig(progress)
			rc.ASAP = asap
			rc.Host = "" // the trace's host, unless --host rewrites it (opts.Host)
			rep, runErr := bench.Replay(ctx, fh, bench.ReplayConfig{Options: opts, Run: rc, Origin: f.origin}, log)
			done()
			return finish(cmd, rep, &f, cmd.Flags(), runErr)
		},
	}
	fs := cmd.Flags()
	f.register(fs, 10*time.Minute)
	fs.StringVar(&f.origin, "origin", "", "base URL of the origin, to count origin requests from its /metrics (optional)")
	fs.StringVar(&trace, "trace", "", "access log to replay (required)")
	fs.Float64Var(&speed, "speed", 1, "replay speed: 2 sends the trace twice as fast as recorded")
	fs.BoolVar(&asap, "max", false, "ignore the recorded timing: send as fast as the connections allow")
	fs.StringSliceVar(&methods, "method", []string{"GET", "HEAD"}, "replay only these methods (comma-separated or repeated); requests are sent without a body")
	fs.StringSliceVar(&opts.PathPrefixes, "path-prefix", nil, "replay only paths starting with one of these (repeatable)")
	fs.StringVar(&opts.AcceptEncoding, "accept-encoding", "gzip, deflate, br", "Accept-Encoding sent with every request (logs do not record it)")
	// --host rewrites the trace's hosts; its help says so here.
	fs.Lookup("host").Usage = "Host header for every request (default: the host the trace recorded, else the target's host)"
	return cmd
}

func newBenchCompareCmd() *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "compare REPORT REPORT...",
		Short: "Print reports side by side (report.json files, or directories holding one)",
		Example: `  lakka bench compare out/lakka/report.json out/varnish/report.json
  lakka bench compare --names lakka,varnish,nginx out/lakka out/varnish out/nginx`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("bench compare takes at least two reports, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(names) > 0 && len(names) != len(args) {
				return usagef("--names: %d names for %d reports", len(names), len(args))
			}
			reports := make([]*bench.Report, len(args))
			cols := make([]string, len(args))
			for i, a := range args {
				r, err := bench.ReadReport(a)
				if err != nil {
					return err
				}
				reports[i] = r
				switch {
				case len(names) > 0:
					cols[i] = names[i]
				case r.Label != "":
					cols[i] = r.Label
				default:
					cols[i] = a
				}
			}
			return bench.WriteComparison(cmd.OutOrStdout(), cols, reports)
		},
	}
	cmd.Flags().StringSliceVar(&names, "names", nil, "column names, one per report (default: each report's label)")
	return cmd
}
