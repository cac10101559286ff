package origin

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxPendingViews bounds the articles with buffered counts between two
// flushes; views of further articles are dropped (and counted), so that a
// flood of beacons for made-up IDs cannot grow memory.
const maxPendingViews = 100_000

// viewCounter buffers view counts in memory; flush writes them to the store
// in one batch every origin.view_flush_interval, so that a read costs no
// database write. Safe for concurrent use.
type viewCounter struct {
	store   Store
	logger  *slog.Logger
	metrics *serverMetrics

	mu      sync.Mutex      // guards pending
	pending map[int64]int64 // article ID → views since the last flush
}

func newViewCounter(st Store, logger *slog.Logger, m *serverMetrics) *viewCounter {
	return &viewCounter{store: st, logger: logger, metrics: m, pending: map[int64]int64{}}
}

// add counts one view of article id.
func (v *viewCounter) add(id int64) {
	v.mu.Lock()
	_, known := v.pending[id]
	full := !known && len(v.pending) >= maxPendingViews
	if !full {
		v.pending[id]++
	}
	v.mu.Unlock()
	if full {
		v.metrics.dropped.Inc()
		return
	}
	v.metrics.views.Inc()
}

// take returns the pending counts and starts a new batch.
func (v *viewCounter) take() map[int64]int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.pending) == 0 {
		return nil
	}
	batch := v.pending
	v.pending = make(map[int64]int64, len(batch))
	return batch
}

// putBack returns a batch that could not be written, within the bound.
func (v *viewCounter) putBack(batch map[int64]int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, n := range batch {
		if _, ok := v.pending[id]; ok || len(v.pending) < maxPendingViews {
			v.pending[id] += n
		}
	}
}

// flush writes the pending counts in one batch.
func (v *viewCounter) flush(ctx context.Context) {
	batch := v.take()
	if batch == nil {
		return
	}
	start := time.Now()
	err := v.store.AddViews(ctx, batch)
	since(v.metrics.query[queryViews], start)
	if err != nil {
		v.metrics.flushErr.Inc()
		v.logger.Error("write view counts", slog.Int("articles", len(batch)), slog.Any("error", err))
		v.putBack(batch)
	}
}

// run flushes every interval until ctx is done, then once more (with its
// own deadline) so that a graceful shutdown loses no counts.
func (v *viewCounter) run(ctx context.Context, interval, finalTimeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			v.flush(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
			defer cancel()
			v.flush(final)
			return
		}
	}
}
