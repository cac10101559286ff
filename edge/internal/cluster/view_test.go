package cluster

import (
	"fmt"
	"testing"
	"time"
)

func members(zone string, ids ...string) []Member {
	var out []Member
	for _, id := range ids {
		out = append(out, Member{ID: id, Zone: zone, Addr: id + ":1"})
	}
	return out
}

func TestOwnerIsTheSameWhateverTheOrder(t *testing.T) {
	a := NewView(members("a", "a1", "a2", "a3"))
	b := NewView(members("a", "a3", "a1", "a2"))
	for i := range 1000 {
		kh := KeyHash(fmt.Appendf(nil, "example.com/story/%d", i))
		x, _ := a.Owner("a", kh)
		y, _ := b.Owner("a", kh)
		if x.ID != y.ID {
			t.Fatalf("key %d: owner %s in one view, %s in the other", i, x.ID, y.ID)
		}
	}
	if _, ok := a.Owner("b", 1); ok {
		t.Fatal("an owner in a zone without members")
	}
}

// Each member owns about 1/n of the keys, and a seventh member takes
// about a seventh of them, every one from the member that held it; no
// other key moves.
func TestOwnershipSpreadsAndMovesLittle(t *testing.T) {
	six := NewView(members("a", "e1", "e2", "e3", "e4", "e5", "e6"))
	seven := NewView(members("a", "e1", "e2", "e3", "e4", "e5", "e6", "e7"))
	const keys = 70000
	per := map[string]int{}
	moved := 0
	for i := range keys {
		kh := KeyHash(fmt.Appendf(nil, "h/%d", i))
		before, _ := six.Owner("a", kh)
		after, _ := seven.Owner("a", kh)
		per[before.ID]++
		if before.ID != after.ID {
			moved++
			if after.ID != "e7" {
				t.Fatalf("key %d moved from %s to %s, not to the new member", i, before.ID, after.ID)
			}
		}
	}
	for id, n := range per {
		if n < keys/6*85/100 || n > keys/6*115/100 {
			t.Errorf("%s owns %d of %d keys, want about %d", id, n, keys, keys/6)
		}
	}
	if moved < keys/7*85/100 || moved > keys/7*115/100 {
		t.Errorf("%d of %d keys moved to the seventh member, want about %d", moved, keys, keys/7)
	}
}

func TestViewEqual(t *testing.T) {
	a := NewView(members("a", "a1", "a2"))
	if !a.Equal(NewView(members("a", "a2", "a1"))) {
		t.Error("same members, not equal")
	}
	if a.Equal(NewView(members("a", "a1"))) || a.Equal(NewView(members("b", "a1", "a2"))) {
		t.Error("other members, equal")
	}
	m := members("a", "a1", "a2")
	m[0].Addr = "elsewhere:1"
	if a.Equal(NewView(m)) {
		t.Error("another address, equal")
	}
}

func TestHotCountsWithinAWindow(t *testing.T) {
	h := NewHot(time.Minute)
	now := time.Now()
	kh := KeyHash([]byte("front"))
	if n := h.Touch(kh, now); n != 1 {
		t.Fatalf("first touch: %d", n)
	}
	if n := h.Touch(kh, now.Add(time.Second)); n != 2 {
		t.Fatalf("second touch: %d", n)
	}
	if n := h.Touch(kh, now.Add(2*time.Minute)); n != 1 {
		t.Fatalf("a touch in the next window: %d, want 1", n)
	}
}

func BenchmarkOwner(b *testing.B) {
	v := NewView(members("a", "a1", "a2", "a3"))
	key := []byte("www.example.com/news/2026/12/07/a-long-story-about-caching")
	b.ReportAllocs()
	for b.Loop() {
		v.Owner("a", KeyHash(key))
	}
}
