package bench

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// ReplayConfig configures a replay run.
type ReplayConfig struct {
	// Options select and time the trace's requests.
	Options ReplayOptions
	// Run configures the runner.
	Run RunConfig
	// Origin, when set, is the origin's base URL: its metrics give the
	// origin requests.
	Origin string
	// MetricsEvery is the time between readings of the origin's metrics.
	MetricsEvery time.Duration
}

// maxExamples is how many unparseable lines a report quotes.
const maxExamples = 10

// Replay replays the trace read from trace against cfg.Run.Target.
// Unparseable lines are counted and reported, never fatal.
func Replay(ctx context.Context, trace io.Reader, cfg ReplayConfig, log *slog.Logger) (*Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := cfg.Options
	if opts.MaxExamples == 0 {
		opts.MaxExamples = maxExamples
	}
	src, err := NewTraceSource(trace, opts)
	if err != nil {
		return nil, err
	}
	var origin *Origin
	if cfg.Origin != "" {
		if origin, err = NewOrigin(cfg.Origin, "", 10*time.Second); err != nil {
			return nil, err
		}
	}
	rc := cfg.Run
	rc.Logger = log
	runner, err := NewRunner(rc)
	if err != nil {
		return nil, err
	}
	rep, runErr := runMeasured(ctx, runner, src, newOriginPoller(origin, runner, cfg.MetricsEvery, log), nil)
	rep.Kind = "replay"
	st := src.Stats()
	if st.Examples == nil {
		st.Examples = []BadLineNote{}
	}
	rep.Trace = &st
	if runErr == nil {
		runErr = src.Err()
	}
	return rep, runErr
}
