package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/purge"
)

func newPurgeCmd() *cobra.Command {
	var (
		admins  []string
		tags    []string
		urls    []string
		all     bool
		soft    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Purge objects by tag, by URL or everything on one or more edges",
		Long: `Purge sends one purge to the admin API of every edge given with --admin,
in parallel, and reports per edge how many objects it affected. Hard purges
remove objects; --soft marks them stale, so that grace serves them while one
fresh copy is fetched (no thundering herd at peak).

The bearer token is read from LAKKA_PURGE_TOKEN (the edges' purge.token),
or else LAKKA_ADMIN_TOKEN (their admin.token). The exit status is 1 when any
edge refused or could not be reached.`,
		Example: `  LAKKA_PURGE_TOKEN=secret lakka purge --admin 127.0.0.1:8081 --tag article:42 --soft
  lakka purge --admin edge-a:8081 --admin edge-b:8081 --url https://www.example.com/news/42
  lakka purge --admin 127.0.0.1:8081 --all --soft`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(admins) == 0 {
				return usagef("--admin: at least one edge admin address is required")
			}
			if len(tags) == 0 && len(urls) == 0 && !all {
				return usagef("nothing to purge: give --tag, --url or --all")
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
	f.DurationVar(&timeout, "timeout", 10*time.Second, "time allowed per edge")
	return cmd
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
