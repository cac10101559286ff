package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// errUnasked304 means a backend answered 304 to a request without
// conditionals.
var errUnasked304 = errors.New("edge: 304 from backend to an unconditional request")

// errBodyTooLarge means the response body exceeds what may be buffered.
var errBodyTooLarge = errors.New("edge: response body over the object limit")

// fetched is a backend response with its headers read and its body not yet
// (or partly) read. release returns the response and the fetch slot.
type fetched struct {
	resp    *fasthttp.Response
	b       *backend
	reqTime time.Time
	resTime time.Time
}

func (f *fetched) release() {
	if f.resp != nil {
		_ = f.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(f.resp)
		f.resp = nil
	}
	if f.b != nil {
		f.b.release()
		f.b = nil
	}
}

// send performs one backend request.
func (s *Server) send(req *fasthttp.Request) (*fetched, error) {
	resp := fasthttp.AcquireResponse()
	// Without this, ContentType() and All() report "text/plain;
	// charset=utf-8" for a response that has no Content-Type: the edge
	// would store, relay and compress a type the origin never sent.
	resp.Header.SetNoDefaultContentType(true)
	f := &fetched{resp: resp, reqTime: s.now()}
	b, err := s.dir.do(req, resp, s.cfg.Backends.FetchTimeout)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	f.b = b
	f.resTime = s.now()
	return f, nil
}

// readBody reads the whole body if it is at most limit bytes. Otherwise it
// returns what it read so far and errBodyTooLarge; the rest is still in the
// stream. The returned slice has (about) no spare capacity: stored bodies
// are counted by length against the cache budget.
func readBody(resp *fasthttp.Response, limit int64) ([]byte, error) {
	if !resp.IsBodyStream() {
		b := resp.Body()
		if int64(len(b)) > limit {
			return b, errBodyTooLarge
		}
		return append([]byte(nil), b...), nil
	}
	cl := int64(resp.Header.ContentLength())
	if cl > limit {
		return nil, errBodyTooLarge
	}
	if cl >= 0 {
		// Exactly cl bytes: a bytes.Buffer would double its capacity
		// looking for the end.
		buf := make([]byte, cl)
		n, err := io.ReadFull(resp.BodyStream(), buf)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf[:n], err
	}
	buf := bytes.NewBuffer(make([]byte, 0, 8<<10))
	n, err := buf.ReadFrom(io.LimitReader(resp.BodyStream(), limit+1))
	if err != nil {
		return buf.Bytes(), err
	}
	if n > limit {
		return buf.Bytes(), errBodyTooLarge
	}
	b := buf.Bytes()
	if cap(b)-len(b) > len(b)/8 {
		b = bytes.Clone(b)
	}
	return b, nil
}

// fetchShared fetches an object for the cache with request coalescing:
// the first request for fkey fetches, the others wait for its result.
// stale, when set, is a stored object past grace that the fetch
// revalidates and that is served if the origin fails.
func (s *Server) fetchShared(ctx *fasthttp.RequestCtx, rs *reqState, fkey []byte, stale *Entry, attempt int) {
	f, leader := s.flights.join(fkey)
	if !leader {
		s.m.coalesced.Inc()
		if !f.wait(s.cfg.Cache.WaitTimeout) {
			s.m.waitTimeouts.Inc()
			if stale != nil && s.serveStaleOnError(ctx, rs, stale, "wait-timeout") {
				return
			}
			rs.detail = "wait-timeout"
			s.reject(ctx, rs, fasthttp.StatusGatewayTimeout, "")
			return
		}
		switch {
		case f.entry != nil && s.matchesVariant(ctx, f.entry):
			rs.result = resMiss
			rs.detail = "collapsed"
			s.serveEntry(ctx, rs, f.entry, rs.now)
		case f.entry != nil && attempt < 2:
			// The object varies and this request wants another variant.
			s.lookup(ctx, rs, attempt+1)
		case f.status != 0:
			if stale != nil && s.serveStaleOnError(ctx, rs, stale, "origin-error") {
				return
			}
			rs.detail = "origin-error"
			s.reject(ctx, rs, f.status, "")
		default:
			s.fetchDirect(ctx, rs, "uncacheable")
		}
		return
	}

	finished := false
	defer func() {
		if !finished {
			// Panicking between join and finish: publish an error, or
			// every request for the key would wait on this flight forever.
			f.status = fasthttp.StatusInternalServerError
			s.flights.finish(fkey, f)
		}
	}()
	startGen := s.store.idx.generation()
	req := fasthttp.AcquireRequest()
	s.buildUpstream(ctx, rs, modeCache, stale, req)
	fr, err := s.send(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		f.status = fetchStatus(err)
		finished = true
		s.flights.finish(fkey, f)
		s.logFetchError(rs, err)
		if stale != nil && s.serveStaleOnError(ctx, rs, stale, "origin-down") {
			return
		}
		rs.detail = fetchReason(err)
		s.reject(ctx, rs, f.status, "")
		return
	}
	out := s.absorb(rs.key, fr, stale, startGen, requestView{
		ctx:  ctx,
		head: rs.isHead,
	})
	f.entry, f.stored = out.entry, out.stored
	if out.entry == nil {
		if out.status >= 500 || out.err != nil {
			f.status = out.status
			if f.status == 0 {
				f.status = fasthttp.StatusBadGateway
			}
		} else {
			f.pass = true
		}
	}
	finished = true
	s.flights.finish(fkey, f)
	s.deliver(ctx, rs, fr, out, stale)
}

// fetchDirect fetches for this request alone (no coalescing): credentials,
// remembered-uncacheable objects, waiters of an uncacheable answer. The
// answer is stored if it may be.
func (s *Server) fetchDirect(ctx *fasthttp.RequestCtx, rs *reqState, why string) {
	rs.detail = why
	startGen := s.store.idx.generation()
	fr := s.forward(ctx, rs, modeDirect)
	if fr == nil {
		return
	}
	out := s.absorb(rs.key, fr, nil, startGen, requestView{
		ctx:           ctx,
		head:          rs.isHead,
		authorization: len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0,
	})
	if out.entry == nil || !out.stored {
		rs.result = resPass
	}
	s.deliver(ctx, rs, fr, out, nil)
}

// forward sends this client's request to a backend in mode; on failure it
// answers the client with the mapped error status and returns nil.
func (s *Server) forward(ctx *fasthttp.RequestCtx, rs *reqState, mode fetchMode) *fetched {
	req := fasthttp.AcquireRequest()
	s.buildUpstream(ctx, rs, mode, nil, req)
	fr, err := s.send(req)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		s.logFetchError(rs, err)
		rs.detail = fetchReason(err)
		s.reject(ctx, rs, fetchStatus(err), "")
		return nil
	}
	return fr
}

// pass forwards the request as-is and relays the answer; a successful
// unsafe request invalidates what is stored for its URL.
func (s *Server) pass(ctx *fasthttp.RequestCtx, rs *reqState, why string) {
	rs.result = resPass
	rs.detail = why
	fr := s.forward(ctx, rs, modePass)
	if fr == nil {
		return
	}
	status := fr.resp.StatusCode()
	if status < 400 && isUnsafe(ctx.Method()) {
		s.invalidateAfterUnsafe(ctx, rs, &fr.resp.Header)
	}
	s.copyResponse(ctx, rs, &fr.resp.Header)
	s.setCacheHeaders(ctx, rs, nil, rs.now)
	s.relayBody(ctx, fr, rs.isHead)
}

// isUnsafe reports the methods whose success invalidates the stored URL
// (RFC 9111 §4.4). Only the standard unsafe methods count: an origin that
// answers 200 to any method would otherwise let anyone evict the front
// page with "FOO /".
func isUnsafe(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodPatch, fasthttp.MethodDelete:
		return true
	}
	return false
}

// requestView is what absorb needs to know about the request that caused
// a fetch (nil ctx for background refreshes).
type requestView struct {
	ctx           *fasthttp.RequestCtx
	head          bool
	authorization bool
	varyValues    [][]byte // background refresh: values of the varied headers
}

// absorbed is the outcome of absorbing a backend response.
type absorbed struct {
	entry  *Entry // the object (nil when not storable or on error)
	stored bool   // entry went to the store
	// body is the fully read body when the response was not turned into an
	// entry; tooLarge says the body is still streaming.
	body     []byte
	tooLarge bool
	status   int   // the origin's status
	err      error // reading the body failed (502)
	notMod   bool  // a 304 refreshed the stale entry
	reason   cachepolicy.Reason
}

// absorb reads a backend response for the cache: a 304 refreshes stale; a
// storable response becomes an entry and is stored (unless a purge raced
// the fetch); anything else is left for the caller to relay.
func (s *Server) absorb(urlKey []byte, fr *fetched, stale *Entry, startGen uint64, rv requestView) absorbed {
	resp := fr.resp
	status := resp.StatusCode()
	out := absorbed{status: status}
	if status == fasthttp.StatusNotModified && stale != nil {
		e := s.refreshed(stale, fr)
		out.entry, out.notMod = e, true
		// Same body: the decoded copy carries over (read it before the
		// store replaces, and so drops, the stale entry).
		copied := stale.ident.Load()
		out.stored = s.storeEntry(e, startGen, rv)
		if copied != nil && out.stored {
			s.store.ident.keep(e, copied.v, copied.size)
		}
		return out
	}
	if status == fasthttp.StatusNotModified {
		// Fetches for the cache carry no conditional of the client's:
		// a 304 answers nothing the edge asked, and has no body to serve.
		out.err, out.status = errUnasked304, fasthttp.StatusBadGateway
		s.m.notStored.WithLabelValues("unasked-304").Inc()
		return out
	}
	meta := s.responseMeta(resp)
	rules := s.rulesFor(urlKey)
	creq := cachepolicy.Request{Authorization: rv.authorization, CacheControl: cachepolicy.NewDirectives()}
	if rv.ctx != nil {
		creq.CacheControl.Parse(rv.ctx.Request.Header.Peek(fasthttp.HeaderCacheControl))
	}
	dec := cachepolicy.Decide(creq, meta.resp, fr.reqTime, fr.resTime, rules)
	if dec.Store && meta.varyStar {
		dec.Store, dec.Reason = false, cachepolicy.ReasonVaryStar
	}
	if dec.Store && !meta.encodingOK {
		dec.Store, dec.Reason, dec.HitForMiss = false, cachepolicy.ReasonStatus, true
	}
	out.reason = dec.Reason
	body, err := readBody(resp, int64(s.cfg.Cache.MaxObjectBytes))
	switch {
	case errors.Is(err, errBodyTooLarge):
		out.body, out.tooLarge = body, true
		out.reason = cachepolicy.ReasonTooLarge
		s.m.notStored.WithLabelValues(out.reason.String()).Inc()
		s.rememberUncacheable(urlKey)
		return out
	case err != nil:
		out.err = err
		out.status = fasthttp.StatusBadGateway
		s.m.notStored.WithLabelValues("read-error").Inc()
		return out
	}
	out.body = body
	if !dec.Store {
		s.m.notStored.WithLabelValues(dec.Reason.String()).Inc()
		// Errors are not remembered: a 4xx is often about this request
		// alone (an oversized header), and remembering it would make
		// every reader after it skip coalescing.
		if dec.HitForMiss && status < 400 {
			s.rememberUncacheable(urlKey)
		}
		return out
	}
	e, err := s.newEntry(urlKey, resp, meta, body, dec, fr.resTime, rv)
	if err != nil {
		s.corruptGzip(urlKey, err)
		out.err = err
		out.status = fasthttp.StatusBadGateway
		return out
	}
	if e == nil { // variant limit reached
		s.m.notStored.WithLabelValues("variants").Inc()
		return out
	}
	out.entry = e
	out.stored = s.storeEntry(e, startGen, rv)
	return out
}

// storeEntry stores e (and its Vary marker when it varies).
func (s *Server) storeEntry(e *Entry, startGen uint64, rv requestView) bool {
	if rv.ctx != nil {
		if cc := rv.ctx.Request.Header.Peek(fasthttp.HeaderCacheControl); len(cc) > 0 {
			d := cachepolicy.NewDirectives()
			d.Parse(cc)
			if d.NoStore {
				return false
			}
		}
	}
	var marker *Entry
	if len(e.varyNames) > 0 {
		marker = s.ensureVaryMarker(e)
	}
	if !s.store.put(e, startGen) {
		s.m.notStored.WithLabelValues("purged-during-fetch").Inc()
		return false
	}
	e.inStore.Store(true)
	if marker != nil {
		marker.addVariant(e, 2*s.cfg.Cache.MaxVariants)
	}
	s.m.stores.Inc()
	return true
}

// ensureVaryMarker stores the marker that sends lookups of e's URL to its
// variants, unless an equivalent one is there, and returns it.
func (s *Server) ensureVaryMarker(e *Entry) *Entry {
	url := e.url()
	if m := s.store.get(url); m != nil && m.kind == kindVary && equalNames(m.varyNames, e.varyNames) && !m.dead.Load() {
		return m
	}
	m := &Entry{
		key:       append([]byte(nil), url...),
		urlLen:    len(url),
		kind:      kindVary,
		id:        s.store.nextID.Add(1),
		varyNames: e.varyNames,
		storedAt:  e.storedAt,
		ttl:       e.ttl + e.grace + e.keep,
	}
	m.cost = int64(len(m.key)) + entryOverhead
	m.variants.Store(1) // e
	s.store.putMarker(m)
	return m
}

func equalNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// rememberUncacheable stores a hit-for-miss marker for the URL, unless it
// varies (then the variants decide).
func (s *Server) rememberUncacheable(urlKey []byte) {
	ttl := s.cfg.Cache.HitForMissTTL
	if ttl <= 0 {
		return
	}
	if m := s.store.get(urlKey); m != nil && m.kind == kindVary {
		return
	}
	e := &Entry{
		key:      append([]byte(nil), urlKey...),
		urlLen:   len(urlKey),
		kind:     kindHitForMiss,
		id:       s.store.nextID.Add(1),
		storedAt: s.now(),
		ttl:      ttl,
	}
	e.cost = int64(len(e.key)) + entryOverhead
	s.store.putMarker(e)
}

// matchesVariant reports whether e is the variant this request selects.
func (s *Server) matchesVariant(ctx *fasthttp.RequestCtx, e *Entry) bool {
	if len(e.varyNames) == 0 {
		return true
	}
	var buf [256]byte
	vk := appendVariantKey(buf[:0], e.url(), e.varyNames, &ctx.Request.Header)
	return bytes.Equal(vk, e.key)
}

// deliver answers the client that caused a fetch.
func (s *Server) deliver(ctx *fasthttp.RequestCtx, rs *reqState, fr *fetched, out absorbed, stale *Entry) {
	now := rs.now
	switch {
	case out.entry != nil:
		fr.release()
		if rs.result != resPass {
			rs.result = resMiss
			if out.notMod {
				rs.result = resRevalidated
			}
		}
		if out.stored {
			rs.detail = "stored"
		} else if rs.detail == "" {
			rs.detail = "not-stored"
		}
		if !s.matchesVariant(ctx, out.entry) {
			// A background refresh's variant: cannot happen for a client
			// fetch, which builds the variant from its own headers.
			fr.release()
			s.reject(ctx, rs, fasthttp.StatusBadGateway, "variant")
			return
		}
		s.serveEntry(ctx, rs, out.entry, now)
	case out.err != nil:
		fr.release()
		if !errors.Is(out.err, errCorruptGzip) { // logged already
			s.log.Warn("origin response unusable", "url", string(rs.key), "err", out.err)
		}
		if stale != nil && s.serveStaleOnError(ctx, rs, stale, "origin-error") {
			return
		}
		rs.detail = "origin-error"
		s.reject(ctx, rs, fasthttp.StatusBadGateway, "")
	case out.status >= 500 && stale != nil && s.serveStaleOnError(ctx, rs, stale, "origin-error"):
		fr.release()
	default:
		if rs.result != resPass {
			rs.result = resMiss
		}
		if rs.detail == "" {
			rs.detail = out.reason.String()
		}
		s.copyResponse(ctx, rs, &fr.resp.Header)
		s.setCacheHeaders(ctx, rs, nil, now)
		if out.tooLarge {
			s.relayStream(ctx, fr, out.body, rs)
			return
		}
		s.relayBuffered(ctx, fr, out.body, rs)
	}
}

func (s *Server) logFetchError(rs *reqState, err error) {
	if s.log.Enabled(context.Background(), slog.LevelWarn) {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "origin fetch failed",
			slog.String("url", string(rs.key)), slog.String("reason", fetchReason(err)), slog.String("err", err.Error()))
	}
}
