package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/purge"
)

// purge applies an invalidation to the store and returns the number of
// objects (responses and variants, not markers) it affected. The purge is
// recorded first, so that fetches in flight do not store older objects
// afterwards; then the affected entries are marked (soft: stale from now;
// hard: dead, never served again) and hard-purged ones are handed to the
// reaper, which frees their memory in the background.
func (s *store) purge(p invalidation, now time.Time) int {
	hosts := s.idx.record(p)
	var affected []*Entry
	for _, t := range p.tags {
		affected = s.idx.tagged(affected, t)
	}
	for _, u := range p.urls {
		if len(u) > 0 && u[0] == '/' {
			for _, h := range hosts {
				affected = s.urlEntries(affected, append([]byte(h), u...))
			}
			continue
		}
		affected = s.urlEntries(affected, u)
	}
	if p.all {
		affected = s.allEntries(affected)
	}
	if len(p.tags)+len(p.urls) > 1 || p.all {
		affected = dedupe(affected)
	}
	n := 0
	live := affected[:0]
	for _, e := range affected {
		if e.dead.Load() {
			// Hard-purged before and not yet reaped: not affected again.
			continue
		}
		invalidateEntry(e, p.soft, now)
		if e.kind == kindObject {
			n++
		}
		live = append(live, e)
	}
	if !p.soft {
		s.reap(live)
	}
	return n
}

// urlEntries appends the entries stored for a URL key: the object, or a
// Vary marker and its variants.
func (s *store) urlEntries(dst []*Entry, url []byte) []*Entry {
	e := s.get(url)
	if e == nil {
		return dst
	}
	dst = append(dst, e)
	if e.kind == kindVary {
		if vs := e.variantList.Load(); vs != nil {
			dst = append(dst, *vs...)
		}
	}
	return dst
}

// allEntries appends every stored entry.
func (s *store) allEntries(dst []*Entry) []*Entry {
	s.c.IterValues(func(e *Entry) bool {
		dst = append(dst, e)
		return false
	})
	return append(dst, s.win.entries()...)
}

func dedupe(es []*Entry) []*Entry {
	seen := make(map[*Entry]struct{}, len(es))
	out := es[:0]
	for _, e := range es {
		if _, dup := seen[e]; !dup {
			seen[e] = struct{}{}
			out = append(out, e)
		}
	}
	return out
}

// invalidateAfterUnsafe applies RFC 9111 §4.4: a successful unsafe request
// invalidates the target URL and same-host Location and Content-Location.
func (s *Server) invalidateAfterUnsafe(ctx *fasthttp.RequestCtx, rs *reqState, h *fasthttp.ResponseHeader) {
	urls := [][]byte{append([]byte(nil), rs.key...)}
	for _, name := range [...]string{fasthttp.HeaderLocation, fasthttp.HeaderContentLocation} {
		v := h.Peek(name)
		if len(v) == 0 {
			continue
		}
		var target []byte
		var host []byte
		if v[0] == '/' {
			if len(v) > 1 && v[1] == '/' {
				continue // network-path reference: another host, most likely
			}
			t, _, err := cachepolicy.NormalizeTarget(nil, v, &s.keyRules)
			if err != nil {
				continue
			}
			target, host = t, rs.host
		} else {
			t, abs, err := cachepolicy.NormalizeTarget(nil, v, &s.keyRules)
			if err != nil || abs == nil {
				continue
			}
			hn, err := cachepolicy.NormalizeHost(nil, abs)
			if err != nil || string(hn) != string(rs.host) {
				continue // only the same host (§4.4: prevents denial of service)
			}
			target, host = t, hn
		}
		urls = append(urls, cachepolicy.AppendKey(nil, host, target))
	}
	s.store.purge(invalidation{urls: urls}, s.now())
	s.m.invalidations.Inc()
}

// handlePurgeMethod serves Varnish's PURGE method for one URL (all its
// variants), from the networks in purge.allow_networks. "Purge-Mode: soft"
// marks it stale instead of removing it.
func (s *Server) handlePurgeMethod(ctx *fasthttp.RequestCtx, rs *reqState) {
	rs.result = resPurge
	h := &ctx.Response.Header
	rs.head.start(h, fasthttp.StatusOK, nil, time.Now())
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	h.SetContentType("application/json")
	s.setCacheHeaders(ctx, rs, nil, rs.now)
	// Behind a trusted proxy, the client it reports: not the proxy.
	a, ok := s.clientAddr(ctx)
	if !ok || !containsAddr(s.purgers, a) {
		s.m.purgeRefusals.WithLabelValues("network").Inc()
		ctx.Response.SetStatusCode(fasthttp.StatusForbidden)
		ctx.Response.SetBodyString(`{"error":"PURGE is not allowed from this address"}` + "\n")
		return
	}
	soft := asciiEqualFold(ctx.Request.Header.Peek("Purge-Mode"), "soft")
	start := time.Now()
	n := s.store.purge(invalidation{urls: [][]byte{append([]byte(nil), rs.key...)}, soft: soft}, s.now())
	s.observePurge(purgeURL, soft, n, time.Since(start), "", "PURGE")
	ctx.Response.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SetBodyString(`{"purged":` + strconv.Itoa(n) + `,"soft":` + strconv.FormatBool(soft) + "}\n")
}

func containsAddr(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// handlePurgeAPI serves POST /api/purge on the admin listener.
func (s *Server) handlePurgeAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.token == "" {
		apiError(w, http.StatusForbidden, "purge API disabled: set purge.token or LAKKA_PURGE_TOKEN")
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.token)) != 1 {
		s.m.purgeRefusals.WithLabelValues("token").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="lakka-purge"`)
		apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	msg, err := purge.Decode(r.Body)
	if err != nil {
		s.m.purgeRefusals.WithLabelValues("request").Inc()
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.compilePurge(msg)
	if err != nil {
		s.m.purgeRefusals.WithLabelValues("request").Inc()
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	start := time.Now()
	n := s.store.purge(p, s.now())
	kind := purgeURL
	switch {
	case p.all:
		kind = purgeAll
	case len(p.tags) > 0:
		kind = purgeTag
	}
	s.observePurge(kind, p.soft, n, time.Since(start), msg.ID, msg.Issuer)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(purge.Result{Purged: n, Soft: p.soft})
}

// compilePurge checks a purge message's tags against what the edge
// indexes and normalises its URLs the way requests are normalised, so that
// they name the same keys. (purge.Decode checked the rest.)
func (s *Server) compilePurge(req purge.Message) (invalidation, error) {
	p := invalidation{all: req.All, soft: req.Soft}
	for i, t := range req.Tags {
		tags, skipped := cachepolicy.ParseSurrogateKeys(nil, []byte(t))
		if skipped > 0 || len(tags) != 1 || tags[0] != t {
			return p, fmt.Errorf("tags[%d]: %q is not a single tag (printable ASCII, no spaces or commas, at most %d bytes)", i, t, cachepolicy.MaxTagLength)
		}
		p.tags = append(p.tags, t)
	}
	for i, u := range req.URLs {
		target, abs, err := cachepolicy.NormalizeTarget(nil, []byte(u), &s.keyRules)
		if err != nil {
			return p, fmt.Errorf("urls[%d]: %q is not an absolute http(s) URL or a path", i, u)
		}
		if abs == nil {
			p.urls = append(p.urls, target)
			continue
		}
		host, err := cachepolicy.NormalizeHost(nil, abs)
		if err != nil {
			return p, fmt.Errorf("urls[%d]: %q has a bad host", i, u)
		}
		p.urls = append(p.urls, cachepolicy.AppendKey(nil, host, target))
	}
	return p, nil
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// observePurge counts and logs one applied purge; id and issuer are the
// message's, when it came as one.
func (s *Server) observePurge(kind purgeKind, soft bool, n int, d time.Duration, id, issuer string) {
	mode := 0
	if soft {
		mode = 1
	}
	s.m.purges[kind][mode].Inc()
	s.m.purgedObjects.Add(float64(n))
	s.m.purgeDuration.Observe(d.Seconds())
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.log.LogAttrs(context.Background(), slog.LevelInfo, "purge",
			slog.String("kind", purgeKindNames[kind]), slog.Bool("soft", soft),
			slog.Int("purged", n), slog.Duration("duration", d), slog.String("id", id), slog.String("issuer", issuer))
	}
}
