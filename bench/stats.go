package bench

import (
	"bytes"
	"math"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// cacheValue is a response's cache status, from X-Cache (Lakka, Varnish
// configs), X-Cache-Status (nginx's $upstream_cache_status) or Cache-Status
// (RFC 9211), in that order.
type cacheValue uint8

const (
	cacheNone cacheValue = iota // no cache header
	cacheHit
	cacheStale
	cacheMiss
	cacheRevalidated
	cachePass
	cacheError
	cacheExpired
	cacheUpdating
	cacheBypass
	cachePurge
	cacheOther
	numCacheValues
)

// cacheNames are the report's names of the cache values.
var cacheNames = [numCacheValues]string{"none", "HIT", "STALE", "MISS", "REVALIDATED", "PASS", "ERROR", "EXPIRED", "UPDATING", "BYPASS", "PURGE", "other"}

// hit reports whether the response was served from the cache without
// asking the origin first: Lakka's HIT and STALE, nginx's HIT, STALE and
// UPDATING (stale while one request updates it).
func (v cacheValue) hit() bool { return v == cacheHit || v == cacheStale || v == cacheUpdating }

// cacheOf reads the cache status of a response.
func cacheOf(h *fasthttp.ResponseHeader) cacheValue {
	if v := h.Peek("X-Cache"); len(v) > 0 {
		return parseCacheValue(v)
	}
	if v := h.Peek("X-Cache-Status"); len(v) > 0 {
		return parseCacheValue(v)
	}
	if v := h.Peek("Cache-Status"); len(v) > 0 {
		return parseCacheStatus(v)
	}
	return cacheNone
}

// parseCacheValue reads the first word of an X-Cache-like value: "HIT",
// "MISS", "HIT (3)", "miss, hit" (several caches: the first is the one
// that answered the bench). Case does not matter.
func parseCacheValue(b []byte) cacheValue {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && (b[j]|0x20 >= 'a' && b[j]|0x20 <= 'z' || b[j] == '_' || b[j] == '-') {
		j++
	}
	w := b[i:j]
	for v := cacheHit; v < cacheOther; v++ {
		if equalFold(w, cacheNames[v]) {
			return v
		}
	}
	return cacheOther
}

// parseCacheStatus reads an RFC 9211 Cache-Status value. The last member is
// the cache nearest the client; it was a hit when it has the "hit" parameter.
func parseCacheStatus(b []byte) cacheValue {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ',' {
			b = b[i+1:]
			break
		}
	}
	for len(b) > 0 {
		k := 0
		for k < len(b) && b[k] != ';' {
			k++
		}
		p := bytes.TrimSpace(b[:k])
		if equalFold(p, "hit") {
			return cacheHit
		}
		if k == len(b) {
			break
		}
		b = b[k+1:]
	}
	return cacheMiss
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		d := s[i]
		if d >= 'a' && d <= 'z' {
			d -= 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// maxErrorExamples bounds the distinct messages of "other" errors kept.
const maxErrorExamples = 5

// counts are the tallies kept for the whole run and for each second.
type counts struct {
	sent      int64 // requests sent (with a response or an error)
	responses int64
	errs      [4]int64 // by errKind; errNone unused
	status    [6]int64 // by status/100
	cache     [numCacheValues]int64
	bytes     int64
	late      int64
	poolLate  int64
	benchLate int64
}

func (c *counts) hits() int64 {
	return c.cache[cacheHit] + c.cache[cacheStale] + c.cache[cacheUpdating]
}

func (c *counts) lookups() int64 { return c.responses - c.cache[cacheNone] }

func (c *counts) errors() int64 {
	return c.errs[errConnect] + c.errs[errTimeout] + c.errs[errOther] + c.status[4] + c.status[5]
}

// second is the per-second series entry being collected. Requests count
// in the second they were scheduled in, except achieved (responses) and
// bytes, which count in the second the response completed.
type second struct {
	counts
	offered  int64
	achieved int64
	doneByte int64
	unsent   int64
	cpu      float64 // share of GOMAXPROCS cores used by the bench, -1 unknown
	maxUs    int64   // exact largest latency (the histogram rounds)
	lat      *hdrhistogram.Histogram
}

// editRecord is one edit of the tracked article.
type editRecord struct {
	answered time.Duration
	version  int64
}

// originSample is one reading of the origin's request counter.
type originSample struct {
	at    time.Duration
	total float64
}

// collector aggregates results. add is called by one goroutine; the
// record* methods and progress by others.
type collector struct {
	highestUs int64
	asap      bool

	mu        sync.Mutex // guards every field below
	total     counts
	unsent    int64
	lat       *hdrhistogram.Histogram // µs from schedule to response
	sendDelay *hdrhistogram.Histogram // µs from schedule to send
	maxLatUs  int64                   // exact maxima: the histograms round
	maxSendUs int64
	secs      []*second
	versions  map[int64]time.Duration // first time each version was seen
	edits     []editRecord
	origin    []originSample
	otherErrs map[string]int64 // up to maxErrorExamples messages of errOther
	cpu       float64          // share of GOMAXPROCS cores used over the run
	lastCPU   float64          // the same over the last second sampled
}

func newCollector(highest time.Duration, asap bool) *collector {
	hi := max(highest.Microseconds()*2, int64(time.Minute/time.Microsecond))
	return &collector{
		highestUs: hi,
		asap:      asap,
		lat:       hdrhistogram.New(1, hi, 3),
		sendDelay: hdrhistogram.New(1, hi, 3),
		versions:  make(map[int64]time.Duration),
		otherErrs: make(map[string]int64),
	}
}

// sec returns the entry of second i, growing the series. Callers hold mu.
func (c *collector) sec(d time.Duration) *second {
	i := max(int(d/time.Second), 0)
	for len(c.secs) <= i {
		c.secs = append(c.secs, &second{lat: hdrhistogram.New(1, c.highestUs, 2), cpu: -1})
	}
	return c.secs[i]
}

func (c *collector) add(batch []result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range batch {
		r := &batch[i]
		s := c.sec(r.at)
		s.offered++
		for _, n := range [...]*counts{&c.total, &s.counts} {
			n.sent++
			if r.late {
				n.late++
				if r.blocked || r.sent-r.at-r.dispLag > lateAfter/2 {
					n.poolLate++
				} else {
					n.benchLate++
				}
			}
			if r.err != errNone {
				n.errs[r.err]++
				continue
			}
			n.responses++
			n.status[min(int(r.status)/100, 5)]++
			n.cache[r.cache]++
		}
		if r.errMsg != "" {
			if _, ok := c.otherErrs[r.errMsg]; ok || len(c.otherErrs) < maxErrorExamples {
				c.otherErrs[r.errMsg]++
			}
		}
		us := max((r.done - r.at).Microseconds(), 1)
		_ = c.lat.RecordValue(min(us, c.highestUs))
		_ = s.lat.RecordValue(min(us, c.highestUs))
		c.maxLatUs, s.maxUs = max(c.maxLatUs, us), max(s.maxUs, us)
		sendUs := max((r.sent - r.at).Microseconds(), 0)
		_ = c.sendDelay.RecordValue(min(max(sendUs, 1), c.highestUs))
		c.maxSendUs = max(c.maxSendUs, sendUs)
		if r.err == errNone {
			d := c.sec(r.done)
			d.achieved++
			d.doneByte += r.bytes
			c.total.bytes += r.bytes
			if r.version > 0 {
				if t, ok := c.versions[r.version]; !ok || r.done < t {
					c.versions[r.version] = r.done
				}
			}
		}
	}
}

// recordUnsent counts a scheduled request the run ended before sending.
func (c *collector) recordUnsent(at time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unsent++
	c.sec(at).unsent++
}

// recordCPU records the bench's CPU time used over the interval ending at.
func (c *collector) recordCPU(at, used, interval time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := cpuShare(used, interval)
	c.lastCPU = u
	if at >= time.Second {
		c.sec(at - time.Second).cpu = u
	}
}

// setCPU records the bench's CPU use over the whole run.
func (c *collector) setCPU(used, elapsed time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cpu = cpuShare(used, elapsed)
}

func cpuShare(used, interval time.Duration) float64 {
	if interval <= 0 {
		return 0
	}
	return float64(used) / float64(interval) / float64(runtime.GOMAXPROCS(0))
}

func (c *collector) recordEdit(answered time.Duration, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.edits = append(c.edits, editRecord{answered: answered, version: version})
}

func (c *collector) recordOrigin(at time.Duration, total float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.origin = append(c.origin, originSample{at: at, total: total})
}

// progress summarises the last whole second before elapsed.
func (c *collector) progress(elapsed time.Duration) Progress {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := Progress{
		Elapsed:   elapsed,
		Completed: c.total.sent,
		Errors:    c.total.errors(),
		Late:      c.total.late,
		HitRatio:  math.NaN(),
		BenchCPU:  c.lastCPU,
	}
	if n := c.total.lookups(); n > 0 {
		p.HitRatio = float64(c.total.hits()) / float64(n)
	}
	if i := int(elapsed/time.Second) - 1; i >= 0 && i < len(c.secs) {
		s := c.secs[i]
		p.RatePerSec = float64(s.achieved)
		p.OfferedPerSec = float64(s.offered + s.unsent)
		p.P99Ms = usToMs(s.lat.ValueAtQuantile(99))
	}
	return p
}

func usToMs(us int64) float64 { return float64(us) / 1000 }

// freshnessLags returns each edit's lag: the time from the API's answer to
// the first response showing that version or a later one, never negative
// (a response may overtake the API's own answer). Edits never seen get a
// negative lag.
func freshnessLags(edits []editRecord, firstSeen map[int64]time.Duration) []time.Duration {
	type seen struct {
		version int64
		at      time.Duration
	}
	vs := make([]seen, 0, len(firstSeen))
	for v, at := range firstSeen {
		vs = append(vs, seen{v, at})
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].version < vs[j].version })
	// suffixMin[i] is the earliest first sight of any version ≥ vs[i].version.
	suffixMin := make([]time.Duration, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		suffixMin[i] = vs[i].at
		if i+1 < len(vs) && suffixMin[i+1] < suffixMin[i] {
			suffixMin[i] = suffixMin[i+1]
		}
	}
	lags := make([]time.Duration, len(edits))
	for k, e := range edits {
		i := sort.Search(len(vs), func(i int) bool { return vs[i].version >= e.version })
		if i == len(vs) {
			lags[k] = -1
			continue
		}
		lags[k] = max(suffixMin[i]-e.answered, 0)
	}
	return lags
}
