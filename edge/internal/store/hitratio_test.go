//go:build !race

package store

import (
	"container/list"
	"math"
	"math/rand/v2"
	"testing"
)

// newsWorkload models a news site's traffic: Zipf popularity over the
// article archive, a front page everyone reads, and every few seconds a
// breaking story that takes a large share of the traffic at once and fades.
type newsWorkload struct {
	rng        *rand.Rand
	zipf       *rand.Zipf
	sizes      []int64 // by object id; ids >= archive are breaking stories
	archive    int
	hot        int // current breaking story id
	hotStarted int // request number when it broke
	every      int // requests between breaking stories
}

const frontPage = -1

func newNewsWorkload(seed uint64, archive, every int) *newsWorkload {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &newsWorkload{
		rng:     rng,
		zipf:    rand.NewZipf(rng, 1.05, 8, uint64(archive-1)),
		archive: archive,
		every:   every,
		hot:     -2,
	}
	for range archive {
		w.sizes = append(w.sizes, w.size())
	}
	return w
}

// size draws an object size: pages compress to a few KiB, with a long tail
// (images, big lists).
func (w *newsWorkload) size() int64 {
	return 2048 + int64(w.rng.ExpFloat64()*8192) + int64(min(w.rng.ExpFloat64()*2048, 60000))
}

// next returns the id of the n-th request's object.
func (w *newsWorkload) next(n int) int {
	if n%w.every == 0 {
		w.hot = len(w.sizes)
		w.sizes = append(w.sizes, w.size())
		w.hotStarted = n
	}
	r := w.rng.Float64()
	// The breaking story starts at 20% of traffic and fades over a few
	// periods; the front page takes 10%.
	if w.hot >= 0 {
		age := float64(n-w.hotStarted) / float64(w.every)
		if r < 0.20*math.Exp(-age/3) {
			return w.hot
		}
	}
	if r > 0.90 {
		return frontPage
	}
	return int(w.zipf.Uint64())
}

func (w *newsWorkload) objectSize(id int) int64 {
	if id == frontPage {
		return 30 << 10
	}
	return w.sizes[id]
}

// lruCache is an exact LRU bounded in bytes: the baseline.
type lruCache struct {
	budget, used int64
	ll           *list.List
	items        map[int]*list.Element
}

type lruItem struct {
	id   int
	size int64
}

func newLRU(budget int64) *lruCache {
	return &lruCache{budget: budget, ll: list.New(), items: map[int]*list.Element{}}
}

func (c *lruCache) get(id int) bool {
	if el, ok := c.items[id]; ok {
		c.ll.MoveToFront(el)
		return true
	}
	return false
}

func (c *lruCache) put(id int, size int64) {
	if size > c.budget {
		return
	}
	c.items[id] = c.ll.PushFront(&lruItem{id, size})
	c.used += size
	for c.used > c.budget {
		el := c.ll.Back()
		it := el.Value.(*lruItem)
		c.ll.Remove(el)
		delete(c.items, it.id)
		c.used -= it.size
	}
}

type simResult struct {
	requests, hits int
	// secondMisses counts breaking stories whose second request missed.
	secondMisses, stories int
}

func (r simResult) ratio() float64 { return float64(r.hits) / float64(r.requests) }

// simulate replays the workload through get/put and reports hit ratios.
// settle is called every settleEvery requests, the way time passes in the
// real edge (ristretto applies Sets asynchronously, within microseconds).
func simulate(w *newsWorkload, requests int, get func(id int) bool, put func(id int, size int64), settle func()) simResult {
	var r simResult
	seen := map[int]int{} // breaking story -> requests so far
	for n := range requests {
		id := w.next(n)
		hit := get(id)
		if !hit {
			put(id, w.objectSize(id))
		}
		r.requests++
		if hit {
			r.hits++
		}
		if id >= w.archive {
			seen[id]++
			if seen[id] == 1 {
				r.stories++
			}
			if seen[id] == 2 && !hit {
				r.secondMisses++
			}
		}
		if settle != nil && n%64 == 0 {
			settle()
		}
	}
	return r
}

func TestStoreHitRatioVersusLRU(t *testing.T) {
	const (
		archive  = 20000
		requests = 400000
		every    = 5000
	)
	total := int64(0)
	w := newNewsWorkload(1, archive, every)
	for _, s := range w.sizes {
		total += s
	}
	budget := total / 10

	lru := newLRU(budget)
	lr := simulate(newNewsWorkload(1, archive, every), requests, lru.get, lru.put, nil)
	get, put, settle, _ := storeSim(t, budget)
	sr := simulate(newNewsWorkload(1, archive, every), requests, get, put, settle)

	t.Logf("budget %d KiB (10%% of %d KiB); LRU hit ratio %.4f; store hit ratio %.4f", budget>>10, total>>10, lr.ratio(), sr.ratio())
	t.Logf("breaking stories: %d; second request missed: LRU %d, store %d", sr.stories, lr.secondMisses, sr.secondMisses)
	if sr.ratio() < lr.ratio() {
		t.Errorf("store hit ratio %.4f below LRU's %.4f", sr.ratio(), lr.ratio())
	}
	if sr.secondMisses > 0 {
		t.Errorf("%d of %d breaking stories missed on their second request", sr.secondMisses, sr.stories)
	}
}
