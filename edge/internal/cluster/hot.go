package cluster

import (
	"sync/atomic"
	"time"
)

// Hot counts how often a non-owner fetches each key from its owner, to
// decide which objects it keeps a copy of: one it fetched n times within
// the current window. Counts live in a fixed table indexed by key hash
// (keys that share a slot add up: a rare early copy, never a missed
// one), cleared at every window, so its memory is bounded whatever the
// traffic.
type Hot struct {
	counts [hotSlots]atomic.Uint32
	window time.Duration
	// next is when the counts are cleared next (UnixNano).
	next atomic.Int64
}

const hotSlots = 1 << 16

// NewHot returns counts cleared every window.
func NewHot(window time.Duration) *Hot {
	h := &Hot{window: window}
	h.next.Store(time.Now().Add(window).UnixNano())
	return h
}

// Touch counts one fetch of the key with hash kh at now and returns its
// count in the window.
func (h *Hot) Touch(kh uint64, now time.Time) uint32 {
	if n := h.next.Load(); now.UnixNano() >= n && h.next.CompareAndSwap(n, now.Add(h.window).UnixNano()) {
		for i := range h.counts {
			h.counts[i].Store(0)
		}
	}
	return h.counts[(kh^kh>>32)%hotSlots].Add(1)
}
