package edge

import (
	"sync"
)

// identityPool bounds the decoded copies of gzip-stored bodies kept for
// clients that do not accept gzip. It is a FIFO within a byte budget: the
// oldest copies are dropped first, so only bodies identity clients keep
// asking for stay decoded.
type identityPool struct {
	budget int64
	m      *metrics

	mu    sync.Mutex // guards used, live and queue
	used  int64
	live  int
	queue []*Entry // oldest first; may hold entries whose copy is gone
}

func newIdentityPool(budget int64, m *metrics) *identityPool {
	return &identityPool{budget: budget, m: m}
}

// keep records that e now holds a decoded copy of n bytes, dropping older
// copies to stay within budget. It reports false when the copy is larger
// than the whole budget (the caller then does not keep it).
func (p *identityPool) keep(e *Entry, body []byte) bool {
	n := int64(len(body))
	if n > p.budget/4 {
		return false
	}
	p.mu.Lock()
	for p.used+n > p.budget && len(p.queue) > 0 {
		old := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if b := old.identity.Swap(nil); b != nil {
			p.used -= int64(len(*b))
			p.live--
			p.m.identityDropped.Inc()
		}
	}
	if !e.identity.CompareAndSwap(nil, &body) {
		p.mu.Unlock()
		return true // another request decoded it first
	}
	p.used += n
	p.live++
	if len(p.queue) > 2*p.live+64 {
		// Forget entries whose copies were dropped with the entry.
		q := p.queue[:0]
		for _, x := range p.queue {
			if x.identity.Load() != nil {
				q = append(q, x)
			}
		}
		clear(p.queue[len(q):])
		p.queue = q
	}
	p.queue = append(p.queue, e)
	p.mu.Unlock()
	p.m.identityBytes.Set(float64(p.usedBytes()))
	return true
}

// drop forgets e's decoded copy (e left the store).
func (p *identityPool) drop(e *Entry) {
	b := e.identity.Swap(nil)
	if b == nil {
		return
	}
	p.mu.Lock()
	p.used -= int64(len(*b))
	p.live--
	p.mu.Unlock()
}

func (p *identityPool) usedBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}
