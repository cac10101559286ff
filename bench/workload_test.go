package bench

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testPaths(n int) []string {
	p := []string{"/"}
	for i := 1; i < n; i++ {
		p = append(p, "/news/"+strconv.Itoa(i))
	}
	return p
}

func TestZipfProbabilities(t *testing.T) {
	z, err := NewZipf(100, 1.0)
	if err != nil {
		t.Fatal(err)
	}
	// P(k) ∝ 1/k: rank 1 is twice as likely as rank 2, ten times rank 10.
	if got := z.P(0) / z.P(1); math.Abs(got-2) > 1e-9 {
		t.Errorf("P(1)/P(2) = %v, want 2", got)
	}
	if got := z.P(0) / z.P(9); math.Abs(got-10) > 1e-9 {
		t.Errorf("P(1)/P(10) = %v, want 10", got)
	}
	sum := 0.0
	for i := range 100 {
		sum += z.P(i)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities add up to %v", sum)
	}

	// Draws follow the distribution: within 5 standard deviations.
	const n = 200000
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, 100)
	for range n {
		counts[z.Rank(r)]++
	}
	for _, k := range []int{0, 1, 4, 9, 49, 99} {
		p := z.P(k)
		want := p * n
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(float64(counts[k])-want) > 5*sd {
			t.Errorf("rank %d drawn %d times, want %.0f ± %.0f", k+1, counts[k], want, 5*sd)
		}
	}

	// Exponent 0 is uniform; bad arguments are errors.
	u, _ := NewZipf(4, 0)
	if u.P(0) != 0.25 || u.P(3) != 0.25 {
		t.Errorf("exponent 0: P = %v, %v, want 0.25", u.P(0), u.P(3))
	}
	for _, bad := range []struct {
		n int
		s float64
	}{{0, 1}, {3, -1}, {3, math.NaN()}, {3, math.Inf(1)}} {
		if _, err := NewZipf(bad.n, bad.s); err == nil {
			t.Errorf("NewZipf(%d, %v): no error", bad.n, bad.s)
		}
	}
}

func draw(t *testing.T, m SpikeModel, n int) []Request {
	t.Helper()
	src, err := m.Source(NewSpikeSlots())
	if err != nil {
		t.Fatal(err)
	}
	var out []Request
	var r Request
	for len(out) < n && src.Next(&r) {
		r.Slot = nil // compare by value
		out = append(out, r)
	}
	return out
}

func TestSpikeModelDeterministic(t *testing.T) {
	m := DefaultSpikeModel()
	m.Paths = testPaths(50)
	a, b := draw(t, m, 5000), draw(t, m, 5000)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different requests (-first +second):\n%s", diff)
	}
	m.Seed = 2
	c := draw(t, m, 5000)
	if cmp.Equal(a, c) {
		t.Error("different seeds drew the same requests")
	}
}

func TestSpikeModelShape(t *testing.T) {
	m := DefaultSpikeModel()
	m.Paths = testPaths(200)
	m.BaseRate = 2000
	m.Duration = 40 * time.Second
	m.SpikeAt = 10 * time.Second
	m.Ramp = 10 * time.Second
	m.SpikeX = 5

	// The rate function: flat, linear ramp, plateau.
	for _, c := range []struct {
		t    time.Duration
		want float64
	}{{0, 2000}, {9 * time.Second, 2000}, {10 * time.Second, 2000}, {15 * time.Second, 6000}, {20 * time.Second, 10000}, {39 * time.Second, 10000}} {
		if got := m.Rate(c.t); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("Rate(%v) = %v, want %v", c.t, got, c.want)
		}
	}
	if got, want := m.Expected(0, 40*time.Second), 2000*10+(2000+10000)/2*10+10000*20.0; math.Abs(got-want) > 1 {
		t.Errorf("Expected = %v, want %v", got, want)
	}

	src, err := m.Source(NewSpikeSlots())
	if err != nil {
		t.Fatal(err)
	}
	perSec := make([]int, 40)
	type kinds struct{ article, section, front, other int }
	var before, after kinds
	articleIdx, sectionIdx := len(m.Paths), len(m.Paths)+1
	var r Request
	last := time.Duration(-1)
	for src.Next(&r) {
		if r.At < last {
			t.Fatalf("arrivals out of order: %v after %v", r.At, last)
		}
		last = r.At
		perSec[r.At/time.Second]++
		k := &before
		if r.At >= 20*time.Second {
			k = &after
		} else if r.At >= 10*time.Second {
			continue
		}
		switch {
		case r.URL == articleIdx:
			k.article++
			if !r.Track || r.Slot == nil {
				t.Fatal("article request neither tracked nor slotted")
			}
		case r.URL == sectionIdx:
			k.section++
		case r.Path == "/":
			k.front++
		default:
			k.other++
		}
	}
	// Each second's count is Poisson: within 5 standard deviations.
	for s, got := range perSec {
		want := m.Expected(time.Duration(s)*time.Second, time.Duration(s+1)*time.Second)
		if math.Abs(float64(got)-want) > 5*math.Sqrt(want) {
			t.Errorf("second %d: %d requests, want %.0f", s, got, want)
		}
	}
	// Before the spike: no spike traffic, FrontShare on the front page
	// (the front page is also Zipf rank 1 among the paths).
	if before.article != 0 || before.section != 0 {
		t.Errorf("spike traffic before the spike: %+v", before)
	}
	z, _ := NewZipf(len(m.Paths), m.ZipfExponent)
	n := float64(before.front + before.other)
	if got, want := float64(before.front)/n, 0.2+0.8*z.P(0); math.Abs(got-want) > 0.01 {
		t.Errorf("front page share before the spike %.3f, want %.3f (0.2 plus rank 1's share)", got, want)
	}
	// At the plateau, 4/5 of the traffic is extra: 60% of it on the article.
	n = float64(after.article + after.section + after.front + after.other)
	if got, want := float64(after.article)/n, 0.8*0.6; math.Abs(got-want) > 0.01 {
		t.Errorf("article share at the plateau %.3f, want %.3f", got, want)
	}
	if got, want := float64(after.section)/n, 0.8*0.15; math.Abs(got-want) > 0.01 {
		t.Errorf("section share at the plateau %.3f, want %.3f", got, want)
	}
}

func TestSpikeModelNoSpike(t *testing.T) {
	m := DefaultSpikeModel()
	m.Paths = testPaths(10)
	m.Duration = 5 * time.Second
	m.SpikeAt = time.Hour
	if m.HasSpike() {
		t.Fatal("HasSpike with the spike after the run")
	}
	for _, r := range draw(t, m, 100000) {
		if r.Track || r.URL >= len(m.Paths) && r.Path != "/" {
			t.Fatalf("spike request without a spike: %+v", r)
		}
	}
}

func TestClientMix(t *testing.T) {
	m := DefaultSpikeModel()
	m.Paths = testPaths(10)
	m.Clients = ClientMix{SessionCookieShare: 0.1, TrackingCookieShare: 0.3, ConditionalShare: 0.2}
	reqs := draw(t, m, 50000)
	var session, tracking, cond int
	encodings := map[string]int{}
	for _, r := range reqs {
		switch {
		case len(r.Cookie) > 9 && r.Cookie[:9] == "sessionid":
			session++
		case r.Cookie != "":
			tracking++
		}
		if r.Conditional {
			cond++
		}
		if r.UserAgent == "" {
			t.Fatal("request without a User-Agent")
		}
		encodings[r.AcceptEncoding]++
	}
	n := float64(len(reqs))
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"session", float64(session) / n, 0.1}, {"tracking", float64(tracking) / n, 0.3}, {"conditional", float64(cond) / n, 0.2}} {
		if math.Abs(c.got-c.want) > 0.015 {
			t.Errorf("%s share %.3f, want %.2f", c.name, c.got, c.want)
		}
	}
	if len(encodings) < 6 || encodings[""] == 0 {
		t.Errorf("Accept-Encoding spellings %v: want variety, including none", encodings)
	}
}

func TestSpikeModelValidate(t *testing.T) {
	ok := DefaultSpikeModel()
	ok.Paths = testPaths(3)
	if err := ok.Validate(); err != nil {
		t.Fatalf("default model: %v", err)
	}
	for name, f := range map[string]func(*SpikeModel){
		"no paths":     func(m *SpikeModel) { m.Paths = nil },
		"zero rate":    func(m *SpikeModel) { m.BaseRate = 0 },
		"spike below":  func(m *SpikeModel) { m.SpikeX = 0.5 },
		"share":        func(m *SpikeModel) { m.FrontShare = 1.5 },
		"nan exponent": func(m *SpikeModel) { m.ZipfExponent = math.NaN() },
		"no shares":    func(m *SpikeModel) { m.ArticleShare, m.SectionShare, m.FrontSpikeShare = 0, 0, 0 },
		"cookies":      func(m *SpikeModel) { m.Clients.SessionCookieShare, m.Clients.TrackingCookieShare = 0.6, 0.6 },
	} {
		m := ok
		f(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
