package store

import "sync"

// window is the admission window in front of ristretto (as in W-TinyLFU):
// a small exact LRU that every new entry enters first. ristretto's TinyLFU
// admission turns away a new key whose access count is below the keys it
// would evict, so a breaking story would miss again and again; in the
// window it is a hit from its second request on, and by the time it
// leaves the window its accesses have been counted and it is admitted.
// The list is intrusive (Entry.wprev/wnext): adding allocates only the map
// slot.
type window struct {
	mu     sync.Mutex // guards everything below
	budget int64
	used   int64
	m      map[string]*Entry
	front  *Entry // most recently used
	back   *Entry // least recently used
}

func newWindow(budget int64) *window {
	return &window{budget: budget, m: make(map[string]*Entry)}
}

// get returns the window's entry for key and marks it recently used.
func (w *window) get(key []byte) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.m[string(key)]
	if e != nil {
		w.unlink(e)
		w.pushFront(e)
	}
	return e
}

// add puts e in the window, returning the entry it replaced (if any) and
// the least recently used entries that no longer fit, for ristretto.
func (w *window) add(e *Entry) (old *Entry, victims []*Entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o := w.m[string(e.Key)]; o != nil {
		w.unlink(o)
		w.used -= o.Cost
		old = o
	}
	w.m[string(e.Key)] = e
	w.pushFront(e)
	w.used += e.Cost
	for w.used > w.budget && w.back != nil && w.back != e {
		v := w.back
		w.unlink(v)
		delete(w.m, string(v.Key))
		w.used -= v.Cost
		victims = append(victims, v)
	}
	return old, victims
}

// remove takes key's entry out of the window and returns it.
func (w *window) remove(key []byte) *Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.m[string(key)]
	if e != nil {
		w.unlink(e)
		delete(w.m, string(key))
		w.used -= e.Cost
	}
	return e
}

// removeEntry takes e (only e) out of the window; it reports whether e was
// there.
func (w *window) removeEntry(e *Entry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m[string(e.Key)] != e {
		return false
	}
	w.unlink(e)
	delete(w.m, string(e.Key))
	w.used -= e.Cost
	return true
}

// entries returns what the window holds.
func (w *window) entries() []*Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Entry, 0, len(w.m))
	for _, e := range w.m {
		out = append(out, e)
	}
	return out
}

// drain empties the window and returns what it held.
func (w *window) drain() []*Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Entry
	for _, e := range w.m {
		out = append(out, e)
	}
	clear(w.m)
	w.front, w.back, w.used = nil, nil, 0
	return out
}

func (w *window) pushFront(e *Entry) {
	e.wprev, e.wnext = nil, w.front
	if w.front != nil {
		w.front.wprev = e
	}
	w.front = e
	if w.back == nil {
		w.back = e
	}
}

func (w *window) unlink(e *Entry) {
	if e.wprev != nil {
		e.wprev.wnext = e.wnext
	} else if w.front == e {
		w.front = e.wnext
	}
	if e.wnext != nil {
		e.wnext.wprev = e.wprev
	} else if w.back == e {
		w.back = e.wprev
	}
	e.wprev, e.wnext = nil, nil
}
