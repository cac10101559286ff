// Package surrogate helps a net/http origin behind a caching edge (Lakka, or
// Varnish with xkey, or any CDN that reads Surrogate-Key) tag its responses
// and announce how long they stay fresh.
//
// A response carries two things for the edge:
//
//   - Surrogate-Key: space-separated tags naming everything the response
//     shows ("article:42 section:7 front"). When article 42 changes, one
//     purge of the tag "article:42" reaches every cached page that shows it.
//     The edge consumes the header; readers never see it.
//   - Cache-Control: "public, max-age=300, stale-while-revalidate=60,
//     stale-if-error=86400": how long the page is fresh, how long a stale
//     copy may be served while one refresh runs, and how long when the
//     origin fails (RFC 9111 section 5.2.2, RFC 5861).
//
// AddKeys, SetFreshness and SetPrivate work on any http.Header; Middleware
// enforces the rules that keep a shared cache safe whatever a handler forgot:
// errors and responses carrying cookies are never shared.
//
// The package uses only the standard library, so that any Go origin can
// import it. Its functions are safe for concurrent use; a Header is not, as
// usual in net/http.
package surrogate

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	// KeyHeader carries the tags of a response, space-separated.
	KeyHeader = "Surrogate-Key"
	// ControlHeader carries edge-only freshness; it wins over
	// Cache-Control at the edge and is not passed to readers.
	ControlHeader = "Surrogate-Control"
)

// MaxKeyBytes bounds one tag. Edges keep an index entry per tag and cached
// object, so tags should be short names, not URLs.
const MaxKeyBytes = 128

// Freshness is what a response tells shared caches about its lifetime. The
// zero value means "fresh for 0 seconds, never served stale": every use
// revalidates.
type Freshness struct {
	// MaxAge is how long the response is fresh.
	MaxAge time.Duration
	// StaleWhileRevalidate is how long after MaxAge a stale copy may be
	// served while the cache fetches a fresh one in the background.
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long after MaxAge a stale copy may be served when
	// the origin fails or is down.
	StaleIfError time.Duration
}

// CacheControl returns the Cache-Control value for f, for example
// "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400".
// Durations are truncated to whole seconds; negative ones count as 0, and
// the stale directives are left out when 0.
func (f Freshness) CacheControl() string {
	b := make([]byte, 0, 80)
	b = append(b, "public, max-age="...)
	b = strconv.AppendInt(b, seconds(f.MaxAge), 10)
	if s := seconds(f.StaleWhileRevalidate); s > 0 {
		b = append(b, ", stale-while-revalidate="...)
		b = strconv.AppendInt(b, s, 10)
	}
	if s := seconds(f.StaleIfError); s > 0 {
		b = append(b, ", stale-if-error="...)
		b = strconv.AppendInt(b, s, 10)
	}
	return string(b)
}

func seconds(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}

// SetFreshness makes the response shareable for f: it sets Cache-Control.
func SetFreshness(h http.Header, f Freshness) {
	h.Set("Cache-Control", f.CacheControl())
}

// SetEdgeMaxAge sets Surrogate-Control: max-age for the edge only, so that
// the edge may keep a page longer (and purge it on change) while browsers
// follow Cache-Control.
func SetEdgeMaxAge(h http.Header, d time.Duration) {
	h.Set(ControlHeader, "max-age="+strconv.FormatInt(seconds(d), 10))
}

// SetPrivate marks the response as not shareable ("private, no-store") and
// removes its tags: for pages with per-user state, tokens or cookies.
func SetPrivate(h http.Header) {
	h.Set("Cache-Control", "private, no-store")
	h.Del(KeyHeader)
	h.Del(ControlHeader)
}

// Key returns the tag "kind:id", the convention for one thing a page shows:
// Key("article", 42) is "article:42".
func Key(kind string, id int64) string {
	return kind + ":" + strconv.FormatInt(id, 10)
}

// ValidKey reports whether k can be sent as a tag: 1 to MaxKeyBytes bytes
// of visible ASCII other than the comma and the double quote, which some
// caches treat as separators.
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyBytes {
		return false
	}
	for i := range len(k) {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == '"' {
			return false
		}
	}
	return true
}

// Keys returns the tags in h's Surrogate-Key, in order, without duplicates.
// Several header lines are read as one list; spaces, tabs and commas
// separate tags. The result is a new slice.
func Keys(h http.Header) []string {
	var keys []string
	seen := map[string]bool{}
	for _, line := range h.Values(KeyHeader) {
		for _, k := range strings.FieldsFunc(line, isSeparator) {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

func isSeparator(r rune) bool {
	return r == ' ' || r == '\t' || r == ','
}

// AddKeys adds tags to h's Surrogate-Key, keeping those already there and
// dropping duplicates; the header becomes one space-separated line. An
// invalid key is a bug in the caller: AddKeys then changes nothing and
// returns an error naming it.
func AddKeys(h http.Header, keys ...string) error {
	for _, k := range keys {
		if !ValidKey(k) {
			return fmt.Errorf("surrogate: invalid key %q: want 1-%d bytes of visible ASCII without commas or quotes", k, MaxKeyBytes)
		}
	}
	merge(h, keys)
	return nil
}

// merge adds valid keys to h's Surrogate-Key.
func merge(h http.Header, keys []string) {
	have := Keys(h)
	seen := make(map[string]bool, len(have)+len(keys))
	for _, k := range have {
		seen[k] = true
	}
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			have = append(have, k)
		}
	}
	if len(have) == 0 {
		h.Del(KeyHeader)
		return
	}
	h.Set(KeyHeader, strings.Join(have, " "))
}

// Options configures Middleware.
type Options struct {
	// Default is the freshness of GET and HEAD responses whose handler set
	// no Cache-Control. Nil leaves such responses alone.
	Default *Freshness
	// Keys are added to every shareable response, for example "site" so
	// that one tag purges the whole site.
	Keys []string
}

// Middleware wraps next so that what reaches a shared cache is safe:
//
//   - A response with a status of 500 or more gets "Cache-Control:
//     no-store" and loses its tags: errors are not content.
//   - A shareable response that sets a cookie becomes "private, no-store"
//     and loses its tags: per-user state must never be served to another
//     reader.
//   - A GET or HEAD response without Cache-Control gets o.Default.
//   - Every response still shareable after that gets o.Keys.
//
// The rules apply when the handler writes the status line (WriteHeader, or
// its first Write). Middleware returns an error if o.Keys has an invalid key.
func Middleware(next http.Handler, o Options) (http.Handler, error) {
	for _, k := range o.Keys {
		if !ValidKey(k) {
			return nil, fmt.Errorf("surrogate: middleware key %q is invalid", k)
		}
	}
	keys := append([]string(nil), o.Keys...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &writer{ResponseWriter: w, def: o.Default, keys: keys, cacheableMethod: r.Method == http.MethodGet || r.Method == http.MethodHead}
		next.ServeHTTP(rw, r)
	}), nil
}

// writer applies the middleware's rules when the status is written.
type writer struct {
	http.ResponseWriter
	def             *Freshness
	keys            []string
	cacheableMethod bool
	wroteHeader     bool
}

func (w *writer) WriteHeader(status int) {
	if !w.wroteHeader && status >= 200 {
		w.wroteHeader = true
		apply(w.Header(), status, w.cacheableMethod, w.def, w.keys)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher.
func (w *writer) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func apply(h http.Header, status int, cacheableMethod bool, def *Freshness, keys []string) {
	switch {
	case status >= 500:
		h.Set("Cache-Control", "no-store")
		h.Del(KeyHeader)
		h.Del(ControlHeader)
		return
	case len(h.Values("Set-Cookie")) > 0 && Shareable(h):
		SetPrivate(h)
		return
	case cacheableMethod && def != nil && h.Get("Cache-Control") == "":
		SetFreshness(h, *def)
	}
	if len(keys) > 0 && Shareable(h) {
		merge(h, keys) // validated by Middleware
	}
}

// Shareable reports whether h's Cache-Control lets a shared cache store the
// response: it has none of private, no-store or no-cache. (A missing
// Cache-Control counts as shareable: caches may then apply their default.)
func Shareable(h http.Header) bool {
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "private", "no-store", "no-cache":
				return false
			}
		}
	}
	return true
}
