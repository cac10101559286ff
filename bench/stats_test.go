package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
)

func TestCacheStatus(t *testing.T) {
	for _, c := range []struct {
		header, value string
		want          cacheValue
		hit           bool
	}{
		{"X-Cache", "HIT", cacheHit, true},
		{"X-Cache", "STALE", cacheStale, true},
		{"X-Cache", "MISS", cacheMiss, false},
		{"X-Cache", "REVALIDATED", cacheRevalidated, false},
		{"X-Cache", "PASS", cachePass, false},
		{"X-Cache", "ERROR", cacheError, false},
		{"X-Cache", "hit", cacheHit, true},         // case does not matter
		{"X-Cache", " HIT (3)", cacheHit, true},    // Varnish configs that add the hit count
		{"X-Cache", "MISS, HIT", cacheMiss, false}, // the first cache answered
		{"X-Cache", "TCP_HIT", cacheOther, false},
		{"X-Cache-Status", "HIT", cacheHit, true}, // nginx $upstream_cache_status
		{"X-Cache-Status", "UPDATING", cacheUpdating, true},
		{"X-Cache-Status", "STALE", cacheStale, true},
		{"X-Cache-Status", "EXPIRED", cacheExpired, false},
		{"X-Cache-Status", "REVALIDATED", cacheRevalidated, false},
		{"X-Cache-Status", "BYPASS", cacheBypass, false},
		{"Cache-Status", "lakka; hit", cacheHit, true}, // RFC 9211
		{"Cache-Status", "origin; fwd=miss, lakka; hit; ttl=30", cacheHit, true},
		{"Cache-Status", "lakka; fwd=stale; fwd-status=304", cacheMiss, false},
		{"Cache-Status", "lakka; hitch", cacheMiss, false},
		{"Server", "x", cacheNone, false},
	} {
		var h fasthttp.ResponseHeader
		h.Set(c.header, c.value)
		got := cacheOf(&h)
		if got != c.want || got.hit() != c.hit {
			t.Errorf("%s: %q = %s (hit %v), want %s (hit %v)", c.header, c.value, cacheNames[got], got.hit(), cacheNames[c.want], c.hit)
		}
	}
	// X-Cache wins over the others.
	var h fasthttp.ResponseHeader
	h.Set("X-Cache-Status", "MISS")
	h.Set("X-Cache", "HIT")
	if got := cacheOf(&h); got != cacheHit {
		t.Errorf("X-Cache and X-Cache-Status: %s, want HIT", cacheNames[got])
	}
}

func TestFreshnessLags(t *testing.T) {
	ms := time.Millisecond
	edits := []editRecord{
		{answered: 1000 * ms, version: 2},
		{answered: 2000 * ms, version: 3},
		{answered: 3000 * ms, version: 4}, // never seen
		{answered: 4000 * ms, version: 5}, // overtaken by version 6
		{answered: 4500 * ms, version: 6},
	}
	seen := map[int64]time.Duration{
		1: 0,
		2: 1040 * ms,
		3: 1990 * ms, // seen before the API's answer arrived: lag 0
		6: 4600 * ms,
	}
	// Version 4 is never seen itself, but version 6 is, later: the first
	// response showing version 4 or newer is at 4600 ms.
	got := freshnessLags(edits, seen)
	want := []time.Duration{40 * ms, 0, 1600 * ms, 600 * ms, 100 * ms}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lags (-want +got):\n%s", diff)
	}
	if got := freshnessLags([]editRecord{{answered: 0, version: 9}}, seen); got[0] >= 0 {
		t.Errorf("unseen edit: lag %v, want negative", got[0])
	}
}
