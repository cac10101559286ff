package store

import (
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// taggedEntries builds n entries: each has a unique article tag, one of
// `sections` section tags, and the "front" tag, like a news site's pages.
func taggedEntries(st *Store, n, sections int) []*Entry {
	es := make([]*Entry, n)
	for i := range es {
		k := strconv.AppendInt([]byte("news.example/a/"), int64(i), 10)
		es[i] = &Entry{
			Key:    k,
			ID:     st.NextID(),
			stored: time.Since(clockBase),
			TTL:    time.Hour,
			Cost:   1024,
			tags:   "article:" + strconv.Itoa(i) + " section:" + strconv.Itoa(i%sections) + " front",
		}
	}
	return es
}

func benchStore(tb testing.TB) *Store {
	get, _, _, st := storeSim(tb, 8<<30)
	_ = get
	return st
}

// BenchmarkPurgeTag100k purges a tag that covers 100,000 objects.
func BenchmarkPurgeTag100k(b *testing.B) {
	for _, soft := range []bool{false, true} {
		name := "hard"
		if soft {
			name = "soft"
		}
		b.Run(name, func(b *testing.B) {
			st := benchStore(b)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for _, e := range taggedEntries(st, 100_000, 50) {
					putSealed(b, st, e)
				}
				b.StartTimer()
				if n := st.Purge(Purge{Tags: []string{"front"}, Soft: soft}, time.Now()); n != 100_000 {
					b.Fatalf("purged %d", n)
				}
			}
		})
	}
}

// BenchmarkPurgeTag1 purges a tag of one object among 100,000.
func BenchmarkPurgeTag1(b *testing.B) {
	st := benchStore(b)
	es := taggedEntries(st, 100_000, 50)
	for _, e := range es {
		putSealed(b, st, e)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Soft, so that the object stays and every iteration finds it.
		if n := st.Purge(Purge{Tags: []string{"article:" + strconv.Itoa(i%len(es))}, Soft: true}, time.Now()); n != 1 {
			b.Fatalf("purged %d", n)
		}
		i++
	}
}

// TestTagIndexBytesPerPair measures the heap the tag index adds per
// (object, tag) pair, with news-like tags: unique article tags, section
// tags shared by many, "front" shared by all.
func TestTagIndexBytesPerPair(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a large index")
	}
	st := benchStore(t)
	const n = 100_000
	es := taggedEntries(st, n, 50)
	pairs := 0
	for _, e := range es {
		pairs += e.numTags()
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	before := heapAlloc()
	for _, e := range es {
		st.idx.add(e, st.idx.generation())
	}
	after := heapAlloc()
	// Host counts are part of the index too.
	perPair := (float64(after) - float64(before)) / float64(pairs)
	t.Logf("index: %d objects, %d (object, tag) pairs, %.1f bytes per pair (host counts included)", n, pairs, perPair)
	if perPair > 64 {
		t.Errorf("%.1f bytes per pair, want under 64", perPair)
	}
	runtime.KeepAlive(es)
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestTagHashCollisions: the index keys tags by their hash, so two tags
// with one hash share a set; a purge of one must find only the entries
// that have it, and removing an entry of one leaves the other's.
func TestTagHashCollisions(t *testing.T) {
	x := newIndex()
	a := &Entry{Key: []byte("news.example/a"), tags: "story:a front"}
	b := &Entry{Key: []byte("news.example/b"), tags: "story:b"}
	x.addLocked(a)
	x.addLocked(b)
	// Make "story:b" collide with "story:a": b joins a's set too.
	x.addTagLocked(tagKey{h: x.tagHash("story:a"), tag: "story:b"}, b)
	if got := x.tagged(nil, "story:a"); len(got) != 1 || got[0] != a {
		t.Fatalf("story:a finds %d entries, want a alone", len(got))
	}
	if got := x.tagged(nil, "story:b"); len(got) != 1 || got[0] != b {
		t.Fatalf("story:b finds %d entries, want b alone", len(got))
	}
	x.removeLocked(a)
	if got := x.tagged(nil, "story:a"); len(got) != 0 {
		t.Fatalf("story:a finds %d entries after a left", len(got))
	}
	if got := x.tagged(nil, "front"); len(got) != 0 {
		t.Fatalf("front finds %d entries after a left", len(got))
	}
	if got := x.tagged(nil, "story:b"); len(got) != 1 || got[0] != b {
		t.Fatalf("story:b finds %d entries after a left, want b", len(got))
	}
}

// TestTaggedURLChecksTheURL: entries keyed by rule parts are found by
// their real URL's hash, and only when their real URL is the one purged
// (a colliding URL's entries are left alone).
func TestTaggedURLChecksTheURL(t *testing.T) {
	x := newIndex()
	pooled := func(url, pool string) *Entry {
		return &Entry{Key: cachekey.AppendExtra([]byte(url), "pool", []byte(pool))}
	}
	a, a2, b := pooled("news.example/a", "blue"), pooled("news.example/a", "green"), pooled("news.example/b", "blue")
	for _, e := range []*Entry{a, a2, b} {
		x.addLocked(e)
	}
	x.addTagLocked(tagKey{h: x.urlHash([]byte("news.example/a")), url: []byte("news.example/b")}, b) // a collision
	got := x.taggedURL(nil, []byte("news.example/a"))
	if len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, a2) {
		t.Fatalf("news.example/a finds %d entries, want its two pools", len(got))
	}
	if got := x.tagged(nil, "\x00unews.example/a"); len(got) != 0 {
		t.Fatalf("a tag finds the URL's entries: %d", len(got))
	}
}
