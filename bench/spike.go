package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// SpikeInfo describes the article of a spike run.
type SpikeInfo struct {
	ArticleID   int64   `json:"article_id"`
	ArticleURL  string  `json:"article_url"`
	SectionURL  string  `json:"section_url"`
	PublishedS  float64 `json:"published_s"`
	EditErrors  int64   `json:"edit_errors"`
	URLsInModel int     `json:"urls"`
}

// SpikeConfig configures a spike run.
type SpikeConfig struct {
	// Model is the workload; when Model.Paths is empty the origin's sitemap
	// is read.
	Model SpikeModel
	// Run configures the runner; Duration and URLTableSize are taken from
	// the model.
	Run RunConfig
	// Origin is the origin's base URL (API, sitemap, metrics).
	Origin string
	// OriginToken authenticates the origin's API (LAKKA_ORIGIN_TOKEN).
	OriginToken string
	// EditEvery is the time between edits of the article during the spike;
	// 0 makes no edit.
	EditEvery time.Duration
	// Section is the path of the section the article is published in;
	// empty picks the first top-level section.
	Section string
	// MetricsEvery is the time between readings of the origin's metrics.
	MetricsEvery time.Duration
}

// Spike runs a modelled breaking-news spike against cfg.Run.Target and
// returns its report. Publishing and editing go to the origin's API; a
// failed publication ends the run with an error, a failed edit is counted.
func Spike(ctx context.Context, cfg SpikeConfig, log *slog.Logger) (*Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	origin, err := NewOrigin(cfg.Origin, cfg.OriginToken, 10*time.Second)
	if err != nil {
		return nil, err
	}
	m := cfg.Model
	if len(m.Paths) == 0 {
		if m.Paths, err = origin.SitemapPaths(ctx); err != nil {
			return nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var section Section
	if m.HasSpike() {
		if cfg.OriginToken == "" {
			return nil, errors.New("bench: LAKKA_ORIGIN_TOKEN is not set: the spike publishes its article through the origin's API")
		}
		if section, err = pickSection(ctx, origin, cfg.Section); err != nil {
			return nil, err
		}
	}

	rc := cfg.Run
	rc.Duration = m.Duration
	rc.URLTableSize = m.URLTableSize()
	rc.Logger = log
	runner, err := NewRunner(rc)
	if err != nil {
		return nil, err
	}
	slots := NewSpikeSlots()
	src, err := m.Source(slots)
	if err != nil {
		return nil, err
	}

	info := &SpikeInfo{URLsInModel: len(m.Paths), SectionURL: section.Path}
	var controller func(stop <-chan struct{})
	if m.HasSpike() {
		controller = func(stop <-chan struct{}) {
			spikeController(ctx, stop, origin, runner, m, cfg.EditEvery, section, slots, info, log)
		}
	}
	rep, runErr := runMeasured(ctx, runner, src, newOriginPoller(origin, runner, cfg.MetricsEvery, log), controller)
	rep.Kind = "spike"
	if m.HasSpike() {
		rep.Spike = info
	}
	return rep, runErr
}

// runMeasured runs src on runner while poll samples the origin and
// background (when set) works alongside; both are told to stop when the run
// ends, and the report is built after the last origin sample.
func runMeasured(ctx context.Context, runner *Runner, src Source, poll *originPoller, background func(stop <-chan struct{})) (*Report, error) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// The baseline sample is taken before the first request can reach the
	// origin; the schedule starts after it.
	poll.sample(ctx)
	runner.start = time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		poll.run(ctx, stop)
	}()
	if background != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			background(stop)
		}()
	}
	err := runner.Run(ctx, src)
	close(stop)
	wg.Wait()
	poll.final(ctx)
	return runner.Report(), err
}

// pickSection finds the section by path, or the first top-level one.
func pickSection(ctx context.Context, o *Origin, path string) (Section, error) {
	secs, err := o.Sections(ctx)
	if err != nil {
		return Section{}, err
	}
	for _, s := range secs {
		if path == "" && s.Parent == nil || path != "" && s.Path == path {
			return s, nil
		}
	}
	if path != "" {
		return Section{}, fmt.Errorf("bench: the origin has no section %q", path)
	}
	if len(secs) == 0 {
		return Section{}, errors.New("bench: the origin has no section")
	}
	return secs[0], nil
}

// spikeController publishes the article at the spike and edits it every
// editEvery until the run's schedule ends or stop is closed. It owns the
// slots: they are set or failed exactly once.
func spikeController(ctx context.Context, stop <-chan struct{}, o *Origin, r *Runner, m SpikeModel,
	editEvery time.Duration, section Section, slots SpikeSlots, info *SpikeInfo, log *slog.Logger) {
	fail := func(err error) {
		slots.Article.Fail(err)
		slots.Section.Fail(err)
	}
	if !waitFor(ctx, stop, time.Until(r.Start().Add(m.SpikeAt))) {
		fail(errors.New("bench: the run ended before the spike"))
		return
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	a, err := o.Publish(ctx, ArticleInput{
		Section: section.ID,
		Title:   "Breaking: lakka bench spike " + stamp,
		Lead:    "A developing story, published by lakka bench to model a breaking-news spike.",
		Body:    "First report. More details to follow.",
	})
	if err != nil {
		fail(fmt.Errorf("bench: publish the spike's article: %w", err))
		return
	}
	p, ok := pathOf(a.URL)
	if !ok {
		fail(fmt.Errorf("bench: the published article has no usable url %q", a.URL))
		return
	}
	info.ArticleID, info.ArticleURL = a.ID, p
	info.PublishedS = round3(time.Since(r.Start()).Seconds())
	slots.Article.Set(p)
	slots.Section.Set(section.Path)
	log.LogAttrs(ctx, slog.LevelInfo, "bench spike published", slog.Int64("article_id", a.ID), slog.String("url", p))
	if editEvery <= 0 {
		return
	}
	end := r.Start().Add(m.Duration)
	for n := 1; ; n++ {
		next := r.Start().Add(m.SpikeAt + time.Duration(n)*editEvery)
		if !next.Before(end) || !waitFor(ctx, stop, time.Until(next)) {
			return
		}
		e, err := o.Edit(ctx, a.ID, ArticleInput{Body: "Update " + strconv.Itoa(n) + ": the story develops (" + stamp + ")."})
		answered := time.Now()
		if err != nil {
			info.EditErrors++
			log.LogAttrs(ctx, slog.LevelWarn, "bench edit failed", slog.Int("edit", n), slog.Any("err", err))
			continue
		}
		r.RecordEdit(answered, e.Version)
	}
}

// waitFor waits d; false when ctx is done or stop is closed first.
func waitFor(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// originPoller samples the origin's request counter.
type originPoller struct {
	o      *Origin
	r      *Runner
	every  time.Duration
	log    *slog.Logger
	broken bool // the metric could not be read: stop trying
}

func newOriginPoller(o *Origin, r *Runner, every time.Duration, log *slog.Logger) *originPoller {
	if every <= 0 {
		every = time.Second
	}
	return &originPoller{o: o, r: r, every: every, log: log}
}

func (p *originPoller) sample(ctx context.Context) {
	if p.o == nil || p.broken {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.every)
	defer cancel()
	v, err := p.o.RequestsTotal(ctx)
	if err != nil {
		p.broken = true
		p.log.LogAttrs(ctx, slog.LevelWarn, "bench origin metrics unavailable; origin requests not measured", slog.Any("err", err))
		return
	}
	p.r.RecordOriginSample(time.Now(), v)
}

// run samples every p.every until stop is closed.
func (p *originPoller) run(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.sample(ctx)
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// final takes the last sample after the run, even when ctx was cancelled
// (bounded by its own timeout).
func (p *originPoller) final(ctx context.Context) {
	p.sample(context.WithoutCancel(ctx))
}

// IsLoopback reports whether rawURL's host is a loopback address, or a name
// whose every address is one.
func IsLoopback(ctx context.Context, rawURL string) (bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false, fmt.Errorf("bench: %q: %w", rawURL, err)
	}
	host := u.Hostname()
	if host == "" {
		return false, fmt.Errorf("bench: %q: no host", rawURL)
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, fmt.Errorf("bench: resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}
