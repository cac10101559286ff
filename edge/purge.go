package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/store"
	"github.com/lakka-cache/lakka/purge"
)

// purger applies purges to the store, from wherever they come (the admin
// API, the PURGE method), and counts and logs them.
type purger struct {
	store *store.Store
	// gen is the server's: purges use the current generation's key rules.
	gen *atomic.Pointer[generation]
	m   *metrics
	log *slog.Logger
	now func() time.Time
}

// apply applies p and returns the number of objects it affected; id and
// issuer name the message it came in, for the log.
func (pg *purger) apply(p store.Purge, id, issuer string) int {
	start := time.Now()
	n := pg.store.Purge(p, pg.now())
	d := time.Since(start)
	kind := purgeURL
	switch {
	case p.All:
		kind = purgeAll
	case len(p.Tags) > 0:
		kind = purgeTag
	}
	mode := 0
	if p.Soft {
		mode = 1
	}
	pg.m.purges[kind][mode].Inc()
	pg.m.purgedObjects.Add(float64(n))
	pg.m.purgeDuration.Observe(d.Seconds())
	if pg.log.Enabled(context.Background(), slog.LevelInfo) {
		pg.log.LogAttrs(context.Background(), slog.LevelInfo, "purge",
			slog.String("kind", purgeKindNames[kind]), slog.Bool("soft", p.Soft),
			slog.Int("purged", n), slog.Duration("duration", d), slog.String("id", id), slog.String("issuer", issuer))
	}
	return n
}

// compile checks a purge message's tags against what the edge indexes
// and normalises its URLs the way requests are normalised, so that they
// name the same keys. (purge.Decode checked the rest.)
func (pg *purger) compile(msg purge.Message) (store.Purge, error) {
	p := store.Purge{All: msg.All, Soft: msg.Soft}
	for i, t := range msg.Tags {
		tags, skipped := cachepolicy.ParseSurrogateKeys(nil, []byte(t))
		if skipped > 0 || len(tags) != 1 || tags[0] != t {
			return p, fmt.Errorf("tags[%d]: %q is not a single tag (printable ASCII, no spaces or commas, at most %d bytes)", i, t, cachepolicy.MaxTagLength)
		}
		p.Tags = append(p.Tags, t)
	}
	for i, u := range msg.URLs {
		target, abs, err := cachepolicy.NormalizeTarget(nil, []byte(u), &pg.gen.Load().pol.keyRules)
		if err != nil {
			return p, fmt.Errorf("urls[%d]: %q is not an absolute http(s) URL or a path", i, u)
		}
		if abs == nil {
			p.URLs = append(p.URLs, target)
			continue
		}
		host, err := cachepolicy.NormalizeHost(nil, abs)
		if err != nil {
			return p, fmt.Errorf("urls[%d]: %q has a bad host", i, u)
		}
		p.URLs = append(p.URLs, cachekey.AppendURL(nil, host, target))
	}
	return p, nil
}

// purgeMethod serves Varnish's PURGE method for one URL (all its
// variants), from the networks in purge.allow_networks. "Purge-Mode: soft"
// marks it stale instead of removing it.
func (r *request) purgeMethod() {
	ctx := r.ctx
	r.result, r.detail = resPurge, detailPurge
	h := &ctx.Response.Header
	r.start.status(h, fasthttp.StatusOK, nil, time.Now())
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	h.SetContentType("application/json")
	r.cacheHeaders(false, 0, 0)
	// Behind a trusted proxy, the client it reports: not the proxy.
	a, ok := r.g.pol.clientAddr(ctx)
	if !ok || !containsAddr(r.g.pol.purgers, a) {
		r.s.m.purgeRefusals.WithLabelValues("network").Inc()
		ctx.Response.SetStatusCode(fasthttp.StatusForbidden)
		ctx.Response.SetBodyString(`{"error":"PURGE is not allowed from this address"}` + "\n")
		return
	}
	if r.refusePurgeMethod() {
		return
	}
	soft := equalFold(ctx.Request.Header.Peek("Purge-Mode"), "soft")
	n := r.s.purger.apply(store.Purge{URLs: [][]byte{append([]byte(nil), r.key...)}, Soft: soft}, "", "PURGE")
	ctx.Response.SetStatusCode(fasthttp.StatusOK)
	body := `{"purged":` + strconv.Itoa(n) + `,"soft":` + strconv.FormatBool(soft)
	if r.s.bus != nil {
		// Every edge purges the URL: the key's URL, as the bus's
		// absolute form (host and target).
		res := r.s.publish(purge.Message{URLs: []string{keyURL(r.key)}, Soft: soft, Issuer: "PURGE"})
		b, _ := json.Marshal(res)
		body += `,"bus":` + string(b)
		h.Set("X-Purge-Bus", res)
	}
	ctx.Response.SetBodyString(body + "}\n")
}

// invalidateAfterUnsafe applies RFC 9111 §4.4: a successful unsafe request
// invalidates the target URL and same-host Location and Content-Location.
func (r *request) invalidateAfterUnsafe(h *fasthttp.ResponseHeader) {
	pol := r.g.pol
	urls := [][]byte{append([]byte(nil), r.key...)}
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
			t, _, err := cachepolicy.NormalizeTarget(nil, v, &pol.keyRules)
			if err != nil {
				continue
			}
			target, host = t, r.host
		} else {
			t, abs, err := cachepolicy.NormalizeTarget(nil, v, &pol.keyRules)
			if err != nil || abs == nil {
				continue
			}
			hn, err := cachepolicy.NormalizeHost(nil, abs)
			if err != nil || string(hn) != string(r.host) {
				continue // only the same host (§4.4: prevents denial of service)
			}
			target, host = t, hn
		}
		urls = append(urls, cachekey.AppendURL(nil, host, target))
	}
	r.s.store.Purge(store.Purge{URLs: urls}, r.s.now())
	r.s.m.invalidations.Inc()
}

// keyURL is the absolute URL that names a URL key in a purge message (the
// key holds no scheme: http and https share it).
func keyURL(key []byte) string {
	host, target := cachekey.SplitURL(cachekey.RealURL(cachekey.URL(key)))
	return "http://" + string(host) + string(target)
}

// CheckPurge reports what would make every edge refuse m (a tag that is
// not a single Surrogate-Key tag, a URL that is not a path or an absolute
// http(s) URL): "lakka purge" checks it before publishing on the bus,
// where a purge no edge can apply costs each edge a soft purge of
// everything.
func CheckPurge(m purge.Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	cfg := config.Default()
	pol, err := newPolicy(&cfg, nil)
	if err != nil {
		return err
	}
	var gen atomic.Pointer[generation]
	gen.Store(&generation{pol: pol})
	_, err = (&purger{gen: &gen}).compile(m)
	return err
}
