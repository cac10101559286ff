package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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

The bearer token is read from LAKKA_PURGE_TOKEN. The exit status is 1 when
any edge refused or could not be reached.`,
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
				return usagef("LAKKA_PURGE_TOKEN is not set: the edges' purge API needs its bearer token")
			}
			body, err := json.Marshal(map[string]any{"tags": tags, "urls": urls, "all": all, "soft": soft})
			if err != nil {
				return err
			}
			results := purgeEdges(cmd.Context(), admins, token, body, timeout)
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

// purgeEdges sends body to every admin address at once.
func purgeEdges(ctx context.Context, admins []string, token string, body []byte, timeout time.Duration) []purgeResult {
	if ctx == nil {
		ctx = context.Background()
	}
	results := make([]purgeResult, len(admins))
	var wg sync.WaitGroup
	client := &http.Client{Timeout: timeout}
	for i, a := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = purgeOne(ctx, client, a, token, body)
		}()
	}
	wg.Wait()
	return results
}

func purgeOne(ctx context.Context, client *http.Client, admin, token string, body []byte) purgeResult {
	r := purgeResult{admin: admin}
	base := admin
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/api/purge", bytes.NewReader(body))
	if err != nil {
		r.err = fmt.Errorf("--admin %q: %w", admin, err)
		return r
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.took = time.Since(start)
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		r.err = fmt.Errorf("refused: %s: %s", resp.Status, e.Error)
		return r
	}
	var ok struct {
		Purged int  `json:"purged"`
		Soft   bool `json:"soft"`
	}
	if err := json.Unmarshal(b, &ok); err != nil {
		r.err = fmt.Errorf("bad answer: %w", err)
		return r
	}
	r.purged, r.soft = ok.Purged, ok.Soft
	return r
}
