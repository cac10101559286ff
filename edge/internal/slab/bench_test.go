package slab

import (
	"fmt"
	"testing"
)

var benchSizes = []int{2048, 40960, 1 << 20}

// benchRetains are the retain budgets of the benchmarks' pools: none
// (each Free gives back its pages), and New's for a 1 GiB pool (32 MiB).
var benchRetains = []struct {
	name   string
	retain int64
}{{"retain0", 0}, {"retain32MiB", 32 << 20}}

// BenchmarkAllocFree allocates and frees one slot, from one goroutine and
// from all. The memory is not touched: the numbers are the pool's own
// cost (without a retain budget, for the sizes that fill whole pages, a
// madvise at each Free; a large slot is an mmap, populated, and a
// munmap; with one, the pages stay and the mapping is reused).
func BenchmarkAllocFree(b *testing.B) {
	for _, n := range benchSizes {
		for _, r := range benchRetains {
			b.Run(fmt.Sprintf("%dKiB/%s", n>>10, r.name), func(b *testing.B) {
				p := newPoolRetain(b, 1<<30, r.retain)
				b.ReportAllocs()
				for b.Loop() {
					s, _, ok := p.Alloc(n)
					if !ok {
						b.Fatal("Alloc failed")
					}
					p.Free(s)
				}
			})
			b.Run(fmt.Sprintf("%dKiB-parallel/%s", n>>10, r.name), func(b *testing.B) {
				p := newPoolRetain(b, 1<<30, r.retain)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						s, _, ok := p.Alloc(n)
						if !ok {
							b.Error("Alloc failed")
							return
						}
						p.Free(s)
					}
				})
			})
		}
	}
}

// BenchmarkChurn is a full cache's steady state: a pool holding 64 MiB of
// slots of one size frees a random one and allocates another, whose
// first byte is written (a page fault when its page had been given back),
// or all of it (-write: as a stored body is; a fault for each page given
// back).
func BenchmarkChurn(b *testing.B) {
	for _, n := range benchSizes[:2] {
		for _, whole := range []bool{false, true} {
			for _, r := range benchRetains {
				name := fmt.Sprintf("%dKiB/%s", n>>10, r.name)
				if whole {
					name = fmt.Sprintf("%dKiB-write/%s", n>>10, r.name)
				}
				b.Run(name, func(b *testing.B) { churn(b, n, r.retain, whole) })
			}
		}
	}
}

func churn(b *testing.B, n int, retain int64, whole bool) {
	p := newPoolRetain(b, 1<<30, retain)
	live := make([]Slot, (64<<20)/n)
	for i := range live {
		s, m, _ := p.Alloc(n)
		clear(m)
		live[i] = s
	}
	x := uint64(88172645463325252)
	b.ReportAllocs()
	for b.Loop() {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		i := x % uint64(len(live))
		p.Free(live[i])
		s, m, ok := p.Alloc(n)
		if !ok {
			b.Fatal("Alloc failed")
		}
		if whole {
			clear(m)
		} else {
			m[0] = 1
		}
		live[i] = s
	}
	b.StopTimer()
	for _, s := range live {
		p.Free(s)
	}
}

// BenchmarkBytes is a hit's cost of finding a stored body.
func BenchmarkBytes(b *testing.B) {
	p := newPool(b, 1<<30)
	s, _, _ := p.Alloc(2048)
	defer p.Free(s)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n += len(p.Bytes(s))
	}
	if n == 0 {
		b.Fatal("no bytes")
	}
}
