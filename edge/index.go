package edge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// purgeLogSize bounds the purges remembered for in-flight fetches. A fetch
// that started more than this many purges ago is treated as purged
// (conservative: it is served to its waiters but not stored as fresh).
const purgeLogSize = 4096

// purgeRecord is one invalidation, as far as in-flight fetches care.
type purgeRecord struct {
	gen  uint64
	all  bool
	url  string // primary key (host+target), or a target ("/path") for every host
	tag  string
	soft bool
}

// index maps tags and URLs to stored entries, so that purges find every
// entry they affect (including ones whose ristretto Set is still pending),
// and remembers recent purges so that a fetch that started before a purge
// does not store its older result as fresh (RELIABILITY promise 7).
type index struct {
	gen atomic.Uint64 // generation: bumped by every purge

	mu    sync.Mutex // guards everything below
	tags  map[string]map[*Entry]struct{}
	urls  map[string]map[*Entry]struct{}
	hosts map[string]int // host → entries, for host-less URL purges
	log   [purgeLogSize]purgeRecord
	logN  uint64 // records ever written
}

func newIndex() *index {
	return &index{
		tags:  make(map[string]map[*Entry]struct{}),
		urls:  make(map[string]map[*Entry]struct{}),
		hosts: make(map[string]int),
	}
}

// generation returns the current purge generation; a fetch records it when
// it starts.
func (x *index) generation() uint64 { return x.gen.Load() }

// add indexes e, unless a purge since startGen affects it.
func (x *index) add(e *Entry, startGen uint64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen.Load() != startGen && x.purgedSinceLocked(startGen, e) {
		return false
	}
	x.addLocked(e)
	return true
}

// addMarker indexes a marker entry by URL only.
func (x *index) addMarker(e *Entry) {
	x.mu.Lock()
	x.addLocked(e)
	x.mu.Unlock()
}

func (x *index) addLocked(e *Entry) {
	u := string(e.url())
	set := x.urls[u]
	if set == nil {
		set = make(map[*Entry]struct{}, 1)
		x.urls[u] = set
		host, _ := cachepolicy.SplitKey(e.url())
		x.hosts[string(host)]++
	}
	set[e] = struct{}{}
	for _, t := range e.tags {
		ts := x.tags[t]
		if ts == nil {
			ts = make(map[*Entry]struct{}, 1)
			x.tags[t] = ts
		}
		ts[e] = struct{}{}
	}
}

// remove forgets e (and only e: a replacement under the same key stays).
func (x *index) remove(e *Entry) {
	x.mu.Lock()
	x.removeLocked(e)
	x.mu.Unlock()
}

func (x *index) removeLocked(e *Entry) {
	u := e.url()
	if set, ok := x.urls[string(u)]; ok {
		delete(set, e)
		if len(set) == 0 {
			delete(x.urls, string(u))
			host, _ := cachepolicy.SplitKey(u)
			if x.hosts[string(host)]--; x.hosts[string(host)] <= 0 {
				delete(x.hosts, string(host))
			}
		}
	}
	for _, t := range e.tags {
		if ts, ok := x.tags[t]; ok {
			delete(ts, e)
			if len(ts) == 0 {
				delete(x.tags, t)
			}
		}
	}
}

// purgedSinceLocked reports whether a purge after startGen affects e.
func (x *index) purgedSinceLocked(startGen uint64, e *Entry) bool {
	cur := x.gen.Load()
	if cur-startGen > min(x.logN, purgeLogSize) {
		return true // older than what the log remembers
	}
	u := e.url()
	_, target := cachepolicy.SplitKey(u)
	for i := x.logN; i > 0 && i > x.logN-purgeLogSize; i-- {
		r := &x.log[(i-1)%purgeLogSize]
		if r.gen <= startGen {
			break
		}
		switch {
		case r.all:
			return true
		case r.url != "" && (r.url == string(u) || r.url == string(target)):
			return true
		case r.tag != "" && hasTag(e.tags, r.tag):
			return true
		}
	}
	return false
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

// purge is one invalidation request.
type purge struct {
	tags []string
	urls [][]byte // normalised primary keys, or targets starting with '/'
	all  bool
	soft bool
}

// invalidate applies p at now: it bumps the generation (so in-flight
// fetches of affected objects do not store as fresh), then hard-removes or
// soft-expires every affected entry. It returns the entries affected; the
// caller deletes hard-purged ones from ristretto outside the lock.
func (x *index) invalidate(p purge, now time.Time) (affected []*Entry) {
	x.mu.Lock()
	gen := x.gen.Add(1)
	rec := func(r purgeRecord) {
		r.gen, r.soft = gen, p.soft
		x.log[x.logN%purgeLogSize] = r
		x.logN++
	}
	seen := make(map[*Entry]struct{})
	collect := func(set map[*Entry]struct{}) {
		for e := range set {
			if _, dup := seen[e]; !dup {
				seen[e] = struct{}{}
				affected = append(affected, e)
			}
		}
	}
	if p.all {
		rec(purgeRecord{all: true})
		// Every entry is indexed by URL, including those whose ristretto
		// Set is still pending.
		for _, set := range x.urls {
			collect(set)
		}
	}
	for _, t := range p.tags {
		rec(purgeRecord{tag: t})
		collect(x.tags[t])
	}
	for _, u := range p.urls {
		rec(purgeRecord{url: string(u)})
		if len(u) > 0 && u[0] == '/' {
			for h := range x.hosts {
				collect(x.urls[h+string(u)])
			}
		} else {
			collect(x.urls[string(u)])
		}
	}
	if !p.soft {
		for _, e := range affected {
			x.removeLocked(e)
		}
	}
	x.mu.Unlock()
	for _, e := range affected {
		if p.soft {
			e.softPurge(now)
		} else {
			e.dead.Store(true)
		}
	}
	return affected
}

// counts returns the number of tags and URLs indexed.
func (x *index) counts() (tags, urls int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.tags), len(x.urls)
}
