package edge

import (
	"bytes"
	"fmt"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// meta is what the edge reads from a backend response's headers.
type meta struct {
	resp        cachepolicy.Response
	varyNames   []string // without accept-encoding, which the edge handles
	varyStar    bool
	varyAE      bool // the origin varies on Accept-Encoding
	tags        []string
	enc         cachepolicy.Encoding
	encodingOK  bool // identity or gzip: something the edge can store
	noTransform bool
}

func (s *Server) responseMeta(resp *fasthttp.Response) meta {
	h := &resp.Header
	var m meta
	r := &m.resp
	r.Status = resp.StatusCode()
	r.CacheControl = cachepolicy.NewDirectives()
	r.SurrogateControl = cachepolicy.NewDirectives()
	r.Age = cachepolicy.Absent
	var sk [][]byte
	var vary [][]byte
	for k, v := range h.All() {
		switch {
		case asciiEqualFold(k, "cache-control"):
			r.CacheControl.Parse(v)
		case asciiEqualFold(k, "surrogate-control"):
			r.SurrogateControl.ParseTargeted(v, s.cfg.Edge.ViaName)
			r.HasSurrogateControl = true
		case asciiEqualFold(k, "expires"):
			r.ExpiresPresent = true
			r.Expires, _ = cachepolicy.ParseHTTPDate(v)
		case asciiEqualFold(k, "date"):
			r.Date, _ = cachepolicy.ParseHTTPDate(v)
		case asciiEqualFold(k, "age"):
			if d, ok := cachepolicy.ParseAge(v); ok {
				r.Age = d
			}
		case asciiEqualFold(k, "set-cookie"):
			r.SetCookie = true
		case asciiEqualFold(k, "vary"):
			vary = append(vary, v)
		case asciiEqualFold(k, "etag"), asciiEqualFold(k, "last-modified"):
			r.HasValidator = true
		case asciiEqualFold(k, "surrogate-key"), asciiEqualFold(k, "xkey"):
			sk = append(sk, v)
		}
	}
	names, star := cachepolicy.ParseVary(nil, vary...)
	m.varyStar = star
	r.VaryStar = star
	for _, n := range names {
		if n == "accept-encoding" {
			m.varyAE = true
			continue
		}
		m.varyNames = append(m.varyNames, n)
	}
	if len(sk) > 0 {
		m.tags, _ = cachepolicy.ParseSurrogateKeys(nil, sk...)
	}
	m.noTransform = r.CacheControl.NoTransform
	ce := bytes.TrimSpace(h.ContentEncoding())
	switch {
	case len(ce) == 0 || asciiEqualFold(ce, "identity"):
		m.enc, m.encodingOK = cachepolicy.Identity, true
	case asciiEqualFold(ce, "gzip") || asciiEqualFold(ce, "x-gzip"):
		m.enc, m.encodingOK = cachepolicy.Gzip, true
	}
	return m
}

// storedSkip lists origin headers not kept in Entry.fields: framing,
// hop-by-hop, edge-only, and the ones the entry keeps separately.
var storedSkip = []string{
	"content-length", "transfer-encoding", "connection", "keep-alive",
	"proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
	"age", "x-cache", "date", "content-type", "content-encoding", "etag",
	"vary", "via", "set-cookie", "surrogate-key", "surrogate-control", "xkey",
}

// newEntry turns a storable response into an entry: headers copied into
// one buffer, body stored gzip-compressed when compressible (once, here),
// a gzip body from the origin checked to decode. It returns nil (no error)
// when the URL already has as many variants as allowed.
func (s *Server) newEntry(urlKey []byte, resp *fasthttp.Response, m meta, body []byte, dec cachepolicy.Decision, resTime time.Time, rv requestView) (*Entry, error) {
	var key []byte
	if len(m.varyNames) > 0 {
		if rv.ctx != nil {
			key = appendVariantKey(make([]byte, 0, len(urlKey)+64), urlKey, m.varyNames, &rv.ctx.Request.Header)
		} else {
			key = appendVariantValues(make([]byte, 0, len(urlKey)+64), urlKey, rv.varyValues)
		}
		if marker := s.store.get(urlKey); marker != nil && marker.kind == kindVary {
			if s.store.get(key) == nil && int(marker.variants.Add(1)) > s.cfg.Cache.MaxVariants {
				marker.variants.Add(-1)
				return nil, nil
			}
		}
	} else {
		key = append(make([]byte, 0, len(urlKey)), urlKey...)
	}
	e, err := s.entryFrom(urlKey, resp, m, dec, resTime, requestView{})
	if err != nil {
		return nil, err
	}
	e.key = key
	if err := s.setBody(e, m, body); err != nil {
		return nil, err
	}
	e.vary = s.varyValue(m, e.enc == cachepolicy.Gzip)
	e.cost += restCost(e)
	return e, nil
}

// restCost is the cost of what entryFrom does not count: the key, the
// bodies, Vary and the derived ETags.
func restCost(e *Entry) int64 {
	c := int64(len(e.key) + len(e.body) + len(e.vary) + len(e.etagOther))
	if e.zstd != nil {
		c += int64(len(e.zstd.body)+len(e.zstd.etag)) + 48
	}
	return c
}

// allocSize rounds a small allocation up the way Go's allocator does
// (size classes of 8 and 16 bytes, then coarser), erring high.
func allocSize(n int) int64 {
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return 8
	case n <= 128:
		return int64(n+15) &^ 15
	default:
		return int64(n+n/8+63) &^ 63
	}
}

// entryFrom builds an entry's headers and freshness from a response; the
// caller sets the key and the body. Its cost covers everything but those.
func (s *Server) entryFrom(urlKey []byte, resp *fasthttp.Response, m meta, dec cachepolicy.Decision, resTime time.Time, _ requestView) (*Entry, error) {
	h := &resp.Header
	e := &Entry{
		urlLen:     len(urlKey),
		kind:       kindObject,
		id:         s.store.nextID.Add(1),
		status:     resp.StatusCode(),
		storedAt:   resTime,
		initialAge: dec.InitialAge,
		ttl:        dec.TTL,
		grace:      dec.Grace,
		keep:       dec.Keep,
		revalidate: dec.Revalidate,
		varyNames:  m.varyNames,
		tags:       m.tags,
	}
	// Headers, in one buffer; the entry keeps offsets into it.
	var buf []byte
	var spans []fieldSpan
	conn := h.Peek(fasthttp.HeaderConnection)
	add := func(k, v []byte) {
		sp := fieldSpan{k0: uint32(len(buf))}
		buf = append(buf, k...)
		sp.k1 = uint32(len(buf))
		buf = append(buf, v...)
		sp.v1 = uint32(len(buf))
		spans = append(spans, sp)
	}
	for k, v := range h.All() {
		if inList(storedSkip, k) || (len(conn) > 0 && connectionTokens(conn, k)) {
			continue
		}
		add(k, v)
	}
	// Via: the origin's, then ours.
	if prior := h.Peek(fasthttp.HeaderVia); len(prior) > 0 {
		add([]byte(fasthttp.HeaderVia), append(append(append([]byte(nil), prior...), ", "...), s.via...))
	} else {
		add([]byte(fasthttp.HeaderVia), s.via)
	}
	piece := func(b []byte) span {
		start := len(buf)
		buf = append(buf, b...)
		return span{uint32(start), uint32(len(buf))}
	}
	e.ctSpan = piece(h.ContentType())
	if d := originDate(h.Peek(fasthttp.HeaderDate)); len(d) > 0 {
		e.dateSpan = piece(d)
	} else {
		e.dateSpan = piece(cachepolicy.AppendHTTPDate(nil, resTime))
	}
	e.etagSpan = piece(h.Peek(fasthttp.HeaderETag))
	e.lmSpan = piece(h.Peek(fasthttp.HeaderLastModified))
	e.scSpan = piece(h.Peek("Surrogate-Control"))

	// One allocation of the exact size each: appending left up to half of
	// them unused, and they live as long as the entry.
	e.hdr = append(make([]byte, 0, len(buf)), buf...)
	e.fields = append(make([]fieldSpan, 0, len(spans)), spans...)
	if lm := e.lastModified(); len(lm) > 0 {
		if t, ok := cachepolicy.ParseHTTPDate(lm); ok {
			e.lastModTime = t.Unix()
		}
	}
	e.cost = int64(len(e.hdr)) + entryOverhead + int64(len(e.fields))*int64(unsafe.Sizeof(fieldSpan{}))
	for _, t := range e.tags {
		e.cost += int64(len(t)) + 64
	}
	return e, nil
}

// appendVariantValues builds a variant key from stored values (background
// refresh of a variant).
func appendVariantValues(dst, url []byte, values [][]byte) []byte {
	dst = append(dst, url...)
	dst = append(dst, 0)
	for _, v := range values {
		dst = append(dst, v...)
		dst = append(dst, 0)
	}
	return dst
}

// variantValues splits a variant key's suffix back into header values.
func variantValues(e *Entry) [][]byte {
	if len(e.varyNames) == 0 || len(e.key) <= e.urlLen {
		return nil
	}
	rest := e.key[e.urlLen+1:]
	vals := make([][]byte, 0, len(e.varyNames))
	for range e.varyNames {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			break
		}
		vals = append(vals, rest[:i])
		rest = rest[i+1:]
	}
	return vals
}

// varyValue is the Vary sent to clients: the origin's fields, plus
// Accept-Encoding when the served encoding depends on the request.
func (s *Server) varyValue(m meta, encoded bool) []byte {
	var v []byte
	for _, n := range m.varyNames {
		if len(v) > 0 {
			v = append(v, ", "...)
		}
		v = append(v, canonicalName(n)...)
	}
	if encoded || m.varyAE {
		if len(v) > 0 {
			v = append(v, ", "...)
		}
		v = append(v, "Accept-Encoding"...)
	}
	return v
}

// canonicalName turns "accept-language" into "Accept-Language".
func canonicalName(n string) []byte {
	b := []byte(n)
	up := true
	for i, c := range b {
		if up && 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
		up = c == '-'
	}
	return b
}

// setBody stores body in e: gzip from the origin is kept after checking
// that it decodes; a compressible identity body is compressed once, here;
// other bodies are kept as they are. With compression.zstd a zstd form is
// made once too. Nothing is ever compressed twice, and nothing marked
// no-transform is compressed (or given a zstd form).
func (s *Server) setBody(e *Entry, m meta, body []byte) error {
	e.body, e.enc, e.identityLen, e.etagEnc = body, cachepolicy.Identity, int64(len(body)), cachepolicy.Identity
	switch {
	case m.enc == cachepolicy.Gzip && len(body) == 0:
		// Nothing to decode (a 204, or an empty body labelled gzip): an
		// empty identity body.
	case m.enc == cachepolicy.Gzip:
		limit := int64(s.cfg.Cache.MaxObjectBytes) * maxInflation
		n, err := gunzipLen(body, limit)
		if err != nil {
			return fmt.Errorf("%w: %w", errCorruptGzip, err)
		}
		e.enc, e.identityLen, e.etagEnc = cachepolicy.Gzip, n, cachepolicy.Gzip
		e.noTransform = m.noTransform
		s.m.compressedIn.Add(float64(n))
		s.m.compressedOut[cachepolicy.Gzip].Add(float64(len(body)))
		if s.zstd != nil && !m.noTransform && n <= int64(s.cfg.Cache.MaxObjectBytes) {
			plain, err := gunzipExact(body, n)
			if err != nil {
				panic("BUG: checked gzip body does not decode: " + err.Error())
			}
			s.setZstd(e, plain)
		}
	case s.compressible(e.contentType(), body, m.noTransform):
		gz := gzipBytes(body, s.cfg.Compression.GzipLevel)
		s.m.compressions[cachepolicy.Gzip].Inc()
		if len(gz) < len(body) {
			e.body, e.enc = gz, cachepolicy.Gzip
			s.m.compressedIn.Add(float64(len(body)))
			s.m.compressedOut[cachepolicy.Gzip].Add(float64(len(gz)))
			if s.zstd != nil {
				s.setZstd(e, body)
			}
		}
	}
	s.setETags(e)
	return nil
}

// setZstd makes the zstd form of a gzip-stored entry from its decoded body,
// keeping it only if it saves at least a thirty-second of the gzip form: a
// second form costs the cache its size, and one about as large as the gzip
// form saves clients next to nothing (they then get gzip). On the bundled
// origin's front page zstd saves 5.7 %, on its sitemap 1.3 %.
func (s *Server) setZstd(e *Entry, plain []byte) {
	z := zstdBytes(s.zstd, plain)
	s.m.compressions[cachepolicy.Zstd].Inc()
	if len(z) <= len(e.body)-len(e.body)/32 {
		e.zstd = &zstdForm{body: z}
		s.m.compressedOut[cachepolicy.Zstd].Add(float64(len(z)))
	}
}

// setETags derives the ETags of the encodings e is served in from the
// origin's, which belongs to e.etagEnc.
func (s *Server) setETags(e *Entry) {
	e.etagOther = nil
	if len(e.etag()) == 0 || e.enc != cachepolicy.Gzip {
		return
	}
	other := cachepolicy.Identity
	if e.etagEnc == cachepolicy.Identity {
		other = cachepolicy.Gzip
	}
	e.etagOther = suffixETag(e.etag(), other)
	if e.zstd != nil {
		e.zstd.etag = suffixETag(e.etag(), cachepolicy.Zstd)
	}
}

// suffixETag derives the ETag of another encoding of the same
// representation: "abc" becomes "abc-gzip" (RFC 9110 §8.8.3: different
// encodings are different representations and need different tags).
func suffixETag(etag []byte, enc cachepolicy.Encoding) []byte {
	if len(etag) < 2 || etag[len(etag)-1] != '"' {
		return etag
	}
	out := make([]byte, 0, len(etag)+10)
	out = append(out, etag[:len(etag)-1]...)
	out = append(out, '-')
	out = append(out, enc.String()...)
	return append(out, '"')
}

// compressible reports whether a body of this type is worth compressing
// at store time: compression on, not no-transform, at least
// compression.min_bytes, a type in compression.types, and not already in a
// compressed format whatever its label says.
func (s *Server) compressible(contentType, body []byte, noTransform bool) bool {
	c := &s.cfg.Compression
	if !c.Enabled || noTransform || len(body) == 0 || int64(len(body)) < int64(c.MinBytes) {
		return false
	}
	mt := contentType
	if i := bytes.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = bytes.TrimSpace(mt)
	if len(mt) == 0 || compressedFormat(body) {
		return false
	}
	for _, t := range c.Types {
		if major, ok := cutSuffix(t, "/*"); ok {
			if len(mt) > len(major) && mt[len(major)] == '/' && asciiEqualFold(mt[:len(major)], major) {
				return true
			}
			continue
		}
		if asciiEqualFold(mt, t) {
			return true
		}
	}
	return false
}

// compressedMagic lists the leading bytes of formats that are compressed
// already (gzip, zstd, zip, xz, bzip2, 7z, PNG, JPEG, GIF, RIFF/WebP,
// WOFF, WOFF2): an .svgz served as image/svg+xml without Content-Encoding
// must not be compressed again.
var compressedMagic = [][]byte{
	{0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}, []byte("PK\x03\x04"), {0xfd, '7', 'z', 'X', 'Z', 0},
	[]byte("BZh"), {'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}, {0x89, 'P', 'N', 'G'}, {0xff, 0xd8, 0xff},
	[]byte("GIF8"), []byte("RIFF"), []byte("wOFF"), []byte("wOF2"),
}

func compressedFormat(body []byte) bool {
	for _, m := range compressedMagic {
		if bytes.HasPrefix(body, m) {
			return true
		}
	}
	return false
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// refreshed merges a 304 into the stale entry it revalidated (RFC 9111
// §4.3.4): the stored body, the stored header fields with those the 304
// sends replacing fields of the same name, and freshness computed from the
// merged header fields.
func (s *Server) refreshed(stale *Entry, fr *fetched) *Entry {
	h := &fr.resp.Header
	merged := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(merged)
	mh := &merged.Header
	mh.SetNoDefaultContentType(true) // see send
	mh.SetStatusCode(stale.status)
	conn := h.Peek(fasthttp.HeaderConnection)
	in304 := func(name []byte) bool { return len(h.PeekBytes(name)) > 0 }
	for i := range stale.fields {
		if k, v := stale.field(i); !in304(k) {
			mh.AddBytesKV(k, v)
		}
	}
	if len(stale.surrogateControl()) > 0 && len(h.Peek("Surrogate-Control")) == 0 {
		mh.SetBytesV("Surrogate-Control", stale.surrogateControl())
	}
	for k, v := range h.All() {
		if inList(responseSkip, k) || (len(conn) > 0 && connectionTokens(conn, k)) ||
			asciiEqualFold(k, "content-type") || asciiEqualFold(k, "content-encoding") {
			continue
		}
		mh.AddBytesKV(k, v)
	}
	if len(h.Peek(fasthttp.HeaderDate)) > 0 {
		mh.SetBytesV(fasthttp.HeaderDate, h.Peek(fasthttp.HeaderDate))
	} else {
		mh.SetBytesV(fasthttp.HeaderDate, stale.date())
	}
	if len(h.Peek(fasthttp.HeaderETag)) == 0 && len(stale.etag()) > 0 {
		mh.SetBytesV(fasthttp.HeaderETag, stale.etag())
	}
	if len(h.Peek(fasthttp.HeaderLastModified)) == 0 && len(stale.lastModified()) > 0 {
		mh.SetBytesV(fasthttp.HeaderLastModified, stale.lastModified())
	}
	if len(stale.tags) > 0 && len(h.Peek("Surrogate-Key")) == 0 && len(h.Peek("xkey")) == 0 {
		for _, t := range stale.tags {
			mh.Add("Surrogate-Key", t)
		}
	}
	mh.SetContentTypeBytes(stale.contentType())

	m := s.responseMeta(merged)
	m.resp.HasValidator = true
	rules := s.rulesFor(stale.url())
	dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, fr.reqTime, fr.resTime, rules)
	e, err := s.entryFrom(stale.url(), merged, m, dec, fr.resTime, requestView{})
	if err != nil {
		// Unreachable: entryFrom only fails on bodies, and the body is not
		// touched here.
		panic("BUG: refreshed: " + err.Error())
	}
	e.key = stale.key
	e.body, e.enc, e.identityLen, e.etagEnc = stale.body, stale.enc, stale.identityLen, stale.etagEnc
	e.noTransform = stale.noTransform
	if stale.zstd != nil {
		e.zstd = &zstdForm{body: stale.zstd.body}
	}
	s.setETags(e)
	e.vary = stale.vary
	e.varyNames = stale.varyNames
	e.cost += restCost(e)
	if !dec.Store {
		// The merged response may not be stored (or has no lifetime left):
		// serve the body this once, keep nothing.
		e.ttl, e.grace, e.keep = 0, 0, 0
	}
	return e
}

// rulesFor returns the caching rules of the route matching a URL key.
func (s *Server) rulesFor(urlKey []byte) cachepolicy.Rules {
	host, target := cachepolicy.SplitKey(urlKey)
	if i := cachepolicy.MatchRoute(s.matches, cachepolicy.HostWithoutPort(host), target); i >= 0 {
		return s.routes[i].rules
	}
	return s.defaults
}
