package slab

import (
	"fmt"
	"testing"
)

func TestRetainBudget(t *testing.T) {
	for _, tc := range []struct{ limit, want int64 }{{64 << 20, 2 << 20}, {1 << 30, 32 << 20}, {1 << 40, 64 << 20}, {31, 0}} {
		if p := newPool(t, tc.limit); p.retain != tc.want {
			t.Errorf("New(%d): retain budget %d, want %d", tc.limit, p.retain, tc.want)
		}
	}
	if _, err := NewRetain(1<<20, -1); err == nil {
		t.Error("NewRetain with a negative budget succeeded")
	}
	if p := newPoolRetain(t, 1<<20, 5<<20); p.retain != 5<<20 {
		t.Errorf("NewRetain: budget %d", p.retain)
	}
}

// TestWarmSlotsFirst checks where Alloc goes when the fullest partial run
// has a free slot on pages given back and a less full one has free slots
// on retained pages: to the retained ones first (no page to fault in),
// the lowest first; without a retain budget, to the fullest run.
func TestWarmSlotsFirst(t *testing.T) {
	for _, retain := range []int64{0, -1} {
		t.Run(fmt.Sprintf("retain%d", retain), func(t *testing.T) {
			const n = 40 << 10 // 6 slots a run
			p := newPoolOrDefault(t, 64<<20, retain)
			var a, b [6]Slot
			for i := range a {
				a[i], _, _ = p.Alloc(n)
			}
			for i := range b {
				b[i], _, _ = p.Alloc(n)
			}
			if a[0].off/runSize == b[0].off/runSize {
				t.Fatal("a and b share a run")
			}
			p.Free(b[5])
			p.Trim() // b: 5 of 6 live, its free slot given back
			p.Free(a[0])
			p.Free(a[1]) // a: 4 of 6 live, its free slots retained (with a budget)
			checkPool(t, p)
			want := []Slot{a[0], a[1], b[5]}
			if retain == 0 {
				want = []Slot{b[5], a[0], a[1]}
			}
			for k, w := range want {
				res := p.Stats().Resident
				s, _, _ := p.Alloc(n)
				if s.ref != w.ref || s.off != w.off {
					t.Fatalf("Alloc %d gave the slot at %d, want %d", k, s.off, w.off)
				}
				grew := p.Stats().Resident - res
				if warm := retain != 0 && w != b[5]; warm && grew != 0 || !warm && grew != n {
					t.Fatalf("Alloc %d of the slot at %d: Resident grew by %d", k, s.off, grew)
				}
			}
			checkPool(t, p)
			for _, s := range append(a[:], b[:]...) {
				p.Free(s)
			}
		})
	}
}

// TestWarmFreeRun checks that a run whose last slot was freed keeps its
// pages retained, and that the next Alloc, of its class or another
// without a partial run, takes them.
func TestWarmFreeRun(t *testing.T) {
	p := newPool(t, 64<<20)
	const big = maxClassSize   // one slot a run
	held, _, _ := p.Alloc(100) // another class's run
	x, _, _ := p.Alloc(big)
	p.Free(x)
	checkPool(t, p)
	st := p.Stats()
	if st.Retained != big || st.Resident != big+int64(p.page) {
		t.Fatalf("a %d-byte slot freed: %+v", big, st)
	}
	y, _, _ := p.Alloc(big)
	if y.off != x.off || y.ref != x.ref || p.Stats().Resident != st.Resident || p.Stats().Retained != 0 {
		t.Fatalf("Alloc(%d) after Free: slot at %d (freed one at %d), %+v", big, y.off, x.off, p.Stats())
	}
	p.Free(y)
	z, _, _ := p.Alloc(40 << 10)
	if z.off != x.off || p.Stats().Resident != st.Resident || p.Stats().Retained != big-40<<10 {
		t.Fatalf("Alloc(40 KiB) after Free: slot at %d (freed one at %d), %+v", z.off, x.off, p.Stats())
	}
	checkPool(t, p)
	p.Free(z)
	p.Free(held)
	checkPool(t, p)
}

// TestRetainOldestFirst checks that what exceeds the budget is given
// back oldest first, runs' pages and large mappings alike, and that
// large mappings are reused: the last kept of the size, or a larger one
// (up to twice the size) cut to size.
func TestRetainOldestFirst(t *testing.T) {
	const big = maxClassSize
	p := newPoolRetain(t, 1<<30, 2*big+4096)
	var x [4]Slot
	var mem [4][]byte
	for i := range x {
		x[i], mem[i], _ = p.Alloc(big)
		fill(mem[i][:cap(mem[i])], 1)
	}
	p.Free(x[0])
	p.Free(x[1])
	p.Free(x[2]) // over the budget: x[0]'s run goes
	checkPool(t, p)
	if st := p.Stats(); st.Retained != 2*big || st.Resident != 3*big {
		t.Fatalf("3 of 4 freed: %+v", st)
	}
	if k, ok := kernelResident(t, p); ok {
		var inSlots [4]int64
		for i := range mem {
			inSlots[i], _ = memResident(t, mem[i][:cap(mem[i])])
		}
		t.Logf("resident: %d bytes (pool) and %v (slots)", k, inSlots)
		if inSlots != [4]int64{0, big, big, big} {
			t.Fatalf("resident bytes of the slots %v, want the first given back", inSlots)
		}
	}
	p.Free(x[3])
	p.Trim()

	// Large mappings.
	p = newPoolRetain(t, 1<<30, 5<<19) // 2.5 MiB
	l0, m0, _ := p.Alloc(1 << 20)
	l1, m1, _ := p.Alloc(1 << 20)
	p.Free(l0)
	p.Free(l1)
	x[0], mem[0], _ = p.Alloc(big)
	fill(mem[0], 2) // the pages a holder writes are resident
	p.Free(x[0])
	checkPool(t, p)
	if st := p.Stats(); st.Retained != 2<<20+big || st.Mapped != 2<<20+64<<20 {
		t.Fatalf("two large slots and a class slot freed: %+v", st)
	}
	const cut = 700 << 10
	l2, m2, _ := p.Alloc(cut)
	if addr(m2) != addr(m1) {
		t.Fatal("Alloc(700 KiB) did not reuse the last freed 1 MiB mapping")
	}
	agree(t, p, "a mapping cut")
	if st := p.Stats(); st.Retained != 1<<20+big || st.Mapped != 1<<20+cut+64<<20 || st.Live != cut {
		t.Fatalf("a 1 MiB mapping reused for 700 KiB: %+v", st)
	}
	p.Free(l2)
	// Kept: l0 (oldest), the class run, 700 KiB. A 1.5 MiB slot fits in
	// none: a new mapping; freed, it exceeds the budget: l0 goes.
	const bigger = 3 << 19
	l3, m3, _ := p.Alloc(bigger)
	fill(m3, 3)
	p.Free(l3)
	checkPool(t, p)
	agree(t, p, "over the budget")
	if st := p.Stats(); st.Retained != big+cut+bigger || st.Mapped != cut+bigger+64<<20 {
		t.Fatalf("l0 not unmapped: %+v", st)
	}
	l4, m4, _ := p.Alloc(1 << 20)
	if addr(m4) != addr(m3) || addr(m4) == addr(m0) {
		t.Fatal("Alloc(1 MiB) did not reuse the 1.5 MiB mapping")
	}
	p.Free(l4)
	p.Trim()
	checkPool(t, p)
	agree(t, p, "trimmed")
	if st := p.Stats(); st.Resident != 0 || st.Retained != 0 || st.Mapped != 64<<20 {
		t.Fatalf("trimmed: %+v", st)
	}
}
