package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestSpikeAgainstFake runs a short spike end to end against a fake origin
// that is its own caching target, and checks the report against what the
// fake saw.
func TestSpikeAgainstFake(t *testing.T) {
	fo := newFakeOrigin(t, "tok")
	fo.purgeDelay = 50 * time.Millisecond
	m := DefaultSpikeModel()
	m.Seed = 7
	m.BaseRate = 200
	m.Duration = 3 * time.Second
	m.SpikeAt = time.Second
	m.Ramp = 500 * time.Millisecond
	m.SpikeX = 5
	rep, err := Spike(context.Background(), SpikeConfig{
		Model:        m,
		Run:          RunConfig{Target: fo.srv.URL, Connections: 16, Timeout: 5 * time.Second},
		Origin:       fo.srv.URL,
		OriginToken:  "tok",
		EditEvery:    400 * time.Millisecond,
		MetricsEvery: 250 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != "spike" || rep.Schema != SchemaVersion {
		t.Errorf("kind %q schema %q", rep.Kind, rep.Schema)
	}
	if rep.Spike == nil || rep.Spike.ArticleID != 101 || !strings.HasPrefix(rep.Spike.ArticleURL, "/news/") || rep.Spike.EditErrors != 0 {
		t.Fatalf("spike info %+v", rep.Spike)
	}
	m.Paths = fo.pages
	want := m.Expected(0, m.Duration)
	if math.Abs(float64(rep.Requests)-want) > 5*math.Sqrt(want) {
		t.Errorf("%d requests, want about %.0f", rep.Requests, want)
	}
	if rep.Errors.Total != 0 {
		t.Errorf("errors %+v", rep.Errors)
	}

	// Edits at 1.4, 1.8, 2.2 and 2.6 s; the fake serves each new version
	// 50 ms after answering it, and the article is asked for every couple
	// of milliseconds. The bench's lag starts when it receives the API's
	// answer, a little after the fake wrote it (more on a loaded machine),
	// so it is at most the fake's own lag, and not much less.
	if f := rep.FreshnessLagMs; f.Edits != 4 || f.Seen != 4 {
		t.Fatalf("freshness %+v, want 4 edits seen", f)
	}
	fo.mu.Lock()
	for _, e := range rep.Edits {
		answered, seen := fo.answeredV[e.Version], fo.firstNew[e.Version]
		fakeLag := float64(seen.Sub(answered)) / float64(time.Millisecond)
		if fakeLag < 50 {
			t.Errorf("edit %+v: the fake showed it %.1f ms after answering, before its 50 ms", e, fakeLag)
		}
		if e.LagMs == nil || *e.LagMs < 0 || *e.LagMs > fakeLag+5 || *e.LagMs < fakeLag-1000 {
			t.Errorf("edit %+v (lag %v ms): want within 1 s below the fake's %.1f ms, and not above it", e, deref(e.LagMs), fakeLag)
		}
	}
	fo.mu.Unlock()

	// Origin requests: the fake counts each path's first request.
	fo.mu.Lock()
	misses := fo.misses
	fo.mu.Unlock()
	if rep.OriginRequests == nil || *rep.OriginRequests != float64(misses) {
		t.Errorf("origin requests %v, want %d", rep.OriginRequests, misses)
	}
	if rep.HitRatio == nil || *rep.HitRatio < 0.9 {
		t.Errorf("hit ratio %v", rep.HitRatio)
	}
	if rep.Status["3xx"] == 0 {
		t.Errorf("no 304 among %v: conditional requests not sent", rep.Status)
	}
	// The series covers the run, and the spike shows in it.
	if len(rep.Series) < 3 {
		t.Fatalf("series of %d seconds", len(rep.Series))
	}
	if a, b := rep.Series[0].Offered, rep.Series[2].Offered; float64(b) < 3*float64(a) {
		t.Errorf("offered %d in second 0 and %d in second 2: no spike", a, b)
	}
}

func TestSpikeErrors(t *testing.T) {
	fo := newFakeOrigin(t, "tok")
	m := DefaultSpikeModel()
	m.Duration = 2 * time.Second
	m.SpikeAt = time.Second
	cfg := SpikeConfig{Model: m, Run: RunConfig{Target: fo.srv.URL, Connections: 2, Timeout: time.Second}, Origin: fo.srv.URL}

	// No token: refused before any load is sent.
	if _, err := Spike(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "LAKKA_ORIGIN_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	// A wrong token: the API's 401, before any load is sent.
	cfg.OriginToken = "wrong"
	_, err := Spike(context.Background(), cfg, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("wrong token: %v", err)
	}
	fo.mu.Lock()
	defer fo.mu.Unlock()
	if fo.misses != 0 {
		t.Errorf("the target got %d requests from a run that should not start", fo.misses)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
