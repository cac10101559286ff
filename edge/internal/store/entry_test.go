package store

import (
	"testing"
	"time"
	"unsafe"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge/internal/cachekey"
)

// TestStoredAt: the stored time round-trips, on the monotonic clock and on
// the wall clock (a time read back from a file), and Age counts from it.
func TestStoredAt(t *testing.T) {
	now := time.Now()
	var e Entry
	e.SetStoredAt(now.Add(-90 * time.Second))
	if got := e.Age(now); got != 90*time.Second {
		t.Fatalf("Age = %v, want 90s", got)
	}
	wall := time.Unix(now.Unix()-3600, 0) // no monotonic reading
	e.SetStoredAt(wall)
	if !e.StoredAt().Equal(wall) {
		t.Fatalf("StoredAt = %v, want %v", e.StoredAt(), wall)
	}
	if a := e.Age(now); a < time.Hour-time.Second || a > time.Hour+time.Second {
		t.Fatalf("Age of an entry stored an hour ago = %v", a)
	}
	e.InitialAge = time.Minute
	e.SetStoredAt(now.Add(time.Second)) // a clock that stepped back
	if got := e.Age(now); got != time.Minute {
		t.Fatalf("Age before the stored time = %v, want the initial age", got)
	}
}

// TestEntrySize: an Entry is paid on the Go heap once per stored object
// (twice, counting the collector's headroom), so it must stay in the
// allocator's 256-byte size class; what few entries need goes in
// entryExtra.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n > 256 {
		t.Fatalf("an Entry takes %d bytes: it left the 256-byte size class (the next is 288)", n)
	}
}

// TestLargeVariantReplacedEvictedPurged: a variant too large for a size
// class gets a mapping of its own, unmapped when freed. Replacing it, and
// purging its URL after it was evicted, must not read its key from freed
// memory (that faulted the process): its key stays on the heap, and the
// variant list and the reaper read keys under a reference.
func TestLargeVariantReplacedEvictedPurged(t *testing.T) {
	st, err := New(config.Budget{Store: 63 << 20, Window: 1 << 20}, 16, testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	url := cachekey.AppendURL(nil, []byte("h.example"), []byte("/v"))
	key := cachekey.AppendVariantValues(nil, url, [][]byte{[]byte("fi")})
	body := make([]byte, 8<<20)
	put := func() *Entry {
		e := &Entry{Key: append([]byte(nil), key...), ID: st.NextID(), stored: time.Since(clockBase), TTL: time.Hour,
			VaryNames: []string{"accept-language"}, Body: body, Cost: int64(len(body))}
		e.SetTags([]string{"a", "b"})
		if !putSealed(t, st, e) {
			t.Fatal("not stored")
		}
		st.Wait()
		return e
	}
	put()
	second := put() // replaces the first, whose mapping is unmapped
	marker := st.Peek(url)
	if marker == nil || marker.Kind != KindVary {
		t.Fatal("no Vary marker")
	}
	if vs := marker.variantList(); len(vs) != 1 || vs[0] != second {
		t.Fatalf("the marker lists %d variants, want the second alone", len(vs))
	}
	// Evicted, as ristretto or the window would: it leaves, not dead.
	if !st.win.removeEntry(second) {
		st.c.Del(key)
	} else {
		st.onExit(second)
	}
	st.Wait()
	st.Purge(Purge{URLs: [][]byte{url}}, time.Now())
	time.Sleep(100 * time.Millisecond) // the reaper
	if e := st.Get(key); e != nil {
		t.Fatal("the evicted variant is still found")
	}
}
