package edge

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/bits"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"github.com/lakka-cache/lakka/edge/internal/coding"
	"github.com/lakka-cache/lakka/edge/internal/store"
	"github.com/lakka-cache/lakka/rules"
)

// absorber turns origin responses into stored entries: it reads what the
// headers allow (cachepolicy.Decide), builds the entry (newentry.go:
// headers in one buffer, the body compressed once), merges 304s, and
// stores it unless a purge raced the fetch.
type absorber struct {
	store *store.Store
	m     *metrics
	log   *slog.Logger
	now   func() time.Time
	// compression is the compression section of the configuration.
	compression config.Compression
	// zstd makes the stored zstd forms (compression.zstd); nil when off.
	zstd           *zstd.Encoder
	maxObjectBytes int64
	hitForMissTTL  time.Duration
	// bodies is the body budget (cache.inflight_bytes), bodyWait how long
	// a body waits for room in it.
	bodies   *backend.BodyBudget
	bodyWait time.Duration
}

func newAbsorber(cfg *config.Config, st *store.Store, bodies *backend.BodyBudget, m *metrics, log *slog.Logger, now func() time.Time) (*absorber, error) {
	a := &absorber{
		store: st, m: m, log: log, now: now,
		compression:    cfg.Compression,
		maxObjectBytes: int64(cfg.Cache.MaxObjectBytes),
		hitForMissTTL:  cfg.Cache.HitForMissTTL,
		bodies:         bodies,
		bodyWait:       cfg.Cache.InflightWait,
	}
	if cfg.Compression.Enabled && cfg.Compression.Zstd {
		var err error
		if a.zstd, err = coding.NewZstdEncoder(); err != nil {
			return nil, errors.New("edge: zstd: " + err.Error())
		}
	}
	return a, nil
}

// fetchView is what absorb needs to know about the request that caused a
// fetch: its header (Cache-Control, and the values a variant is keyed on),
// nil for a background refresh, which gives the variant's values instead.
type fetchView struct {
	// pol is the policy of the generation the fetch belongs to (a reload
	// does not change it under a request).
	pol           *policy
	h             *fasthttp.RequestHeader
	authorization bool
	varyValues    [][]byte // background refresh: values of the varied headers
	// rq is the request as the response phase's conditions read it, and
	// life the request phase's lifetimes (rules.go).
	rq   rules.Request
	life lifetimes
}

// absorbed is the outcome of absorbing a backend response.
type absorbed struct {
	// entry is the object (nil when not storable or on error); absorb's
	// caller holds its builder's reference and releases it (a request
	// through request.hold).
	entry  *store.Entry
	stored bool // entry went to the store
	// body is the fully read body when the response was not turned into an
	// entry; tooLarge says the body is still streaming.
	body     []byte
	tooLarge bool
	status   int   // the origin's status
	err      error // reading the body failed (502)
	notMod   bool  // a 304 refreshed the stale entry
	// detail says why the response was not stored.
	detail detail
}

// errUnasked304 means a backend answered 304 to a request without
// conditionals.
var errUnasked304 = errors.New("edge: 304 from backend to an unconditional request")

// errBodyTooLarge means the response body exceeds what may be buffered.
var errBodyTooLarge = errors.New("edge: response body over the object limit")

// errBodyBudget means the body budget (cache.inflight_bytes) had no room
// for the response body within cache.inflight_wait.
var errBodyBudget = errors.New("edge: no room in the body budget")

// absorb reads a backend response for the cache: a 304 refreshes stale; a
// storable response becomes an entry and is stored (unless a purge that
// started after startGen touched it: docs/RELIABILITY.md, promise 7); anything else
// is left for the caller to relay.
func (a *absorber) absorb(url []byte, fr *backend.Fetched, stale *store.Entry, startGen uint64, fv fetchView) absorbed {
	resp := fr.Resp
	status := resp.StatusCode()
	out := absorbed{status: status}
	// The request's Cache-Control, parsed once: Decide reads it, and a
	// request's no-store also keeps a 304's merge out of the store.
	reqCC := cachepolicy.NewDirectives()
	if fv.h != nil {
		reqCC.Parse(fv.h.Peek(fasthttp.HeaderCacheControl))
	}
	if status == fasthttp.StatusNotModified && stale != nil {
		e := a.refreshed(stale, fr, fv.pol)
		sealed := a.seal(e, true)
		out.entry, out.notMod = e, true
		// Same body: the decoded copy carries over. Take it (and a
		// reference on it) before the store replaces, and so drops, the
		// stale entry.
		var copied *store.Copy
		if it := stale.Identity(); it != nil && it.Value().Acquire() {
			copied = it.Value()
			defer copied.Release()
		}
		out.stored = !reqCC.NoStore && sealed && a.put(e, startGen)
		if copied != nil && out.stored {
			a.store.Identity.Keep(e, copied, copied.Size())
		}
		return out
	}
	if status == fasthttp.StatusNotModified {
		// Fetches for the cache carry no conditional of the client's:
		// a 304 answers nothing the edge asked, and has no body to serve.
		out.err, out.status = errUnasked304, fasthttp.StatusBadGateway
		a.m.notStored.WithLabelValues("unasked-304").Inc()
		return out
	}
	rl := fv.life.apply(a.rules(fv.pol, url))
	if !fv.pol.rules.Empty(rules.PhaseResponse) && fv.rq != nil {
		rl = a.responseRules(fv, resp, rl)
	}
	meta := a.responseMeta(resp, fv.pol)
	creq := cachepolicy.Request{Authorization: fv.authorization, CacheControl: reqCC}
	dec := cachepolicy.Decide(creq, meta.resp, fr.ReqTime, fr.ResTime, rl)
	if dec.Store && meta.varyStar {
		dec.Store, dec.Reason = false, cachepolicy.ReasonVaryStar
	}
	if dec.Store && !meta.encodingOK {
		dec.Store, dec.Reason, dec.HitForMiss = false, cachepolicy.ReasonStatus, true
	}
	out.detail = policyDetail(dec.Reason)
	body, err := a.readBody(fr, a.maxObjectBytes, dec.Store)
	switch {
	case errors.Is(err, errBodyTooLarge):
		out.body, out.tooLarge = body, true
		out.detail = policyDetail(cachepolicy.ReasonTooLarge)
		a.m.notStored.WithLabelValues(cachepolicy.ReasonTooLarge.String()).Inc()
		a.store.RememberUncacheable(url, a.now(), a.hitForMissTTL)
		return out
	case errors.Is(err, errBodyBudget):
		// Not remembered: the next reader may find room.
		out.body, out.tooLarge = body, true
		out.detail = detailBodyBudget
		a.m.notStored.WithLabelValues("body-budget").Inc()
		return out
	case err != nil:
		out.err = err
		out.status = fasthttp.StatusBadGateway
		a.m.notStored.WithLabelValues("read-error").Inc()
		return out
	}
	out.body = body
	if !dec.Store {
		a.m.notStored.WithLabelValues(dec.Reason.String()).Inc()
		// Errors are not remembered: a 4xx is often about this request
		// alone (an oversized header), and remembering it would make
		// every reader after it skip coalescing.
		if dec.HitForMiss && status < 400 {
			a.store.RememberUncacheable(url, a.now(), a.hitForMissTTL)
		}
		return out
	}
	e, err := a.newEntry(url, resp, meta, body, dec, fr.ResTime, fv)
	if err != nil {
		a.corruptGzip(url, err)
		out.err = err
		out.status = fasthttp.StatusBadGateway
		return out
	}
	if e == nil { // variant limit reached
		a.m.notStored.WithLabelValues("variants").Inc()
		out.detail = detailNotStored
		return out
	}
	out.entry = e
	var sealed bool
	sealed, out.stored = a.storeNew(e, body, startGen)
	if sealed {
		out.body = nil // recycled
	}
	return out
}

// storeNew seals e, which newEntry built from body (read by readBody), and
// stores it unless a purge raced its fetch. Once sealed, e has its own
// copy: the buffers body was read into and compressed into are recycled
// (the caller must not use body any more).
func (a *absorber) storeNew(e *store.Entry, body []byte, startGen uint64) (sealed, stored bool) {
	built := e.Body // body, or what storeBody compressed it into
	if !a.seal(e, false) {
		return false, false
	}
	stored = a.put(e, startGen)
	putBodyBuf(body)
	if len(built) > 0 && len(body) > 0 && unsafe.SliceData(built) != unsafe.SliceData(body) {
		putBodyBuf(built)
	}
	return true, stored
}

// seal moves e's stored bytes out of the Go heap (store.Seal); its caller
// then holds e's first reference (absorbed.entry says who releases it).
// When the pool is full, e is counted as not stored and stays on the heap;
// borrowed says its body is still the stale entry's it revalidated, which
// e must not outlive: it is copied.
func (a *absorber) seal(e *store.Entry, borrowed bool) bool {
	if a.store.Seal(e) {
		return true
	}
	a.m.notStored.WithLabelValues("memory").Inc()
	if borrowed {
		e.Body = bytes.Clone(e.Body)
		if e.Zstd() != nil {
			e.Zstd().Body = bytes.Clone(e.Zstd().Body)
		}
	}
	return false
}

// rules returns the caching rules of the route matching a URL key.
func (a *absorber) rules(pol *policy, url []byte) cachepolicy.Rules {
	host, target := cachekey.SplitURL(cachekey.RealURL(url))
	if i := cachepolicy.MatchRoute(pol.matches, cachepolicy.HostWithoutPort(host), target); i >= 0 {
		return pol.routes[i].rules
	}
	return pol.defaults
}

// put stores e (the store adds the Vary marker of a variant) unless a purge
// raced its fetch.
func (a *absorber) put(e *store.Entry, startGen uint64) bool {
	if !a.store.Put(e, startGen) {
		a.m.notStored.WithLabelValues("purged-during-fetch").Inc()
		return false
	}
	a.m.stores.Inc()
	return true
}

// readBody reads the whole body of fr if it is at most limit bytes, into
// buffers whose bytes it takes from the body budget first (storable: twice,
// for the compressed form newEntry may make). A body over limit gives what
// was read so far and errBodyTooLarge; a body that finds no room in the
// budget within its wait gives what was read so far and errBodyBudget.
// Either way the rest is still in the stream, and the bytes taken stay
// with fr until it is released. A body fasthttp read with the header (at
// most 8 KiB) is copied without counting.
func (a *absorber) readBody(fr *backend.Fetched, limit int64, storable bool) ([]byte, error) {
	resp := fr.Resp
	if !resp.IsBodyStream() {
		b := resp.Body()
		if int64(len(b)) > limit {
			return b, errBodyTooLarge
		}
		return append(getBodyBuf(len(b))[:0], b...), nil
	}
	cl := int64(resp.Header.ContentLength())
	if cl > limit {
		return nil, errBodyTooLarge
	}
	share := int64(1)
	if storable {
		share = 2
	}
	if cl >= 0 {
		if !a.bodies.Take(fr, share*bodyBufSize(int(cl)), a.bodyWait) {
			return nil, errBodyBudget
		}
		// Exactly cl bytes: a bytes.Buffer would double its capacity
		// looking for the end.
		buf := getBodyBuf(int(cl))
		n, err := io.ReadFull(resp.BodyStream(), buf)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf[:n], err
	}
	// Chunked: the buffer doubles as it fills, each size taken before it
	// is used; the storable share of the final size is taken at the end.
	rd := io.LimitReader(resp.BodyStream(), limit+1)
	if !a.bodies.Take(fr, firstChunkedBuf, a.bodyWait) {
		return nil, errBodyBudget
	}
	buf := getBodyBuf(firstChunkedBuf)[:0]
	for {
		if len(buf) == cap(buf) {
			next := 2 * cap(buf)
			if !a.bodies.Take(fr, int64(next), a.bodyWait) {
				return buf, errBodyBudget
			}
			nb := append(getBodyBuf(next)[:0], buf...)
			putBodyBuf(buf)
			a.bodies.Give(fr, int64(cap(buf)))
			buf = nb
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errBodyTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	if storable && !a.bodies.Take(fr, int64(cap(buf)), a.bodyWait) {
		return buf, errBodyBudget
	}
	return buf, nil
}

// firstChunkedBuf is the first buffer of a body of unknown length.
const firstChunkedBuf = 16 << 10

// meta is what the edge reads from a backend response's headers.
type meta struct {
	resp        cachepolicy.Response
	varyNames   []string // without accept-encoding, which the edge handles
	varyStar    bool
	varyAE      bool   // the origin varies on Accept-Encoding
	tags        string // separated by spaces (store.Entry.TagList)
	enc         cachepolicy.Encoding
	encodingOK  bool // identity or gzip: something the edge can store
	noTransform bool
}

func (a *absorber) responseMeta(resp *fasthttp.Response, pol *policy) meta {
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
		case equalFold(k, "cache-control"):
			r.CacheControl.Parse(v)
		case equalFold(k, "surrogate-control"):
			r.SurrogateControl.ParseTargeted(v, string(pol.name))
			r.HasSurrogateControl = true
		case equalFold(k, "expires"):
			r.ExpiresPresent = true
			r.Expires, _ = cachepolicy.ParseHTTPDate(v)
		case equalFold(k, "date"):
			r.Date, _ = cachepolicy.ParseHTTPDate(v)
		case equalFold(k, "age"):
			if d, ok := cachepolicy.ParseAge(v); ok {
				r.Age = d
			}
		case equalFold(k, "set-cookie"):
			r.SetCookie = true
		case equalFold(k, "vary"):
			vary = append(vary, v)
		case equalFold(k, "etag"), equalFold(k, "last-modified"):
			r.HasValidator = true
		case equalFold(k, "surrogate-key"), equalFold(k, "xkey"):
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
		tags, _ := cachepolicy.ParseSurrogateKeys(nil, sk...)
		m.tags = strings.Join(tags, " ")
	}
	m.noTransform = r.CacheControl.NoTransform
	ce := bytes.TrimSpace(h.ContentEncoding())
	switch {
	case len(ce) == 0 || equalFold(ce, "identity"):
		m.enc, m.encodingOK = cachepolicy.Identity, true
	case equalFold(ce, "gzip") || equalFold(ce, "x-gzip"):
		m.enc, m.encodingOK = cachepolicy.Gzip, true
	}
	return m
}

// corruptHook returns the hook that reports a streamed gzip body from url
// found corrupt while it was being sent.
func (a *absorber) corruptHook(url []byte) func(error) {
	u := append([]byte(nil), url...)
	return func(err error) { a.corruptGzip(u, err) }
}

// corruptGzip counts and logs a gzip body from the origin that does not
// decode.
func (a *absorber) corruptGzip(url []byte, err error) {
	a.m.gzipErrors.Inc()
	a.log.Warn("origin sent a gzip body that does not decode", "url", string(url), "err", err)
}

// Body buffers: a fetched body is read into one (and a compressible one
// compressed into another) until the entry is sealed into a slot, then
// they are used again for the next fetch. Without them every miss would
// leave its body's size of garbage on the Go heap, and the collector,
// which no longer has the cache's bytes in its heap to pace it, would run
// many times as often (BenchmarkChurnGC). Sizes are powers of two from 4
// KiB to 8 MiB; larger buffers are left to the collector.
const (
	minBodyShift = 12
	bodyClasses  = 12
)

var bodyBufs [bodyClasses]sync.Pool // *[]byte of cap 1<<(minBodyShift+class)

// bodyClass returns the class of buffers that hold n bytes, or -1.
func bodyClass(n int) int {
	c := max(bits.Len(uint(max(n, 1)-1))-minBodyShift, 0)
	if c >= bodyClasses {
		return -1
	}
	return c
}

// bodyBufSize is the capacity getBodyBuf gives a buffer of n bytes.
func bodyBufSize(n int) int64 {
	if c := bodyClass(n); c >= 0 {
		return 1 << (minBodyShift + c)
	}
	return int64(n)
}

// getBodyBuf returns a buffer of length n, recycled when one is free.
func getBodyBuf(n int) []byte {
	c := bodyClass(n)
	if c < 0 {
		return make([]byte, n)
	}
	if p, _ := bodyBufs[c].Get().(*[]byte); p != nil {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<(minBodyShift+c))
}

// putBodyBuf recycles a buffer getBodyBuf made; nothing may use it after.
func putBodyBuf(b []byte) {
	c := bodyClass(cap(b))
	if c < 0 || cap(b) != 1<<(minBodyShift+c) {
		return // not one of ours
	}
	b = b[:0]
	bodyBufs[c].Put(&b)
}
