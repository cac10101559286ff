package slab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"testing"
	"unsafe"
)

// newPool returns a pool of limit bytes with the default retain budget,
// closed when the test ends (which checks that the test freed every
// slot, unless it failed already).
func newPool(tb testing.TB, limit int64) *Pool {
	tb.Helper()
	p, err := New(limit)
	if err != nil {
		tb.Fatal(err)
	}
	return closeAtEnd(tb, p)
}

// newPoolRetain is newPool with a retain budget of retain bytes.
func newPoolRetain(tb testing.TB, limit, retain int64) *Pool {
	tb.Helper()
	p, err := NewRetain(limit, retain)
	if err != nil {
		tb.Fatal(err)
	}
	return closeAtEnd(tb, p)
}

func closeAtEnd(tb testing.TB, p *Pool) *Pool {
	tb.Cleanup(func() {
		if !tb.Failed() {
			p.Close()
		}
	})
	return p
}

// fill writes id over all of b, as 8-byte words (the last one cut).
func fill(b []byte, id uint64) {
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], id)
	n := copy(b, w[:])
	for n < len(b) {
		n += copy(b[n:], b[:n])
	}
}

// holds reports whether b holds what fill(b, id) wrote.
func holds(b []byte, id uint64) bool {
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], id)
	k := min(8, len(b))
	return bytes.Equal(b[:k], w[:k]) && bytes.Equal(b[k:], b[:len(b)-k])
}

// addr returns the address of b's memory.
func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// checkPool verifies the pool's invariants (run.go) against its counters;
// no Alloc or Free may run meanwhile.
func checkPool(tb testing.TB, p *Pool) {
	tb.Helper()
	if err := verify(p); err != nil {
		tb.Fatal(err)
	}
}

func verify(p *Pool) error {
	for i := range p.classes {
		p.classes[i].mu.Lock()
		defer p.classes[i].mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cold := map[*run]bool{}
	for r := p.freeRuns; r != nil; r = r.next {
		cold[r] = true
	}
	warm := map[*run]bool{}
	for r, prev := p.warmRuns, (*run)(nil); r != nil; prev, r = r, r.next {
		if r.prev != prev || warm[r] {
			return fmt.Errorf("warm free list broken at the run at %d", r.base)
		}
		warm[r] = true
	}
	// The runs that keep pages, oldest first.
	aged := map[*run]bool{}
	stamp := uint64(0)
	for r, older := p.oldest, (*run)(nil); r != nil; older, r = r, r.newer {
		if r.older != older || aged[r] || r.stamp <= stamp || r.stamp > p.clock || r.kept == 0 {
			return fmt.Errorf("list of runs keeping pages broken at the run at %d (stamp %d after %d, kept %x)", r.base, r.stamp, stamp, r.kept)
		}
		if r.newer == nil && p.newest != r {
			return fmt.Errorf("list of runs keeping pages: the last is not the newest")
		}
		aged[r] = true
		stamp = r.stamp
	}
	if p.oldest == nil && p.newest != nil {
		return fmt.Errorf("no oldest run keeping pages, but a newest")
	}
	inBucket := map[*run]int{}
	for ci := range p.classes {
		c := &p.classes[ci]
		for b, r := range c.partial {
			seenCold := false
			var prev *run
			for ; r != nil; prev, r = r, r.next {
				if r.bucket != b || int(r.cls.Load()) != ci || r.prev != prev {
					return fmt.Errorf("run at %d in bucket %d of class %d says bucket %d class %d", r.base, b, ci, r.bucket, r.cls.Load())
				}
				if r.kept == 0 {
					seenCold = true
				} else if seenCold {
					return fmt.Errorf("run at %d in bucket %d of class %d keeps pages, after one that keeps none", r.base, b, ci)
				}
				inBucket[r]++
			}
			if c.last[b] != prev {
				return fmt.Errorf("bucket %d of class %d: last run is not the tail", b, ci)
			}
		}
	}
	var live, slots, resident, retained, mapped int64
	for _, ch := range *p.chunks.Load() {
		mapped += int64(len(ch.mem))
		for ri := range ch.runs {
			r := &ch.runs[ri]
			n := 0
			for _, w := range r.bits {
				n += bits.OnesCount64(w)
			}
			if r.busy&r.kept != 0 || r.kept >= 1<<(runSize/p.page) && runSize/p.page < 64 {
				return fmt.Errorf("run at %d: busy %x, kept %x", r.base, r.busy, r.kept)
			}
			if aged[r] != (r.kept != 0) {
				return fmt.Errorf("run at %d keeps %x, on the list of runs keeping pages: %v", r.base, r.kept, aged[r])
			}
			resident += int64(bits.OnesCount64(r.busy|r.kept) * p.page)
			retained += int64(bits.OnesCount64(r.kept) * p.page)
			ci := int(r.cls.Load())
			if ci == noClass {
				if cold[r] == warm[r] || warm[r] != (r.kept != 0) || n != 0 || r.live != 0 || r.busy != 0 || r.bucket != offList {
					return fmt.Errorf("free run at %d: on the cold list %v, the warm one %v, kept %x, %d bits, live %d, busy %x, bucket %d", r.base, cold[r], warm[r], r.kept, n, r.live, r.busy, r.bucket)
				}
				continue
			}
			c := &p.classes[ci]
			if cold[r] || warm[r] || n != r.live || r.live == 0 || r.live > c.slots {
				return fmt.Errorf("run at %d of class %d: on a free list %v, %d bits, live %d", r.base, ci, cold[r] || warm[r], n, r.live)
			}
			for i := c.slots; i < bitWords*64; i++ {
				if r.isSet(i) {
					return fmt.Errorf("run at %d of class %d: bit %d set beyond %d slots", r.base, ci, i, c.slots)
				}
			}
			want := offList
			if r.live < c.slots {
				want = r.live * nBuckets / c.slots
			}
			if r.bucket != want || inBucket[r] != min(1, want+1) {
				return fmt.Errorf("run at %d of class %d, %d/%d live: bucket %d, want %d (listed %d times)", r.base, ci, r.live, c.slots, r.bucket, want, inBucket[r])
			}
			busy := uint64(0)
			for pg := 0; pg*p.page < c.slots*c.size; pg++ {
				if r.pageBusy(c, pg, p.page) {
					busy |= 1 << pg
				}
			}
			if busy != r.busy {
				return fmt.Errorf("run at %d of class %d: busy pages %x, marked %x", r.base, ci, busy, r.busy)
			}
			live += int64(r.live * c.size)
			slots += int64(r.live)
		}
	}
	keptLarge := map[*large]bool{}
	stamp = 0
	for l, older := p.oldestLarge, (*large)(nil); l != nil; older, l = l, l.newer {
		if l.older != older || keptLarge[l] || l.stamp <= stamp || l.stamp > p.clock || l.used || l.mem == nil {
			return fmt.Errorf("list of kept large mappings broken (stamp %d after %d, used %v)", l.stamp, stamp, l.used)
		}
		if l.newer == nil && p.newestLarge != l {
			return fmt.Errorf("list of kept large mappings: the last is not the newest")
		}
		keptLarge[l] = true
		stamp = l.stamp
	}
	freeLarge := map[*large]bool{}
	for l := p.freeLarge; l != nil; l = l.next {
		freeLarge[l] = true
	}
	for _, l := range *p.larges.Load() {
		switch {
		case l.used:
			if l.mem == nil || keptLarge[l] || freeLarge[l] {
				return fmt.Errorf("allocated large entry %d: mem %d bytes, kept %v, free %v", l.ref, len(l.mem), keptLarge[l], freeLarge[l])
			}
			live += int64(len(l.mem))
			slots++
		case l.mem != nil:
			if !keptLarge[l] || freeLarge[l] {
				return fmt.Errorf("kept large entry %d: on the kept list %v, free %v", l.ref, keptLarge[l], freeLarge[l])
			}
			retained += int64(len(l.mem))
		default:
			if !freeLarge[l] {
				return fmt.Errorf("free large entry %d not on the free list", l.ref)
			}
		}
		resident += int64(len(l.mem))
		mapped += int64(len(l.mem))
	}
	st := p.Stats()
	got := Stats{Live: live, Used: st.Used, Resident: resident, Retained: retained, Mapped: mapped, Slots: slots, Failed: st.Failed, MapErrors: st.MapErrors}
	if got != st {
		return fmt.Errorf("counted %+v, stats say %+v", got, st)
	}
	if st.Retained > p.retain {
		return fmt.Errorf("%d bytes retained, the budget is %d", st.Retained, p.retain)
	}
	if st.MapErrors != 0 {
		return fmt.Errorf("%d kernel errors, the last: %v", st.MapErrors, p.Err())
	}
	return nil
}

// mustPanic calls f and fails unless it panics with a message containing
// want.
func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one saying %q", want)
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
			t.Fatalf("panic %q, want one saying %q", msg, want)
		}
	}()
	f()
}
