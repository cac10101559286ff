package edge

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// wallMargin is added to ristretto's wall-clock TTL: freshness decisions use
// the monotonic clock; ristretto's expiry only reclaims memory, so a wall
// clock jump must not drop an object we still consider usable.
const wallMargin = time.Minute

// entryOverhead approximates the memory of an Entry beyond its byte slices
// (struct, slice headers, ristretto's per-item bookkeeping), so that the
// byte budget holds for many small objects too.
const entryOverhead = 400

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
	// ident bounds the decoded copies of gzip bodies.
	ident *identityPool
}

func newStore(maxBytes int64, identityBytes int64, m *metrics) (*store, error) {
	s := &store{m: m, idx: newIndex()}
	s.ident = newIdentityPool(identityBytes, m)
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
	})
	if err != nil {
		return nil, err
	}
	s.c = c
	return s, nil
}

// get returns the entry stored under key, or nil. It compares the full key:
// ristretto identifies items by two 64-bit hashes only.
func (s *store) get(key []byte) *Entry {
	e, ok := s.c.Get(key)
	if !ok || e == nil || !bytes.Equal(e.key, key) {
		return nil
	}
	return e
}

// put stores e unless a purge that started after startGen affects it; it
// reports whether e was handed to ristretto (which may still reject it).
func (s *store) put(e *Entry, startGen uint64) bool {
	if !s.idx.add(e, startGen) {
		return false
	}
	s.objects.Add(1)
	s.bytes.Add(e.cost)
	ttl := e.lifetime() + wallMargin
	if !s.c.SetWithTTL(e.key, e, e.cost, ttl) {
		// Dropped under contention: ristretto will not call OnExit.
		s.onExit(e)
		s.m.storeDropped.Inc()
		return false
	}
	return true
}

// putMarker stores a small marker entry (hit-for-miss, Vary) without the
// purge-generation check: markers carry no content.
func (s *store) putMarker(e *Entry, ttl time.Duration) {
	s.idx.addMarker(e)
	s.objects.Add(1)
	s.bytes.Add(e.cost)
	if !s.c.SetWithTTL(e.key, e, e.cost, ttl+wallMargin) {
		s.onExit(e)
	}
}

// remove deletes e if it is still the entry stored under its key.
func (s *store) remove(e *Entry) {
	e.dead.Store(true)
	if cur := s.get(e.key); cur == e {
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
}

// wait blocks until every Set so far is visible to get (tests, janitor).
func (s *store) wait() { s.c.Wait() }

func (s *store) close() { s.c.Close() }

// lifetime is how long after storage the entry stays usable at all.
func (e *Entry) lifetime() time.Duration {
	return max(e.ttl+e.grace+e.keep-e.initialAge, time.Second)
}

// identityPool bounds the decoded copies of gzip-stored bodies kept for
// clients that do not accept gzip. It is a FIFO within a byte budget: the
// oldest copies are dropped first, so only bodies identity clients keep
// asking for stay decoded.
type identityPool struct {
	budget int64
	m      *metrics

	mu    sync.Mutex // guards used, live and queue
	used  int64
	live  int
	queue []*Entry // oldest first; may hold entries whose copy is gone
}

func newIdentityPool(budget int64, m *metrics) *identityPool {
	return &identityPool{budget: budget, m: m}
}

// keep records that e now holds a decoded copy of n bytes, dropping older
// copies to stay within budget. It reports false when the copy is larger
// than the whole budget (the caller then does not keep it).
func (p *identityPool) keep(e *Entry, body []byte) bool {
	n := int64(len(body))
	if n > p.budget/4 {
		return false
	}
	p.mu.Lock()
	for p.used+n > p.budget && len(p.queue) > 0 {
		old := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if b := old.identity.Swap(nil); b != nil {
			p.used -= int64(len(*b))
			p.live--
			p.m.identityDropped.Inc()
		}
	}
	if !e.identity.CompareAndSwap(nil, &body) {
		p.mu.Unlock()
		return true // another request decoded it first
	}
	p.used += n
	p.live++
	if len(p.queue) > 2*p.live+64 {
		// Forget entries whose copies were dropped with the entry.
		q := p.queue[:0]
		for _, x := range p.queue {
			if x.identity.Load() != nil {
				q = append(q, x)
			}
		}
		clear(p.queue[len(q):])
		p.queue = q
	}
	p.queue = append(p.queue, e)
	p.mu.Unlock()
	p.m.identityBytes.Set(float64(p.usedBytes()))
	return true
}

// drop forgets e's decoded copy (e left the store).
func (p *identityPool) drop(e *Entry) {
	b := e.identity.Swap(nil)
	if b == nil {
		return
	}
	p.mu.Lock()
	p.used -= int64(len(*b))
	p.live--
	p.mu.Unlock()
}

func (p *identityPool) usedBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}
