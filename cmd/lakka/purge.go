package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

func newPurgeCmd() *cobra.Command {
	var (
		admins  []string
		tags    []string
		urls    []string
		all     bool
		soft    bool
		timeout time.Duration
		busURL  string
		file    string
		wait    bool
	)
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Purge objects by tag, by URL or everything, on the purge bus or on listed edges",
		Long: `With --bus, purge publishes one purge on the purge bus (NATS JetStream),
which every edge consuming it applies, and returns once JetStream stored
it; with --wait it then waits until every edge that was live when it
published has applied it, prints a line per edge with its lag, and exits 1
naming the edges that did not within --timeout.

With --admin, it sends the purge to the admin API of every edge given, in
parallel, and reports per edge how many objects it affected. The bearer
token is read from LAKKA_PURGE_TOKEN (the edges' purge.token), or else
LAKKA_ADMIN_TOKEN (their admin.token).

Hard purges remove objects; --soft marks them stale, so that grace serves
them while one fresh copy is fetched (no thundering herd at peak). The exit
status is 1 when the bus or any edge refused or could not be reached.`,
		Example: `  lakka purge --bus nats://127.0.0.1:4222 --tag article:42 --soft --wait
  LAKKA_PURGE_TOKEN=secret lakka purge --admin 127.0.0.1:8081 --tag article:42 --soft
  lakka purge --admin edge-a:8081 --admin edge-b:8081 --url https://www.example.com/news/42
  lakka purge --admin 127.0.0.1:8081 --all --soft`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if len(tags) == 0 && len(urls) == 0 && !all {
				return usagef("nothing to purge: give --tag, --url or --all")
			}
			if f.Changed("bus") || file != "" {
				if len(admins) > 0 {
					return usagef("--admin and --bus: give one (the bus reaches every edge)")
				}
				bc, err := busConfig(file, busURL, f.Changed("bus"))
				if err != nil {
					return err
				}
				msg := purge.Message{Tags: tags, URLs: urls, All: all, Soft: soft, IssuedAt: time.Now().UTC(), Issuer: "lakka purge"}
				msg.ID = bus.NewID("cli-" + bus.NodeName(""))
				if timeout <= 0 {
					return usagef("--timeout: must be greater than 0, got %s", timeout)
				}
				if err := edge.CheckPurge(msg); err != nil {
					flag := "--tag"
					if strings.HasPrefix(err.Error(), "urls[") {
						flag = "--url"
					}
					return usagef("%s: %v (no edge could apply it)", flag, err)
				}
				return purgeOnBus(cmd, bc, msg, wait, timeout)
			}
			if wait {
				return usagef("--wait needs --bus (with --admin, each edge answers once it applied the purge)")
			}
			if len(admins) == 0 {
				return usagef("--admin or --bus: give the edges' admin addresses or the purge bus")
			}
			token := os.Getenv("LAKKA_PURGE_TOKEN")
			if token == "" {
				token = os.Getenv("LAKKA_ADMIN_TOKEN")
			}
			if token == "" {
				return usagef("LAKKA_PURGE_TOKEN is not set (nor LAKKA_ADMIN_TOKEN): the edges' purge API needs a bearer token")
			}
			msg := purge.Message{Tags: tags, URLs: urls, All: all, Soft: soft, IssuedAt: time.Now().UTC(), Issuer: "lakka purge"}
			if err := msg.Check(); err != nil {
				return usagef("%v", err)
			}
			results := purgeEdges(cmd.Context(), admins, token, msg, timeout)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			failed := 0
			for _, r := range results {
				if r.err != nil {
					failed++
					fmt.Fprintf(w, "%s\tFAILED\t%v\n", r.admin, r.err)
					continue
				}
				fmt.Fprintf(w, "%s\tok\tpurged=%d soft=%t\t%s\n", r.admin, r.purged, r.soft, r.took.Round(time.Microsecond))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("purge failed on %d of %d edges", failed, len(results))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&admins, "admin", nil, "edge admin address host:port (repeatable)")
	f.StringArrayVar(&tags, "tag", nil, "purge objects tagged T (Surrogate-Key), repeatable")
	f.StringArrayVar(&urls, "url", nil, "purge a URL, all its variants (absolute, or a path for every host), repeatable")
	f.BoolVar(&all, "all", false, "purge everything")
	f.BoolVar(&soft, "soft", false, "mark stale instead of removing")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "time allowed per edge (with --wait: for every edge to apply the purge)")
	f.StringVar(&busURL, "bus", "", "publish on the purge bus at this NATS URL (purge.bus.url)")
	f.StringVar(&file, "config", "", "configuration file whose purge.bus section to use (stream, subject, credentials)")
	f.BoolVar(&wait, "wait", false, "with --bus: wait until every live edge applied the purge")
	return cmd
}

// busConfig is the purge.bus section of file (or the defaults), with url
// from --bus when given.
func busConfig(file, url string, urlSet bool) (config.Bus, error) {
	cfg := config.Default()
	if file != "" {
		var err error
		if cfg, err = config.ReadFile(file); err != nil {
			return config.Bus{}, &usageError{err}
		}
	}
	if urlSet {
		cfg.Purge.Bus.URL = url
	}
	if cfg.Purge.Bus.URL == "" {
		return config.Bus{}, usagef("--bus: no purge bus URL (give --bus nats://HOST:4222, or purge.bus.url in --config)")
	}
	if err := cfg.Validate(); err != nil {
		return config.Bus{}, usagef("%v\n(flags: --bus is purge.bus.url)", err)
	}
	return cfg.Purge.Bus, nil
}

// purgeOnBus publishes msg and, with wait, waits for every edge live at
// that moment to apply it.
func purgeOnBus(cmd *cobra.Command, bc config.Bus, msg purge.Message, wait bool, timeout time.Duration) error {
	b, err := bus.Connect(bc, bus.Options{Name: "lakka purge"})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	p, err := b.Publish(ctx, msg)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	out := cmd.OutOrStdout()
	how := "published"
	if p.Duplicate {
		how = "duplicate of"
	}
	fmt.Fprintf(out, "%s seq %d on %s (id %s)\n", how, p.Seq, bc.URL, msg.ID)
	if !wait {
		return nil
	}
	// The edges live when the purge was stored must apply it; "when" is
	// the server's clock, which their entries' times come from too. These
	// reads have a few seconds of their own: --timeout is for the edges.
	rctx, rcancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer rcancel()
	stored, err := b.StoredAt(rctx, p.Seq)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	head, err := b.Head(rctx)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	ms, err := b.Members(rctx)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	var live []bus.Member
	for _, m := range ms {
		if m.Live(stored) {
			live = append(live, m)
		} else {
			fmt.Fprintf(out, "%s\t%s\tnot live (last seen %s before the purge): not waited for\n", m.NodeID, zoneName(m.Zone), stored.Sub(m.Updated).Round(time.Second))
		}
	}
	if len(live) == 0 {
		fmt.Fprintln(out, "no live edges on the bus")
		return nil
	}
	want := map[string]bool{}
	for _, m := range live {
		want[m.NodeID] = true
	}
	// Applied counts in the stream of the purge: an edge still on a
	// stream that was made again has not applied it.
	applied := map[string]bus.Member{}
	for len(applied) < len(live) && ctx.Err() == nil {
		if ms, err := b.Members(ctx); err == nil {
			for _, m := range ms {
				if _, done := applied[m.NodeID]; want[m.NodeID] && !done && m.Stream.Equal(head.Created) && m.Applied >= p.Seq {
					applied[m.NodeID] = m
				}
			}
		}
		if len(applied) < len(live) {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	var missing []string
	for _, m := range live {
		a, ok := applied[m.NodeID]
		if !ok {
			missing = append(missing, m.NodeID)
			fmt.Fprintf(w, "%s\t%s\tNOT APPLIED\twithin %s\n", m.NodeID, zoneName(m.Zone), timeout)
			continue
		}
		lag := a.AppliedAt.Sub(msg.IssuedAt)
		if a.AppliedID == msg.ID {
			lag = a.Lag
		}
		fmt.Fprintf(w, "%s\t%s\tapplied\tlag %s\n", m.NodeID, zoneName(m.Zone), lag.Round(time.Millisecond))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(missing) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("not applied within %s by %d of %d edges: %s", timeout, len(missing), len(live), strings.Join(missing, ", "))}
	}
	return nil
}

func zoneName(z string) string {
	if z == "" {
		return "-"
	}
	return z
}

type purgeResult struct {
	admin  string
	purged int
	soft   bool
	took   time.Duration
	err    error
}

// purgeEdges sends msg to every admin address at once.
func purgeEdges(ctx context.Context, admins []string, token string, msg purge.Message, timeout time.Duration) []purgeResult {
	results := make([]purgeResult, len(admins))
	var wg sync.WaitGroup
	client := &http.Client{Timeout: timeout}
	for i, a := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := purge.Send(ctx, client, a, token, msg)
			results[i] = purgeResult{admin: a, purged: r.Purged, soft: r.Soft, took: time.Since(start), err: err}
		}()
	}
	wg.Wait()
	return results
}
