package backend

import (
	"testing"
	"time"
)

// TestBodyBudget checks the accounting: bytes taken belong to their fetch
// until it is released (or detached and given back), a take waits for
// room up to its wait, and a take larger than the whole budget fails at
// once.
func TestBodyBudget(t *testing.T) {
	b := NewBodyBudget(100)
	f1, f2 := &Fetched{}, &Fetched{}
	if !b.Take(f1, 60, 0) || !b.Take(f1, 20, 0) || b.Used() != 80 {
		t.Fatalf("two takes of one fetch: used %d, want 80", b.Used())
	}
	if b.Take(f2, 30, 0) {
		t.Fatal("a take beyond the budget succeeded without waiting")
	}
	start := time.Now()
	if b.Take(f2, 30, 20*time.Millisecond) || time.Since(start) < 20*time.Millisecond {
		t.Fatal("a take beyond the budget did not wait its wait, or succeeded")
	}
	if b.Take(f2, 101, time.Hour) {
		t.Fatal("a take larger than the budget succeeded")
	}
	if got := b.Refused(); got != 3 {
		t.Errorf("refused %d, want 3", got)
	}
	got := make(chan bool)
	go func() { got <- b.Take(f2, 30, 5*time.Second) }()
	time.Sleep(10 * time.Millisecond)
	b.Give(f1, 20) // f1 keeps 60: room for 30
	if !<-got {
		t.Fatal("a waiting take did not get the room given back")
	}
	h := f1.Detach()
	f1.Release()
	if b.Used() != 90 || h.Bytes() != 60 {
		t.Fatalf("after detaching: used %d, held %d; want 90 and 60", b.Used(), h.Bytes())
	}
	if !h.Take(b, 10) || h.Take(b, 1) {
		t.Fatal("Held.Take: want room for exactly 10 more")
	}
	h.Give()
	f2.Release()
	f2.Release() // twice: nothing more
	if b.Used() != 0 {
		t.Fatalf("all given back: used %d", b.Used())
	}
	var zero Held
	zero.Give()
}
