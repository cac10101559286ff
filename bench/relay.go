package bench

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lakka-cache/lakka/purge"
)

// PurgeRelay lets the bundled origin purge a peer cache (Varnish, nginx)
// during a comparison: it accepts Lakka's purge API (POST /api/purge, see
// docs/CONTRACTS.md) where the origin expects an edge's admin listener, and
// forwards each purge the way the peer understands it:
//
//   - "varnish": tags as one "PURGE /" request with an xkey header (the VCL
//     in bench/peers calls xkey.purge or xkey.softpurge), URLs as
//     "PURGE <url>";
//   - "nginx": URLs as "PURGE <url>" (ngx_cache_purge). nginx has no tags:
//     with an origin to ask, the bundled origin's tags are turned into the
//     URL of the page they name ("front" is /, "most-read" the fragment,
//     "section:N" the section's path, "article:N" the article's URL), which
//     purges that page but not the other pages listing it; other tags are
//     counted as unsupported and those pages rely on their TTLs.
//
// It is a test fixture for peers, not a production component.
type PurgeRelay struct {
	kind   string
	target string // base URL of the peer's client listener
	token  string
	hc     *http.Client
	origin *Origin // resolves tags to URLs for nginx; nil: no resolution
	log    *slog.Logger
	srv    *http.Server
	ln     net.Listener

	forwarded   atomic.Int64
	unsupported atomic.Int64
	failed      atomic.Int64
}

// NewPurgeRelay listens on addr and relays purges to the peer of the given
// kind at target. token, when set, is required as a bearer token. origin,
// when set, resolves tags to URLs for nginx.
func NewPurgeRelay(addr, kind, target, token string, origin *Origin, log *slog.Logger) (*PurgeRelay, error) {
	if kind != "varnish" && kind != "nginx" {
		return nil, fmt.Errorf("bench: purge relay: unknown peer %q (varnish or nginx)", kind)
	}
	if !strings.HasPrefix(target, "http://") {
		return nil, fmt.Errorf("bench: purge relay: target %q: want http://host:port", target)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: purge relay: %w", err)
	}
	r := &PurgeRelay{kind: kind, target: strings.TrimRight(target, "/"), token: token,
		hc: &http.Client{Timeout: 5 * time.Second}, origin: origin, log: log, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/purge", r.purge)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", r.metrics)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return r, nil
}

// Addr is the relay's listening address.
func (r *PurgeRelay) Addr() string { return r.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil after Shutdown.
func (r *PurgeRelay) Serve() error {
	if err := r.srv.Serve(r.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bench: purge relay: %w", err)
	}
	return nil
}

// Shutdown stops the relay, letting purges in progress finish.
func (r *PurgeRelay) Shutdown(ctx context.Context) error { return r.srv.Shutdown(ctx) }

func (r *PurgeRelay) metrics(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintf(w, "lakka_bench_relay_purges_total{result=\"forwarded\"} %d\n", r.forwarded.Load())
	fmt.Fprintf(w, "lakka_bench_relay_purges_total{result=\"unsupported\"} %d\n", r.unsupported.Load())
	fmt.Fprintf(w, "lakka_bench_relay_purges_total{result=\"failed\"} %d\n", r.failed.Load())
}

func (r *PurgeRelay) purge(w http.ResponseWriter, req *http.Request) {
	if r.token != "" {
		got := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(r.token)) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	b, err := purge.Decode(req.Body)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad purge body: " + err.Error()})
		return
	}
	n := 0
	urls := b.URLs
	if len(b.Tags) > 0 {
		if r.kind == "varnish" {
			n += r.send(req.Context(), "/", map[string]string{"xkey": strings.Join(b.Tags, " "), "xkey-soft": softFlag(b.Soft)})
		} else {
			urls = append(urls, r.tagURLs(req.Context(), b.Tags)...)
		}
	}
	for _, u := range urls {
		if p, ok := pathOf(u); ok {
			n += r.send(req.Context(), p, nil)
		}
	}
	if b.All {
		r.unsupported.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(purge.Result{Purged: n, Soft: b.Soft})
}

// tagURLs turns the bundled origin's tags into the URLs of the pages they
// name, asking the origin's API; tags it cannot turn are counted.
func (r *PurgeRelay) tagURLs(ctx context.Context, tags []string) []string {
	var urls []string
	var sections []Section
	for _, t := range tags {
		kind, id, _ := strings.Cut(t, ":")
		n, err := strconv.ParseInt(id, 10, 64)
		switch {
		case t == "front":
			urls = append(urls, "/")
		case t == "most-read":
			urls = append(urls, "/fragments/most-read")
		case r.origin == nil || err != nil:
			r.unsupported.Add(1)
		case kind == "article":
			a, err := r.origin.Article(ctx, n)
			if err != nil {
				r.unsupported.Add(1)
				continue
			}
			urls = append(urls, a.URL)
		case kind == "section":
			if sections == nil {
				if sections, err = r.origin.Sections(ctx); err != nil {
					r.unsupported.Add(1)
					continue
				}
			}
			found := false
			for _, s := range sections {
				if s.ID == n {
					urls, found = append(urls, s.Path), true
				}
			}
			if !found {
				r.unsupported.Add(1)
			}
		default:
			r.unsupported.Add(1)
		}
	}
	return urls
}

func softFlag(soft bool) string {
	if soft {
		return "1"
	}
	return "0"
}

// send forwards one PURGE and returns how many objects the peer says it
// purged when it says so, else 1 for a success.
func (r *PurgeRelay) send(ctx context.Context, path string, headers map[string]string) int {
	req, err := http.NewRequestWithContext(ctx, "PURGE", r.target+path, nil)
	if err != nil {
		r.failed.Add(1)
		return 0
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		r.failed.Add(1)
		r.log.LogAttrs(ctx, slog.LevelWarn, "bench relay purge failed", slog.String("path", path), slog.Any("err", err))
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	// 404 from ngx_cache_purge: the URL was not cached, which is fine.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		r.failed.Add(1)
		r.log.LogAttrs(ctx, slog.LevelWarn, "bench relay purge refused", slog.String("path", path), slog.Int("status", resp.StatusCode))
		return 0
	}
	r.forwarded.Add(1)
	if n, err := strconv.Atoi(resp.Header.Get("X-Purged")); err == nil {
		return n
	}
	return 1
}
