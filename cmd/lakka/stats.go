package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/edge"
)

func newStatsCmd() *cobra.Command {
	var (
		admin    string
		interval time.Duration
		count    int
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show an edge's live counters, like varnishstat",
		Long: `Stats polls an edge's admin API (/api/stats) and shows request rates by
cache result, the hit ratio, stale serves, origin fetches and errors, the
store's fill, and each backend's health with its recent probe results,
its fetches in flight against its adaptive fetch limit and those queued
(H = healthy probe, - = failed), newest last. The admin token is read from
LAKKA_ADMIN_TOKEN (not needed from a network in the edge's
admin.allow_networks).

On a terminal the screen is redrawn every --interval; otherwise one block
is printed per interval. --count stops after that many blocks.`,
		Example: `  LAKKA_ADMIN_TOKEN=demo-admin-token lakka stats --admin 127.0.0.1:8081
  lakka stats --admin 127.0.0.1:8081 --count 1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if admin == "" {
				return usagef("--admin: the edge's admin address is required")
			}
			if interval <= 0 {
				return usagef("--interval: must be greater than 0, got %s", interval)
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			tty := isTerminal(cmd.OutOrStdout())
			token := os.Getenv("LAKKA_ADMIN_TOKEN")
			var prev *edge.Stats
			for n := 0; count == 0 || n < count; n++ {
				cur, err := fetchStats(ctx, admin, token)
				if err != nil {
					return err
				}
				if tty {
					fmt.Fprint(cmd.OutOrStdout(), "\x1b[H\x1b[2J")
				}
				if err := printStats(cmd.OutOrStdout(), admin, prev, cur); err != nil {
					return err
				}
				prev = cur
				if count != 0 && n+1 >= count {
					break
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&admin, "admin", "", "edge admin address host:port")
	f.DurationVar(&interval, "interval", time.Second, "time between updates")
	f.IntVar(&count, "count", 0, "stop after this many updates (0: until interrupted)")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func fetchStats(ctx context.Context, admin, token string) (*edge.Stats, error) {
	base := admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/stats", nil)
	if err != nil {
		return nil, usagef("--admin %q: %v", admin, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stats from %s: %w", admin, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized && token == "":
		return nil, fmt.Errorf("stats from %s: %s: set LAKKA_ADMIN_TOKEN to the edge's admin token", admin, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("stats from %s: %s", admin, resp.Status)
	}
	var st edge.Stats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("stats from %s: %w", admin, err)
	}
	return &st, nil
}

// printStats writes one block: totals, and rates since prev when given.
func printStats(out io.Writer, admin string, prev, cur *edge.Stats) error {
	w := &columns{out: out}
	state := "serving"
	if cur.Draining {
		state = "DRAINING"
	}
	fmt.Fprintf(out, "lakka stats  %s  %s (pid %d)  up %s  %s\n", admin, cmp.Or(cur.Version, "unknown version"), cur.PID, time.Duration(cur.UptimeSeconds*float64(time.Second)).Round(time.Second), state)
	if r := cur.Reload; r != nil {
		switch {
		case !r.OK:
			fmt.Fprintf(out, "last reload %s FAILED (running the previous configuration): %s\n", r.At.Format(time.RFC3339), r.Error)
		case len(r.NeedsUpgrade) > 0:
			fmt.Fprintf(out, "last reload %s ok; needs an upgrade or restart for: %s\n", r.At.Format(time.RFC3339), strings.Join(r.NeedsUpgrade, ", "))
		default:
			fmt.Fprintf(out, "last reload %s ok\n", r.At.Format(time.RFC3339))
		}
	}
	if b := cur.Bus; b != nil {
		fmt.Fprintf(out, "purge bus  node %s  applied %d  pending %d  gaps %d  connected %t  caught up %t\n", cur.Node, b.Applied, b.Pending, b.Gaps, b.Connected, b.CaughtUp)
	}
	if c := cur.Cluster; c != nil {
		source := "purge bus"
		if c.Static {
			source = "static"
		}
		shield := ""
		if c.ShieldZone != "" {
			shield = "  shield zone " + c.ShieldZone
		}
		fmt.Fprintf(out, "cluster  %d members (%s)%s  forwarded %.0f  peer faults %.0f  served to peers %.0f  hot copies %d (%s)\n",
			len(c.Members), source, shield, c.Forwarded, c.PeerFaults, c.PeerServed, c.HotCopies, fmt.Sprintf("%.1f MiB", float64(c.HotCopyBytes)/(1<<20)))
		for _, m := range c.Members {
			self := ""
			if m.Self {
				self = "  (this edge)"
			}
			fmt.Fprintf(out, "  %-12s zone %-8s %s%s\n", m.ID, m.Zone, m.Addr, self)
		}
	}
	dt := 0.0
	if prev != nil {
		dt = cur.Time.Sub(prev.Time).Seconds()
	}
	rate := func(c, p float64) string {
		if dt <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", (c-p)/dt)
	}
	line := func(name string, c float64, p func(*edge.Stats) float64) {
		r := "-"
		if prev != nil {
			r = rate(c, p(prev))
		}
		w.row(name, fmt.Sprintf("%.0f", c), r)
	}
	w.row("", "total", "per second")
	total := func(s *edge.Stats) float64 {
		t := 0.0
		for _, v := range s.Requests {
			t += v
		}
		return t
	}
	line("requests", total(cur), total)
	keys := make([]string, 0, len(cur.Requests))
	for k := range cur.Requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line("  "+strings.ToLower(k), cur.Requests[k], func(s *edge.Stats) float64 { return s.Requests[k] })
	}
	hits := func(s *edge.Stats) float64 { return s.Requests["HIT"] + s.Requests["STALE"] }
	ratio := func(h, t float64) string {
		if t <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*h/t)
	}
	recent := "-"
	if prev != nil {
		recent = ratio(hits(cur)-hits(prev), total(cur)-total(prev))
	}
	w.row("hit ratio (HIT+STALE)", ratio(hits(cur), total(cur)), recent)
	line("origin fetches", cur.OriginFetches, func(s *edge.Stats) float64 { return s.OriginFetches })
	line("origin errors", cur.OriginErrors, func(s *edge.Stats) float64 { return s.OriginErrors })
	line("stale on error", cur.StaleOnError, func(s *edge.Stats) float64 { return s.StaleOnError })
	line("coalesced", cur.Coalesced, func(s *edge.Stats) float64 { return s.Coalesced })
	line("purged objects", cur.Purges, func(s *edge.Stats) float64 { return s.Purges })
	line("evictions", cur.Evictions, func(s *edge.Stats) float64 { return s.Evictions })
	w.row("objects", fmt.Sprintf("%.0f", cur.Objects), "")
	w.row("store", fmt.Sprintf("%.1f MiB of %.0f MiB", cur.Bytes/(1<<20), cur.BudgetBytes/(1<<20)), "")
	if w.err != nil {
		return w.err
	}
	fmt.Fprintln(out, "backends")
	bw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, b := range cur.Backends {
		health := "healthy"
		if !b.Healthy {
			health = "SICK"
			if b.PassiveSick {
				health = "SICK (failures)"
			}
		}
		probe := b.ProbeWindow
		if probe == "" {
			probe = "(no probe)"
		}
		name := b.Name
		if name != b.Address {
			name += " " + b.Address
		}
		fmt.Fprintf(bw, "  %s\t%s\t%s\tfetching %d of %.0f, %d queued\tsince %s\n", name, health, probe, b.Fetching, b.FetchLimit, b.Queued, b.Since.Local().Format(time.TimeOnly))
	}
	return bw.Flush()
}

// columns prints a name column left-aligned and two figures right-aligned.
type columns struct {
	out io.Writer
	err error
}

func (c *columns) row(name, total, rate string) {
	if c.err == nil {
		_, c.err = fmt.Fprintf(c.out, "%-24s %22s %12s\n", name, total, rate)
	}
}
