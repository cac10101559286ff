package edge

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// page is a compressible HTML body of n bytes.
func page(n int) string {
	return strings.Repeat("<p>Breaking news, more at eleven.</p>\n", n/38+1)[:n]
}

func gzipString(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func gunzipString(t testing.TB, s string) string {
	t.Helper()
	r, err := gzip.NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(b)
}

func unzstdString(t testing.TB, s string) string {
	t.Helper()
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := d.DecodeAll([]byte(s), nil)
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	return string(b)
}

// decoded returns r's body decoded per its Content-Encoding.
func decoded(t testing.TB, r response) string {
	t.Helper()
	switch ce := r.get("Content-Encoding"); ce {
	case "":
		return r.body
	case "gzip":
		return gunzipString(t, r.body)
	case "zstd":
		return unzstdString(t, r.body)
	default:
		t.Fatalf("unexpected Content-Encoding %q", ce)
		return ""
	}
}

func hasVaryAE(r response) bool {
	for _, v := range r.header.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(n), "Accept-Encoding") {
				return true
			}
		}
	}
	return false
}

// checkLength checks Content-Length against the body received.
func checkLength(t testing.TB, what string, r response) {
	t.Helper()
	if cl := r.get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Errorf("%s: Content-Length %q, body %d bytes", what, cl, len(r.body))
	}
}

// TestAcceptEncodingSpellings sends each client spelling of issue 7 to an
// object the edge compressed at store time: the right encoding for each,
// Vary and Content-Length right, ETags per encoding, one origin fetch and
// one compression in all (the spelling never splits the cache).
func TestAcceptEncodingSpellings(t *testing.T) {
	body := page(20 << 10)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html; charset=utf-8", "ETag", `"v1"`))
	for _, zstdOn := range []bool{false, true} {
		c := testConfig(o.addr())
		c.Compression.Zstd = zstdOn
		e := startEdge(t, c)
		before := o.hits.Load()
		f := func(ae, wantEnc string) {
			t.Helper()
			var hdrs []string
			if ae != "<none>" {
				hdrs = []string{"Accept-Encoding", ae}
			}
			for i := range 2 {
				r := e.get("/article", hdrs...)
				what := fmt.Sprintf("zstd=%v %q #%d", zstdOn, ae, i)
				if r.status != 200 {
					t.Fatalf("%s: status %d", what, r.status)
				}
				if got := r.get("Content-Encoding"); got != wantEnc {
					t.Errorf("%s: Content-Encoding %q, want %q", what, got, wantEnc)
				}
				if got := decoded(t, r); got != body {
					t.Errorf("%s: decoded body differs (%d bytes, want %d)", what, len(got), len(body))
				}
				checkLength(t, what, r)
				if !hasVaryAE(r) {
					t.Errorf("%s: Vary %q lacks Accept-Encoding", what, r.header.Values("Vary"))
				}
				wantETag := `"v1"`
				if wantEnc != "" {
					wantETag = `"v1-` + wantEnc + `"`
				}
				if got := r.get("ETag"); got != wantETag {
					t.Errorf("%s: ETag %q, want %q", what, got, wantETag)
				}
				if i == 1 && r.get("X-Cache") != "HIT" {
					t.Errorf("%s: X-Cache %q, want HIT", what, r.get("X-Cache"))
				}
			}
		}
		f("gzip", "gzip")
		f("gzip, deflate, br", "gzip")
		f("br;q=1, gzip;q=0.5", "gzip")
		f("gzip;q=0", "")
		f("<none>", "")
		f("", "")
		f("*", map[bool]string{false: "gzip", true: "zstd"}[zstdOn])
		f("identity;q=0", "")
		f("x-gzip", "gzip")
		f("GZip", "gzip")
		f("deflate, br", "")
		f("identity, gzip;q=0.5", "")
		f("*;q=0, gzip", "gzip")
		f("zstd;q=0.5, gzip", "gzip")
		f("gzip, deflate, br, zstd", map[bool]string{false: "gzip", true: "zstd"}[zstdOn])
		f("zstd", map[bool]string{false: "", true: "zstd"}[zstdOn])
		if n := o.hits.Load() - before; n != 1 {
			t.Errorf("zstd=%v: origin fetches %d, want 1: the spelling split the cache", zstdOn, n)
		}
		if got := o.last.Load().Header.Get("Accept-Encoding"); got != "gzip" {
			t.Errorf("origin saw Accept-Encoding %q, want gzip", got)
		}
		if n := counter(e.m.compressions[1]); n != 1 {
			t.Errorf("zstd=%v: gzip compressions %v, want 1", zstdOn, n)
		}
		wantZstd := 0.0
		if zstdOn {
			wantZstd = 1
		}
		if n := counter(e.m.compressions[2]); n != wantZstd {
			t.Errorf("zstd=%v: zstd compressions %v, want %v", zstdOn, n, wantZstd)
		}
		if n := counter(e.m.decompressions); n != 1 {
			t.Errorf("zstd=%v: decompressions %v, want 1 (identity clients share one decoded copy)", zstdOn, n)
		}
	}
}

// TestOriginEncodings: whatever the origin does with Accept-Encoding
// (honours it, ignores it, always gzips), the edge ends with one stored
// copy and serves every client right.
func TestOriginEncodings(t *testing.T) {
	body := page(30 << 10)
	gz := gzipString(t, body)
	honours := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("ETag", `"o1-gz"`)
			io.WriteString(w, gz)
			return
		}
		w.Header().Set("ETag", `"o1"`)
		io.WriteString(w, body)
	}
	ignores := fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html", "ETag", `"o1"`)
	alwaysGzip := fixed(gz, "Cache-Control", "max-age=600", "Content-Type", "text/html", "Content-Encoding", "gzip", "ETag", `"o1-gz"`)
	xgzip := fixed(gz, "Cache-Control", "max-age=600", "Content-Type", "text/html", "Content-Encoding", "x-gzip")

	f := func(name string, h http.HandlerFunc, wantCompressions float64, gzipETag, identityETag string) {
		t.Helper()
		o := startOrigin(t, h)
		e := startEdge(t, testConfig(o.addr()))
		for i, ae := range []string{"gzip", "", "gzip, br", "identity", "gzip"} {
			r := e.get("/", "Accept-Encoding", ae)
			what := fmt.Sprintf("%s #%d %q", name, i, ae)
			if got := decoded(t, r); got != body {
				t.Errorf("%s: decoded body differs", what)
			}
			checkLength(t, what, r)
			wantCE, wantETag := "", identityETag
			if strings.Contains(ae, "gzip") {
				wantCE, wantETag = "gzip", gzipETag
			}
			if r.get("Content-Encoding") != wantCE || r.get("ETag") != wantETag {
				t.Errorf("%s: Content-Encoding %q ETag %q, want %q %q", what, r.get("Content-Encoding"), r.get("ETag"), wantCE, wantETag)
			}
			if !hasVaryAE(r) {
				t.Errorf("%s: no Vary: Accept-Encoding", what)
			}
			if wantCE == "gzip" && wantCompressions == 0 && r.body != gz {
				t.Errorf("%s: the origin's gzip body was not served as is", what)
			}
		}
		if n := o.hits.Load(); n != 1 {
			t.Errorf("%s: origin fetches %d, want 1 (one stored copy)", name, n)
		}
		if n := counter(e.m.compressions[1]); n != wantCompressions {
			t.Errorf("%s: compressions %v, want %v", name, n, wantCompressions)
		}
		if n := counter(e.m.stores); n != 1 {
			t.Errorf("%s: stores %v, want 1", name, n)
		}
	}
	f("origin honours Accept-Encoding", honours, 0, `"o1-gz"`, `"o1-gz-identity"`)
	f("origin ignores Accept-Encoding", ignores, 1, `"o1-gzip"`, `"o1"`)
	f("origin always gzips", alwaysGzip, 0, `"o1-gz"`, `"o1-gz-identity"`)
	f("origin sends x-gzip", xgzip, 0, "", "")
}

// TestNotCompressed: images, already compressed bodies whatever their
// label, small bodies, unlisted types and compression.enabled: false are
// stored and served as they came, with no Vary: Accept-Encoding.
func TestNotCompressed(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00\x01\x02image", 2000)
	f := func(name, body, ctype string, mutate func(*config.Config)) {
		t.Helper()
		o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header()["Content-Type"] = nil // no sniffing
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			io.WriteString(w, body)
		})
		c := testConfig(o.addr())
		if mutate != nil {
			mutate(&c)
		}
		e := startEdge(t, c)
		for _, ae := range []string{"gzip", "", "gzip"} {
			r := e.get("/x", "Accept-Encoding", ae)
			if r.body != body || r.get("Content-Encoding") != "" {
				t.Errorf("%s (%q): Content-Encoding %q, body changed: %v", name, ae, r.get("Content-Encoding"), r.body != body)
			}
			if hasVaryAE(r) {
				t.Errorf("%s (%q): Vary: Accept-Encoding on a response that does not depend on it", name, ae)
			}
			checkLength(t, name, r)
		}
		if n := counter(e.m.compressions[1]); n != 0 {
			t.Errorf("%s: compressions %v, want 0", name, n)
		}
	}
	f("png", png, "image/png", nil)
	f("png labelled text", png, "text/plain", nil)
	f("jpeg", "\xff\xd8\xff\xe0"+strings.Repeat("jpegdata", 1000), "image/jpeg", nil)
	f("video", strings.Repeat("frame", 2000), "video/mp4", nil)
	f("zip", "PK\x03\x04"+strings.Repeat("zipdata", 1000), "application/zip", nil)
	f("svgz without Content-Encoding", gzipString(t, page(20<<10)), "image/svg+xml", nil)
	f("below min_bytes", page(300), "text/html", nil)
	f("no content type", page(4000), "", nil)
	f("compression disabled", page(4000), "text/html", func(c *config.Config) { c.Compression.Enabled = false })
	f("type not listed", page(4000), "text/html", func(c *config.Config) { c.Compression.Types = []string{"application/json"} })
}

// TestCompressibleTypes: the configured types are compressed, with
// parameters and case ignored; svg is the one image type.
func TestCompressibleTypes(t *testing.T) {
	body := page(4000)
	for _, ct := range []string{"text/html", "TEXT/HTML; charset=utf-8", "text/css", "application/json", "application/javascript", "image/svg+xml", "application/rss+xml"} {
		o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", ct))
		e := startEdge(t, testConfig(o.addr()))
		r := e.get("/", "Accept-Encoding", "gzip")
		if r.get("Content-Encoding") != "gzip" || gunzipString(t, r.body) != body {
			t.Errorf("%s: Content-Encoding %q", ct, r.get("Content-Encoding"))
		}
	}
}

// TestCorruptGzip: a gzip body from the origin that does not decode is
// never served as valid: 502 to every client, never stored, counted.
func TestCorruptGzip(t *testing.T) {
	good := gzipString(t, page(10<<10))
	badCRC := []byte(good)
	badCRC[len(badCRC)-6] ^= 0xff
	truncated := good[:len(good)-20]
	bad := map[string]string{
		"not gzip":         "<html>not gzip at all</html>",
		"bad checksum":     string(badCRC),
		"truncated":        truncated,
		"trailing garbage": good + "garbage",
		"bad deflate data": good[:10] + strings.Repeat("\xff", 200) + good[len(good)-8:],
	}
	for name, body := range bad {
		for _, cc := range []string{"max-age=600", "private"} {
			o := startOrigin(t, fixed(body, "Cache-Control", cc, "Content-Type", "text/html", "Content-Encoding", "gzip"))
			e := startEdge(t, testConfig(o.addr()))
			for i, ae := range []string{"gzip", "", "gzip"} {
				r := e.get("/", "Accept-Encoding", ae)
				if r.status != http.StatusBadGateway || r.get("X-Cache") != "ERROR" {
					t.Errorf("%s, %s, #%d %q: %d %q, want 502 ERROR", name, cc, i, ae, r.status, r.get("X-Cache"))
				}
			}
			if n := o.hits.Load(); n != 3 {
				t.Errorf("%s, %s: origin fetches %d, want 3 (nothing stored)", name, cc, n)
			}
			if n := counter(e.m.gzipErrors); n != 3 {
				t.Errorf("%s, %s: corrupt gzip counted %v times, want 3", name, cc, n)
			}
		}
	}
}

// TestCorruptGzipStreamed: a corrupt gzip body too large to store is cut
// short, never delivered whole, to gzip clients and to identity clients.
func TestCorruptGzipStreamed(t *testing.T) {
	raw := noise(3 << 20) // incompressible: the gzip body is over max_object_bytes
	gz := gzipString(t, string(raw))
	if len(gz) <= 1<<20 {
		t.Fatalf("test body too small: %d", len(gz))
	}
	badCRC := []byte(gz)
	badCRC[len(badCRC)-6] ^= 0xff
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{{"valid", gz, true}, {"bad checksum", string(badCRC), false}, {"truncated", gz[:len(gz)-100], false}} {
		o := startOrigin(t, fixed(tc.body, "Cache-Control", "max-age=600", "Content-Type", "text/html", "Content-Encoding", "gzip"))
		e := startEdge(t, testConfig(o.addr()))
		for _, ae := range []string{"gzip", ""} {
			resp, b, err := readAll(t, e.url+"/big", ae)
			whole := err == nil
			if ae == "gzip" {
				whole = whole && string(b) == tc.body
				if tc.ok && (string(b) != gz || resp.Header.Get("Content-Encoding") != "gzip") {
					t.Errorf("%s gzip: %d bytes %v, want the origin's %d bytes", tc.name, len(b), err, len(gz))
				}
			} else if tc.ok && (err != nil || !bytes.Equal(b, raw)) {
				t.Errorf("%s identity: %d bytes, err %v; want %d decoded bytes", tc.name, len(b), err, len(raw))
			}
			if !tc.ok && whole {
				t.Errorf("%s %q: corrupt body delivered whole (%d bytes)", tc.name, ae, len(b))
			}
			if ae == "gzip" && !hasVaryAE(response{header: resp.Header}) {
				t.Errorf("%s: streamed gzip relay without Vary: Accept-Encoding", tc.name)
			}
		}
		if !tc.ok {
			eventually(t, "corrupt stream counted", func() bool { return counter(e.m.gzipErrors) >= 1 })
		}
	}
}

// TestGzipBomb: a gzip body that inflates beyond max_object_bytes ×
// maxInflation is never stored and never decoded for clients (502,
// counted), without the edge ever holding the inflated bytes. A gzip
// client of an answer the edge does not store gets the origin's bytes, as
// it asked for gzip and decodes them itself, but they are checked on the
// way: a bomb with a corrupt tail is cut short, never delivered whole.
func TestGzipBomb(t *testing.T) {
	bomb := gzipString(t, strings.Repeat("\x00", 64<<20)) // 64 MiB of zeros, ~64 KiB
	badTail := []byte(bomb)
	badTail[len(badTail)-6] ^= 0xff // checksum
	for _, tc := range []struct {
		cc, body string
		ae       string
		want     int  // status
		whole    bool // the origin's bytes delivered whole
		counted  float64
	}{
		{"max-age=600", bomb, "gzip", 502, false, 1},
		{"max-age=600", bomb, "", 502, false, 1},
		{"private", bomb, "", 502, false, 1},
		{"private", bomb, "gzip", 200, true, 0},
		{"private", string(badTail), "gzip", 200, false, 1},
	} {
		what := fmt.Sprintf("%s, %q, bad tail %v", tc.cc, tc.ae, tc.body != bomb)
		o := startOrigin(t, fixed(tc.body, "Cache-Control", tc.cc, "Content-Type", "text/html", "Content-Encoding", "gzip"))
		c := testConfig(o.addr())
		c.Cache.MaxObjectBytes = 256 * config.KiB // 2 MiB decoded at most
		e := startEdge(t, c)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		resp, b, err := readAll(t, e.url+"/bomb", tc.ae)
		runtime.ReadMemStats(&ms1)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", what, resp.StatusCode, tc.want)
		}
		if whole := err == nil && string(b) == tc.body; whole != tc.whole {
			t.Errorf("%s: origin's bytes delivered whole: %v (read error %v), want %v", what, whole, err, tc.whole)
		}
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 16<<20 {
			t.Errorf("%s: %d MiB allocated checking a bomb", what, grew>>20)
		}
		eventually(t, what+": counted", func() bool { return counter(e.m.gzipErrors) == tc.counted })
		if again, _, _ := readAll(t, e.url+"/bomb", "gzip"); again.Header.Get("X-Cache") == "HIT" {
			t.Errorf("%s: a bomb was stored", what)
		}
	}
}

// TestHEADEncodings: HEAD answers with the headers GET would send for the
// chosen encoding, and decodes nothing.
func TestHEADEncodings(t *testing.T) {
	body := page(20 << 10)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html", "ETag", `"h1"`))
	c := testConfig(o.addr())
	c.Compression.Zstd = true
	e := startEdge(t, c)
	for _, ae := range []string{"gzip", "", "zstd"} {
		head := e.do(http.MethodHead, "/", "Accept-Encoding", ae)
		get := e.get("/", "Accept-Encoding", ae)
		if head.status != 200 || head.body != "" {
			t.Errorf("HEAD %q: %d, body %q", ae, head.status, head.body)
		}
		for _, h := range []string{"Content-Length", "Content-Encoding", "ETag", "Vary", "Content-Type"} {
			if head.get(h) != get.get(h) {
				t.Errorf("HEAD %q: %s %q, GET sends %q", ae, h, head.get(h), get.get(h))
			}
		}
	}
	// A HEAD from an identity client on a fresh object decodes nothing.
	e2 := startEdge(t, testConfig(o.addr()))
	e2.get("/", "Accept-Encoding", "gzip")
	for range 3 {
		if r := e2.do(http.MethodHead, "/"); r.get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("identity HEAD: Content-Length %q, want %d", r.get("Content-Length"), len(body))
		}
	}
	if n := counter(e2.m.decompressions); n != 0 {
		t.Errorf("HEAD decoded the body %v times", n)
	}
}

// TestConditionalEncodedETags: If-None-Match is evaluated against the ETag
// of the encoding the client would get: the gzip ETag matches for gzip
// clients only, the identity ETag for identity clients only.
func TestConditionalEncodedETags(t *testing.T) {
	body := page(20 << 10)
	lm := "Mon, 02 Jan 2006 15:04:05 GMT"
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html", "ETag", `"c1"`, "Last-Modified", lm))
	c := testConfig(o.addr())
	c.Compression.Zstd = true
	e := startEdge(t, c)
	e.get("/")
	f := func(method, ae, inm string, want int, wantETag string) {
		t.Helper()
		hdrs := []string{"Accept-Encoding", ae}
		if inm != "" {
			hdrs = append(hdrs, "If-None-Match", inm)
		}
		r := e.do(method, "/", hdrs...)
		what := fmt.Sprintf("%s %q If-None-Match %s", method, ae, inm)
		if r.status != want || r.get("ETag") != wantETag {
			t.Errorf("%s: %d ETag %q, want %d %q", what, r.status, r.get("ETag"), want, wantETag)
		}
		if !hasVaryAE(r) {
			t.Errorf("%s: no Vary: Accept-Encoding", what)
		}
		if want == 304 && (r.body != "" || r.get("Content-Length") != "") {
			t.Errorf("%s: 304 with body %q Content-Length %q", what, r.body, r.get("Content-Length"))
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		f(m, "gzip", `"c1-gzip"`, 304, `"c1-gzip"`)
		f(m, "gzip", `W/"c1-gzip"`, 304, `"c1-gzip"`)
		f(m, "gzip", `"c1"`, 200, `"c1-gzip"`)
		f(m, "gzip", `"x", "c1-gzip"`, 304, `"c1-gzip"`)
		f(m, "", `"c1"`, 304, `"c1"`)
		f(m, "", `"c1-gzip"`, 200, `"c1"`)
		f(m, "zstd", `"c1-zstd"`, 304, `"c1-zstd"`)
		f(m, "zstd", `"c1-gzip"`, 200, `"c1-zstd"`)
		f(m, "gzip", `*`, 304, `"c1-gzip"`)
	}
	// If-Modified-Since holds for every encoding (one Last-Modified).
	for _, ae := range []string{"gzip", ""} {
		if r := e.get("/", "Accept-Encoding", ae, "If-Modified-Since", lm); r.status != 304 {
			t.Errorf("If-Modified-Since %q: %d, want 304", ae, r.status)
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin fetches %d, want 1", n)
	}
}

// TestRangeOnCompressed: Range on an object stored gzip is answered from
// the identity form, for gzip clients too.
func TestRangeOnCompressed(t *testing.T) {
	body := page(20 << 10)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html", "ETag", `"r1"`))
	e := startEdge(t, testConfig(o.addr()))
	e.get("/", "Accept-Encoding", "gzip")
	f := func(ae, rng, ifRange string, want int, wantBody, wantRange string) {
		t.Helper()
		hdrs := []string{"Accept-Encoding", ae, "Range", rng}
		if ifRange != "" {
			hdrs = append(hdrs, "If-Range", ifRange)
		}
		r := e.get("/", hdrs...)
		what := fmt.Sprintf("%q Range %s If-Range %s", ae, rng, ifRange)
		if r.status != want || r.get("Content-Range") != wantRange {
			t.Errorf("%s: %d Content-Range %q, want %d %q", what, r.status, r.get("Content-Range"), want, wantRange)
		}
		if r.get("Content-Encoding") != "" || r.body != wantBody {
			t.Errorf("%s: Content-Encoding %q, body %d bytes, want identity %d bytes", what, r.get("Content-Encoding"), len(r.body), len(wantBody))
		}
		if want == 206 && r.get("ETag") != `"r1"` {
			t.Errorf("%s: ETag %q, want the identity ETag", what, r.get("ETag"))
		}
		if !hasVaryAE(r) {
			t.Errorf("%s: no Vary: Accept-Encoding", what)
		}
		checkLength(t, what, r)
	}
	n := strconv.Itoa(len(body))
	for _, ae := range []string{"gzip", ""} {
		f(ae, "bytes=0-99", "", 206, body[:100], "bytes 0-99/"+n)
		f(ae, "bytes=-10", "", 206, body[len(body)-10:], fmt.Sprintf("bytes %d-%d/%s", len(body)-10, len(body)-1, n))
		f(ae, "bytes=100-", "", 206, body[100:], fmt.Sprintf("bytes 100-%d/%s", len(body)-1, n))
		f(ae, "bytes=999999-", "", 416, "", "bytes */"+n)
		f(ae, "bytes=0-99", `"r1"`, 206, body[:100], "bytes 0-99/"+n)
		f(ae, "bytes=0-99", `"r1-gzip"`, 200, body, "")
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin fetches %d, want 1", n)
	}
}

// TestNoTransform: Cache-Control: no-transform keeps the edge from
// compressing an identity body, and from decoding a gzip one: clients
// without gzip are passed to the origin.
func TestNoTransform(t *testing.T) {
	body := page(20 << 10)
	gz := gzipString(t, body)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600, no-transform", "Content-Type", "text/html"))
	c := testConfig(o.addr())
	c.Compression.Zstd = true
	e := startEdge(t, c)
	for _, ae := range []string{"gzip", "", "zstd, gzip"} {
		if r := e.get("/", "Accept-Encoding", ae); r.body != body || r.get("Content-Encoding") != "" {
			t.Errorf("identity no-transform %q: Content-Encoding %q", ae, r.get("Content-Encoding"))
		}
	}
	if n := counter(e.m.compressions[1]); n != 0 {
		t.Errorf("no-transform body compressed %v times", n)
	}

	o2 := startOrigin(t, honoursGzip(body, gz, "Cache-Control", "max-age=600, no-transform", "Vary", "Accept-Encoding"))
	e2 := startEdge(t, testConfigWith(o2.addr(), func(c *config.Config) { c.Compression.Zstd = true }))
	for i, ae := range []string{"gzip", "gzip, zstd", ""} {
		r := e2.get("/", "Accept-Encoding", ae)
		if ae != "" {
			if r.get("Content-Encoding") != "gzip" || r.body != gz {
				t.Errorf("gzip no-transform #%d %q: Content-Encoding %q; want the origin's gzip as is", i, ae, r.get("Content-Encoding"))
			}
			continue
		}
		if r.body != body || r.get("Content-Encoding") != "" || r.get("X-Cache") != "PASS" {
			t.Errorf("gzip no-transform, identity client: Content-Encoding %q X-Cache %q; want the origin's identity answer, passed", r.get("Content-Encoding"), r.get("X-Cache"))
		}
		if got := o2.last.Load().Header.Get("Accept-Encoding"); got != "" {
			t.Errorf("passed request carried Accept-Encoding %q, want the client's (none)", got)
		}
	}
	// Range from a gzip client: the whole gzip body (no decoding to cut it).
	if r := e2.get("/", "Accept-Encoding", "gzip", "Range", "bytes=0-9"); r.status != 200 || r.body != gz {
		t.Errorf("Range on gzip no-transform: %d, %d bytes", r.status, len(r.body))
	}
	if n := counter(e2.m.decompressions) + counter(e2.m.compressions[2]); n != 0 {
		t.Errorf("gzip no-transform body decoded or transcoded %v times", n)
	}
}

func testConfigWith(addr string, mutate func(*config.Config)) config.Config {
	c := testConfig(addr)
	mutate(&c)
	return c
}

// TestUncacheableGzipRelayed: a gzip answer the edge does not store is
// checked and decoded for identity clients, with Vary: Accept-Encoding.
func TestUncacheableGzipRelayed(t *testing.T) {
	body := page(20 << 10)
	gz := gzipString(t, body)
	o := startOrigin(t, fixed(gz, "Cache-Control", "private", "Content-Type", "text/html", "Content-Encoding", "gzip", "ETag", `"p1"`))
	e := startEdge(t, testConfig(o.addr()))
	for _, ae := range []string{"gzip", "", "gzip"} {
		r := e.get("/", "Accept-Encoding", ae)
		if got := decoded(t, r); got != body {
			t.Errorf("%q: decoded body differs", ae)
		}
		if !hasVaryAE(r) {
			t.Errorf("%q: no Vary: Accept-Encoding on a relayed gzip answer", ae)
		}
		wantETag := `"p1"`
		if ae == "" {
			wantETag = `"p1-identity"`
		}
		if r.get("ETag") != wantETag {
			t.Errorf("%q: ETag %q, want %q", ae, r.get("ETag"), wantETag)
		}
		checkLength(t, ae, r)
	}
}

// TestDecodedOnce: identity clients of a gzip-stored object cost one
// decode in all, gzip clients none, and compression happens once per
// stored object: not per request, not on a 304 revalidation.
func TestDecodedOnce(t *testing.T) {
	body := page(40 << 10)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"d1"`)
		if r.Header.Get("If-None-Match") == `"d1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, body)
	})
	c := testConfig(o.addr())
	c.Cache.Grace = 0
	c.Cache.Keep = time.Minute // kept for revalidation after expiry
	e := startEdge(t, c)
	for i := range 50 {
		ae := []string{"gzip", "", "br"}[i%3]
		if r := e.get("/", "Accept-Encoding", ae); decoded(t, r) != body {
			t.Fatalf("#%d: body differs", i)
		}
	}
	if d, c := counter(e.m.decompressions), counter(e.m.compressions[1]); d != 1 || c != 1 {
		t.Errorf("50 requests: %v decompressions, %v compressions; want 1 and 1", d, c)
	}
	e.settle()
	e.advance(11 * time.Second)
	r := e.get("/", "Accept-Encoding", "")
	if r.get("X-Cache") != "REVALIDATED" || r.body != body {
		t.Fatalf("after expiry: X-Cache %q", r.get("X-Cache"))
	}
	e.settle()
	for range 5 {
		e.get("/")
		e.get("/", "Accept-Encoding", "gzip")
	}
	if d, c := counter(e.m.decompressions), counter(e.m.compressions[1]); d != 1 || c != 1 {
		t.Errorf("after a 304: %v decompressions, %v compressions; want still 1 and 1", d, c)
	}
}

// TestBodiesExactSize: stored bodies and decoded copies carry no spare
// capacity, since the cache counts them by length.
func TestBodiesExactSize(t *testing.T) {
	for _, tc := range []struct{ name, ctype, enc string }{
		{"compressed at store", "text/html", ""},
		{"identity", "application/octet-stream", ""},
		{"origin gzip", "text/html", "gzip"},
	} {
		body := page(30 << 10)
		if tc.enc == "gzip" {
			body = gzipString(t, body)
		}
		o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", tc.ctype, "Content-Encoding", tc.enc))
		c := testConfig(o.addr())
		c.Compression.Zstd = true
		e := startEdge(t, c)
		e.get("/")
		e.settle()
		en := e.stored(appendTestKey(e, "/"))
		if en == nil {
			t.Fatalf("%s: not stored", tc.name)
		}
		e.get("/", "Accept-Encoding", "identity")
		// Within the allocator's size class of the length.
		exact := func(b []byte) bool { return cap(b) <= len(b)+len(b)/8+64 }
		if !exact(en.Body) || !exact(zstdBody(en)) {
			t.Errorf("%s: body len %d cap %d, zstd len %d cap %d", tc.name, len(en.Body), cap(en.Body), len(zstdBody(en)), cap(zstdBody(en)))
		}
		if c := en.Identity(); c != nil && !exact(c.Value().Bytes()) {
			t.Errorf("%s: decoded copy len %d cap %d", tc.name, len(c.Value().Bytes()), cap(c.Value().Bytes()))
		}
		if tc.name != "identity" && en.Identity() == nil {
			t.Errorf("%s: no decoded copy kept", tc.name)
		}
	}
}

// zstdBody returns the zstd form of e's body, or nil.
func zstdBody(e *store.Entry) []byte {
	if e.Zstd() == nil {
		return nil
	}
	return e.Zstd().Body
}

// appendTestKey returns the URL key of path on the test edge.
func appendTestKey(e *testEdge, path string) []byte {
	return []byte(strings.TrimPrefix(e.url, "http://") + path)
}

// TestLargeGzipDecodedWhileSent: an object too large to keep decoded is
// decoded while it is sent to identity clients, with bounded memory.
func TestLargeGzipDecodedWhileSent(t *testing.T) {
	body := page(1 << 20)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html"))
	c := testConfig(o.addr())
	c.Cache.SizeBytes = 8 * config.MiB // identity copies: 1 MiB, at most 256 KiB each
	c.Cache.MaxObjectBytes = 2 * config.MiB
	e := startEdge(t, c)
	e.get("/", "Accept-Encoding", "gzip")
	for range 3 {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		resp, err := client.Get(e.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		h := sha(t, resp.Body)
		resp.Body.Close()
		runtime.ReadMemStats(&ms1)
		if h != sha(t, strings.NewReader(body)) || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("decoded while sent: body or Content-Length %q wrong", resp.Header.Get("Content-Length"))
		}
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > uint64(len(body))/2 {
			t.Errorf("%d KiB allocated to send %d KiB decoded", grew>>10, len(body)>>10)
		}
	}
	if n := counter(e.m.decompressions); n != 3 {
		t.Errorf("decompressions %v, want 3 (one per request: too large to keep)", n)
	}
	if used, copies := e.store.Identity.Stats(); used != 0 || copies != 0 {
		t.Errorf("identity pool holds %d bytes in %d copies, want none", used, copies)
	}
}

// sha reads r to its end and returns a digest of it without holding it.
func sha(t testing.TB, r io.Reader) string {
	t.Helper()
	var sum, n uint64
	buf := make([]byte, 32<<10)
	for {
		m, err := r.Read(buf)
		for _, c := range buf[:m] {
			sum = sum*1099511628211 + uint64(c)
		}
		n += uint64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	return fmt.Sprint(n, sum)
}

// TestBytesSentByEncoding: the body bytes metric is split by the content
// coding sent.
func TestBytesSentByEncoding(t *testing.T) {
	body := page(20 << 10)
	o := startOrigin(t, fixed(body, "Cache-Control", "max-age=600", "Content-Type", "text/html"))
	c := testConfig(o.addr())
	c.Compression.Zstd = true
	e := startEdge(t, c)
	var want [numSentEncodings]float64
	for _, ae := range []string{"gzip", "", "zstd", "gzip", ""} {
		r := e.get("/", "Accept-Encoding", ae)
		switch r.get("Content-Encoding") {
		case "gzip":
			want[sentGzip] += float64(len(r.body))
		case "zstd":
			want[sentZstd] += float64(len(r.body))
		default:
			want[sentIdentity] += float64(len(r.body))
		}
	}
	for i := range numSentEncodings {
		if got := counter(e.m.bytesSent[i]); got != want[i] {
			t.Errorf("%s bytes: %v, want %v", sentEncodingNames[i], got, want[i])
		}
	}
	if in, out := counter(e.m.compressedIn), counter(e.m.compressedOut[1]); in != float64(len(body)) || out <= 0 || out >= in/3 {
		t.Errorf("compression input %v, output %v: want %d in and a ratio under 1/3", in, out, len(body))
	}
}

// TestZstdOnlyWhenWorthIt: with compression.zstd, a zstd form is kept only
// when it is clearly smaller than the gzip one; otherwise zstd clients get
// gzip.
func TestZstdOnlyWhenWorthIt(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string
	}{
		{"repetitive page", page(40 << 10), "zstd"},
		{"text zstd barely shrinks", newsPage(40 << 10), "gzip"},
	} {
		o := startOrigin(t, fixed(tc.body, "Cache-Control", "max-age=600", "Content-Type", "text/html", "ETag", `"z1"`))
		e := startEdge(t, testConfigWith(o.addr(), func(c *config.Config) { c.Compression.Zstd = true }))
		for range 2 {
			r := e.get("/", "Accept-Encoding", "gzip, deflate, br, zstd")
			if r.get("Content-Encoding") != tc.want || r.get("ETag") != `"z1-`+tc.want+`"` || decoded(t, r) != tc.body {
				t.Errorf("%s: Content-Encoding %q ETag %q, want %s", tc.name, r.get("Content-Encoding"), r.get("ETag"), tc.want)
			}
		}
		if n := counter(e.m.compressions[2]); n != 1 {
			t.Errorf("%s: zstd compressions %v, want 1", tc.name, n)
		}
	}
}

// noise returns n incompressible bytes.
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint32(1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// TestOriginCutsGzipStream: an origin that stops in the middle of a
// streamed gzip body fails the client's response, but that is a fetch
// failure, not corrupt gzip.
func TestOriginCutsGzipStream(t *testing.T) {
	gz := gzipString(t, string(noise(3<<20)))
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(gz)))
		io.WriteString(w, gz[:len(gz)/2])
		panic(http.ErrAbortHandler) // close the connection mid-body
	})
	e := startEdge(t, testConfig(o.addr()))
	for _, ae := range []string{"gzip", ""} {
		if _, b, err := readAll(t, e.url+"/cut", ae); err == nil {
			t.Errorf("%q: a cut stream was delivered as complete (%d bytes)", ae, len(b))
		}
	}
	if n := counter(e.m.gzipErrors); n != 0 {
		t.Errorf("an origin cutting its stream counted as corrupt gzip %v times", n)
	}
}

// TestUncacheableNoTransformPassed: an answer the edge does not store,
// gzip and no-transform, is not decoded for a client without gzip: that
// client is passed to the origin with its own Accept-Encoding.
func TestUncacheableNoTransformPassed(t *testing.T) {
	body := page(20 << 10)
	gz := gzipString(t, body)
	o := startOrigin(t, honoursGzip(body, gz, "Cache-Control", "private, no-transform"))
	e := startEdge(t, testConfig(o.addr()))
	if r := e.get("/", "Accept-Encoding", "gzip"); r.body != gz || r.get("Content-Encoding") != "gzip" {
		t.Errorf("gzip client: Content-Encoding %q", r.get("Content-Encoding"))
	}
	r := e.get("/")
	if r.body != body || r.get("Content-Encoding") != "" || r.get("X-Cache") != "PASS" {
		t.Errorf("identity client: Content-Encoding %q X-Cache %q, want the origin's identity answer, passed", r.get("Content-Encoding"), r.get("X-Cache"))
	}
	if n := counter(e.m.decompressions); n != 0 {
		t.Errorf("decoded a no-transform body %v times", n)
	}
}

// readAll GETs url with Accept-Encoding ae (none when empty) and reads the
// body to its end, returning the error of reading it (a cut stream).
func readAll(t testing.TB, url, ae string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// honoursGzip is an origin that sends gz (Content-Encoding: gzip) to
// requests accepting gzip and body to the others, as text/html with the
// given headers.
func honoursGzip(body, gz string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "text/html")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, gz)
			return
		}
		io.WriteString(w, body)
	}
}
