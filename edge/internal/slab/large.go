package slab

import "fmt"

// large is an entry of the table of large mappings: slots above
// maxClassSize, each a mapping of its own. Entries are reused (the table
// only grows); gen tells a Slot of the current mapping from a stale one.
// Its fields are guarded by the pool's mutex.
//
// An entry is allocated (mem, used), kept (mem, not used: a freed
// mapping retained for reuse, on the pool's list of kept mappings) or
// free (no mem, on the pool's free list of entries).
type large struct {
	mem   []byte // the mapping; nil while the entry is free
	gen   uint32 // bumped at each allocation
	ref   uint32 // 1 + the entry's index in Pool.larges
	used  bool   // allocated
	next  *large // free list
	older *large // list of kept mappings
	newer *large
	stamp uint64 // when it was kept
}

// allocLarge reuses a kept mapping (fitLarge) or maps a slot of its own
// for n bytes, rounded up to pages.
func (p *Pool) allocLarge(n int) (Slot, []byte, bool) {
	size := roundUp(n, p.page)
	if !p.reserve(size) {
		return Slot{}, nil, false
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.live.Add(-int64(size))
		return Slot{}, nil, false
	}
	if l := p.fitLarge(size); l != nil {
		p.forgetLarge(l)
		var tail []byte
		if len(l.mem) > size {
			tail = l.mem[size:]
			l.mem = l.mem[:size:size]
			p.resident.Add(-int64(len(tail)))
			p.mapped.Add(-int64(len(tail)))
		}
		s, b := p.handOut(l, n)
		p.mu.Unlock()
		if tail != nil {
			p.unmapLarge(tail)
		}
		return s, b, true
	}
	p.mu.Unlock()

	mem, err := mapLarge(size)
	if err != nil {
		p.live.Add(-int64(size))
		p.noteErr(err)
		return Slot{}, nil, false
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.live.Add(-int64(size))
		p.unmapLarge(mem)
		return Slot{}, nil, false
	}
	l := p.largeEntry()
	l.mem = mem
	p.resident.Add(int64(size))
	p.mapped.Add(int64(size))
	s, b := p.handOut(l, n)
	p.mu.Unlock()
	return s, b, true
}

// handOut allocates l, which has its mapping, for n bytes. p.mu is held.
func (p *Pool) handOut(l *large, n int) (Slot, []byte) {
	l.gen++
	l.used = true
	p.allocated(n)
	return Slot{ref: l.ref, off: l.gen, n: uint32(n), cls: largeClass, pool: p.id}, l.mem[:n]
}

// freeLargeSlot keeps a large slot's mapping for reuse if it fits in the
// retain budget (then trims what exceeds it), and unmaps it otherwise.
func (p *Pool) freeLargeSlot(s Slot) {
	p.mu.Lock()
	larges := *p.larges.Load()
	if s.ref == 0 || int(s.ref) > len(larges) {
		p.mu.Unlock()
		panic("slab: Free of a Slot this pool did not allocate")
	}
	l := larges[s.ref-1]
	if l.gen == s.off && !l.used {
		p.mu.Unlock()
		panic("slab: Free of a Slot already freed")
	}
	if l.gen != s.off || int(s.n) > len(l.mem) {
		p.mu.Unlock()
		panic("slab: Free of a Slot this pool did not allocate, or already freed")
	}
	l.used = false
	p.freed(len(l.mem), int(s.n))
	if int64(len(l.mem)) <= p.retain {
		p.keepLarge(l)
		p.mu.Unlock()
		if p.retained.Load() > p.retain {
			p.trim(p.retain, ^uint64(0))
		}
		return
	}
	mem := p.dropLarge(l)
	p.mu.Unlock()
	p.unmapLarge(mem)
}

// dropLarge frees the entry l, neither allocated nor kept any more, and
// returns its mapping for the caller to unmap. p.mu is held.
func (p *Pool) dropLarge(l *large) []byte {
	mem := l.mem
	l.mem, l.next, p.freeLarge = nil, p.freeLarge, l
	p.resident.Add(-int64(len(mem)))
	p.mapped.Add(-int64(len(mem)))
	return mem
}

// largeEntry returns a free entry of the table, growing it if there is
// none. p.mu is held.
func (p *Pool) largeEntry() *large {
	if l := p.freeLarge; l != nil {
		p.freeLarge, l.next = l.next, nil
		return l
	}
	larges := *p.larges.Load()
	l := &large{ref: uint32(len(larges) + 1)}
	larges = append(larges, l)
	p.larges.Store(&larges)
	return l
}

// unmapLarge unmaps a large slot's memory (or the tail of it).
func (p *Pool) unmapLarge(mem []byte) {
	if err := unmap(mem); err != nil {
		p.noteErr(fmt.Errorf("slab: unmapping %d bytes of a large slot: %w", len(mem), err))
	}
}
