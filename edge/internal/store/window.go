package store

import "sync"

// window is the admission window in front of ristretto (as in W-TinyLFU):
// a small exact LRU that every new entry enters first. ristretto's TinyLFU
// admission turns away a new key whose access count is below the keys it
// would evict, so a breaking story would miss again and again; in the
// window it is a hit from its second request on, and by the time it
// leaves the window its accesses have been counted and it is admitted.
// The list's links are in a node of the window's own (wnode), not in the
// Entry: every object would pay for them, while only those in the window
// use them.
type window struct {
	mu     sync.Mutex // guards everything below
	budget int64
	used   int64
	m      map[string]*wnode
	front  *wnode // most recently used
	back   *wnode // least recently used
}

// wnode is an entry's place in the window's list.
type wnode struct {
	e          *Entry
	prev, next *wnode
}

func newWindow(budget int64) *window {
	return &window{budget: budget, m: make(map[string]*wnode)}
}

// get returns the window's entry for key and marks it recently used.
func (w *window) get(key []byte) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.m[string(key)]
	if n == nil {
		return nil
	}
	w.unlink(n)
	w.pushFront(n)
	return n.e
}

// add puts e in the window, returning the entry it replaced (if any) and
// the least recently used entries that no longer fit, for ristretto.
func (w *window) add(e *Entry) (old *Entry, victims []*Entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.m[string(e.Key)]
	if n != nil {
		w.unlink(n)
		w.used -= n.e.Cost
		old = n.e
		n.e = e
	} else {
		n = &wnode{e: e}
		w.m[string(e.Key)] = n
	}
	w.pushFront(n)
	w.used += e.Cost
	for w.used > w.budget && w.back != nil && w.back != n {
		v := w.back
		w.unlink(v)
		delete(w.m, string(v.e.Key))
		w.used -= v.e.Cost
		victims = append(victims, v.e)
	}
	return old, victims
}

// remove takes key's entry out of the window and returns it.
func (w *window) remove(key []byte) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.m[string(key)]
	if n == nil {
		return nil
	}
	w.unlink(n)
	delete(w.m, string(key))
	w.used -= n.e.Cost
	return n.e
}

// removeEntry takes e (only e) out of the window; it reports whether e was
// there.
func (w *window) removeEntry(e *Entry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.m[string(e.Key)]
	if n == nil || n.e != e {
		return false
	}
	w.unlink(n)
	delete(w.m, string(e.Key))
	w.used -= e.Cost
	return true
}

// entries returns what the window holds.
func (w *window) entries() []*Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Entry, 0, len(w.m))
	for _, n := range w.m {
		out = append(out, n.e)
	}
	return out
}

// drain empties the window and returns what it held.
func (w *window) drain() []*Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Entry
	for _, n := range w.m {
		out = append(out, n.e)
	}
	clear(w.m)
	w.front, w.back, w.used = nil, nil, 0
	return out
}

func (w *window) pushFront(n *wnode) {
	n.prev, n.next = nil, w.front
	if w.front != nil {
		w.front.prev = n
	}
	w.front = n
	if w.back == nil {
		w.back = n
	}
}

func (w *window) unlink(n *wnode) {
	if n.prev != nil {
		n.prev.next = n.next
	} else if w.front == n {
		w.front = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else if w.back == n {
		w.back = n.prev
	}
	n.prev, n.next = nil, nil
}
