package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lakka-cache/lakka/edge/internal/slab"
)

func testPool(t testing.TB, budget int64) *IdentityPool {
	t.Helper()
	return newIdentityPool(budget, testMetrics())
}

// check verifies the pool's invariants: the list is consistent, an entry
// is linked iff it holds a copy, no exited entry holds one, used is the sum
// of the copies and within budget.
func (p *HotPool[T]) check(all []*Entry) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum int64
	n := 0
	var prev *Entry
	listed := map[*Entry]bool{}
	for e := p.oldest; e != nil; {
		c := p.slot(e).Load()
		if c == nil {
			return fmt.Errorf("entry %d: listed without a copy", e.ID)
		}
		if c.prev != prev {
			return fmt.Errorf("entry %d: broken back link", e.ID)
		}
		if listed[e] {
			return fmt.Errorf("entry %d: listed twice", e.ID)
		}
		listed[e] = true
		sum += c.size
		n++
		prev = e
		e = c.next
	}
	if prev != p.newest {
		return fmt.Errorf("newest is not the last entry")
	}
	for _, e := range all {
		if listed[e] != (p.slot(e).Load() != nil) {
			return fmt.Errorf("entry %d: listed %v, copy %v", e.ID, listed[e], p.slot(e).Load() != nil)
		}
		if e.has(flagExited) && listed[e] {
			return fmt.Errorf("entry %d: exited but keeps its copy", e.ID)
		}
	}
	if sum != p.used || n != p.n {
		return fmt.Errorf("used %d, n %d; the list holds %d bytes in %d copies", p.used, p.n, sum, n)
	}
	if p.used > p.budget {
		return fmt.Errorf("used %d over budget %d", p.used, p.budget)
	}
	return nil
}

func sz(c *Copy) int64 { return int64(len(c.Bytes())) }

// slabCopy makes a copy of n bytes in a slot of sp, as Store.NewCopy
// does; the caller holds its first reference.
func slabCopy(t testing.TB, sp *slab.Pool, n int) *Copy {
	slot, b, ok := sp.Alloc(n)
	if !ok {
		t.Fatalf("no slot for %d bytes", n)
	}
	c := &Copy{b: b}
	c.ref.set(slot)
	return c
}

func poolEntry(id uint64) *Entry {
	e := &Entry{ID: id}
	e.set(flagInStore)
	return e
}

func copies(es []*Entry) string {
	var b []byte
	for _, e := range es {
		if e.Identity() != nil {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
	}
	return string(b)
}

func TestIdentityPool(t *testing.T) {
	p := testPool(t, 1000) // copies of at most 250 bytes
	es := make([]*Entry, 8)
	for i := range es {
		es[i] = poolEntry(uint64(i))
	}
	body := HeapCopy(make([]byte, 200))
	step := func(what string, want string) {
		t.Helper()
		if err := p.check(es); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := copies(es); got != want {
			t.Errorf("%s: copies %s, want %s", what, got, want)
		}
	}
	for i := range 5 {
		if !p.Keep(es[i], body, sz(body)) {
			t.Fatalf("keep %d refused", i)
		}
	}
	step("five fit", "11111000")
	if p.Keep(es[0], body, sz(body)) {
		t.Errorf("kept a second copy of entry 0")
	}
	step("again", "11111000")
	p.Keep(es[5], body, sz(body))
	step("oldest dropped first", "01111100")
	es[1].Identity().ref.Store(true) // an identity client used it
	p.Keep(es[6], body, sz(body))
	step("used copy gets a second chance", "01011110")
	p.Keep(es[7], body, sz(body))
	step("then the next oldest goes", "01001111")
	for _, e := range es {
		if c := e.Identity(); c != nil {
			c.ref.Store(true)
		}
	}
	p.Keep(es[0], body, sz(body))
	step("all used: one pass clears the bits, then the oldest goes", "11000111")

	if p.Keep(poolEntry(99), HeapCopy(make([]byte, 251)), 251) {
		t.Errorf("kept a copy over a quarter of the budget")
	}
	p.drop(es[1])
	step("drop", "10000111")
	es[5].set(flagExited)
	p.drop(es[5])
	step("exit", "10000011")
	if p.Keep(es[5], body, sz(body)) {
		t.Errorf("kept a copy for an exited entry")
	}
	step("keep after exit", "10000011")
	if used, n := p.Stats(); used != 600 || n != 3 {
		t.Errorf("stats %d bytes %d copies, want 600, 3", used, n)
	}
	if got := testutil.ToFloat64(p.bytes); got != 600 {
		t.Errorf("identity bytes gauge %v, want 600", got)
	}
}

// TestIdentityPoolChurn races copies being made, used, grown, dropped for
// room and dropped by exits (run with -race): the accounting stays exact and
// within budget, and no exited entry keeps a copy.
//
// The copies are in slots, as the edge's are: once every entry has left,
// every slot is free again (the pool took and gave back its references).
func TestIdentityPoolChurn(t *testing.T) {
	p := testPool(t, 64<<10)
	sp, err := slab.New(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 3000
	var mu sync.Mutex // guards all
	var all []*Entry
	slots := make([]atomicEntry, 64)
	for i := range slots {
		e := poolEntry(uint64(i))
		slots[i].Store(e)
		all = append(all, e)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				i := r.IntN(len(slots))
				e := slots[i].Load()
				switch r.IntN(4) {
				case 0: // an identity client
					if c := e.Identity(); c != nil {
						c.ref.Store(true)
					} else {
						c := slabCopy(t, sp, 1+r.IntN(16<<10))
						p.Keep(e, c, c.Size())
						c.Release() // the maker's
					}
				case 1: // an extra grows (as a header set does)
					if c := e.Identity(); c != nil {
						p.Grow(e, c, int64(1+r.IntN(4<<10)))
					}
				case 2: // the entry leaves the store, a new one replaces it
					ne := poolEntry(uint64(1000 + w*rounds + i))
					mu.Lock()
					all = append(all, ne)
					mu.Unlock()
					if slots[i].CompareAndSwap(e, ne) && e.set(flagExited) {
						p.drop(e)
					}
				case 3:
					if err := p.check(nil); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := p.check(all); err != nil {
		t.Fatal(err)
	}
	if used, _ := p.Stats(); used == 0 {
		t.Errorf("no copies kept at all")
	}
	for _, e := range all {
		if e.set(flagExited) {
			p.drop(e)
		}
	}
	flushQuarantine(sp)
	if st := sp.Stats(); st.Slots != 0 {
		t.Errorf("%d slots still in use once every entry left: the pool kept a reference", st.Slots)
	}
}

type atomicEntry struct {
	mu sync.Mutex
	e  *Entry
}

func (a *atomicEntry) Load() *Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.e
}

func (a *atomicEntry) Store(e *Entry) {
	a.mu.Lock()
	a.e = e
	a.mu.Unlock()
}

func (a *atomicEntry) CompareAndSwap(old, e *Entry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.e != old {
		return false
	}
	a.e = e
	return true
}

// TestHotPoolGrow: an extra that grows is counted larger and moves to the
// back; room is made by dropping others, never itself; it may not outgrow
// maxSize, and an extra no longer held is not counted at all.
func TestHotPoolGrow(t *testing.T) {
	p := testPool(t, 3600) // maxSize 900
	var all []*Entry
	for i := range 5 {
		e := poolEntry(uint64(i + 1))
		all = append(all, e)
		if !p.Keep(e, HeapCopy(make([]byte, 700)), 700) {
			t.Fatalf("entry %d not kept", e.ID)
		}
	}
	order := func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		var b []byte
		for e := p.oldest; e != nil; e = p.slot(e).Load().next {
			b = fmt.Appendf(b, "%d ", e.ID)
		}
		return string(b)
	}
	// 5 × 700 = 3500; the first grows to 900, which needs 100 more than the
	// budget has: the oldest other extra (the second) goes.
	first := all[0]
	if !p.Grow(first, first.Identity(), 200) {
		t.Fatal("growing to maxSize refused")
	}
	if got := order(); got != "3 4 5 1 " {
		t.Errorf("after the first grew: %q, want \"3 4 5 1 \"", got)
	}
	if used, n := p.Stats(); used != 3000 || n != 4 {
		t.Errorf("used %d in %d extras, want 3000 in 4", used, n)
	}
	if p.Grow(first, first.Identity(), 1) {
		t.Error("an extra outgrew maxSize")
	}
	third := all[2]
	c := third.Identity()
	p.drop(third)
	if p.Grow(third, c, 1) {
		t.Error("a dropped extra grew")
	}
	if err := p.check(all); err != nil {
		t.Fatal(err)
	}
}

// TestBackoff: attempts are due after 1, 2, 4 ... misses as the level
// rises, at most 1<<MaxBackoff; Reset and GiveUp set the level and keep
// counting; of racing callers one is told.
func TestBackoff(t *testing.T) {
	var b Backoff
	due := func(misses int) int { // the miss on which an attempt was due
		for i := 1; i <= misses; i++ {
			if b.Due() {
				return i
			}
		}
		return 0
	}
	if n := due(5); n != 1 {
		t.Fatalf("level 0: due after %d misses", n)
	}
	b.Raise()
	b.Raise()
	if b.level() != 2 {
		t.Fatalf("level %d after two raises", b.level())
	}
	if n := due(10); n != 4 {
		t.Fatalf("level 2: due after %d misses", n)
	}
	for range 20 {
		b.Raise()
	}
	if b.level() != MaxBackoff {
		t.Fatalf("level %d after many raises", b.level())
	}
	if n := due(5000); n != 1<<MaxBackoff {
		t.Fatalf("level %d: due after %d misses", MaxBackoff, n)
	}
	b.Reset()
	if n := due(3); n != 1 {
		t.Fatalf("after Reset: due after %d misses", n)
	}
	b.GiveUp()
	if n := due(5000); n != 1<<MaxBackoff {
		t.Fatalf("after GiveUp: due after %d misses", n)
	}
	// Racing: 8 goroutines, 4096 misses in all at level 10: at most 4 due
	// (a caller that loses the race to reset leaves the count running).
	var wg sync.WaitGroup
	var got atomic.Int32
	for range 8 {
		wg.Go(func() {
			for range 512 {
				if b.Due() {
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() < 1 || got.Load() > 4 {
		t.Fatalf("%d attempts due in 4096 racing misses at level %d, want 1 to 4", got.Load(), MaxBackoff)
	}
}
