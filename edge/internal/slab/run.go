package slab

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

const (
	runSize  = 256 << 10
	bitWords = runSize / minClass / 64 // bitmap words for the smallest class
	maxPages = 64                      // pages of a run at most: bits of run.busy and run.kept
	nBuckets = 8                       // occupancy buckets of a class's partial runs
	noClass  = -1                      // run.cls of a free run
	offList  = -1                      // run.bucket of a run in no bucket
)

// chunk is a mapping of runsPerChunk runs.
type chunk struct {
	mem  []byte
	ref  uint32 // 1 + the chunk's index in Pool.chunks, for Slot.ref
	runs [runsPerChunk]run
}

// run is runSize bytes of a chunk holding the slots of one class.
//
// Invariants, under the mutex of the run's class (cls), or the pool's
// mutex for a run without a class:
//   - bits has a bit set for each allocated slot, live of them;
//   - busy has a bit set for each page of the run that an allocated slot
//     overlaps; kept one for each page that none overlaps but that was
//     kept resident when its last slot was freed (retained: counted in
//     Pool.retained); busy and kept are disjoint, and only their pages
//     can be resident: every other page was never touched since the run
//     was mapped, or was given back (MADV_DONTNEED);
//   - a run with 0 < live < slots is in bucket live*nBuckets/slots of its
//     class, before the bucket's runs that keep no page if it keeps some;
//     a full run is in none; a run with live == 0 has no class and is on
//     one of the pool's free lists (under the pool's mutex): the warm one
//     when it keeps pages, the cold one otherwise;
//   - under the pool's mutex: a run that keeps pages is on the pool's
//     list of them, ordered by stamp (when it last kept a page), and has
//     stamp > 0; other runs have stamp 0;
//   - cls changes under both the mutex of the class and the pool's.
type run struct {
	chunk  *chunk
	base   int          // offset of the run in chunk.mem
	cls    atomic.Int32 // class index, or noClass; atomic so that Free can check a forged Slot's class without its lock
	bucket int          // index in the class's partial, or offList
	live   int          // allocated slots
	busy   uint64       // pages an allocated slot overlaps
	kept   uint64       // pages no allocated slot overlaps, kept resident
	hint   int          // no bitmap word below hint has a free slot
	prev   *run         // links in a class bucket or the warm free list (prev, next), or in the cold free list (next)
	next   *run
	older  *run             // links in the pool's list of runs that keep pages (pool mutex)
	newer  *run             //
	stamp  uint64           // when the run last kept pages, 0 when it keeps none (pool mutex)
	bits   [bitWords]uint64 // allocated slots
}

// class is a size class and its partial runs.
type class struct {
	mu      sync.Mutex
	size    int // slot size
	slots   int // slots per run
	partial [nBuckets]*run
	last    [nBuckets]*run // the last run of each bucket
}

// init sets c up as class i.
func (c *class) init(i int) {
	c.size = classSizes[i]
	c.slots = runSize / c.size
}

// allocClass allocates a slot of class ci for n bytes.
func (p *Pool) allocClass(ci, n int) (Slot, []byte, bool) {
	c := &p.classes[ci]
	if !p.reserve(c.size) {
		return Slot{}, nil, false
	}
	c.mu.Lock()
	r, i := p.pick(c, ci)
	if r == nil {
		c.mu.Unlock()
		p.live.Add(-int64(c.size))
		return Slot{}, nil, false
	}
	p.take(c, r, i)
	c.place(r)
	p.allocated(n)
	c.mu.Unlock()

	off := r.base + i*c.size
	s := Slot{ref: r.chunk.ref, off: uint32(off), n: uint32(n), cls: uint8(ci), pool: p.id}
	return s, r.chunk.mem[off : off+n : off+c.size], true
}

// pick chooses the slot of class c for an Alloc. Without a retain
// budget: the lowest free slot of the fullest partial run, or of a free
// run. With one, a slot on resident pages (no page to fault in) where
// there is one in a partial run:
//   - the lowest free slot of the fullest partial run, when it is on
//     resident pages;
//   - else a slot of that run on resident pages (retained, or shared with
//     an allocated slot);
//   - else one on retained pages of the fullest partial run that retains
//     some;
//   - else the lowest free slot of the fullest partial run (one partly on
//     resident pages first);
//   - else a free run, the last freed of those that retain pages first
//     (on them), mapping a chunk if there is none.
//
// Partial runs come before free ones whatever their pages: a class that
// took a free run for its retained pages while its partial runs had room
// would leave them sparse, and their half-used pages resident.
//
// It returns nil when the pool is closed or the kernel refuses a chunk.
// c.mu is held.
func (p *Pool) pick(c *class, ci int) (*run, int) {
	r := c.fullest()
	if r != nil {
		i := r.firstFree()
		if p.retain == 0 || r.onResident(c, i, p.page) {
			return r, i
		}
		j, whole := r.warmSlot(c, p.page)
		if whole {
			return r, j
		}
		if w := c.fullestWarm(); w != nil && w != r {
			if k, _ := w.warmSlot(c, p.page); k >= 0 {
				return w, k
			}
		}
		if j >= 0 { // partly on resident pages
			return r, j
		}
		return r, i
	}
	if r = p.takeRun(ci); r == nil {
		return nil, 0
	}
	if r.kept != 0 {
		if i, _ := r.warmSlot(c, p.page); i >= 0 {
			return r, i
		}
	}
	return r, r.firstFree()
}

// freeClassSlot frees a slot of a class.
func (p *Pool) freeClassSlot(s Slot) {
	if int(s.cls) >= nClasses {
		panic("slab: Free of a Slot this pool did not allocate")
	}
	c := &p.classes[s.cls]
	c.mu.Lock()
	r, i := p.locate(c, s)
	if r == nil {
		c.mu.Unlock()
		panic("slab: Free of a Slot this pool did not allocate, or already freed")
	}
	if !r.isSet(i) {
		c.mu.Unlock()
		panic("slab: Free of a Slot already freed")
	}
	kept := p.give(c, r, i)
	if r.live == 0 {
		c.unlink(r)
		p.returnRun(r, kept)
	} else {
		c.place(r)
		if kept {
			p.mu.Lock()
			p.touch(r)
			p.mu.Unlock()
		}
	}
	p.freed(c.size, int(s.n))
	c.mu.Unlock()
	if kept && p.retained.Load() > p.retain {
		p.trim(p.retain, ^uint64(0))
	}
}

// locate returns the run and index of s, a Slot of class c, or nil when
// s cannot be one of c's slots. c.mu is held.
func (p *Pool) locate(c *class, s Slot) (*run, int) {
	chunks := *p.chunks.Load()
	off := int(s.off)
	if s.ref == 0 || int(s.ref) > len(chunks) || off >= runsPerChunk*runSize || int(s.n) > c.size {
		return nil, 0
	}
	r := &chunks[s.ref-1].runs[off/runSize]
	rel := off - r.base
	if r.cls.Load() != int32(s.cls) || rel%c.size != 0 || rel/c.size >= c.slots {
		return nil, 0
	}
	return r, rel / c.size
}

// take marks slot i of r allocated and counts the pages it adds: kept
// pages stop being retained, the others become resident.
func (p *Pool) take(c *class, r *run, i int) {
	first, last := c.pagesOf(i, p.page)
	m := pageMask(first, last) &^ r.busy
	warm := m & r.kept
	r.bits[i/64] |= 1 << (i % 64)
	r.live++
	r.busy |= m
	p.resident.Add(int64(bits.OnesCount64(m&^warm) * p.page))
	if warm != 0 {
		r.kept &^= warm
		p.retained.Add(-int64(bits.OnesCount64(warm) * p.page))
		if r.kept == 0 {
			p.mu.Lock()
			p.forget(r)
			p.mu.Unlock()
		}
	}
}

// give marks slot i of r free. The pages no allocated slot overlaps any
// more (all of the slot's but a first or last page it shares with an
// allocated neighbour) are kept, retained, if they fit in the retain
// budget; the caller then touches r and trims what exceeds the budget.
// Otherwise they are given back at once. It reports whether it kept
// pages.
func (p *Pool) give(c *class, r *run, i int) bool {
	r.bits[i/64] &^= 1 << (i % 64)
	r.hint = min(r.hint, i/64)
	r.live--
	first, last := c.pagesOf(i, p.page)
	if r.pageBusy(c, first, p.page) {
		first++
	}
	if last >= first && r.pageBusy(c, last, p.page) {
		last--
	}
	if last < first {
		return false
	}
	m := pageMask(first, last)
	r.busy &^= m
	size := int64((last - first + 1) * p.page)
	if size <= p.retain {
		r.kept |= m
		p.retained.Add(size)
		return true
	}
	mem := r.chunk.mem[r.base+first*p.page : r.base+(last+1)*p.page]
	if err := release(mem); err != nil {
		p.noteErr(fmt.Errorf("slab: giving back %d bytes: %w", len(mem), err))
	}
	p.resident.Add(-size)
	return false
}

// releaseKept gives back the pages r keeps. The mutex of r's class (if
// it has one) and the pool's are held.
func (p *Pool) releaseKept(r *run) {
	for m := r.kept; m != 0; {
		first := bits.TrailingZeros64(m)
		n := bits.TrailingZeros64(^(m >> first)) // consecutive pages kept from first on
		mem := r.chunk.mem[r.base+first*p.page : r.base+(first+n)*p.page]
		if err := release(mem); err != nil {
			p.noteErr(fmt.Errorf("slab: giving back %d bytes: %w", len(mem), err))
		}
		m &^= pageMask(first, first+n-1)
	}
	size := int64(bits.OnesCount64(r.kept) * p.page)
	r.kept = 0
	p.retained.Add(-size)
	p.resident.Add(-size)
	p.forget(r)
	if r.cls.Load() == noClass { // from the warm free list to the cold one
		p.unlinkWarm(r)
		r.next, p.freeRuns = p.freeRuns, r
	}
}

// takeRun gives a free run to class ci: the last freed of those that
// keep pages; else one that keeps none, mapping a chunk if there is none.
// It returns nil when the pool is closed or the kernel refuses a chunk.
// The class's mutex is held.
func (p *Pool) takeRun(ci int) *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	r := p.warmRuns
	if r != nil {
		p.unlinkWarm(r)
	} else {
		if p.freeRuns == nil {
			if err := p.addChunk(); err != nil {
				p.noteErr(err)
				return nil
			}
		}
		r = p.freeRuns
		p.freeRuns, r.next = r.next, nil
	}
	r.cls.Store(int32(ci))
	return r
}

// returnRun puts r, whose last slot was freed, on a free list; touched
// says that this Free kept pages of r. The mutex of r's class is held.
func (p *Pool) returnRun(r *run, touched bool) {
	r.hint = 0
	p.mu.Lock()
	r.cls.Store(noClass) // under p.mu: trimOldest tells a free run by it
	if touched {
		p.touch(r)
	}
	if r.kept != 0 {
		r.prev, r.next = nil, p.warmRuns
		if r.next != nil {
			r.next.prev = r
		}
		p.warmRuns = r
	} else {
		r.next, p.freeRuns = p.freeRuns, r
	}
	p.mu.Unlock()
}

// unlinkWarm takes r off the warm free list. p.mu is held.
func (p *Pool) unlinkWarm(r *run) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		p.warmRuns = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	r.prev, r.next = nil, nil
}

// addChunk maps a chunk and puts its runs on the free list, the lowest
// first. p.mu is held.
func (p *Pool) addChunk() error {
	mem, err := mapChunk(runsPerChunk * runSize)
	if err != nil {
		return err
	}
	chunks := *p.chunks.Load()
	ch := &chunk{mem: mem, ref: uint32(len(chunks) + 1)}
	for i := len(ch.runs) - 1; i >= 0; i-- {
		r := &ch.runs[i]
		r.chunk, r.base, r.bucket = ch, i*runSize, offList
		r.cls.Store(noClass)
		r.next, p.freeRuns = p.freeRuns, r
	}
	chunks = append(chunks, ch)
	p.chunks.Store(&chunks)
	p.mapped.Add(int64(len(mem)))
	return nil
}

// fullest returns the class's fullest partial run, or nil.
func (c *class) fullest() *run {
	for b := nBuckets - 1; b >= 0; b-- {
		if r := c.partial[b]; r != nil {
			return r
		}
	}
	return nil
}

// fullestWarm returns the class's fullest partial run that keeps pages,
// or nil: in each bucket, the runs that keep pages come first.
func (c *class) fullestWarm() *run {
	for b := nBuckets - 1; b >= 0; b-- {
		if r := c.partial[b]; r != nil && r.kept != 0 {
			return r
		}
	}
	return nil
}

// place moves r to the bucket its occupancy calls for (none when full
// or empty), or within its bucket when it started or stopped keeping
// pages.
func (c *class) place(r *run) {
	b := offList
	if r.live > 0 && r.live < c.slots {
		b = r.live * nBuckets / c.slots
	}
	if b == r.bucket && !r.misplaced() {
		return
	}
	c.unlink(r)
	if b != offList {
		c.insert(r, b)
	}
}

// misplaced reports whether r, in a bucket, breaks its order: the runs
// that keep pages first.
func (r *run) misplaced() bool {
	if r.kept != 0 {
		return r.prev != nil && r.prev.kept == 0
	}
	return r.next != nil && r.next.kept != 0
}

// insert puts r in bucket b: first, unless r keeps no page and the
// bucket's first run does (then last). Without a retain budget, always
// first.
func (c *class) insert(r *run, b int) {
	r.bucket = b
	h := c.partial[b]
	if r.kept != 0 || h == nil || h.kept == 0 {
		r.prev, r.next = nil, h
		if h != nil {
			h.prev = r
		} else {
			c.last[b] = r
		}
		c.partial[b] = r
		return
	}
	t := c.last[b]
	r.prev, r.next = t, nil
	t.next = r
	c.last[b] = r
}

// unlink takes r out of its bucket, if it is in one.
func (c *class) unlink(r *run) {
	if r.bucket == offList {
		return
	}
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		c.partial[r.bucket] = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		c.last[r.bucket] = r.prev
	}
	r.prev, r.next, r.bucket = nil, nil, offList
}

// pagesOf returns the first and last page (in its run) of slot i.
func (c *class) pagesOf(i, page int) (first, last int) {
	start := i * c.size
	return start / page, (start + c.size - 1) / page
}

// pageMask returns the bits of pages first to last (inclusive).
func pageMask(first, last int) uint64 {
	return ^uint64(0) >> (maxPages - 1 - last) & (^uint64(0) << first)
}

// firstFree returns the lowest free slot of r, which has one.
func (r *run) firstFree() int {
	for w := r.hint; ; w++ {
		if x := r.bits[w]; x != ^uint64(0) {
			r.hint = w
			return w*64 + bits.TrailingZeros64(^x)
		}
	}
}

// warmSlot returns a free slot of r on resident pages (kept, or busy
// with another slot): the lowest whose pages are all resident (whole),
// else the lowest that overlaps one (when the pages were kept for another
// class's slots), or -1 when no free slot overlaps a resident page. At
// most runSize/page pages to look at.
func (r *run) warmSlot(c *class, page int) (i int, whole bool) {
	resident := r.busy | r.kept
	partly := -1
	for m := resident; m != 0; m &= m - 1 {
		pg := bits.TrailingZeros64(m)
		hi := min(((pg+1)*page-1)/c.size, c.slots-1)
		for j := r.nextFree(pg*page/c.size, hi); j >= 0; j = r.nextFree(j+1, hi) {
			first, last := c.pagesOf(j, page)
			if pageMask(first, last)&^resident == 0 {
				return j, true
			}
			if partly < 0 {
				partly = j
			}
		}
	}
	return partly, false
}

// onResident reports whether the pages of slot i of r are all resident.
func (r *run) onResident(c *class, i, page int) bool {
	first, last := c.pagesOf(i, page)
	return pageMask(first, last)&^(r.busy|r.kept) == 0
}

// nextFree returns the lowest free slot of r from lo to hi (inclusive),
// or -1.
func (r *run) nextFree(lo, hi int) int {
	for lo <= hi {
		w, b := lo/64, lo%64
		x := ^r.bits[w] >> b
		if x != 0 {
			if j := lo + bits.TrailingZeros64(x); j <= hi {
				return j
			}
			return -1
		}
		lo = (w + 1) * 64
	}
	return -1
}

// isSet reports whether slot i of r is allocated.
func (r *run) isSet(i int) bool { return r.bits[i/64]&(1<<(i%64)) != 0 }

// pageBusy reports whether an allocated slot of r overlaps page pg.
func (r *run) pageBusy(c *class, pg, page int) bool {
	lo := pg * page / c.size
	hi := min(((pg+1)*page-1)/c.size, c.slots-1)
	return r.anySet(lo, hi)
}

// anySet reports whether one of slots lo to hi (inclusive) is allocated.
func (r *run) anySet(lo, hi int) bool {
	for lo <= hi {
		w, b := lo/64, lo%64
		x := r.bits[w] >> b
		if n := hi - lo + 1; n < 64-b {
			x &= 1<<n - 1
		}
		if x != 0 {
			return true
		}
		lo = (w + 1) * 64
	}
	return false
}
