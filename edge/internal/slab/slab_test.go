package slab

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

func TestClassSizes(t *testing.T) {
	p := newPool(t, 1<<20)
	if p.ClassSize(0) != minClass || p.ClassSize(-1) != 0 || p.ClassSize(MaxSize+1) != 0 {
		t.Fatalf("ClassSize(0, -1, MaxSize+1) = %d, %d, %d", p.ClassSize(0), p.ClassSize(-1), p.ClassSize(MaxSize+1))
	}
	if got := classSizes[nClasses-1]; got != maxClassSize {
		t.Fatalf("largest class %d, want %d", got, maxClassSize)
	}
	if c := p.ClassSize(MaxSize); c != MaxSize {
		t.Fatalf("ClassSize(MaxSize) = %d", c)
	}
	worst, worstN := 0.0, 0
	prev := 0
	check := func(n int) {
		c := p.ClassSize(n)
		if c < n || c < prev {
			t.Fatalf("ClassSize(%d) = %d (ClassSize(%d) = %d)", n, c, n-1, prev)
		}
		if n <= maxClassSize && classSizes[classOf(n)] != c {
			t.Fatalf("ClassSize(%d) = %d, not class %d's size", n, c, classOf(n))
		}
		if n >= minClass {
			if w := float64(c-n) / float64(c); w > worst {
				worst, worstN = w, n
			}
		}
		prev = c
	}
	for n := 0; n <= 4<<20; n++ {
		check(n)
	}
	for n := 4 << 20; n <= MaxSize; n += 4093 {
		check(n)
	}
	t.Logf("worst waste: %.1f%% of the slot (n = %d, class %d)", 100*worst, worstN, p.ClassSize(worstN))
	if worst > 0.125 {
		t.Fatalf("waste %.1f%% for n = %d", 100*worst, worstN)
	}
	// Eight classes per power of two, and sizes pages often have.
	for i := perDoubling; i < nClasses; i++ {
		if classSizes[i] != 2*classSizes[i-perDoubling] {
			t.Fatalf("class %d is %d, class %d is %d", i, classSizes[i], i-perDoubling, classSizes[i-perDoubling])
		}
	}
	for _, c := range []int{64, 72, 1024, 1152, 1280, 1536, 1792, 2048, 2304, 2560, 3072, 3584, 4096, 4608, 40960} {
		if p.ClassSize(c) != c {
			t.Errorf("%d is not a class (ClassSize = %d)", c, p.ClassSize(c))
		}
	}
}

// TestRoundTrips allocates and frees the smallest and largest size of
// every class, and some large ones, without a retain budget, with New's
// and with one that keeps all.
func TestRoundTrips(t *testing.T) {
	for _, retain := range []int64{0, -1, 1 << 30} {
		t.Run(fmt.Sprintf("retain%d", retain), func(t *testing.T) { roundTrips(t, retain) })
	}
}

// newPoolOrDefault is newPoolRetain, or newPool when retain is -1.
func newPoolOrDefault(tb testing.TB, limit, retain int64) *Pool {
	if retain < 0 {
		return newPool(tb, limit)
	}
	return newPoolRetain(tb, limit, retain)
}

func roundTrips(t *testing.T, retain int64) {
	p := newPoolOrDefault(t, 1<<30, retain)
	sizes := []int{0, 1}
	for i, c := range classSizes {
		if i > 0 {
			sizes = append(sizes, classSizes[i-1]+1)
		}
		sizes = append(sizes, c)
	}
	sizes = append(sizes, maxClassSize+1, 256<<10, 1<<20+1, 8<<20, 16<<20, 32<<20+5)
	var held []Slot
	for k, n := range sizes {
		s, b, ok := p.Alloc(n)
		if !ok {
			t.Fatalf("Alloc(%d) failed: %+v", n, p.Stats())
		}
		if len(b) != n || cap(b) != p.ClassSize(n) || s.Len() != n {
			t.Fatalf("Alloc(%d): len %d cap %d Len %d, want cap %d", n, len(b), cap(b), s.Len(), p.ClassSize(n))
		}
		if unsafe.Sizeof(s) > 16 || s == (Slot{}) {
			t.Fatalf("Slot %+v: %d bytes", s, unsafe.Sizeof(s))
		}
		bb := p.Bytes(s)
		if len(bb) != n || cap(bb) != cap(b) || addr(bb[:1]) != addr(b[:1]) {
			t.Fatalf("Bytes(Alloc(%d)) is not the memory Alloc returned", n)
		}
		fill(b[:cap(b)], uint64(k+1))
		held = append(held, s)
	}
	checkPool(t, p)
	for k, s := range held {
		b := p.Bytes(s)
		if !holds(b[:cap(b)], uint64(k+1)) {
			t.Fatalf("slot of %d bytes was overwritten", s.Len())
		}
		p.Free(s)
	}
	checkPool(t, p)
	if st := p.Stats(); st.Live != 0 || st.Used != 0 || st.Slots != 0 || st.Resident != st.Retained || st.Retained > p.retain || retain == 0 && st.Resident != 0 {
		t.Fatalf("all freed, stats %+v", st)
	}
	agree(t, p, "all freed")
	p.Trim()
	checkPool(t, p)
	agree(t, p, "trimmed")
	if st := p.Stats(); st.Resident != 0 || st.Retained != 0 {
		t.Fatalf("all freed and trimmed, stats %+v", st)
	}
	if _, _, ok := p.Alloc(MaxSize + 1); ok {
		t.Fatal("Alloc(MaxSize+1) succeeded")
	}
	if _, _, ok := p.Alloc(-1); ok {
		t.Fatal("Alloc(-1) succeeded")
	}
}

// randSize returns a size spread evenly over orders of magnitude, up to
// max.
func randSize(rng *rand.Rand, max int) int {
	return int(float64(max) / float64(uint64(1)<<rng.IntN(20)) * rng.Float64())
}

type held struct {
	s  Slot
	b  []byte
	id uint64
}

// TestNoOverlap fills slots of random sizes with distinct patterns, frees
// some, allocates more, and checks that no slot overlaps another.
func TestNoOverlap(t *testing.T) {
	p := newPool(t, 256<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	var live []held
	id := uint64(0)
	alloc := func(k int) {
		for range k {
			n := randSize(rng, 600<<10)
			s, b, ok := p.Alloc(n)
			if !ok {
				t.Fatalf("Alloc(%d) failed: %+v", n, p.Stats())
			}
			id++
			fill(b[:cap(b)], id)
			live = append(live, held{s, b, id})
		}
	}
	check := func() {
		t.Helper()
		for _, h := range live {
			if !holds(h.b[:cap(h.b)], h.id) {
				t.Fatalf("slot %d (%d bytes) was overwritten", h.id, cap(h.b))
			}
		}
		sorted := slices.SortedFunc(slices.Values(live), func(a, b held) int { return int(addr(a.b[:1])) - int(addr(b.b[:1])) })
		for i := 1; i < len(sorted); i++ {
			a, b := sorted[i-1].b, sorted[i].b
			if addr(a[:1])+uintptr(cap(a)) > addr(b[:1]) {
				t.Fatalf("slots of %d and %d bytes overlap", cap(a), cap(b))
			}
		}
		checkPool(t, p)
	}
	alloc(3000)
	check()
	for round := range 4 {
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		for _, h := range live[len(live)/2:] {
			p.Free(h.s)
		}
		live = live[:len(live)/2]
		check()
		alloc(1500 + 500*round)
		check()
	}
	for _, h := range live {
		p.Free(h.s)
	}
	checkPool(t, p)
}

func TestFreeMisuse(t *testing.T) {
	for _, retain := range []int64{0, -1} {
		t.Run(fmt.Sprintf("retain%d", retain), func(t *testing.T) { freeMisuse(t, retain) })
	}
}

func freeMisuse(t *testing.T, retain int64) {
	p := newPoolOrDefault(t, 64<<20, retain)
	mustPanic(t, "zero Slot", func() { p.Free(Slot{}) })
	for _, n := range []int{100, 40 << 10, 1 << 20} {
		s, _, _ := p.Alloc(n)
		keep, _, _ := p.Alloc(n) // keeps the run in use for the small ones
		p.Free(s)
		mustPanic(t, "already freed", func() { p.Free(s) })
		forged := keep
		forged.off += 8
		mustPanic(t, "did not allocate", func() { p.Free(forged) })
		forged = keep
		forged.ref += 1000
		mustPanic(t, "did not allocate", func() { p.Free(forged) })
		forged = keep
		forged.ref = 0
		mustPanic(t, "did not allocate", func() { p.Free(forged) })
		forged = keep
		forged.cls = nClasses
		mustPanic(t, "did not allocate", func() { p.Free(forged) })
		forged = keep
		forged.n = uint32(p.ClassSize(n) + 1)
		mustPanic(t, "did not allocate", func() { p.Free(forged) })
		p.Free(keep)
		// The run went back to the free list: its class no longer matches.
		mustPanic(t, "already freed", func() { p.Free(keep) })
		if n > maxClassSize {
			// A large mapping retained (or its entry reused), then
			// reused: a stale Slot is told from the new one.
			again, _, _ := p.Alloc(n)
			mustPanic(t, "already freed", func() { p.Free(keep) })
			mustPanic(t, "already freed", func() { p.Free(s) })
			p.Free(again)
			p.Trim()
			mustPanic(t, "already freed", func() { p.Free(again) })
		}
	}
	other := newPool(t, 1<<20)
	s, _, _ := other.Alloc(10)
	mustPanic(t, "another pool", func() { p.Free(s) })
	other.Free(s)
	checkPool(t, p)
}

func TestClose(t *testing.T) {
	p, err := New(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	small, _, _ := p.Alloc(100)
	big, _, _ := p.Alloc(1 << 20)
	mustPanic(t, "2 slots still allocated", p.Close)
	p.Free(small)
	mustPanic(t, "1 slots still allocated", p.Close)
	p.Free(big)
	p.Close()
	p.Close()
	if st := p.Stats(); st.Mapped != 0 || st.Resident != 0 {
		t.Fatalf("closed, stats %+v", st)
	}
	for _, n := range []int{100, 1 << 20} {
		if _, _, ok := p.Alloc(n); ok {
			t.Fatalf("Alloc(%d) after Close succeeded", n)
		}
	}
	mustPanic(t, "did not allocate", func() { p.Free(small) })
	if _, err := New(0); err == nil {
		t.Fatal("New(0) succeeded")
	}
}

func TestLimit(t *testing.T) {
	const limit = 1 << 20
	p := newPool(t, limit)
	var slots []Slot
	for {
		s, _, ok := p.Alloc(3000)
		if !ok {
			break
		}
		slots = append(slots, s)
	}
	st := p.Stats()
	if want := limit / p.ClassSize(3000); len(slots) != want || st.Failed != 1 || st.Live > limit {
		t.Fatalf("%d slots of %d bytes, want %d; stats %+v", len(slots), p.ClassSize(3000), want, st)
	}
	if _, _, ok := p.Alloc(limit); ok {
		t.Fatal("a large slot beyond the limit")
	}
	p.Free(slots[0])
	if _, _, ok := p.Alloc(5000); ok { // 5120 bytes; 3072 + 1024 are free
		t.Fatal("a 5120-byte slot with 4096 bytes free")
	}
	if s, _, ok := p.Alloc(3000); !ok {
		t.Fatal("Alloc refused after a Free")
	} else {
		slots[0] = s
	}
	if st := p.Stats(); st.Failed != 3 {
		t.Fatalf("Failed = %d, want 3", st.Failed)
	}
	for _, s := range slots {
		p.Free(s)
	}
	if s, _, ok := p.Alloc(limit); !ok {
		t.Fatal("Alloc(limit) failed in an empty pool")
	} else {
		p.Free(s)
	}
	checkPool(t, p)
}

// TestConcurrent has goroutines allocate, write, check, hand over to one
// another and free slots, while one watches that Live stays within the
// limit (and, with a retain budget, trims the pool now and then):
// without a retain budget, with New's (a 32nd of the limit) and with one
// that keeps large slots too.
func TestConcurrent(t *testing.T) {
	for _, retain := range []int64{0, -1, 2 << 20} {
		t.Run(fmt.Sprintf("retain%d", retain), func(t *testing.T) { concurrent(t, retain) })
	}
}

func concurrent(t *testing.T, retain int64) {
	const limit = 4 << 20
	p := newPoolOrDefault(t, limit, retain)
	handoff := make(chan held, 32)
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if st := p.Stats(); st.Live > limit || st.Live < 0 {
				t.Errorf("Live %d", st.Live)
				return
			}
			if k%1000 == 999 {
				p.Trim()
			}
		}
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []held
			check := func(h held) {
				if b := p.Bytes(h.s); !holds(b[:cap(b)], h.id) || addr(b[:1]) != addr(h.b[:1]) {
					t.Errorf("slot %x overwritten", h.id)
				}
			}
			drop := func(i int) held {
				h := mine[i]
				mine[i] = mine[len(mine)-1]
				mine = mine[:len(mine)-1]
				return h
			}
			for i := range 3000 {
				switch op := rng.IntN(10); {
				case op < 5 && len(mine) < 48:
					n := randSize(rng, 400<<10)
					s, b, ok := p.Alloc(n)
					if !ok {
						mu.Lock()
						failed++
						mu.Unlock()
						continue
					}
					h := held{s, b, uint64(g)<<32 | uint64(i)}
					fill(b[:cap(b)], h.id)
					mine = append(mine, h)
				case op < 8 && len(mine) > 0:
					h := drop(rng.IntN(len(mine)))
					check(h)
					p.Free(h.s)
				case op == 8 && len(mine) > 0:
					select {
					case handoff <- mine[len(mine)-1]:
						mine = mine[:len(mine)-1]
					default:
					}
				case op == 9:
					select {
					case h := <-handoff:
						check(h)
						mine = append(mine, h)
					default:
					}
				}
			}
			for _, h := range mine {
				check(h)
				p.Free(h.s)
			}
		})
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	close(handoff)
	for h := range handoff {
		p.Free(h.s)
	}
	checkPool(t, p)
	st := p.Stats()
	t.Logf("%d Allocs refused at the limit; %+v", failed, st)
	if st.Slots != 0 || st.Live != 0 || st.Resident != st.Retained || st.Retained > p.retain || int(st.Failed) != failed {
		t.Fatalf("all freed: %+v (saw %d failures)", st, failed)
	}
	agree(t, p, "all freed")
	p.Trim()
	checkPool(t, p)
	if st := p.Stats(); st.Resident != 0 || st.Retained != 0 {
		t.Fatalf("all freed and trimmed: %+v", st)
	}
}

// TestFullestRunFirst checks the allocation policy: the lowest free slot
// of the class's fullest partial run (without a retain budget; with
// New's, the freed slots are on retained pages, taken in the same order).
func TestFullestRunFirst(t *testing.T) {
	for _, retain := range []int64{0, -1} {
		t.Run(fmt.Sprintf("retain%d", retain), func(t *testing.T) { fullestRunFirst(t, retain) })
	}
}

func fullestRunFirst(t *testing.T, retain int64) {
	p := newPoolOrDefault(t, 64<<20, retain)
	const n = 2048
	per := runSize / n
	runOf := func(s Slot) int { return int(s.off) / runSize }
	var a, b []Slot
	for range 2 * per {
		s, _, _ := p.Alloc(n)
		if len(a) < per {
			a = append(a, s)
		} else {
			b = append(b, s)
		}
	}
	if runOf(a[0]) != runOf(a[per-1]) || runOf(a[0]) == runOf(b[0]) || runOf(b[0]) != runOf(b[per-1]) {
		t.Fatalf("runs of the first slots: %d, %d, %d, %d", runOf(a[0]), runOf(a[per-1]), runOf(b[0]), runOf(b[per-1]))
	}
	// a keeps 10 slots, b 100 (freed from the top down, in b's case).
	for _, s := range a[10:] {
		p.Free(s)
	}
	for i := per - 1; i >= 100; i-- {
		p.Free(b[i])
	}
	for i := 100; i < per; i++ {
		s, _, _ := p.Alloc(n)
		if s.off != b[i].off || s.ref != b[i].ref {
			t.Fatalf("slot %d: Alloc gave the slot at %d, want the lowest free one of the fullest run, at %d", i, s.off, b[i].off)
		}
		b[i] = s
	}
	s, _, _ := p.Alloc(n)
	if s.off != a[10].off {
		t.Fatalf("the fullest run full: Alloc gave the slot at %d, want %d", s.off, a[10].off)
	}
	checkPool(t, p)
	for _, s := range append(append(a[:10], s), b...) {
		p.Free(s)
	}
	checkPool(t, p)
}

// TestSlotKnowsItsPool checks what a Slot alone gives: its pool (while the
// pool is open), its cost, and Free into the right pool, with many pools
// open and some closed (their ids are given again, never while in use).
func TestSlotKnowsItsPool(t *testing.T) {
	var open []*Pool
	for i := range 40 {
		p, err := New(64 << 20)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, p)
		if i%3 == 0 { // close some, so that ids are handed out again
			p.Close()
			open = slices.Delete(open, len(open)-1, len(open))
		}
	}
	ids := map[uint16]bool{}
	for _, p := range open {
		if ids[p.id] {
			t.Fatalf("two open pools have id %d", p.id)
		}
		ids[p.id] = true
	}
	for _, p := range open {
		for _, n := range []int{1, 100, 4500, maxClassSize, maxClassSize + 1, 1 << 20} {
			s, _, ok := p.Alloc(n)
			if !ok {
				t.Fatalf("Alloc(%d) failed", n)
			}
			if s.Pool() != p {
				t.Fatalf("the slot of %d bytes names another pool", n)
			}
			if s.Size() != p.ClassSize(n) {
				t.Fatalf("Size of a slot of %d bytes: %d, ClassSize %d", n, s.Size(), p.ClassSize(n))
			}
			s.Free()
		}
		if st := p.Stats(); st.Slots != 0 {
			t.Fatalf("%d slots left after Free", st.Slots)
		}
		p.Close()
		if s, _, _ := p.Alloc(1); s.Pool() != nil {
			t.Fatal("a closed pool is still named")
		}
	}
	if !(Slot{}).IsZero() || (Slot{}).Pool() != nil {
		t.Fatal("the zero Slot names a pool")
	}
	mustPanic(t, "pool is closed", func() { Slot{}.Free() })
}
