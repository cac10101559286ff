package store

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakka-cache/lakka/edge/internal/cachekey"
)

// purgeLogSize bounds the purges remembered for in-flight fetches. A fetch
// that started more than this many purges ago is treated as purged
// (conservative: it is served to its waiters but not stored as fresh).
const purgeLogSize = 4096

// purgeRecord is one invalidation, as far as in-flight fetches care.
type purgeRecord struct {
	gen  uint64
	at   int64 // when it was recorded (nanoseconds from clockBase)
	soft bool
	all  bool
	url  string // URL key (host+target), or a target ("/path") for every host
	tag  string
}

// index maps tags to stored entries so that purges find every entry they
// affect, and remembers recent purges so that a fetch that started before
// a purge does not store its older result as fresh (docs/RELIABILITY.md,
// promise 7). URLs need no index: the store finds a URL's entry by its key, and a
// Vary marker lists its variants.
//
// Memory: one map slot per tag, keyed by the tag's hash (tagHash), so that
// the index keeps no string: the entries' tags live in their slots, which
// are reused once they leave. One pointer per further (entry, tag) pair.
// Two tags with one hash share a set: adding an entry whose tag the set's
// first entry lacks marks the set mixed, and lookups in a mixed set keep
// only the entries that really have the tag (their tags are readable: an
// entry leaves the index before it gives back the store's reference).
// Other sets are taken whole, without reading every entry's tags.
type index struct {
	gen  atomic.Uint64 // generation: bumped by every purge
	seed maphash.Seed

	mu    sync.Mutex // guards everything below
	tags  map[uint64]tagSet
	hosts map[string]int // host → entries, for host-less URL purges
	log   [purgeLogSize]purgeRecord
	logN  uint64 // records ever written
}

// tagSet holds the entries of one tag: most tags (an article's) are on a
// few pages, some (the front page's, a section's) on very many.
type tagSet struct {
	one  *Entry
	more *tagMore
}

// tagMore holds the entries beyond the first: a short list, then a set.
// mixed says entries of another tag with the same hash joined the set.
type tagMore struct {
	list  []*Entry
	set   map[*Entry]struct{}
	mixed bool
}

const tagListMax = 32

func newIndex() *index {
	return &index{
		seed:  maphash.MakeSeed(),
		tags:  make(map[uint64]tagSet),
		hosts: make(map[string]int),
	}
}

// generation returns the current purge generation; a fetch records it when
// it starts.
func (x *index) generation() uint64 { return x.gen.Load() }

// add indexes e, unless a purge since startGen affects it. It returns the
// generation it checked against, for recheck.
func (x *index) add(e *Entry, startGen uint64) (uint64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen.Load() != startGen {
		if affected, _ := x.purgedSinceLocked(startGen, e); affected {
			return 0, false
		}
	}
	x.addLocked(e)
	return x.gen.Load(), true
}

// recheck is called after e became visible in the store: a purge recorded
// between add and then may have collected entries before e was visible,
// so e applies it to itself.
func (x *index) recheck(e *Entry, checked uint64, now time.Time) {
	if x.gen.Load() == checked {
		return
	}
	x.mu.Lock()
	affected, soft := x.purgedSinceLocked(checked, e)
	x.mu.Unlock()
	if affected {
		e.invalidate(soft, now)
	}
}

// addMarker indexes a marker entry (no tags).
func (x *index) addMarker(e *Entry) {
	x.mu.Lock()
	x.addLocked(e)
	x.mu.Unlock()
}

func (x *index) addLocked(e *Entry) {
	host, _ := cachekey.SplitURL(e.URL())
	if n, ok := x.hosts[string(host)]; ok {
		x.hosts[string(host)] = n + 1
	} else {
		x.hosts[string(host)] = 1
	}
	for t := range e.Tags() {
		x.addTagLocked(tagKey{h: x.tagHash(t), tag: t}, e)
	}
	if u := e.URL(); cachekey.HasExtras(u) {
		// Keyed by a rule (a pool, a device class): a URL purge finds it
		// through its real URL.
		ru := cachekey.RealURL(u)
		x.addTagLocked(tagKey{h: x.urlHash(ru), url: ru}, e)
	}
}

// tagKey is a tag as the index keys it (h), with what it stands for: a
// Surrogate-Key tag, or the real URL of entries keyed by rule parts.
type tagKey struct {
	h   uint64
	tag string
	url []byte // non-nil: the URL's hidden tag
}

// of reports whether e has the tag k stands for.
func (k tagKey) of(e *Entry) bool {
	if k.url != nil {
		u := e.URL()
		return cachekey.HasExtras(u) && string(cachekey.RealURL(u)) == string(k.url)
	}
	return e.HasTag(k.tag)
}

// tagHash is where tag t is in the index.
func (x *index) tagHash(t string) uint64 { return maphash.String(x.seed, t) }

// urlHash is where the entries whose keys add rule parts to url are in the
// index: a hidden tag, which no tag can be (a tag cannot start with a NUL
// byte).
func (x *index) urlHash(url []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(x.seed)
	h.WriteString("\x00u")
	h.Write(url)
	return h.Sum64()
}

func (x *index) addTagLocked(k tagKey, e *Entry) {
	t := k.h
	ts, ok := x.tags[t]
	if !ok {
		x.tags[t] = tagSet{one: e}
		return
	}
	if ts.one != nil && !k.of(ts.one) {
		// Another tag with the same hash: from now on, lookups check.
		if ts.more == nil {
			ts.more = &tagMore{}
		}
		ts.more.mixed = true
	}
	switch {
	case ts.one == nil:
		ts.one = e
	case ts.more == nil:
		ts.more = &tagMore{list: []*Entry{e}}
	case ts.more.set != nil:
		ts.more.set[e] = struct{}{}
	case len(ts.more.list) < tagListMax:
		ts.more.list = append(ts.more.list, e)
	default:
		ts.more.set = make(map[*Entry]struct{}, 2*tagListMax)
		for _, o := range ts.more.list {
			ts.more.set[o] = struct{}{}
		}
		ts.more.set[e] = struct{}{}
		ts.more.list = nil
	}
	x.tags[t] = ts
}

// remove forgets e (and only e: a replacement under the same key stays).
func (x *index) remove(e *Entry) {
	x.mu.Lock()
	x.removeLocked(e)
	x.mu.Unlock()
}

func (x *index) removeLocked(e *Entry) {
	host, _ := cachekey.SplitURL(e.URL())
	if n, ok := x.hosts[string(host)]; ok {
		if n <= 1 {
			delete(x.hosts, string(host))
		} else {
			x.hosts[string(host)] = n - 1
		}
	}
	for t := range e.Tags() {
		x.removeTagLocked(x.tagHash(t), e)
	}
	if u := e.URL(); cachekey.HasExtras(u) {
		x.removeTagLocked(x.urlHash(cachekey.RealURL(u)), e)
	}
}

func (x *index) removeTagLocked(t uint64, e *Entry) {
	ts, ok := x.tags[t]
	if !ok {
		return
	}
	if ts.one == e {
		ts.one = nil
	} else if ts.more != nil {
		ts.more.delete(e)
	}
	if ts.one == nil && ts.more != nil {
		ts.one = ts.more.pop()
	}
	if ts.more != nil && ts.more.empty() {
		ts.more = nil
	}
	if ts.one == nil {
		delete(x.tags, t)
	} else {
		x.tags[t] = ts
	}
}

func (m *tagMore) delete(e *Entry) {
	if m.set != nil {
		delete(m.set, e)
		return
	}
	for i, o := range m.list {
		if o == e {
			last := len(m.list) - 1
			m.list[i] = m.list[last]
			m.list[last] = nil
			m.list = m.list[:last]
			return
		}
	}
}

func (m *tagMore) pop() *Entry {
	if m.set != nil {
		for e := range m.set {
			delete(m.set, e)
			return e
		}
		return nil
	}
	if len(m.list) == 0 {
		return nil
	}
	last := len(m.list) - 1
	e := m.list[last]
	m.list[last] = nil
	m.list = m.list[:last]
	return e
}

// empty reports whether m holds nothing worth keeping: no entries, and
// not mixed (a mixed set stays so while it lasts).
func (m *tagMore) empty() bool { return !m.mixed && len(m.list) == 0 && len(m.set) == 0 }

// each calls f for every entry of the set.
func (ts tagSet) each(f func(*Entry)) {
	if ts.one != nil {
		f(ts.one)
	}
	if ts.more == nil {
		return
	}
	for _, e := range ts.more.list {
		f(e)
	}
	for e := range ts.more.set {
		f(e)
	}
}

// purgedSinceLocked reports whether a purge after startGen affects e, and
// whether all such purges were soft.
func (x *index) purgedSinceLocked(startGen uint64, e *Entry) (affected, soft bool) {
	cur := x.gen.Load()
	if cur-startGen > min(x.logN, purgeLogSize) {
		return true, false // older than what the log remembers
	}
	u := cachekey.RealURL(e.URL())
	_, target := cachekey.SplitURL(u)
	soft = true
	for i := x.logN; i > 0 && i > x.logN-min(x.logN, purgeLogSize); i-- {
		r := &x.log[(i-1)%purgeLogSize]
		if r.gen <= startGen {
			break
		}
		if r.all || (r.url != "" && (r.url == string(u) || r.url == string(target))) ||
			(r.tag != "" && e.HasTag(r.tag)) {
			affected = true
			soft = soft && r.soft
		}
	}
	return affected, affected && soft
}

// generationBefore returns the generation before every purge recorded
// after t (a copy made at t elsewhere, before such purges reached this
// store, is checked against them). When the log no longer remembers back
// to t it returns 0, which every check treats as "purged since".
func (x *index) generationBefore(t time.Time) uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	gen, _ := x.generationBeforeLocked(t)
	return gen
}

// generationBeforeLocked is generationBefore; ok is false when the log no
// longer remembers back to t.
func (x *index) generationBeforeLocked(t time.Time) (gen uint64, ok bool) {
	at := int64(t.Sub(clockBase))
	gen = x.gen.Load()
	remembered := min(x.logN, purgeLogSize)
	for i := x.logN; i > x.logN-remembered; i-- {
		r := &x.log[(i-1)%purgeLogSize]
		if r.at <= at {
			return gen, true
		}
		gen = r.gen - 1
	}
	if x.logN > purgeLogSize {
		return 0, false // older than what the log remembers
	}
	return gen, true
}

// purgedSince reports whether a purge recorded after t affects e (or may
// have: the log no longer remembers back to t).
func (x *index) purgedSince(e *Entry, t time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	gen, ok := x.generationBeforeLocked(t)
	if !ok {
		return true
	}
	if gen == x.gen.Load() {
		return false
	}
	affected, _ := x.purgedSinceLocked(gen, e)
	return affected
}

// record bumps the generation and logs p for in-flight fetches; it returns
// the hosts known now (for host-less URL purges).
func (x *index) record(p Purge) (hosts []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	gen := x.gen.Add(1)
	at := int64(time.Since(clockBase))
	add := func(r purgeRecord) {
		r.gen, r.soft, r.at = gen, p.Soft, at
		x.log[x.logN%purgeLogSize] = r
		x.logN++
	}
	if p.All {
		add(purgeRecord{all: true})
	}
	for _, t := range p.Tags {
		add(purgeRecord{tag: t})
	}
	for _, u := range p.URLs {
		add(purgeRecord{url: string(u)})
		if len(u) > 0 && u[0] == '/' && hosts == nil {
			hosts = make([]string, 0, len(x.hosts))
			for h := range x.hosts {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// tagged appends the entries of tag t to dst.
func (x *index) tagged(dst []*Entry, t string) []*Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lookupLocked(dst, tagKey{h: x.tagHash(t), tag: t})
}

// taggedURL appends to dst the entries whose keys add rule parts (a pool,
// a device class) to url.
func (x *index) taggedURL(dst []*Entry, url []byte) []*Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lookupLocked(dst, tagKey{h: x.urlHash(url), url: url})
}

// lookupLocked appends the entries of k to dst: its set, checked entry by
// entry only when it is mixed.
func (x *index) lookupLocked(dst []*Entry, k tagKey) []*Entry {
	ts, ok := x.tags[k.h]
	if !ok {
		return dst
	}
	mixed := ts.more != nil && ts.more.mixed
	ts.each(func(e *Entry) {
		if !mixed || k.of(e) {
			dst = append(dst, e)
		}
	})
	return dst
}

// counts returns the number of tags and hosts indexed.
func (x *index) counts() (tags, hosts int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.tags), len(x.hosts)
}
