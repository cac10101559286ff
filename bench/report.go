package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// SchemaVersion names the layout of report.json; docs/bench.md documents it.
const SchemaVersion = "lakka-bench-report/1"

// Report is what a run measured; it is written as report.json. Fields that
// could not be measured are null (nil pointers), never zero.
type Report struct {
	Schema    string            `json:"schema"`
	Kind      string            `json:"kind"`
	Label     string            `json:"label"`
	Target    string            `json:"target"`
	StartedAt time.Time         `json:"started_at"`
	DurationS float64           `json:"duration_s"`
	Settings  map[string]string `json:"settings"`

	Requests    int64   `json:"requests"`
	Offered     int64   `json:"offered"`
	Unsent      int64   `json:"unsent"`
	Responses   int64   `json:"responses"`
	OfferedRPS  float64 `json:"offered_rps"`
	AchievedRPS float64 `json:"achieved_rps"`

	Errors   Errors           `json:"errors"`
	Status   map[string]int64 `json:"status"`
	HitRatio *float64         `json:"hit_ratio"`
	Cache    map[string]int64 `json:"cache"`

	LatencyMs   Latency `json:"latency_ms"`
	SendDelayMs Latency `json:"send_delay_ms"`
	Bytes       int64   `json:"bytes"`

	OriginRequests *float64 `json:"origin_requests"`
	OriginRPS      *float64 `json:"origin_rps"`

	FreshnessLagMs Freshness `json:"freshness_lag_ms"`
	Edits          []Edit    `json:"edits"`

	BenchCPU float64     `json:"bench_cpu"`
	HostLoad HostLoad    `json:"host_load"`
	Limits   Limits      `json:"limits"`
	Spike    *SpikeInfo  `json:"spike,omitempty"`
	Trace    *TraceStats `json:"trace,omitempty"`
	Series   []Second    `json:"series"`
}

// Errors counts failed requests by kind. Responses with a 4xx or 5xx
// status count here too.
type Errors struct {
	Total   int64 `json:"total"`
	Connect int64 `json:"connect"`
	Timeout int64 `json:"timeout"`
	HTTP4xx int64 `json:"http_4xx"`
	HTTP5xx int64 `json:"http_5xx"`
	Other   int64 `json:"other"`
	// OtherExamples counts the first few distinct messages of Other errors.
	OtherExamples map[string]int64 `json:"other_examples"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Freshness summarises the lag of edits, in milliseconds; the percentiles
// are over the edits that were seen, null when none was.
type Freshness struct {
	Edits int      `json:"edits"`
	Seen  int      `json:"seen"`
	P50   *float64 `json:"p50"`
	P99   *float64 `json:"p99"`
	Max   *float64 `json:"max"`
}

// Edit is one edit of the spike's article.
type Edit struct {
	AtS     float64  `json:"at_s"`
	Version int64    `json:"version"`
	LagMs   *float64 `json:"lag_ms"`
}

// HostLoad is the machine's one-minute load average at the start and the
// end of the run (null where it cannot be read): a load above the number of
// cores means other work competed with the bench and the target.
type HostLoad struct {
	Cores int      `json:"cores"`
	Start *float64 `json:"start"`
	End   *float64 `json:"end"`
}

// hostCores counts the machine's processors (Linux: /proc/stat, whatever
// the bench's own CPU affinity), else the ones the bench may use.
func hostCores() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

// loadAverage reads the one-minute load average (Linux).
func loadAverage() *float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return nil
	}
	return &v
}

// Limits says whether the numbers measure the target or the bench.
type Limits struct {
	Late         int64    `json:"late"`
	PoolLate     int64    `json:"pool_late"`
	BenchLate    int64    `json:"bench_late"`
	PoolLimited  bool     `json:"pool_limited"`
	BenchLimited bool     `json:"bench_limited"`
	Messages     []string `json:"messages"`
}

// TraceStats counts a replayed trace's lines.
type TraceStats struct {
	Lines       int64         `json:"lines"`
	Parsed      int64         `json:"parsed"`
	Unparseable int64         `json:"unparseable"`
	Filtered    int64         `json:"filtered"`
	Examples    []BadLineNote `json:"unparseable_examples"`
}

// BadLineNote is one unparseable line: its number and why.
type BadLineNote struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// Second is one second of the series: requests scheduled in it, except
// Achieved and Bytes, which count responses completed in it, and
// OriginRequests, which is the origin counter's growth over the sample
// ending in it.
type Second struct {
	T              int      `json:"t"`
	Offered        int64    `json:"offered"`
	Achieved       int64    `json:"achieved"`
	Errors         int64    `json:"errors"`
	P50Ms          float64  `json:"p50_ms"`
	P99Ms          float64  `json:"p99_ms"`
	MaxMs          float64  `json:"max_ms"`
	HitRatio       *float64 `json:"hit_ratio"`
	Bytes          int64    `json:"bytes"`
	OriginRequests *float64 `json:"origin_requests"`
	Late           int64    `json:"late"`
	BenchCPU       *float64 `json:"bench_cpu"`
}

// cpuBoundShare is the share of its processors above which the bench
// counts as CPU-bound.
const cpuBoundShare = 0.9

// limitShare is the share of late requests above which the run is called
// limited by the pool or the bench, when there are at least limitCount of
// them (one late request of a handful is not a finding).
const (
	limitShare = 0.01
	limitCount = 10
)

// latencyOf summarises a histogram of microseconds; maxUs is the exact
// maximum (the histogram keeps three significant digits).
func latencyOf(h *hdrhistogram.Histogram, maxUs int64) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	clamp := func(us int64) float64 { return usToMs(min(us, maxUs)) }
	return Latency{
		P50:  clamp(h.ValueAtQuantile(50)),
		P90:  clamp(h.ValueAtQuantile(90)),
		P99:  clamp(h.ValueAtQuantile(99)),
		P999: clamp(h.ValueAtQuantile(99.9)),
		Max:  usToMs(maxUs),
		Mean: math.Round(h.Mean()) / 1000,
	}
}

func ptr(f float64) *float64 { return &f }

// report builds the measured part of a report; elapsed is the run's wall time.
func (c *collector) report(elapsed time.Duration, connections int) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &c.total
	r := &Report{
		Schema:      SchemaVersion,
		DurationS:   round3(elapsed.Seconds()),
		Requests:    t.sent,
		Unsent:      c.unsent,
		Offered:     t.sent + c.unsent,
		Responses:   t.responses,
		Errors:      errorsOf(t, c.otherErrs),
		Status:      map[string]int64{},
		Cache:       map[string]int64{},
		LatencyMs:   latencyOf(c.lat, c.maxLatUs),
		SendDelayMs: latencyOf(c.sendDelay, c.maxSendUs),
		Bytes:       t.bytes,
		Edits:       []Edit{},
		Series:      []Second{},
	}
	if secs := elapsed.Seconds(); secs > 0 {
		r.OfferedRPS = round3(float64(r.Offered) / secs)
		r.AchievedRPS = round3(float64(t.responses) / secs)
	}
	for i, n := range t.status {
		if n > 0 {
			r.Status[strconv.Itoa(i)+"xx"] = n
		}
	}
	for v, n := range t.cache {
		if n > 0 {
			r.Cache[cacheNames[v]] = n
		}
	}
	if n := t.lookups(); n > 0 {
		r.HitRatio = ptr(round4(float64(t.hits()) / float64(n)))
	}

	// Origin: the counter's growth from the first to the last sample.
	if len(c.origin) >= 2 {
		o := c.origin
		total := o[len(o)-1].total - o[0].total
		r.OriginRequests = ptr(total)
		if span := (o[len(o)-1].at - o[0].at).Seconds(); span > 0 {
			r.OriginRPS = ptr(round3(total / span))
		}
	}

	// Freshness.
	lags := freshnessLags(c.edits, c.versions)
	lagHist := hdrhistogram.New(1, c.highestUs, 3)
	var maxLagUs int64
	for i, e := range c.edits {
		ed := Edit{AtS: round3(e.answered.Seconds()), Version: e.version}
		if lags[i] >= 0 {
			us := lags[i].Microseconds()
			ed.LagMs = ptr(usToMs(us))
			_ = lagHist.RecordValue(min(max(us, 1), c.highestUs))
			maxLagUs = max(maxLagUs, us)
		}
		r.Edits = append(r.Edits, ed)
	}
	r.FreshnessLagMs = Freshness{Edits: len(c.edits), Seen: int(lagHist.TotalCount())}
	if lagHist.TotalCount() > 0 {
		l := latencyOf(lagHist, maxLagUs)
		r.FreshnessLagMs.P50, r.FreshnessLagMs.P99, r.FreshnessLagMs.Max = ptr(l.P50), ptr(l.P99), ptr(l.Max)
	}

	// Series.
	originBySec := map[int]float64{}
	for i := 1; i < len(c.origin); i++ {
		originBySec[int(c.origin[i].at/time.Second)] += c.origin[i].total - c.origin[i-1].total
	}
	for i, s := range c.secs {
		sec := Second{
			T:        i,
			Offered:  s.offered + s.unsent,
			Achieved: s.achieved,
			Errors:   s.errors(),
			P50Ms:    usToMs(min(s.lat.ValueAtQuantile(50), s.maxUs)),
			P99Ms:    usToMs(min(s.lat.ValueAtQuantile(99), s.maxUs)),
			MaxMs:    usToMs(s.maxUs),
			Bytes:    s.doneByte,
			Late:     s.late,
		}
		if n := s.lookups(); n > 0 {
			sec.HitRatio = ptr(round4(float64(s.hits()) / float64(n)))
		}
		if v, ok := originBySec[i]; ok {
			sec.OriginRequests = ptr(v)
		}
		if s.cpu >= 0 {
			sec.BenchCPU = ptr(round3(s.cpu))
		}
		r.Series = append(r.Series, sec)
	}

	// Limits. A late request waited either for a free connection or for
	// the dispatcher; when the bench used (nearly) all its processors, the
	// bench is the limit whatever the queue looked like, because busy
	// workers then wait for the CPU rather than for the target.
	r.BenchCPU = round3(c.cpu)
	r.Limits = Limits{Late: t.late, PoolLate: t.poolLate, BenchLate: t.benchLate, Messages: []string{}}
	if t.sent > 0 {
		late := float64(t.late) / float64(t.sent)
		cpuBound := c.cpu >= cpuBoundShare
		if late > limitShare && t.late >= limitCount && (cpuBound || float64(t.benchLate)/float64(t.sent) > limitShare) {
			r.Limits.BenchLimited = true
			if cpuBound {
				r.Limits.Messages = append(r.Limits.Messages, fmt.Sprintf(
					"the bench is the limit: %.1f%% of requests were sent more than %v behind schedule while the bench used %.0f%% of its %d processor(s); give it a core of its own, or lower the rate",
					100*late, lateAfter, 100*c.cpu, runtime.GOMAXPROCS(0)))
			} else {
				r.Limits.Messages = append(r.Limits.Messages, fmt.Sprintf(
					"the bench fell behind: %.1f%% of requests were sent more than %v behind schedule with connections free and the bench using only %.0f%% of its %d processor(s): other work on this machine delays it; those latencies include the delay",
					100*late, lateAfter, 100*c.cpu, runtime.GOMAXPROCS(0)))
			}
		}
		if share := float64(t.poolLate) / float64(t.sent); share > limitShare && t.poolLate >= limitCount && !cpuBound {
			r.Limits.PoolLimited = true
			r.Limits.Messages = append(r.Limits.Messages, fmt.Sprintf(
				"connection pool saturated: %.1f%% of requests waited more than %v for one of the %d connections; their latency includes the wait (the target is slower than the offered rate allows: raise --connections, or the target is at its limit)",
				100*share, lateAfter, connections))
		}
	}
	if c.unsent > 0 {
		r.Limits.Messages = append(r.Limits.Messages, fmt.Sprintf(
			"%d scheduled requests were not sent before the run's time ran out", c.unsent))
	}
	return r
}

func errorsOf(c *counts, examples map[string]int64) Errors {
	e := Errors{
		OtherExamples: map[string]int64{},
		Connect:       c.errs[errConnect],
		Timeout:       c.errs[errTimeout],
		Other:         c.errs[errOther],
		HTTP4xx:       c.status[4],
		HTTP5xx:       c.status[5],
	}
	e.Total = e.Connect + e.Timeout + e.Other + e.HTTP4xx + e.HTTP5xx
	for m, n := range examples {
		e.OtherExamples[m] = n
	}
	return e
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
func round4(f float64) float64 { return math.Round(f*10000) / 10000 }

// WriteFiles writes report.json and report.html into dir, creating it.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: report dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	return nil
}

// ReadReport reads a report.json, or the report.json inside a directory.
func ReadReport(path string) (*Report, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "report.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: read report %s: %w", path, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("bench: read report %s: schema %q, want %q", path, r.Schema, SchemaVersion)
	}
	return &r, nil
}

// row is one line of a summary or comparison table.
type row struct {
	name string
	cell func(r *Report) string
}

func fmtOpt(f *float64, format string) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf(format, *f)
}

func fmtPct(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *f*100)
}

func fmtMs(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }

var tableRows = []row{
	{"duration s", func(r *Report) string { return strconv.FormatFloat(r.DurationS, 'f', 1, 64) }},
	{"requests", func(r *Report) string { return strconv.FormatInt(r.Requests, 10) }},
	{"offered req/s", func(r *Report) string { return strconv.FormatFloat(r.OfferedRPS, 'f', 1, 64) }},
	{"achieved req/s", func(r *Report) string { return strconv.FormatFloat(r.AchievedRPS, 'f', 1, 64) }},
	{"errors", func(r *Report) string {
		e := r.Errors
		return fmt.Sprintf("%d (connect %d, timeout %d, 4xx %d, 5xx %d, other %d)", e.Total, e.Connect, e.Timeout, e.HTTP4xx, e.HTTP5xx, e.Other)
	}},
	{"hit ratio", func(r *Report) string { return fmtPct(r.HitRatio) }},
	{"latency p50 ms", func(r *Report) string { return fmtMs(r.LatencyMs.P50) }},
	{"latency p90 ms", func(r *Report) string { return fmtMs(r.LatencyMs.P90) }},
	{"latency p99 ms", func(r *Report) string { return fmtMs(r.LatencyMs.P99) }},
	{"latency p99.9 ms", func(r *Report) string { return fmtMs(r.LatencyMs.P999) }},
	{"latency max ms", func(r *Report) string { return fmtMs(r.LatencyMs.Max) }},
	{"origin requests", func(r *Report) string { return fmtOpt(r.OriginRequests, "%.0f") }},
	{"origin req/s", func(r *Report) string { return fmtOpt(r.OriginRPS, "%.1f") }},
	{"bytes", func(r *Report) string { return strconv.FormatInt(r.Bytes, 10) }},
	{"edits seen/made", func(r *Report) string {
		return fmt.Sprintf("%d/%d", r.FreshnessLagMs.Seen, r.FreshnessLagMs.Edits)
	}},
	{"freshness lag p50 ms", func(r *Report) string { return fmtOpt(r.FreshnessLagMs.P50, "%.1f") }},
	{"freshness lag p99 ms", func(r *Report) string { return fmtOpt(r.FreshnessLagMs.P99, "%.1f") }},
	{"freshness lag max ms", func(r *Report) string { return fmtOpt(r.FreshnessLagMs.Max, "%.1f") }},
	{"send delay p99 ms", func(r *Report) string { return fmtMs(r.SendDelayMs.P99) }},
	{"bench cpu", func(r *Report) string { return fmt.Sprintf("%.0f%%", 100*r.BenchCPU) }},
	{"host load start/end", func(r *Report) string {
		return fmtOpt(r.HostLoad.Start, "%.2f") + "/" + fmtOpt(r.HostLoad.End, "%.2f") + " on " + strconv.Itoa(r.HostLoad.Cores) + " cores"
	}},
	{"limited by", func(r *Report) string {
		var s []string
		if r.Limits.PoolLimited {
			s = append(s, "pool")
		}
		if r.Limits.BenchLimited {
			s = append(s, "bench")
		}
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}},
}

// WriteSummary writes the end-of-run table.
func (r *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lakka bench %s\t%s\n", r.Kind, r.Target)
	for _, row := range tableRows {
		fmt.Fprintf(tw, "%s\t%s\n", row.name, row.cell(r))
	}
	if len(r.Cache) > 0 {
		keys := make([]string, 0, len(r.Cache))
		for k := range r.Cache {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Cache[k]))
		}
		fmt.Fprintf(tw, "cache statuses\t%s\n", strings.Join(parts, ", "))
	}
	if r.Trace != nil {
		fmt.Fprintf(tw, "trace lines\t%d (parsed %d, unparseable %d, filtered out %d)\n",
			r.Trace.Lines, r.Trace.Parsed, r.Trace.Unparseable, r.Trace.Filtered)
		for _, ex := range r.Trace.Examples {
			fmt.Fprintf(tw, "unparseable line\t%d: %s\n", ex.Line, ex.Reason)
		}
	}
	for m, n := range r.Errors.OtherExamples {
		fmt.Fprintf(tw, "other error\t%d × %s\n", n, m)
	}
	for _, m := range r.Limits.Messages {
		fmt.Fprintf(tw, "note\t%s\n", m)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: write summary: %w", err)
	}
	return nil
}

// WriteComparison writes the reports side by side, one column each, headed
// by names.
func WriteComparison(w io.Writer, names []string, reports []*Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%s\n", strings.Join(names, "\t"))
	cells := make([]string, len(reports))
	for i, r := range reports {
		cells[i] = r.Kind + " " + r.Target
	}
	fmt.Fprintf(tw, "run\t%s\n", strings.Join(cells, "\t"))
	for _, row := range tableRows {
		for i, r := range reports {
			cells[i] = row.cell(r)
		}
		fmt.Fprintf(tw, "%s\t%s\n", row.name, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: write comparison: %w", err)
	}
	return nil
}
