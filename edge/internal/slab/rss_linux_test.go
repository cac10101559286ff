package slab

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// kernelResident returns how many bytes of the pool's mappings the kernel
// holds resident (mincore), and true.
func kernelResident(tb testing.TB, p *Pool) (int64, bool) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, ch := range *p.chunks.Load() {
		n += mincore(tb, ch.mem)
	}
	for _, l := range *p.larges.Load() {
		if l.mem != nil {
			n += mincore(tb, l.mem)
		}
	}
	return n, true
}

// memResident returns how many bytes of mem (page-aligned) the kernel
// holds resident, and true.
func memResident(tb testing.TB, mem []byte) (int64, bool) { return mincore(tb, mem), true }

// mincore returns how many bytes of mem are resident.
func mincore(tb testing.TB, mem []byte) int64 {
	page := os.Getpagesize()
	vec := make([]byte, (len(mem)+page-1)/page)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		tb.Fatalf("mincore: %v", errno)
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n * int64(page)
}

// rss returns the process's resident set size (/proc/self/statm).
func rss(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// agree fails unless the pool's Resident is what the kernel holds, for
// slots whose holders wrote all of them.
func agree(tb testing.TB, p *Pool, what string) {
	tb.Helper()
	k, _ := kernelResident(tb, p)
	if r := p.Stats().Resident; k != r {
		tb.Fatalf("%s: Stats.Resident %d, the kernel holds %d (mincore)", what, r, k)
	}
}

// TestResidentGivenBack touches 32 MiB of 4 KiB slots, as many of 40 KiB
// ones and 16 MiB of 1 MiB ones, frees them, and checks with the kernel
// (mincore on the pool's mappings, and the process's RSS) that the memory
// came back and went away, as Stats.Resident says. Without a retain
// budget: each Free gives back at once.
func TestResidentGivenBack(t *testing.T) {
	const each = 32 << 20
	p := newPoolRetain(t, 1<<30, 0)
	before := rss(t)
	var slots []Slot
	all := int64(0)
	for _, n := range []int{4096, 40960, 1 << 20} {
		total := each
		if n == 1<<20 {
			total = each / 2
		}
		for range total / n {
			s, b, ok := p.Alloc(n)
			if !ok {
				t.Fatal("Alloc failed")
			}
			fill(b[:cap(b)], uint64(len(slots)))
			slots = append(slots, s)
			all += int64(cap(b))
		}
	}
	agree(t, p, "all touched")
	if r := p.Stats().Resident; r != all {
		t.Fatalf("Resident %d, want %d", r, all)
	}
	peak := rss(t)
	t.Logf("RSS %d MiB before, %d MiB with the slots", before>>20, peak>>20)
	if peak-before < all*9/10 {
		t.Fatalf("RSS grew by %d, the slots hold %d", peak-before, all)
	}

	// Every other 4 KiB slot: its pages go; those of 2 KiB slots whose
	// neighbour on the page is still there stay.
	for i := 0; i < each/4096; i += 2 {
		p.Free(slots[i])
	}
	agree(t, p, "half the 4 KiB slots freed")
	if r := p.Stats().Resident; r != all-each/2 {
		t.Fatalf("Resident %d, want %d", r, all-each/2)
	}
	var pairs []Slot
	for range 1024 {
		s, b, _ := p.Alloc(2048)
		fill(b, 1)
		pairs = append(pairs, s)
	}
	for i := 0; i < len(pairs); i += 2 {
		p.Free(pairs[i])
	}
	agree(t, p, "half the 2 KiB slots freed")
	if r := p.Stats().Resident; r != all-each/2+1024*2048 {
		t.Fatalf("Resident %d, want %d", r, all-each/2+1024*2048)
	}
	for i := 1; i < len(pairs); i += 2 {
		p.Free(pairs[i])
	}
	for i, s := range slots {
		if i >= each/4096 || i%2 == 1 {
			p.Free(s)
		}
	}
	checkPool(t, p)
	agree(t, p, "all freed")
	after := rss(t)
	t.Logf("RSS %d MiB after Free", after>>20)
	if st := p.Stats(); st.Resident != 0 {
		t.Fatalf("all freed, Resident %d", st.Resident)
	}
	if peak-after < all*9/10 {
		t.Fatalf("RSS dropped by %d after freeing %d", peak-after, all)
	}
}

// TestResidentRetained is TestResidentGivenBack with a retain budget of
// 8 MiB: freed memory stays resident up to the budget, the mincore view
// agreeing with Stats.Resident all along; Allocs reuse it without a page
// more; Trim gives it back, and RSS drops.
func TestResidentRetained(t *testing.T) {
	const (
		each   = 32 << 20
		retain = 8 << 20
	)
	p := newPoolRetain(t, 1<<30, retain)
	before := rss(t)
	var slots []Slot
	all := int64(0)
	for _, n := range []int{4096, 40960, 1 << 20} {
		for range each / n {
			s, b, ok := p.Alloc(n)
			if !ok {
				t.Fatal("Alloc failed")
			}
			fill(b[:cap(b)], uint64(len(slots)))
			slots = append(slots, s)
			all += int64(cap(b))
		}
	}
	agree(t, p, "all touched")
	peak := rss(t)

	// Every other 4 KiB slot: 16 MiB, half of which the budget keeps.
	for i := 0; i < each/4096; i += 2 {
		p.Free(slots[i])
	}
	checkPool(t, p)
	agree(t, p, "half the 4 KiB slots freed")
	if st := p.Stats(); st.Retained != retain || st.Resident != all-each/2+retain {
		t.Fatalf("Resident %d, Retained %d; want %d, %d", st.Resident, st.Retained, all-each/2+retain, retain)
	}
	// Allocs take the retained pages first: Resident does not move
	// until they are used up.
	var again []Slot
	for range retain / 4096 {
		s, b, _ := p.Alloc(4096)
		fill(b, 7)
		again = append(again, s)
	}
	checkPool(t, p)
	agree(t, p, "retained pages reused")
	if st := p.Stats(); st.Retained != 0 || st.Resident != all-each/2+retain {
		t.Fatalf("after reuse: Resident %d, Retained %d; want %d, 0", st.Resident, st.Retained, all-each/2+retain)
	}
	for _, s := range again {
		p.Free(s)
	}
	for i, s := range slots {
		if i >= each/4096 || i%2 == 1 {
			p.Free(s)
		}
	}
	checkPool(t, p)
	agree(t, p, "all freed")
	if st := p.Stats(); st.Resident != st.Retained || st.Retained > retain || st.Retained < retain-(1<<20) {
		t.Fatalf("all freed: Resident %d, Retained %d, budget %d", st.Resident, st.Retained, retain)
	}
	p.Trim()
	checkPool(t, p)
	agree(t, p, "trimmed")
	after := rss(t)
	t.Logf("RSS %d MiB before, %d MiB with the slots, %d MiB after Free and Trim", before>>20, peak>>20, after>>20)
	if st := p.Stats(); st.Resident != 0 || st.Retained != 0 {
		t.Fatalf("all freed and trimmed: %+v", st)
	}
	if peak-after < all*9/10 {
		t.Fatalf("RSS dropped by %d after freeing %d", peak-after, all)
	}
}
