// Package store is the edge's RAM cache: ristretto bounded in bytes with
// an admission window in front of it, the entries it holds, the tag index
// and purge log that purges and in-flight fetches rely on, and two pools
// of extras that only hot entries carry (decoded copies, hit headers).
//
// Invariants it keeps (docs/ARCHITECTURE.md, "The store"):
//   - bytes: stored entries' Cost plus the pools stay within the share of
//     cache.size_bytes the edge gives it (config.Budget);
//   - a purge recorded while a fetch was in flight wins: Put refuses (or
//     invalidates at once) an entry fetched before a purge that touches it
//     (docs/RELIABILITY.md, promise 7);
//   - whatever leaves ristretto (eviction, expiry, replacement, deletion,
//     a dropped Set) leaves the index and the pools exactly once, even when
//     the callback arrives after a replacement (entries are told apart by
//     ID, never by key).
//
// Lookups compare full keys: ristretto identifies items by hashes only.
// The store knows the key's format only through package cachekey.
package store

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/slab"
)

// wallMargin is added to ristretto's wall-clock TTL: freshness decisions use
// the monotonic clock; ristretto's expiry only reclaims memory, so a wall
// clock jump must not drop an object the edge still considers usable.
const wallMargin = time.Minute

// EntryOverhead is the memory of an entry beyond its byte slices and tags
// (Entry.TagsCost): the Entry itself plus ristretto's and the store's
// per-item bookkeeping (about 170 bytes: ristretto's maps, the slab's
// share, the window's node; measured by the edge's TestMemoryPerObject),
// so that the byte budget holds for many small objects too, plus an
// allowance of 150 bytes (300 once counted twice) for what the budget
// does not count otherwise: the free slots of partly used runs, which stay
// resident (up to a fifth of the live slots after a flood of small
// objects gives way to bigger ones; cmd/lakka's TestFloodRSS). Whoever
// builds an entry adds it to Cost.
const EntryOverhead = int64(unsafe.Sizeof(Entry{})) + 170 + 150

// heapCost is what n bytes kept on the Go heap cost the process: twice
// n, since at the default GOGC of 100 the heap grows to twice what it
// keeps before it collects. An entry's bytes in a slot cost their slot;
// the rest of the entry (the Entry, its key, tags and bookkeeping) costs
// this, so that the cache's budget bounds the process's memory and not
// only what it keeps.
func heapCost(n int64) int64 { return 2 * n }

// Metrics are the store's Prometheus children, made by the edge (which
// owns the metric names).
type Metrics struct {
	Evictions, Rejections, Dropped  prometheus.Counter
	IdentityBytes, HeaderBytes      prometheus.Gauge
	IdentityDropped, HeadersDropped prometheus.Counter
}

// Store is the RAM cache. Its methods are safe for concurrent use.
type Store struct {
	c *ristretto.Cache[[]byte, *Entry]
	m Metrics
	// pool holds the stored objects' header buffers and bodies, outside
	// the Go heap (Seal).
	pool *slab.Pool

	nextID atomic.Uint64

	objects atomic.Int64 // entries currently held
	bytes   atomic.Int64 // their Cost
	// copies and copyBytes count the copies of objects other edges own
	// (PutCopy) among them.
	copies, copyBytes atomic.Int64

	// closed is set by Close: Put refuses from then on.
	closed atomic.Bool

	// maxVariants bounds the variants of one URL (cache.max_variants).
	maxVariants int

	idx *index
	// Identity bounds the decoded copies of gzip bodies, Headers the hit
	// headers of hot entries.
	Identity *IdentityPool
	Headers  *HeaderPool
	// win is the admission window in front of ristretto.
	win *window

	// The reaper deletes hard-purged entries in the background, so that a
	// purge of 100,000 objects returns in milliseconds.
	reapMu   sync.Mutex // guards reapList
	reapList []*Entry
	reapWake chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

// New builds the store with its share of the budget (config.Budget
// divides cache.size_bytes); maxVariants is cache.max_variants. Close
// stops its goroutine.
func New(b config.Budget, maxVariants int, m Metrics) (*Store, error) {
	s := &Store{m: m, maxVariants: maxVariants, idx: newIndex(), reapWake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	pool, err := slab.New(SlabLimit(b))
	if err != nil {
		return nil, err
	}
	s.pool = pool
	s.Identity = newIdentityPool(b.Identity, m)
	s.Headers = newHeaderPool(b.Headers, m)
	s.win = newWindow(b.Window)
	// About ten counters per object we expect to hold (ristretto's advice),
	// guessing 4 KiB per object.
	counters := max(b.Store/4096*10, 100_000)
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, *Entry]{
		NumCounters:        counters,
		MaxCost:            b.Store,
		BufferItems:        64,
		IgnoreInternalCost: true, // EntryOverhead counts it
		OnExit:             s.onExit,
		OnEvict: func(*ristretto.Item[*Entry]) {
			m.Evictions.Inc()
		},
		OnReject: func(*ristretto.Item[*Entry]) {
			m.Rejections.Inc()
		},
		// A window victim offered after a newer entry for its key was
		// stored must not replace it.
		ShouldUpdate: func(cur, prev *Entry) bool { return cur.ID >= prev.ID },
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.c = c
	go s.reaper()
	return s, nil
}

// NextID returns a new entry ID.
func (s *Store) NextID() uint64 { return s.nextID.Add(1) }

// Generation returns the current purge generation: a fetch records it when
// it starts and hands it to Put.
func (s *Store) Generation() uint64 { return s.idx.generation() }

// GenerationBefore is the purge generation before every purge recorded
// after t: an object stored elsewhere at t (a peer's) is put with it, so
// that a purge this store applied after t removes it.
func (s *Store) GenerationBefore(t time.Time) uint64 { return s.idx.generationBefore(t) }

// PurgedSince reports whether a purge this store recorded after t affects
// e (an object stored elsewhere at t, which a purge applied here first
// must keep from being served here).
func (s *Store) PurgedSince(e *Entry, t time.Time) bool { return s.idx.purgedSince(e, t) }

// SlabLimit is the most the slots of the store's pool may hold: what
// ristretto, the admission window and the identity pool are given (their
// entries' Costs and copies' sizes count their slots), plus a sixteenth of the store's share for bodies
// that left the cache while slow clients still read them and for entries
// built and not yet stored. When it is full, new objects are served and
// not stored.
func SlabLimit(b config.Budget) int64 { return b.Store + b.Window + b.Identity + b.Store/16 }

// Get returns the entry stored under key, acquired (Entry.Acquire: the
// caller releases it), or nil. It compares the full key: ristretto
// identifies items by two 64-bit hashes only. The ristretto lookup comes
// first (it also counts the access for admission); the window is searched
// only when ristretto has nothing.
//
// The key is compared under the reference: a sealed entry's key lives in
// its slot, which another object may have once the entry's last
// reference went (and a large slot is unmapped).
func (s *Store) Get(key []byte) *Entry {
	if e := s.fromCache(key); e != nil {
		return e
	}
	if e := s.win.get(key); e != nil && e.Acquire() {
		return e
	}
	return nil
}

// fromCache returns ristretto's entry for key, acquired, if its key is
// key (compared under the reference).
func (s *Store) fromCache(key []byte) *Entry {
	e, ok := s.c.Get(key)
	if !ok || e == nil || !e.Acquire() {
		return nil
	}
	if !bytes.Equal(e.Key, key) {
		e.Release()
		return nil
	}
	return e
}

// Peek returns the entry stored under key without keeping a reference
// (Get's, given back): for reading what lives on the heap (kind,
// freshness, Vary names, a marker's variants), never Hdr, the bodies, the
// key or the tags, which live in the entry's slot. The entry may leave
// the store just after; Peek's callers allow for that.
func (s *Store) Peek(key []byte) *Entry {
	e := s.Get(key)
	if e != nil {
		e.Release()
	}
	return e
}

// Seal moves e's header buffer, bodies, key and tags into one slot of the
// store's pool, outside the Go heap, and counts the slot's size in e.Cost
// instead of theirs; what stays on the heap (e.Cost without them) counts as
// heapCost. The caller, e's builder, then holds e's first reference and
// releases it when done with e. It reports false when the pool is full
// (slow clients still hold bodies that left the cache): e keeps its heap
// copies, may be served, and is not stored.
func (s *Store) Seal(e *Entry) bool {
	n := len(e.Hdr) + len(e.Body)
	if e.Zstd() != nil {
		n += len(e.Zstd().Body)
	}
	moved := e.keyMoves(n)
	if moved {
		n += len(e.Key) + len(e.tags)
	}
	slot, b, ok := s.pool.Alloc(n)
	if !ok {
		return false
	}
	b = b[:0]
	b = append(b, e.Hdr...)
	h := len(b)
	b = append(b, e.Body...)
	e.Hdr, e.Body = b[:h:h], b[h:len(b):len(b)]
	if e.Zstd() != nil {
		z := len(b)
		b = append(b, e.Zstd().Body...)
		e.Zstd().Body = b[z:len(b):len(b)]
	}
	if moved {
		e.moveKey(b[len(b):n])
	}
	e.Cost = int64(s.pool.ClassSize(n)) + heapCost(e.Cost-int64(n))
	e.ref.set(slot)
	return true
}

// AdmitVariant reports whether one more variant with key may be stored
// under the Vary marker of url (cache.max_variants); a variant already
// stored under key is always admitted.
func (s *Store) AdmitVariant(url, key []byte) bool {
	marker := s.Peek(url)
	if marker == nil || marker.Kind != KindVary || s.Peek(key) != nil {
		return true
	}
	if int(marker.more().variants.Add(1)) > s.maxVariants {
		marker.more().variants.Add(-1)
		return false
	}
	return true
}

// Put stores e unless a purge recorded after startGen affects it; it
// reports whether e was stored. A varying entry gets (or keeps) the Vary
// marker at its URL, which sends lookups to its variants. An entry
// replacing one in ristretto replaces it there (synchronously); a new one
// enters the admission window, where it is visible at once; from there
// ristretto's admission policy decides, with the accesses it got meanwhile
// counted.
//
// Only sealed entries are stored (Seal); the store takes its own
// reference on e, given back when e leaves.
func (s *Store) Put(e *Entry, startGen uint64) bool {
	if !e.Sealed() || s.closed.Load() {
		return false // after Close nothing would release the store's reference
	}
	var marker *Entry
	if len(e.VaryNames) > 0 {
		marker = s.varyMarker(e)
	}
	checked, ok := s.idx.add(e, startGen)
	if !ok {
		return false
	}
	e.ref.take() // the store's, released by onExit
	s.insert(e)
	s.idx.recheck(e, checked, e.StoredAt())
	e.set(flagInStore)
	if marker != nil {
		marker.addVariant(e, 2*s.maxVariants)
	}
	return true
}

// PutCopy stores e, a copy of an object another edge of the cluster owns,
// as Put does, unless copies would then take more than limit bytes of the
// store; it reports whether e was stored.
func (s *Store) PutCopy(e *Entry, startGen uint64, limit int64) bool {
	if s.copyBytes.Load()+e.Cost > limit {
		return false
	}
	e.set(flagCopy) // before Put: onExit may run as soon as it is in
	s.copyBytes.Add(e.Cost)
	s.copies.Add(1)
	if !s.Put(e, startGen) {
		s.copyBytes.Add(-e.Cost)
		s.copies.Add(-1)
		return false
	}
	return true
}

// Copies returns the number of copies stored (PutCopy) and their bytes.
func (s *Store) Copies() (objects, bytes int64) { return s.copies.Load(), s.copyBytes.Load() }

// varyMarker stores the marker that sends lookups of e's URL to its
// variants, unless an equivalent one is there, and returns it.
func (s *Store) varyMarker(e *Entry) *Entry {
	url := e.URL()
	if m := s.Peek(url); m != nil && m.Kind == KindVary && slices.Equal(m.VaryNames, e.VaryNames) && !m.has(flagDead) {
		return m
	}
	m := &Entry{
		Key:       append([]byte(nil), url...),
		Kind:      KindVary,
		ID:        s.NextID(),
		VaryNames: e.VaryNames,
		stored:    e.stored,
		TTL:       e.TTL + e.Grace + e.Keep,
	}
	m.Cost = heapCost(int64(len(m.Key)) + EntryOverhead)
	m.more().variants.Store(1) // e
	s.putMarker(m)
	return m
}

// RememberUncacheable stores a hit-for-miss marker for url for ttl from
// now, unless the URL varies (then its variants decide).
func (s *Store) RememberUncacheable(url []byte, now time.Time, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	if m := s.Peek(url); m != nil && m.Kind == KindVary {
		return
	}
	e := &Entry{
		Key:  append([]byte(nil), url...),
		Kind: KindHitForMiss,
		ID:   s.NextID(),
		TTL:  ttl,
	}
	e.SetStoredAt(now)
	e.Cost = heapCost(int64(len(e.Key)) + EntryOverhead)
	s.putMarker(e)
}

// putMarker stores a small marker entry (hit-for-miss, Vary) without the
// purge-generation check: markers carry no content.
func (s *Store) putMarker(e *Entry) {
	s.idx.addMarker(e)
	s.insert(e)
}

func (s *Store) insert(e *Entry) {
	s.objects.Add(1)
	s.bytes.Add(e.Cost)
	if cur := s.fromCache(e.Key); cur != nil {
		cur.Release()
		// In ristretto already: replace in place.
		s.offer(e)
		if old := s.win.remove(e.Key); old != nil {
			s.onExit(old)
		}
		return
	}
	old, victims := s.win.add(e)
	if old != nil {
		s.onExit(old)
	}
	for _, v := range victims {
		s.offer(v)
	}
}

// offer hands e to ristretto.
func (s *Store) offer(e *Entry) {
	if e.has(flagDead) {
		s.onExit(e)
		return
	}
	if !s.c.SetWithTTL(e.Key, e, e.Cost, e.lifetime()+wallMargin) {
		// Dropped under contention: ristretto will not call OnExit.
		s.m.Dropped.Inc()
		s.onExit(e)
	}
}

// remove deletes e if it is still the entry stored under its key.
func (s *Store) remove(e *Entry) {
	e.set(flagDead)
	// Its key is read under a reference: without one left, it has left
	// the store already (and its slot may hold another object's bytes).
	if !e.Acquire() {
		return
	}
	defer e.Release()
	if s.win.removeEntry(e) {
		s.onExit(e)
		return
	}
	if cur, ok := s.c.Get(e.Key); ok && cur == e {
		s.c.Del(e.Key)
	}
}

// onExit runs whenever ristretto lets go of a value (eviction, expiry,
// rejection, replacement, deletion). It may run after the key was given a
// new entry, so everything it touches is keyed by the entry itself.
func (s *Store) onExit(e *Entry) {
	if e == nil {
		return
	}
	if !e.set(flagExited) {
		return // already accounted for (e.g. dropped Set, then Del)
	}
	s.objects.Add(-1)
	s.bytes.Add(-e.Cost)
	if e.has(flagCopy) {
		s.copies.Add(-1)
		s.copyBytes.Add(-e.Cost)
	}
	s.idx.remove(e)
	s.Identity.drop(e)
	s.Headers.drop(e)
	e.Release()
}

// reap queues dead entries for deletion.
func (s *Store) reap(es []*Entry) {
	if len(es) == 0 {
		return
	}
	s.reapMu.Lock()
	s.reapList = append(s.reapList, es...)
	s.reapMu.Unlock()
	select {
	case s.reapWake <- struct{}{}:
	default:
	}
}

func (s *Store) reaper() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.reapWake:
		}
		s.reapMu.Lock()
		batch := s.reapList
		s.reapList = nil
		s.reapMu.Unlock()
		for _, e := range batch {
			s.remove(e)
		}
	}
}

// Wait blocks until every write so far is visible to Get (ristretto's
// Sets are asynchronous).
func (s *Store) Wait() { s.c.Wait() }

// Size returns the entries held (objects and markers) and their Cost: two
// atomic loads, for metrics.
func (s *Store) Size() (objects, bytes int64) { return s.objects.Load(), s.bytes.Load() }

// Stats is what the store holds.
type Stats struct {
	Objects, Bytes int64 // entries (objects and markers) and their Cost
	Tags, Hosts    int   // in the tag index
	// IdentityBytes and IdentityCopies are the decoded copies kept;
	// HeaderBytes and HeaderSets the hit headers.
	IdentityBytes, HeaderBytes int64
	IdentityCopies, HeaderSets int
}

// Stats returns what the store holds now.
func (s *Store) Stats() Stats {
	st := Stats{Objects: s.objects.Load(), Bytes: s.bytes.Load()}
	st.Tags, st.Hosts = s.idx.counts()
	st.IdentityBytes, st.IdentityCopies = s.Identity.Stats()
	st.HeaderBytes, st.HeaderSets = s.Headers.Stats()
	return st
}

// Close stops the reaper and lets go of every entry. The pool's memory
// stays mapped while slots are in use (bodies still being written); every
// slot comes back once their holders release them.
func (s *Store) Close() {
	s.closed.Store(true)
	close(s.stop)
	<-s.done
	for _, e := range s.win.drain() {
		s.onExit(e)
	}
	s.c.Close()
}

// ClassSize is what n bytes cost in a slot of the store's pool.
func (s *Store) ClassSize(n int64) int64 { return int64(s.pool.ClassSize(int(n))) }

// SlabStats returns what the pool of stored bytes holds.
func (s *Store) SlabStats() slab.Stats {
	flushQuarantine(s.pool)
	return s.pool.Stats()
}
