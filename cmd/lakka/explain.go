package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge"
)

func newConfigExplainCmd() *cobra.Command {
	var (
		file, url, method, client string
		headers, cookies, resp    []string
		status, bucket            int
	)
	cmd := &cobra.Command{
		Use:   "explain --config FILE --url URL",
		Short: "Say what an edge with FILE would do with a request: rules, key, pool, lifetimes",
		Long: `Explain evaluates FILE's rules and policy for one request, without
starting an edge: the rules that match in the request phase, the response
phase (against an assumed answer: --status, default 200, and
--response-header) and the deliver phase; the edge's own answer or a pass
and why; the backend pool; the cache key; what is forwarded; whether the
answer is stored and for how long.

A reader without the bucket cookie (sticky.cookie) draws a bucket 0-99 at
random on a first visit: --bucket N chooses it (default 99, in no share).`,
		Example: `  lakka config explain --config config/examples/newsroom.yaml --url https://www.example.fi/a/1
  lakka config explain --config newsroom.yaml --url http://example.fi/ --cookie lakka_bucket=7 --header "User-Agent:iPhone"
  lakka config explain --config newsroom.yaml --url http://example.fi/missing --status 404 --response-header "Content-Type:text/html"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" || url == "" {
				return usagef("config explain needs --config FILE and --url URL")
			}
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			x := edge.ExplainRequest{URL: url, Method: strings.ToUpper(method), Status: status, Bucket: bucket}
			pairs := func(flag, sep string, in []string) ([][2]string, error) {
				var out [][2]string
				for _, s := range in {
					k, v, ok := strings.Cut(s, sep)
					if !ok || strings.TrimSpace(k) == "" {
						return nil, usagef("--%s %q: want NAME%sVALUE", flag, s, sep)
					}
					out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
				}
				return out, nil
			}
			if x.Headers, err = pairs("header", ":", headers); err != nil {
				return err
			}
			if x.Cookies, err = pairs("cookie", "=", cookies); err != nil {
				return err
			}
			if x.ResponseHeaders, err = pairs("response-header", ":", resp); err != nil {
				return err
			}
			if x.Client, err = netip.ParseAddr(client); err != nil {
				return usagef("--client %q: want an IP address", client)
			}
			ex, err := edge.Explain(cfg, x)
			if err != nil {
				return err
			}
			printExplanation(cmd.OutOrStdout(), ex)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "configuration file (YAML)")
	f.StringVar(&url, "url", "", "the request's absolute URL (http://host/path?query)")
	f.StringVar(&method, "method", "GET", "the request's method")
	f.StringArrayVar(&headers, "header", nil, "a request header NAME:VALUE, repeatable")
	f.StringArrayVar(&cookies, "cookie", nil, "a cookie NAME=VALUE, repeatable")
	f.StringVar(&client, "client", "192.0.2.1", "the client's address (after trusted proxies)")
	f.IntVar(&bucket, "bucket", -1, "the sticky bucket (0-99) of a reader without the bucket cookie")
	f.IntVar(&status, "status", 200, "the status of the assumed origin answer (response and deliver phases)")
	f.StringArrayVar(&resp, "response-header", nil, "a header NAME:VALUE of the assumed origin answer, repeatable")
	return cmd
}

func printExplanation(w io.Writer, ex *edge.Explanation) {
	phase := func(name string, ms []edge.RuleMatch) {
		fmt.Fprintf(w, "%s phase:", name)
		if len(ms) == 0 {
			fmt.Fprintln(w, " no rule matched")
			return
		}
		fmt.Fprintln(w)
		for _, m := range ms {
			does := m.Does
			if does != "" {
				does = " (" + does + ")"
			}
			fmt.Fprintf(w, "  rules[%d] %s%s\n", m.Index, m.Name, does)
		}
	}
	phase("request", ex.Request)
	switch {
	case ex.Answer != "":
		fmt.Fprintf(w, "answer:    by the edge: %s\n", ex.Answer)
	case ex.Pass != "":
		fmt.Fprintf(w, "answer:    pass to the origin (%s), nothing stored\n", ex.Pass)
	default:
		fmt.Fprintln(w, "answer:    from the cache, or fetched for it")
	}
	if ex.Answer == "" {
		fmt.Fprintf(w, "pool:      %s\n", ex.Pool)
		fmt.Fprintf(w, "key:       %s\n", ex.Key)
		fmt.Fprintf(w, "forwarded: %s", ex.Path)
		for _, h := range ex.Forwarded {
			fmt.Fprintf(w, "; %s", h)
		}
		if ex.Pass != "" && ex.Cookie != "" {
			fmt.Fprintf(w, "; Cookie: %s", ex.Cookie)
		}
		fmt.Fprintln(w)
		phase("response", ex.Response)
		for _, h := range ex.StoredHeaders {
			fmt.Fprintf(w, "  %s\n", h)
		}
		if ex.Stored != "" {
			fmt.Fprintf(w, "stored:    %s", ex.Stored)
			if ex.Stored == "yes" {
				fmt.Fprintf(w, ", ttl %s, grace %s, keep %s", ex.TTL, ex.Grace, ex.Keep)
			}
			fmt.Fprintln(w)
		}
	}
	phase("deliver", ex.Deliver)
	for _, h := range ex.DeliverHeaders {
		fmt.Fprintf(w, "  %s\n", h)
	}
	for _, c := range ex.SetCookies {
		fmt.Fprintf(w, "  Set-Cookie: %s\n", c)
	}
	if ex.FirstVisit {
		fmt.Fprintf(w, "first visit: bucket %d, Set-Cookie: %s\n", ex.Bucket, ex.BucketCookie)
	} else {
		fmt.Fprintf(w, "bucket:    %d\n", ex.Bucket)
	}
}
