package edge

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/coding"
	"github.com/lakka-cache/lakka/edge/internal/store"
)

// Building a store.Entry from a storable response: its key, its header
// fields in one buffer, its body stored compressed once (coding), the
// ETags of its encodings; and merging a 304 into the entry it revalidated.

// storedSkip lists origin headers not kept in Entry.Fields: framing,
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
func (a *absorber) newEntry(url []byte, resp *fasthttp.Response, m meta, body []byte, dec cachepolicy.Decision, resTime time.Time, fv fetchView) (*store.Entry, error) {
	var key []byte
	if len(m.varyNames) > 0 {
		if fv.h != nil {
			key = cachekey.AppendVariant(make([]byte, 0, len(url)+64), url, m.varyNames, fv.h)
		} else {
			key = cachekey.AppendVariantValues(make([]byte, 0, len(url)+64), url, fv.varyValues)
		}
		if !a.store.AdmitVariant(url, key) {
			return nil, nil
		}
	} else {
		key = append(make([]byte, 0, len(url)), url...)
	}
	e := a.entryFrom(resp, m, dec, resTime, fv.pol)
	e.Key = key
	if err := a.storeBody(e, m, body); err != nil {
		return nil, err
	}
	e.SetSpan(store.SpanVary, e.AppendHdr(varyValue(m, e.Enc == cachepolicy.Gzip)))
	e.Cost += restCost(e)
	return e, nil
}

// restCost is the cost of what entryFrom does not count: the key, the
// header buffer (complete once Vary and the derived ETags are in it), the
// bodies.
func restCost(e *store.Entry) int64 {
	c := int64(len(e.Key) + len(e.Hdr) + len(e.Body))
	if e.Zstd() != nil {
		c += int64(len(e.Zstd().Body)+len(e.Zstd().ETag)) + 48 + 32 // the ZstdForm and the entry's extra part
	}
	return c
}

// entryFrom builds an entry's headers and freshness from a response; the
// caller sets the key and the body. Its Cost covers everything but those.
func (a *absorber) entryFrom(resp *fasthttp.Response, m meta, dec cachepolicy.Decision, resTime time.Time, pol *policy) *store.Entry {
	h := &resp.Header
	e := &store.Entry{
		Kind:       store.KindObject,
		ID:         a.store.NextID(),
		Status:     uint16(resp.StatusCode()),
		InitialAge: dec.InitialAge,
		TTL:        dec.TTL,
		Grace:      dec.Grace,
		Keep:       dec.Keep,
		Revalidate: dec.Revalidate,
		VaryNames:  m.varyNames,
	}
	e.SetTagList(m.tags)
	e.SetStoredAt(resTime)
	// Headers, in one buffer; the entry keeps offsets into it.
	var buf []byte
	var spans []store.FieldSpan
	conn := h.Peek(fasthttp.HeaderConnection)
	add := func(k, v []byte) {
		sp := store.FieldSpan{K0: uint32(len(buf))}
		buf = append(buf, k...)
		sp.K1 = uint32(len(buf))
		buf = append(buf, v...)
		sp.V1 = uint32(len(buf))
		spans = append(spans, sp)
	}
	for k, v := range h.All() {
		if inList(storedSkip, k) || (len(conn) > 0 && connectionTokens(conn, k)) {
			continue
		}
		add(k, v)
	}
	// Via: the origin's, then ours.
	add([]byte(fasthttp.HeaderVia), appendVia(h.Peek(fasthttp.HeaderVia), pol.via))
	piece := func(b []byte) store.Span {
		start := len(buf)
		buf = append(buf, b...)
		return store.Span{Start: uint32(start), End: uint32(len(buf))}
	}
	var sp [store.SpanSC + 1]store.Span
	sp[store.SpanCT] = piece(h.ContentType())
	if d := originDate(h.Peek(fasthttp.HeaderDate)); len(d) > 0 {
		sp[store.SpanDate] = piece(d)
	} else {
		sp[store.SpanDate] = piece(cachepolicy.AppendHTTPDate(nil, resTime))
	}
	sp[store.SpanETag] = piece(h.Peek(fasthttp.HeaderETag))
	sp[store.SpanLM] = piece(h.Peek(fasthttp.HeaderLastModified))
	sp[store.SpanSC] = piece(h.Peek("Surrogate-Control"))

	// One allocation, with room for the table of fields and the values
	// added later (Vary, a derived ETag); Seal copies it into the entry's
	// slot, so its size matters only for entries that are not stored.
	e.InitHdr(buf, len(spans)*12+64)
	for id, s := range sp {
		e.SetSpan(store.SpanID(id), s)
	}
	e.AppendFields(spans)
	if lm := e.LastModified(); len(lm) > 0 {
		if t, ok := cachepolicy.ParseHTTPDate(lm); ok {
			e.LastModTime = t.Unix()
		}
	}
	e.Cost = store.EntryOverhead + e.TagsCost() // Hdr, with the fields' table, is restCost's
	return e
}

// varyValue is the Vary sent to clients: the origin's fields, plus
// Accept-Encoding when the served encoding depends on the request.
func varyValue(m meta, encoded bool) []byte {
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

// storeBody stores body in e: gzip from the origin is kept after checking
// that it decodes; a compressible identity body is compressed once, here;
// other bodies are kept as they are. With compression.zstd a zstd form is
// made once too. Nothing is ever compressed twice, and nothing marked
// no-transform is compressed (or given a zstd form).
func (a *absorber) storeBody(e *store.Entry, m meta, body []byte) error {
	e.Body, e.Enc, e.IdentityLen, e.ETagEnc = body, cachepolicy.Identity, int64(len(body)), cachepolicy.Identity
	switch {
	case m.enc == cachepolicy.Gzip && len(body) == 0:
		// Nothing to decode (a 204, or an empty body labelled gzip): an
		// empty identity body.
	case m.enc == cachepolicy.Gzip:
		n, err := coding.GunzipLen(body, a.maxObjectBytes*coding.MaxInflation)
		if err != nil {
			return fmt.Errorf("%w: %w", coding.ErrCorrupt, err)
		}
		e.Enc, e.IdentityLen, e.ETagEnc = cachepolicy.Gzip, n, cachepolicy.Gzip
		e.NoTransform = m.noTransform
		a.m.compressedIn.Add(float64(n))
		a.m.compressedOut[cachepolicy.Gzip].Add(float64(len(body)))
		if a.zstd != nil && !m.noTransform && n <= a.maxObjectBytes {
			plain, err := coding.GunzipExact(body, n)
			if err != nil {
				panic("BUG: checked gzip body does not decode: " + err.Error())
			}
			a.addZstd(e, plain)
		}
	case a.compressible(e.ContentType(), body, m.noTransform):
		// Into a body buffer: sealing copies it into the entry's slot.
		gz := coding.GzipAppend(getBodyBuf(len(body))[:0], body, a.compression.GzipLevel)
		a.m.compressions[cachepolicy.Gzip].Inc()
		if len(gz) >= len(body) {
			putBodyBuf(gz)
		} else {
			e.Body, e.Enc = gz, cachepolicy.Gzip
			a.m.compressedIn.Add(float64(len(body)))
			a.m.compressedOut[cachepolicy.Gzip].Add(float64(len(gz)))
			if a.zstd != nil {
				a.addZstd(e, body)
			}
		}
	}
	setETags(e)
	return nil
}

// addZstd makes the zstd form of a gzip-stored entry from its decoded body,
// keeping it only if it saves at least a thirty-second of the gzip form: a
// second form costs the cache its size, and one about as large as the gzip
// form saves clients next to nothing (they then get gzip). On the bundled
// origin's front page zstd saves 5.7 %, on its sitemap 1.3 %.
func (a *absorber) addZstd(e *store.Entry, plain []byte) {
	z := coding.Zstd(a.zstd, plain)
	a.m.compressions[cachepolicy.Zstd].Inc()
	if len(z) <= len(e.Body)-len(e.Body)/32 {
		e.SetZstd(&store.ZstdForm{Body: z})
		a.m.compressedOut[cachepolicy.Zstd].Add(float64(len(z)))
	}
}

// setETags derives the ETags of the encodings e is served in from the
// origin's, which belongs to e.ETagEnc.
func setETags(e *store.Entry) {
	e.SetSpan(store.SpanETagOther, store.Span{})
	if len(e.ETag()) == 0 || e.Enc != cachepolicy.Gzip {
		return
	}
	other := cachepolicy.Identity
	if e.ETagEnc == cachepolicy.Identity {
		other = cachepolicy.Gzip
	}
	e.SetSpan(store.SpanETagOther, e.AppendHdr(suffixETag(e.ETag(), other)))
	if e.Zstd() != nil {
		e.Zstd().ETag = suffixETag(e.ETag(), cachepolicy.Zstd)
	}
}

// suffixETag derives the ETag of another encoding of the same
// representation: "abc" becomes "abc-gzip" (RFC 9110 §8.8.3: different
// encodings are different representations and need different tags).
func suffixETag(etag []byte, enc cachepolicy.Encoding) []byte {
	if len(etag) < 2 || etag[len(etag)-1] != '"' {
		// A copy: etag is in the entry's header buffer, which is sealed
		// into a slot; this one lives on the heap with the entry.
		return bytes.Clone(etag)
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
func (a *absorber) compressible(contentType, body []byte, noTransform bool) bool {
	c := &a.compression
	if !c.Enabled || noTransform || len(body) == 0 || int64(len(body)) < int64(c.MinBytes) {
		return false
	}
	mt := contentType
	if i := bytes.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = bytes.TrimSpace(mt)
	if len(mt) == 0 || coding.IsCompressed(body) {
		return false
	}
	for _, t := range c.Types {
		if major, ok := strings.CutSuffix(t, "/*"); ok {
			if len(mt) > len(major) && mt[len(major)] == '/' && equalFold(mt[:len(major)], major) {
				return true
			}
			continue
		}
		if equalFold(mt, t) {
			return true
		}
	}
	return false
}

// refreshed merges a 304 into the stale entry it revalidated (RFC 9111
// §4.3.4): the stored body, the stored header fields with those the 304
// sends replacing fields of the same name, and freshness computed from the
// merged header fields.
func (a *absorber) refreshed(stale *store.Entry, fr *backend.Fetched, pol *policy) *store.Entry {
	h := &fr.Resp.Header
	merged := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(merged)
	mh := &merged.Header
	mh.SetNoDefaultContentType(true) // see backend.Director.Fetch
	mh.SetStatusCode(int(stale.Status))
	conn := h.Peek(fasthttp.HeaderConnection)
	in304 := func(name []byte) bool { return len(h.PeekBytes(name)) > 0 }
	for i := range stale.NumFields() {
		if k, v := stale.Field(i); !in304(k) {
			mh.AddBytesKV(k, v)
		}
	}
	if len(stale.SurrogateControl()) > 0 && len(h.Peek("Surrogate-Control")) == 0 {
		mh.SetBytesV("Surrogate-Control", stale.SurrogateControl())
	}
	for k, v := range h.All() {
		if inList(responseSkip, k) || (len(conn) > 0 && connectionTokens(conn, k)) ||
			equalFold(k, "content-type") || equalFold(k, "content-encoding") {
			continue
		}
		mh.AddBytesKV(k, v)
	}
	if len(h.Peek(fasthttp.HeaderDate)) > 0 {
		mh.SetBytesV(fasthttp.HeaderDate, h.Peek(fasthttp.HeaderDate))
	} else {
		mh.SetBytesV(fasthttp.HeaderDate, stale.Date())
	}
	if len(h.Peek(fasthttp.HeaderETag)) == 0 && len(stale.ETag()) > 0 {
		mh.SetBytesV(fasthttp.HeaderETag, stale.ETag())
	}
	if len(h.Peek(fasthttp.HeaderLastModified)) == 0 && len(stale.LastModified()) > 0 {
		mh.SetBytesV(fasthttp.HeaderLastModified, stale.LastModified())
	}
	if stale.TagList() != "" && len(h.Peek("Surrogate-Key")) == 0 && len(h.Peek("xkey")) == 0 {
		mh.Set("Surrogate-Key", stale.TagList())
	}
	mh.SetContentTypeBytes(stale.ContentType())

	m := a.responseMeta(merged, pol)
	m.resp.HasValidator = true
	rules := a.rules(pol, stale.URL())
	dec := cachepolicy.Decide(cachepolicy.Request{CacheControl: cachepolicy.NewDirectives()}, m.resp, fr.ReqTime, fr.ResTime, rules)
	e := a.entryFrom(merged, m, dec, fr.ResTime, pol)
	e.Key = bytes.Clone(stale.Key) // stale's is in stale's slot
	e.Body, e.Enc, e.IdentityLen, e.ETagEnc = stale.Body, stale.Enc, stale.IdentityLen, stale.ETagEnc
	e.NoTransform = stale.NoTransform
	if stale.Zstd() != nil {
		e.SetZstd(&store.ZstdForm{Body: stale.Zstd().Body})
	}
	setETags(e)
	e.SetSpan(store.SpanVary, e.AppendHdr(stale.Vary()))
	e.VaryNames = stale.VaryNames
	e.Cost += restCost(e)
	if !dec.Store {
		// The merged response may not be stored (or has no lifetime left):
		// serve the body this once, keep nothing.
		e.TTL, e.Grace, e.Keep = 0, 0, 0
	}
	return e
}
