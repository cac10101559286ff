// Package slab keeps the edge's stored bodies outside the Go heap: in
// size-classed slots of memory mapped from the kernel, reused when an
// object leaves the cache, and given back to the kernel (RSS drops) when
// no live slot is left on a page. With bodies on the Go heap, the heap's
// default GOGC lets the process use up to twice what is stored; here the
// memory of a stored body is its slot, and the resident memory of the
// pool stays close to the bytes in live slots.
//
// A slot is owned by one holder at a time: Alloc hands it out, Free takes
// it back. Lifetimes (a body still being written to a slow client after
// its entry left the cache) are the caller's business: the store counts
// references and frees a slot when the last one goes.
//
// # Design
//
// Sizes up to 224 KiB are served from size classes, four per power of
// two (64, 80, 96, 112, 128, 160, ... 1024, 1280, 1536, 1792, 2048, ...,
// 229376): a slot wastes at most a fifth of its class. Their slots live in
// runs of 256 KiB carved from chunks of 64 MiB of address space (mapped
// private, anonymous, MAP_NORESERVE and MADV_NOHUGEPAGE: address space is
// cheap, only touched pages are resident). A run belongs to one class
// while it holds a live slot; when its last slot is freed it goes back to
// a free list that every class draws from. Chunks stay mapped until Close.
//
// Resident memory is released page by page, whatever the class: a page
// of a run counts as resident when an allocated slot overlaps it, or when
// it is retained (below). Free gives back (madvise MADV_DONTNEED) the
// pages of the slot that no other allocated slot overlaps: all of a 40 KiB
// slot, the page of a 2 KiB slot once its neighbour on the page is free
// too. So a run that is mostly free holds only the pages of its live
// slots (and retained ones), and an empty run none but retained ones.
// Stats.Resident is that count (plus the large mappings): an upper bound
// of what the kernel holds, equal to it when the holders write their
// whole slots.
//
// # Retained memory
//
// Giving pages back at every Free makes the next slot on them fault them
// in again, page by page (about 1.5 µs for each 4 KiB on a VM): a cache
// that evicts an object for each one it stores would pay that for every
// byte it stores. So a Free keeps the pages it would give back resident
// (retained, Stats.Retained), up to the pool's retain budget (New: a
// 32nd of the limit, at most 64 MiB; NewRetain), and Alloc prefers slots
// on resident pages; when the budget is exceeded, the memory retained
// longest ago is given back. Freed large mappings are retained the same
// way, whole, and reused for slots of their size or down to half of it
// (the excess is unmapped). So at rest the resident memory that no
// allocated slot overlaps is at most the budget: Resident <= the pages of
// live slots + retain. Trim gives all of it back at once. Retained memory
// does not count in Live: the limit is unchanged. With a budget of 0
// nothing is retained: every Free gives back its pages at once.
//
// Age is counted by run: a run keeps the pages its Frees kept until a
// slot is allocated on them or the budget needs them (the run whose last
// such Free is the oldest goes first, all its retained pages at once),
// even when its last slot is freed: it then waits on a free list of its
// own, which every class takes runs from first.
//
// Alloc takes the lowest free slot of the class's fullest partial run
// (runs are kept in eight buckets by occupancy), so that sparse runs
// drain and go back to the free list when the mix of sizes shifts, and so
// that new slots land next to live ones, on pages already resident. When
// that slot's pages are not resident (given back, or never touched) and
// the budget is not 0, it takes instead a slot of that run on resident
// pages, else one on retained pages of the fullest run that has some
// (runs that retain pages come first in their bucket). Only when no
// partial run has room does it take a free run: one that retains pages
// first, on them. Taking free runs for their retained pages while partial
// runs have room would leave those sparse, with half-used pages resident.
//
// Sizes above 224 KiB (up to MaxSize) get a mapping of their own, rounded
// up to whole pages rather than to a class (nothing else shares it, so
// the rounding is all the waste), populated at once (MAP_POPULATE: one
// call instead of a page fault per page) and unmapped by Free, unless
// retained.
//
// The limit counts class sizes (Stats.Live), which is what the caller
// charges its budget (ClassSize). Locks: one mutex per class guards its
// runs; one pool mutex guards the free runs, the chunks, the large
// mappings and the lists of retained memory (taken after a class's,
// never before). Alloc and Free do not allocate on the Go heap once the
// tables have grown to the pool's working set. Double frees are detected with a bit per slot (a run's
// bitmap) or a generation per large mapping; a stale Slot whose memory
// has since been given to another holder cannot be told apart from that
// holder's, and freeing it frees theirs.
//
// On systems other than Linux the same logic runs on memory from the Go
// heap (mem_other.go): the accounting is the same, nothing is given back
// to the kernel before Close.
package slab

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// MaxSize is the largest n Alloc accepts.
const MaxSize = 1 << 30

// Slot names an allocated slot; the zero Slot is none. It is comparable
// and 16 bytes long.
type Slot struct {
	ref  uint32 // 1 + index of the chunk (class slots) or of the large mapping
	off  uint32 // class slots: offset in the chunk; large slots: the mapping's generation
	n    uint32 // bytes asked for
	cls  uint8  // class index, or largeClass
	pool uint16 // the allocating pool's id, to catch a slot freed into another pool
}

// Len returns the number of bytes the slot was allocated for (Alloc's n).
func (s Slot) Len() int { return int(s.n) }

// Stats is what the pool holds.
type Stats struct {
	Live      int64 // bytes in allocated slots (class sizes)
	Used      int64 // bytes asked for by Alloc in the slots allocated
	Resident  int64 // bytes of mapped memory that may be resident (not given back), Retained included
	Retained  int64 // bytes of Resident that no allocated slot overlaps, kept for reuse (the retain budget)
	Mapped    int64 // bytes of address space mapped
	Slots     int64 // slots allocated
	Failed    int64 // Allocs refused because Live would exceed the limit
	MapErrors int64 // mmap, madvise or munmap calls that failed (see Pool.Err)
}

// Pool is a set of slots; its methods are safe for concurrent use.
type Pool struct {
	limit  int64
	retain int64  // the most Retained may be at rest
	page   int    // the OS page size
	id     uint16 // copied into the pool's Slots

	live, used, resident, retained, mapped, slots, failed, mapErrors atomic.Int64
	lastErr                                                          atomic.Pointer[error]

	classes [nClasses]class

	// mu guards freeRuns, warmRuns, freeLarge, closed, the large
	// mappings' fields, the lists of retained memory (retain.go) and the
	// growth of chunks and larges. The tables are copied on write (append
	// to spare capacity, then publish) so that Bytes and Free can index
	// them without mu.
	mu             sync.Mutex
	freeRuns       *run   // runs without a class that keep no page, linked by next
	warmRuns       *run   // runs without a class that keep pages, the last freed first, linked by prev and next
	freeLarge      *large // entries without a mapping
	oldest, newest *run   // runs that keep pages, by stamp
	oldestLarge    *large // kept large mappings, by stamp
	newestLarge    *large //
	clock          uint64 // the last stamp
	closed         bool
	chunks         atomic.Pointer[[]*chunk]
	larges         atomic.Pointer[[]*large]
}

// pools registers the open pools by id (Slot.pool), so that a Slot is
// enough to free it (Slot.Free): whoever keeps one need not keep its pool
// too. Ids are given modulo 2^16, skipping those still open.
var pools struct {
	mu   sync.RWMutex
	byID map[uint16]*Pool
	last uint16
}

// register gives p an id no open pool has.
func register(p *Pool) error {
	pools.mu.Lock()
	defer pools.mu.Unlock()
	if pools.byID == nil {
		pools.byID = make(map[uint16]*Pool)
	}
	for range 1 << 16 {
		pools.last++
		if _, taken := pools.byID[pools.last]; pools.last != 0 && !taken {
			p.id = pools.last
			pools.byID[p.id] = p
			return nil
		}
	}
	return errors.New("slab: 65535 pools are open")
}

// Pool returns the pool that allocated s, or nil for the zero Slot (or a
// slot of a closed pool).
func (s Slot) Pool() *Pool {
	pools.mu.RLock()
	p := pools.byID[s.pool]
	pools.mu.RUnlock()
	return p
}

// Size returns what s costs: the size of its class (Pool.ClassSize of
// its length).
func (s Slot) Size() int {
	if s.cls == largeClass {
		return roundUp(int(s.n), pageSize)
	}
	return classSizes[s.cls]
}

// pageSize is the OS page size, which large slots are rounded up to.
var pageSize = os.Getpagesize()

// IsZero reports whether s is the zero Slot, which no Alloc returns.
func (s Slot) IsZero() bool { return s == Slot{} }

// Free returns s to the pool that allocated it (Pool.Free).
func (s Slot) Free() {
	p := s.Pool()
	if p == nil {
		panic("slab: Free of a Slot whose pool is closed, or of the zero Slot")
	}
	p.Free(s)
}

// maxDefaultRetain caps the retain budget New sets.
const maxDefaultRetain = 64 << 20

// New returns a pool whose live slots never exceed limit bytes. It maps
// nothing yet: address space is mapped as slots are allocated.
//
// Its retain budget, the most freed memory it keeps resident for reuse
// (Stats.Retained), is a 32nd of the limit, at most 64 MiB: NewRetain(limit,
// min(limit/32, 64 MiB)).
func New(limit int64) (*Pool, error) {
	return NewRetain(limit, min(limit/32, maxDefaultRetain))
}

// NewRetain returns a pool whose live slots never exceed limit bytes and
// that keeps at most retain bytes of freed memory resident for reuse (0:
// it gives back pages at each Free, as soon as no allocated slot is on
// them).
func NewRetain(limit, retain int64) (*Pool, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("slab: limit of %d bytes: must be positive", limit)
	}
	if retain < 0 {
		return nil, fmt.Errorf("slab: retain budget of %d bytes: must not be negative", retain)
	}
	page := os.Getpagesize()
	if page <= 0 || runSize%page != 0 || runSize/page > maxPages {
		return nil, fmt.Errorf("slab: page size %d does not divide the run size %d in at most %d pages", page, runSize, maxPages)
	}
	p := &Pool{limit: limit, retain: retain, page: page}
	if err := register(p); err != nil {
		return nil, err
	}
	for i := range p.classes {
		p.classes[i].init(i)
	}
	p.chunks.Store(new([]*chunk))
	p.larges.Store(new([]*large))
	return p, nil
}

// ClassSize returns the size of the slot Alloc(n) would use: what a slot
// of n bytes costs. It is at least n, and never decreases as n grows; it
// is 0 when no slot fits (n < 0 or n > MaxSize).
func (p *Pool) ClassSize(n int) int {
	switch {
	case n < 0 || n > MaxSize:
		return 0
	case n > maxClassSize:
		return roundUp(n, p.page)
	default:
		return classSizes[classOf(n)]
	}
}

// Alloc returns a slot of at least n bytes and its memory (len n, cap the
// class size), or ok false when the pool's limit would be exceeded (or n is
// larger than the largest class). The memory is not zeroed.
//
// It also reports false for n < 0, after Close, and when the kernel
// refuses memory (Stats.MapErrors, Pool.Err).
func (p *Pool) Alloc(n int) (s Slot, b []byte, ok bool) {
	switch {
	case n < 0 || n > MaxSize:
		return Slot{}, nil, false
	case n > maxClassSize:
		return p.allocLarge(n)
	default:
		return p.allocClass(classOf(n), n)
	}
}

// Free returns a slot to the pool; its memory must not be used after.
// Freeing a slot twice panics.
//
// So does freeing the zero Slot, a Slot of another pool or one this pool
// never handed out.
func (p *Pool) Free(s Slot) {
	switch {
	case s == Slot{}:
		panic("slab: Free of the zero Slot")
	case s.pool != p.id:
		panic("slab: Free of a Slot from another pool")
	case s.cls == largeClass:
		p.freeLargeSlot(s)
	default:
		p.freeClassSlot(s)
	}
}

// Bytes returns the memory of an allocated slot, as Alloc returned it
// (len n, cap the class size). It takes no lock. s must be allocated and
// stay so while the memory is used; Bytes does not check (it may panic
// or return another slot's memory otherwise).
func (p *Pool) Bytes(s Slot) []byte {
	if s.cls == largeClass {
		l := (*p.larges.Load())[s.ref-1]
		return l.mem[:s.n]
	}
	ch := (*p.chunks.Load())[s.ref-1]
	return ch.mem[s.off : s.off+s.n : s.off+uint32(classSizes[s.cls])]
}

// Stats returns the pool's counters. Each is read atomically, not all
// at the same instant.
func (p *Pool) Stats() Stats {
	return Stats{
		Live:      p.live.Load(),
		Used:      p.used.Load(),
		Resident:  p.resident.Load(),
		Retained:  p.retained.Load(),
		Mapped:    p.mapped.Load(),
		Slots:     p.slots.Load(),
		Failed:    p.failed.Load(),
		MapErrors: p.mapErrors.Load(),
	}
}

// Err returns the last error the kernel gave the pool (a failed mmap,
// madvise or munmap, wrapped with what was being done), or nil.
func (p *Pool) Err() error {
	if e := p.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Close unmaps the pool's memory, retained memory included. Every slot
// must be free (it panics otherwise: a slot still in use would point at
// unmapped memory).
//
// Closing twice does nothing; Alloc on a closed pool reports false.
func (p *Pool) Close() {
	for i := range p.classes {
		p.classes[i].mu.Lock()
		defer p.classes[i].mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.slots.Load(); n != 0 {
		panic(fmt.Sprintf("slab: Close with %d slots still allocated", n))
	}
	if p.closed {
		return
	}
	p.closed = true
	pools.mu.Lock()
	delete(pools.byID, p.id)
	pools.mu.Unlock()
	for _, ch := range *p.chunks.Load() {
		if err := unmap(ch.mem); err != nil {
			p.noteErr(fmt.Errorf("slab: unmapping a chunk: %w", err))
		}
	}
	for _, l := range *p.larges.Load() {
		if l.mem != nil { // kept: every slot is free
			p.unmapLarge(l.mem)
		}
	}
	p.chunks.Store(new([]*chunk))
	p.larges.Store(new([]*large))
	p.freeRuns, p.warmRuns, p.freeLarge = nil, nil, nil
	p.oldest, p.newest, p.oldestLarge, p.newestLarge = nil, nil, nil, nil
	p.mapped.Store(0)
	p.resident.Store(0)
	p.retained.Store(0)
}

// reserve adds size to Live if that keeps Live within the limit, and
// counts a failure otherwise.
func (p *Pool) reserve(size int) bool {
	for {
		cur := p.live.Load()
		if cur+int64(size) > p.limit {
			p.failed.Add(1)
			return false
		}
		if p.live.CompareAndSwap(cur, cur+int64(size)) {
			return true
		}
	}
}

// allocated counts a slot handed out.
func (p *Pool) allocated(n int) {
	p.used.Add(int64(n))
	p.slots.Add(1)
}

// freed counts a slot taken back.
func (p *Pool) freed(size, n int) {
	p.live.Add(-int64(size))
	p.used.Add(-int64(n))
	p.slots.Add(-1)
}

// noteErr records an error from the kernel.
func (p *Pool) noteErr(err error) {
	p.mapErrors.Add(1)
	p.lastErr.Store(&err)
}

// roundUp rounds n up to a multiple of m, a power of two.
func roundUp(n, m int) int { return (n + m - 1) &^ (m - 1) }
