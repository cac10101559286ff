package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Request is one scheduled request of a workload. A Source fills it; the
// runner reads it only until the request is written to the wire.
type Request struct {
	// At is the scheduled arrival time, as an offset from the start of the run.
	At time.Duration
	// Method is the HTTP method; empty means GET.
	Method string
	// Path is the path and query, starting with "/". It is empty when Slot
	// is set: the runner then takes the path from the slot when the request
	// is due.
	Path string
	// Slot names a URL that is only known while the run goes on (the
	// article published at the spike); nil for fixed URLs.
	Slot *Slot
	// Host is the Host header; empty sends the target's host.
	Host string
	// URL indexes the source's URL table (for the ETag memory of
	// conditional requests); -1 when the request has no entry.
	URL int
	// Track asks the runner to read X-Content-Version from the response,
	// for the freshness lag of edits.
	Track bool
	// Conditional sends If-None-Match with the last ETag seen for URL.
	Conditional bool
	// AcceptEncoding, UserAgent, Cookie and Referer are sent when non-empty.
	AcceptEncoding string
	UserAgent      string
	Cookie         string
	Referer        string
}

// Source produces a workload's requests in schedule order. Next fills r
// with the next request and reports false when the workload is over. A
// Source is used by one goroutine.
type Source interface {
	Next(r *Request) bool
}

// Slot is a URL that becomes known during a run, such as the path of the
// article published at the spike. The zero value is not usable; use NewSlot.
// It is safe for concurrent use.
type Slot struct {
	ready chan struct{}
	once  sync.Once
	path  string // written once before ready is closed
	err   error  // written once before ready is closed
}

// NewSlot returns an empty slot.
func NewSlot() *Slot { return &Slot{ready: make(chan struct{})} }

// Set fills the slot with path; only the first Set or Fail counts.
func (s *Slot) Set(path string) {
	s.once.Do(func() { s.path = path; close(s.ready) })
}

// Fail marks the slot as never to be filled, so that waiters give up.
func (s *Slot) Fail(err error) {
	s.once.Do(func() { s.err = err; close(s.ready) })
}

// Ready is closed once the slot is set or failed.
func (s *Slot) Ready() <-chan struct{} { return s.ready }

// Path returns the slot's path, or the error it failed with. Call it after
// Ready is closed.
func (s *Slot) Path() (string, error) { return s.path, s.err }

// Zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^s.
// Unlike math/rand's Zipf it accepts any exponent s ≥ 0 (web popularity is
// often near 0.8, below math/rand's limit of s > 1). It is immutable after
// construction and safe for concurrent use with one *rand.Rand per goroutine.
type Zipf struct {
	cdf []float64 // cumulative probabilities, cdf[n-1] == 1
}

// NewZipf returns a Zipf distribution over n ranks with exponent s.
func NewZipf(n int, s float64) (*Zipf, error) {
	if n <= 0 {
		return nil, fmt.Errorf("bench: zipf needs at least one rank, got %d", n)
	}
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("bench: zipf exponent must be ≥ 0, got %v", s)
	}
	cdf := make([]float64, n)
	sum := 0.0
	for i := range cdf {
		sum += math.Pow(float64(i+1), -s)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	cdf[n-1] = 1
	return &Zipf{cdf: cdf}, nil
}

// Rank draws one rank.
func (z *Zipf) Rank(r *rand.Rand) int {
	u := r.Float64()
	return sort.SearchFloat64s(z.cdf, u)
}

// P returns the probability of rank i.
func (z *Zipf) P(i int) float64 {
	if i == 0 {
		return z.cdf[0]
	}
	return z.cdf[i] - z.cdf[i-1]
}

// ClientMix describes the simulated readers: how they spell
// Accept-Encoding, which cookies they send, and how often they revalidate.
// Shares are fractions in [0, 1].
type ClientMix struct {
	// SessionCookieShare of requests carry a session cookie (logged-in
	// readers: the edge must not share their responses).
	SessionCookieShare float64
	// TrackingCookieShare of requests carry only analytics cookies that
	// the edge's default config strips (_ga, _gid).
	TrackingCookieShare float64
	// ConditionalShare of requests revalidate with If-None-Match when an
	// ETag for the URL has been seen.
	ConditionalShare float64
}

// DefaultClientMix is the mix used when none is given.
func DefaultClientMix() ClientMix {
	return ClientMix{SessionCookieShare: 0.03, TrackingCookieShare: 0.25, ConditionalShare: 0.1}
}

// browser is one kind of client: its User-Agent and how it spells
// Accept-Encoding, with its weight in the mix.
type browser struct {
	weight         float64
	userAgent      string
	acceptEncoding string
}

// browsers are the clients of the mix. The spellings differ on purpose:
// an edge must normalise them or its variants explode.
var browsers = []browser{
	{0.34, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "gzip, deflate, br, zstd"},
	{0.24, "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "gzip, deflate, br"},
	{0.14, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "gzip, deflate, br, zstd"},
	{0.10, "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "gzip, deflate, br"},
	{0.06, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "gzip,deflate,br"},
	{0.04, "facebookexternalhit/1.1", "br;q=1.0, gzip;q=0.8, *;q=0.1"},
	{0.03, "curl/8.5.0", ""},
	{0.02, "Wget/1.21.4", "identity"},
	{0.02, "okhttp/4.12.0", "GZIP"},
	{0.01, "python-requests/2.32.3", "gzip, deflate"},
}

// referers are sent by readers that came from somewhere.
var referers = []string{"", "", "https://www.google.com/", "https://news.google.com/", "https://www.facebook.com/", "https://t.co/"}

const (
	sessionPool  = 512 // distinct logged-in sessions
	trackingPool = 4096
)

// clientPicker draws clients from a ClientMix. Header values are built once
// so that drawing a client does not allocate.
type clientPicker struct {
	mix      ClientMix
	cum      []float64
	sessions []string
	tracking []string
}

func newClientPicker(mix ClientMix) *clientPicker {
	p := &clientPicker{mix: mix}
	sum := 0.0
	for _, b := range browsers {
		sum += b.weight
		p.cum = append(p.cum, sum)
	}
	for i := range p.cum {
		p.cum[i] /= sum
	}
	for i := range sessionPool {
		p.sessions = append(p.sessions, "sessionid=s"+strconv.Itoa(i)+"x7f; csrftoken=c"+strconv.Itoa(i*7919)+"; _ga=GA1.2."+strconv.Itoa(i))
	}
	for i := range trackingPool {
		p.tracking = append(p.tracking, "_ga=GA1.2."+strconv.Itoa(1000000+i)+".1732700000; _gid=GA1.2."+strconv.Itoa(i))
	}
	return p
}

// pick fills the client fields of req.
func (p *clientPicker) pick(r *rand.Rand, req *Request) {
	b := browsers[sort.SearchFloat64s(p.cum, r.Float64())]
	req.UserAgent = b.userAgent
	req.AcceptEncoding = b.acceptEncoding
	req.Referer = referers[r.IntN(len(referers))]
	req.Cookie = ""
	switch u := r.Float64(); {
	case u < p.mix.SessionCookieShare:
		req.Cookie = p.sessions[r.IntN(len(p.sessions))]
	case u < p.mix.SessionCookieShare+p.mix.TrackingCookieShare:
		req.Cookie = p.tracking[r.IntN(len(p.tracking))]
	}
	req.Conditional = r.Float64() < p.mix.ConditionalShare
}

// SpikeModel is a modelled breaking-news day: a base rate spread over the
// site's pages by Zipf popularity, with a share on the front page, and at
// SpikeAt a new article whose traffic ramps the total rate to SpikeX times
// the base over Ramp, concentrated on that article, its section and the
// front page. Arrivals are Poisson. For one Seed the model draws the same
// requests, whatever the target answers.
type SpikeModel struct {
	// Seed makes the workload reproducible.
	Seed uint64
	// Paths are the site's pages, most popular first (rank 1 is Paths[0]).
	// The front page "/" may be among them; it also gets FrontShare.
	Paths []string
	// ZipfExponent shapes popularity: rank k gets 1/k^ZipfExponent.
	ZipfExponent float64
	// FrontShare is the share of the base traffic on the front page.
	FrontShare float64
	// BaseRate is the request rate before the spike, per second.
	BaseRate float64
	// Duration is the length of the run.
	Duration time.Duration
	// SpikeAt is when the article is published and the ramp starts; at or
	// beyond Duration there is no spike.
	SpikeAt time.Duration
	// Ramp is how long the rate takes to grow from BaseRate to
	// SpikeX*BaseRate; 0 jumps at once.
	Ramp time.Duration
	// SpikeX multiplies the base rate at the top of the spike (≥ 1).
	SpikeX float64
	// ArticleShare, SectionShare and FrontSpikeShare split the spike's
	// extra traffic (the rate above BaseRate); they are normalised.
	ArticleShare, SectionShare, FrontSpikeShare float64
	// Clients is the client mix.
	Clients ClientMix
}

// DefaultSpikeModel returns the model's defaults; Paths must still be set.
func DefaultSpikeModel() SpikeModel {
	return SpikeModel{
		Seed:            1,
		ZipfExponent:    1.0,
		FrontShare:      0.2,
		BaseRate:        200,
		Duration:        60 * time.Second,
		SpikeAt:         15 * time.Second,
		Ramp:            10 * time.Second,
		SpikeX:          10,
		ArticleShare:    0.6,
		SectionShare:    0.15,
		FrontSpikeShare: 0.25,
		Clients:         DefaultClientMix(),
	}
}

// Validate reports what is wrong with the model, naming the fields.
func (m SpikeModel) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("bench: "+format, args...)) }
	if len(m.Paths) == 0 {
		bad("spike model: no URLs")
	}
	if !(m.BaseRate > 0) || math.IsInf(m.BaseRate, 0) {
		bad("base rate must be positive, got %v", m.BaseRate)
	}
	if !(m.SpikeX >= 1) || math.IsInf(m.SpikeX, 0) {
		bad("spike multiplier must be ≥ 1, got %v", m.SpikeX)
	}
	if m.Duration <= 0 {
		bad("duration must be positive, got %v", m.Duration)
	}
	if m.SpikeAt < 0 || m.Ramp < 0 {
		bad("spike time and ramp must not be negative")
	}
	if !(m.ZipfExponent >= 0) || math.IsInf(m.ZipfExponent, 0) {
		bad("zipf exponent must be ≥ 0, got %v", m.ZipfExponent)
	}
	for name, v := range map[string]float64{
		"front share": m.FrontShare, "article share": m.ArticleShare, "section share": m.SectionShare,
		"front spike share": m.FrontSpikeShare, "session cookie share": m.Clients.SessionCookieShare,
		"tracking cookie share": m.Clients.TrackingCookieShare, "conditional share": m.Clients.ConditionalShare,
	} {
		if !(v >= 0 && v <= 1) {
			bad("%s must be in [0, 1], got %v", name, v)
		}
	}
	if m.ArticleShare+m.SectionShare+m.FrontSpikeShare <= 0 {
		bad("the spike shares add up to zero")
	}
	if m.Clients.SessionCookieShare+m.Clients.TrackingCookieShare > 1 {
		bad("session and tracking cookie shares add up to more than 1")
	}
	return errors.Join(errs...)
}

// HasSpike reports whether the spike starts within the run.
func (m SpikeModel) HasSpike() bool { return m.SpikeAt < m.Duration }

// Rate is the request rate (per second) the model offers at time t.
func (m SpikeModel) Rate(t time.Duration) float64 {
	if t < m.SpikeAt || !m.HasSpike() {
		return m.BaseRate
	}
	if m.Ramp <= 0 || t >= m.SpikeAt+m.Ramp {
		return m.BaseRate * m.SpikeX
	}
	f := float64(t-m.SpikeAt) / float64(m.Ramp)
	return m.BaseRate * (1 + (m.SpikeX-1)*f)
}

// Expected returns the number of requests the model offers in [from, to).
func (m SpikeModel) Expected(from, to time.Duration) float64 {
	// The rate is piecewise linear: integrate with the trapezoid rule on
	// the pieces' boundaries, which is exact.
	points := []time.Duration{from}
	for _, b := range []time.Duration{m.SpikeAt, m.SpikeAt + m.Ramp} {
		if b > from && b < to {
			points = append(points, b)
		}
	}
	points = append(points, to)
	sum := 0.0
	for i := 1; i < len(points); i++ {
		a, b := points[i-1], points[i]
		// Evaluate just inside the piece so that a jump at a boundary
		// (Ramp == 0) is attributed to the right side.
		ra, rb := m.Rate(a), m.Rate(b-1)
		sum += (ra + rb) / 2 * (b - a).Seconds()
	}
	return sum
}

// SpikeSlots are the URLs of the spike, known only once the article is
// published: the article and its section. The source's URL table gives
// them the indexes len(Paths) and len(Paths)+1.
type SpikeSlots struct {
	Article *Slot
	Section *Slot
}

// NewSpikeSlots returns empty slots.
func NewSpikeSlots() SpikeSlots { return SpikeSlots{Article: NewSlot(), Section: NewSlot()} }

// spikeSource draws the requests of a SpikeModel.
type spikeSource struct {
	m       SpikeModel
	slots   SpikeSlots
	rng     *rand.Rand
	zipf    *Zipf
	clients *clientPicker
	maxRate float64
	t       time.Duration
	shares  [3]float64 // cumulative article, section, front
	front   int        // index of "/" in Paths, or -1
}

// Source returns the model's request source. The model must be valid.
// Requests for the spike's article and section carry the given slots.
func (m SpikeModel) Source(slots SpikeSlots) (Source, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	z, err := NewZipf(len(m.Paths), m.ZipfExponent)
	if err != nil {
		return nil, err
	}
	s := &spikeSource{
		m:       m,
		slots:   slots,
		rng:     rand.New(rand.NewPCG(m.Seed, m.Seed^0x9e3779b97f4a7c15)),
		zipf:    z,
		clients: newClientPicker(m.Clients),
		maxRate: m.BaseRate,
		front:   -1,
	}
	if m.HasSpike() {
		s.maxRate = m.BaseRate * m.SpikeX
	}
	total := m.ArticleShare + m.SectionShare + m.FrontSpikeShare
	s.shares = [3]float64{m.ArticleShare / total, (m.ArticleShare + m.SectionShare) / total, 1}
	for i, p := range m.Paths {
		if p == "/" {
			s.front = i
			break
		}
	}
	return s, nil
}

// Next draws the next arrival of a non-homogeneous Poisson process by
// thinning: candidates at the peak rate, each kept with probability
// Rate(t)/peak.
func (s *spikeSource) Next(r *Request) bool {
	for {
		s.t += time.Duration(s.rng.ExpFloat64() / s.maxRate * float64(time.Second))
		if s.t >= s.m.Duration {
			return false
		}
		rate := s.m.Rate(s.t)
		if rate < s.maxRate && s.rng.Float64()*s.maxRate >= rate {
			continue
		}
		*r = Request{At: s.t, URL: -1}
		extra := (rate - s.m.BaseRate) / rate
		if extra > 0 && s.rng.Float64() < extra {
			switch u := s.rng.Float64(); {
			case u < s.shares[0]:
				r.Slot, r.URL, r.Track = s.slots.Article, len(s.m.Paths), true
			case u < s.shares[1]:
				r.Slot, r.URL = s.slots.Section, len(s.m.Paths)+1
			default:
				s.frontPage(r)
			}
		} else if s.rng.Float64() < s.m.FrontShare {
			s.frontPage(r)
		} else {
			r.URL = s.zipf.Rank(s.rng)
			r.Path = s.m.Paths[r.URL]
		}
		s.clients.pick(s.rng, r)
		return true
	}
}

func (s *spikeSource) frontPage(r *Request) {
	r.Path, r.URL = "/", s.front
	if s.front < 0 {
		r.URL = len(s.m.Paths) + 2
	}
}

// URLTableSize is the size of the URL table a spike source indexes into:
// the paths, the spike's article and section, and the front page when it is
// not among the paths.
func (m SpikeModel) URLTableSize() int { return len(m.Paths) + 3 }
