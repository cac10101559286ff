package backend

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

type gauge struct {
	mu sync.Mutex
	v  float64
}

func (g *gauge) Set(v float64) {
	g.mu.Lock()
	g.v = v
	g.mu.Unlock()
}

func testLimiter(initial, floor, ceiling, queue int) *limiter {
	return newLimiter(initial, floor, ceiling, queue, limiterGauges{&gauge{}, &gauge{}, &gauge{}})
}

// TestLimiterQueue: fetches beyond the limit wait in order, get a slot as
// one frees, and are refused when the queue is full or their wait runs
// out.
func TestLimiterQueue(t *testing.T) {
	l := testLimiter(2, 1, 2, 2)
	for i := range 2 {
		if err := l.acquire(0); err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
	}
	if err := l.acquire(0); !errors.Is(err, errBusy) {
		t.Fatalf("over the limit without a wait: %v, want busy", err)
	}
	// Two waiters, in order.
	order := make(chan int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.acquire(10 * time.Second); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			order <- i
		}()
		for { // the first waiter queues before the second starts
			if _, _, q := l.state(); q == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := l.acquire(time.Hour); !errors.Is(err, errQueueFull) {
		t.Errorf("queue full: %v, want errQueueFull", err)
	}
	l.release(outcomeNeutral, 0)
	if got := <-order; got != 0 {
		t.Errorf("the first slot went to waiter %d, want 0", got)
	}
	l.release(outcomeNeutral, 0)
	if got := <-order; got != 1 {
		t.Errorf("the second slot went to waiter %d, want 1", got)
	}
	wg.Wait()
	start := time.Now()
	if err := l.acquire(20 * time.Millisecond); !errors.Is(err, errBusy) || errors.Is(err, errQueueFull) {
		t.Errorf("a wait that runs out: %v, want busy (not full)", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("gave up after %s, before its wait", d)
	}
	if lim, in, q := l.state(); in != 2 || q != 0 || lim != 2 {
		t.Errorf("state: limit %v, in flight %d, queued %d; want 2, 2, 0", lim, in, q)
	}
}

// TestLimiterAIMD: the limit rises by one per fetch answered in time while
// half of it is in use, not when it is idle, falls by a tenth per overload,
// and stays within its floor and ceiling.
func TestLimiterAIMD(t *testing.T) {
	l := testLimiter(4, 2, 8, 0)
	cycle := func(n int, o outcome) {
		for range n {
			if err := l.acquire(0); err != nil {
				t.Fatal(err)
			}
		}
		for range n {
			l.release(o, time.Millisecond)
		}
	}
	lim := func() float64 { v, _, _ := l.state(); return v }
	cycle(1, outcomeOK) // one of four in use: below half, no rise
	if got := lim(); got != 4 {
		t.Errorf("after an idle success: %v, want 4", got)
	}
	cycle(4, outcomeOK) // full: the first two releases find ≥ half in use
	if got := lim(); got != 6 {
		t.Errorf("after four busy successes: %v, want 6", got)
	}
	cycle(6, outcomeOK)
	if got := lim(); got != 8 {
		t.Errorf("at the ceiling: %v, want 8", got)
	}
	cycle(1, outcomeOverload)
	if got := lim(); got != 7.2 {
		t.Errorf("after an overload: %v, want 7.2", got)
	}
	cycle(7, outcomeOverload)
	if got := lim(); got < 3.44 || got > 3.45 {
		t.Errorf("after eight overloads: %v, want 8*0.9^8 = 3.44", got)
	}
	for range 20 {
		cycle(1, outcomeOverload)
	}
	if got := lim(); got != 2 {
		t.Errorf("at the floor: %v, want 2", got)
	}
	cycle(2, outcomeNeutral)
	if got := lim(); got != 2 {
		t.Errorf("neutral outcomes moved the limit: %v", got)
	}
}

// TestLimiterGrantRacesTimeout: a waiter granted a slot just as its wait
// runs out keeps the slot (none is lost or given twice).
func TestLimiterGrantRacesTimeout(t *testing.T) {
	l := testLimiter(1, 1, 1, 1000)
	for range 200 {
		if err := l.acquire(0); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.acquire(time.Millisecond) }()
		time.Sleep(time.Millisecond)
		l.release(outcomeNeutral, 0)
		if err := <-done; err != nil {
			// The waiter gave up: the slot released above is free.
			if err := l.acquire(0); err != nil {
				t.Fatalf("slot lost: %v", err)
			}
		}
		if _, in, q := l.state(); in != 1 || q != 0 {
			t.Fatalf("in flight %d, queued %d; want 1, 0", in, q)
		}
		l.release(outcomeNeutral, 0)
	}
}

// TestWeightedRotation: each backend comes as often as its weight,
// spread out rather than in runs.
func TestWeightedRotation(t *testing.T) {
	a, b, c := &Backend{name: "a"}, &Backend{name: "b"}, &Backend{name: "c"}
	rot := weightedRotation([]*Backend{a, b, c}, []int{5, 1, 1})
	var got []string
	for _, x := range rot {
		got = append(got, x.name)
	}
	if s := strings.Join(got, ""); s != "aabacaa" {
		t.Errorf("rotation %s, want aabacaa", s)
	}
	if rot := weightedRotation([]*Backend{a, b}, []int{1, 1}); len(rot) != 2 || rot[0] != a || rot[1] != b {
		t.Errorf("equal weights: %v", rot)
	}
}
