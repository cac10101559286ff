package edge

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/lakka-cache/lakka/config"
)

// wallMargin is added to ristretto's wall-clock TTL: freshness decisions use
// the monotonic clock; ristretto's expiry only reclaims memory, so a wall
// clock jump must not drop an object we still consider usable.
const wallMargin = time.Minute

// entryOverhead is the memory of an entry beyond its byte slices: the
// Entry itself plus ristretto's and the store's per-item bookkeeping
// (measured by TestMemoryPerObject), so that the byte budget holds for many
// small objects too.
const entryOverhead = int64(unsafe.Sizeof(Entry{})) + 320

// store is the RAM cache: ristretto bounded in bytes, plus the indexes that
// must stay consistent with it (tags and URLs for purges, the purge log for
// in-flight fetches).
type store struct {
	c *ristretto.Cache[[]byte, *Entry]
	m *metrics

	nextID atomic.Uint64

	objects atomic.Int64 // entries currently in ristretto
	bytes   atomic.Int64 // their cost

	// idx holds the tag and URL index and the purge log.
	idx *index
	// ident bounds the decoded copies of gzip bodies, heads the copied
	// heads of hot entries.
	ident *identityPool
	heads *headPool
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

// newStore builds the store with its share of the budget (config.Budget
// divides cache.size_bytes).
func newStore(b config.Budget, m *metrics) (*store, error) {
	s := &store{m: m, idx: newIndex(), reapWake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.ident = newIdentityPool(b.Identity, m)
	s.heads = newHeadPool(b.Headers, m)
	s.win = newWindow(b.Window)
	maxBytes := b.Store
	// About ten counters per object we expect to hold (ristretto's advice),
	// guessing 4 KiB per object.
	counters := max(maxBytes/4096*10, 100_000)
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, *Entry]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true, // entryOverhead counts it
		OnExit:             s.onExit,
		OnEvict: func(*ristretto.Item[*Entry]) {
			m.evictions.Inc()
		},
		OnReject: func(*ristretto.Item[*Entry]) {
			m.rejections.Inc()
		},
		// A window victim offered after a newer entry for its key was
		// stored must not replace it.
		ShouldUpdate: func(cur, prev *Entry) bool { return cur.id >= prev.id },
	})
	if err != nil {
		return nil, err
	}
	s.c = c
	go s.reaper()
	return s, nil
}

// reap queues dead entries for deletion.
func (s *store) reap(es []*Entry) {
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

func (s *store) reaper() {
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

// get returns the entry stored under key, or nil. It compares the full key:
// ristretto identifies items by two 64-bit hashes only. The ristretto
// lookup comes first (it also counts the access for admission); the
// window is searched only when ristretto has nothing.
func (s *store) get(key []byte) *Entry {
	e, ok := s.c.Get(key)
	if ok && e != nil && bytes.Equal(e.key, key) {
		return e
	}
	return s.win.get(key)
}

// put stores e unless a purge that started after startGen affects it; it
// reports whether e was stored. An entry replacing one in ristretto
// replaces it there (synchronously); a new one enters the admission
// window, where it is visible at once; from there ristretto's admission
// policy decides, with the accesses it got meanwhile counted.
func (s *store) put(e *Entry, startGen uint64) bool {
	checked, ok := s.idx.add(e, startGen)
	if !ok {
		return false
	}
	s.insert(e)
	s.idx.recheck(e, checked, e.storedAt)
	return true
}

// putMarker stores a small marker entry (hit-for-miss, Vary) without the
// purge-generation check: markers carry no content.
func (s *store) putMarker(e *Entry) {
	s.idx.addMarker(e)
	s.insert(e)
}

func (s *store) insert(e *Entry) {
	s.objects.Add(1)
	s.bytes.Add(e.cost)
	if cur, ok := s.c.Get(e.key); ok && cur != nil && bytes.Equal(cur.key, e.key) {
		// In ristretto already: replace in place.
		s.offer(e)
		if old := s.win.remove(e.key); old != nil {
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
func (s *store) offer(e *Entry) {
	if e.dead.Load() {
		s.onExit(e)
		return
	}
	if !s.c.SetWithTTL(e.key, e, e.cost, e.lifetime()+wallMargin) {
		// Dropped under contention: ristretto will not call OnExit.
		s.m.storeDropped.Inc()
		s.onExit(e)
	}
}

// remove deletes e if it is still the entry stored under its key.
func (s *store) remove(e *Entry) {
	e.dead.Store(true)
	if s.win.removeEntry(e) {
		s.onExit(e)
		return
	}
	if cur, ok := s.c.Get(e.key); ok && cur == e {
		s.c.Del(e.key)
	}
}

// onExit runs whenever ristretto lets go of a value (eviction, expiry,
// rejection, replacement, deletion). It may run after the key was given a
// new entry, so everything it touches is keyed by the entry itself.
func (s *store) onExit(e *Entry) {
	if e == nil {
		return
	}
	if !e.exited.CompareAndSwap(false, true) {
		return // already accounted for (e.g. dropped Set, then Del)
	}
	s.objects.Add(-1)
	s.bytes.Add(-e.cost)
	s.idx.remove(e)
	s.ident.drop(e)
	s.heads.drop(e)
}

// wait blocks until every Set so far is visible to get (tests, janitor).
func (s *store) wait() { s.c.Wait() }

func (s *store) close() {
	close(s.stop)
	<-s.done
	for _, e := range s.win.drain() {
		s.onExit(e)
	}
	s.c.Close()
}

// lifetime is how long after storage the entry stays usable at all.
func (e *Entry) lifetime() time.Duration {
	return max(e.ttl+e.grace+e.keep-e.initialAge, time.Second)
}

// window is the admission window in front of ristretto (as in W-TinyLFU):
// a small exact LRU that every new entry enters first. ristretto's TinyLFU
// admission turns away a new key whose access count is below the keys it
// would evict, so a breaking story would miss again and again; in the
// window it is a hit from its second request on, and by the time it
// leaves the window its accesses have been counted and it is admitted.
// The list is intrusive (Entry.wprev/wnext): adding allocates only the map
// slot.
type window struct {
	mu     sync.Mutex // guards everything below
	budget int64
	used   int64
	m      map[string]*Entry
	head   *Entry // most recently used
	tail   *Entry
}

func newWindow(budget int64) *window {
	return &window{budget: budget, m: make(map[string]*Entry)}
}

// get returns the window's entry for key and marks it recently used.
func (w *window) get(key []byte) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.m[string(key)]
	if e != nil {
		w.unlink(e)
		w.pushFront(e)
	}
	return e
}

// add puts e in the window, returning the entry it replaced (if any) and
// the least recently used entries that no longer fit, for ristretto.
func (w *window) add(e *Entry) (old *Entry, victims []*Entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o := w.m[string(e.key)]; o != nil {
		w.unlink(o)
		w.used -= o.cost
		old = o
	}
	w.m[string(e.key)] = e
	w.pushFront(e)
	w.used += e.cost
	for w.used > w.budget && w.tail != nil && w.tail != e {
		v := w.tail
		w.unlink(v)
		delete(w.m, string(v.key))
		w.used -= v.cost
		victims = append(victims, v)
	}
	return old, victims
}

// remove takes key's entry out of the window and returns it.
func (w *window) remove(key []byte) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.m[string(key)]
	if e != nil {
		w.unlink(e)
		delete(w.m, string(key))
		w.used -= e.cost
	}
	return e
}

// removeEntry takes e (only e) out of the window; it reports whether e was
// there.
func (w *window) removeEntry(e *Entry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m[string(e.key)] != e {
		return false
	}
	w.unlink(e)
	delete(w.m, string(e.key))
	w.used -= e.cost
	return true
}

// entries returns what the window holds.
func (w *window) entries() []*Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Entry, 0, len(w.m))
	for _, e := range w.m {
		out = append(out, e)
	}
	return out
}

// drain empties the window and returns what it held.
func (w *window) drain() []*Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Entry
	for _, e := range w.m {
		out = append(out, e)
	}
	clear(w.m)
	w.head, w.tail, w.used = nil, nil, 0
	return out
}

func (w *window) pushFront(e *Entry) {
	e.wprev, e.wnext = nil, w.head
	if w.head != nil {
		w.head.wprev = e
	}
	w.head = e
	if w.tail == nil {
		w.tail = e
	}
}

func (w *window) unlink(e *Entry) {
	if e.wprev != nil {
		e.wprev.wnext = e.wnext
	} else if w.head == e {
		w.head = e.wnext
	}
	if e.wnext != nil {
		e.wnext.wprev = e.wprev
	} else if w.tail == e {
		w.tail = e.wprev
	}
	e.wprev, e.wnext = nil, nil
}
