package store

import (
	"testing"
	"time"
	"unsafe"
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
