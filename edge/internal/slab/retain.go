package slab

// The retain budget: memory freed but kept resident for the next
// allocations (see the package comment). Kept memory is of two kinds:
// pages of runs (run.kept) and whole large mappings (large, not used).
// Both are on lists of the pool, under its mutex, ordered by a stamp
// from one clock: when the budget is exceeded, the oldest goes first.

// touch puts r, which just kept pages, last on the list of runs that
// keep pages. p.mu is held.
func (p *Pool) touch(r *run) {
	p.forget(r)
	p.clock++
	r.stamp = p.clock
	r.older, r.newer = p.newest, nil
	if p.newest != nil {
		p.newest.newer = r
	} else {
		p.oldest = r
	}
	p.newest = r
}

// forget takes r, which keeps no page any more, off the list of runs
// that keep pages, if it is on it. p.mu is held.
func (p *Pool) forget(r *run) {
	if r.stamp == 0 {
		return
	}
	if r.older != nil {
		r.older.newer = r.newer
	} else {
		p.oldest = r.newer
	}
	if r.newer != nil {
		r.newer.older = r.older
	} else {
		p.newest = r.older
	}
	r.older, r.newer, r.stamp = nil, nil, 0
}

// keepLarge puts l, a freed large mapping kept for reuse, last on the
// list of kept mappings. p.mu is held.
func (p *Pool) keepLarge(l *large) {
	p.clock++
	l.stamp = p.clock
	l.older, l.newer = p.newestLarge, nil
	if p.newestLarge != nil {
		p.newestLarge.newer = l
	} else {
		p.oldestLarge = l
	}
	p.newestLarge = l
	p.retained.Add(int64(len(l.mem)))
}

// forgetLarge takes l off the list of kept mappings (it is reused or
// unmapped). p.mu is held.
func (p *Pool) forgetLarge(l *large) {
	if l.older != nil {
		l.older.newer = l.newer
	} else {
		p.oldestLarge = l.newer
	}
	if l.newer != nil {
		l.newer.older = l.older
	} else {
		p.newestLarge = l.older
	}
	l.older, l.newer, l.stamp = nil, nil, 0
	p.retained.Add(-int64(len(l.mem)))
}

// fitLarge returns the kept mapping to reuse for a size-byte slot, or
// nil: the smallest of at least size bytes and at most twice that (the
// excess is unmapped), the last kept of those of equal size. The list
// holds at most retain/maxClassSize mappings. p.mu is held.
func (p *Pool) fitLarge(size int) *large {
	var best *large
	for l := p.newestLarge; l != nil; l = l.older {
		n := len(l.mem)
		if n == size {
			return l
		}
		if n > size && n <= 2*size && (best == nil || n < len(best.mem)) {
			best = l
		}
	}
	return best
}

// trim gives back retained memory, the oldest first, until at most
// budget bytes are retained, or until what is left was retained after
// the clock read upto.
//
// Under concurrent Frees the budget may be exceeded for a moment: each
// Free keeps its pages, then trims.
func (p *Pool) trim(budget int64, upto uint64) {
	for p.retained.Load() > budget && p.trimOldest(upto) {
	}
}

// trimOldest gives back the oldest retained memory: the pages a run
// keeps, or a kept large mapping. It reports false when there is none
// stamped upto or before. No lock is held.
func (p *Pool) trimOldest(upto uint64) bool {
	p.mu.Lock()
	r, l := p.oldest, p.oldestLarge
	if l != nil && l.stamp <= upto && (r == nil || l.stamp < r.stamp) {
		p.forgetLarge(l)
		mem := p.dropLarge(l)
		p.mu.Unlock()
		p.unmapLarge(mem)
		return true
	}
	if r == nil || r.stamp > upto {
		p.mu.Unlock()
		return false
	}
	ci := r.cls.Load()
	if ci == noClass { // a free run: the pool's mutex guards it
		p.releaseKept(r)
		p.mu.Unlock()
		return true
	}
	// Its class's mutex comes first: let go of the pool's, and check
	// that r is still that class's, keeping the same pages, once both are
	// held again.
	stamp := r.stamp
	p.mu.Unlock()
	c := &p.classes[ci]
	c.mu.Lock()
	if r.cls.Load() == ci && r.kept != 0 {
		p.mu.Lock()
		if r.stamp == stamp {
			p.releaseKept(r)
		}
		p.mu.Unlock()
		c.place(r)
	}
	c.mu.Unlock()
	return true
}

// Trim gives back to the kernel all the memory the pool retains (freed
// slots' pages and large mappings kept for reuse): Stats.Retained drops
// to 0, and Stats.Resident to the pages of allocated slots, unless
// Allocs and Frees run meanwhile (what they retain may stay). For tests,
// and for an operator who clears the cache and wants the memory back at
// once.
func (p *Pool) Trim() {
	p.mu.Lock()
	upto := p.clock
	p.mu.Unlock()
	p.trim(0, upto)
}
