package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/edge/internal/store"
	"github.com/lakka-cache/lakka/purge/bus"
)

// Cache snapshots (cache.snapshot_path): the store written to a file on
// the way down and loaded by the next process, so that a restart or an
// upgrade keeps the cache, with Age still counting.
//
// Purges and snapshots: the file records the purge bus position of the
// cache (the last purge applied; the consumer stops before the file is
// written). The next process loads the file, consumes from that position
// and serves nothing before it has caught up, so no object a purge
// removed while no process was consuming is served. Without a position a
// bus could vouch for (no bus when written, or the bus never reached),
// an edge with a bus marks what it loaded stale. While an upgrade hands
// the cache over, purges sent to this process's purge API or PURGE are
// refused with 503 and Retry-After (the file is already written; the new
// process would not see them), so their senders send them again to the
// process that serves next.

// snapshotMeta is the snapshot's metadata, as JSON.
type snapshotMeta struct {
	Node    string        `json:"node_id"`
	Written time.Time     `json:"written"`
	Bus     *bus.Position `json:"bus,omitempty"`
}

// checkSnapshotPath refuses a cache.snapshot_path the edge could not
// write at the end (checked at start, not by config check: the package
// ships a path whose directory exists only once installed).
func checkSnapshotPath(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("cache.snapshot_path: %s is a directory: name the snapshot file in it", path)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("cache.snapshot_path: the directory %s does not exist", filepath.Dir(path))
	}
	return nil
}

// loadSnapshot loads cache.snapshot_path, if there is one, before the edge
// serves. A file that cannot be used is renamed with ".refused" appended
// (for a look, and so that the next start does not trip over it again) and
// the edge starts empty; a loaded file is removed, so that a later crash
// does not bring back objects older than what the process served since.
func (s *Server) loadSnapshot() {
	path := s.cfg.Cache.SnapshotPath
	if path == "" {
		return
	}
	start := time.Now()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Info("cache snapshot: none to load; starting empty", "path", path)
		return
	}
	if err != nil {
		s.snapshotRefused(path, err)
		return
	}
	l, err := s.store.ReadSnapshot(f, s.now())
	f.Close()
	var meta snapshotMeta
	if err == nil {
		if jerr := json.Unmarshal(l.Meta, &meta); jerr != nil {
			l.Discard()
			err = fmt.Errorf("%w: its metadata: %v", store.ErrSnapshot, jerr)
		}
	}
	if err != nil {
		s.snapshotRefused(path, err)
		return
	}
	n := l.Store(s.store)
	if err := os.Remove(path); err != nil {
		s.log.Warn("cache snapshot: loaded, but could not remove the file", "path", path, "err", err)
	}
	took := time.Since(start)
	s.m.snapshotObjects.WithLabelValues("load").Set(float64(n))
	s.m.snapshotSeconds.WithLabelValues("load").Set(took.Seconds())
	s.snapshotLoaded = n > 0
	if meta.Bus != nil {
		s.snapshotFrom = *meta.Bus
	}
	s.log.Info("cache snapshot loaded", "path", path, "objects", n, "not_stored", l.Stats.Objects-n,
		"skipped_expired", l.Stats.Skipped, "bytes", l.Stats.Bytes, "seconds", took.Seconds(),
		"written", meta.Written, "by", meta.Node, "purge_bus_position", meta.Bus)
	if n > 0 && s.cfg.Purge.Bus.URL != "" && !s.snapshotFrom.Known() {
		// The purges this cache missed cannot be told apart: all stale.
		s.m.busGaps.Inc()
		marked := s.purger.apply(store.Purge{All: true, Soft: true}, "", "snapshot without a purge bus position")
		s.log.Warn("cache snapshot has no purge bus position (written without a bus, or before it was reached): every loaded object marked stale", "objects", marked)
	}
}

// snapshotRefused reports a snapshot that cannot be loaded and moves it
// aside.
func (s *Server) snapshotRefused(path string, err error) {
	s.m.snapshotErrors.WithLabelValues("load").Inc()
	aside := path + ".refused"
	if rerr := os.Rename(path, aside); rerr != nil {
		aside = ""
	}
	s.log.Error("cache snapshot refused; starting with an empty cache", "path", path, "err", err, "moved_to", aside)
}

// WriteSnapshot writes the cache to cache.snapshot_path (nothing when it
// is not set): to a temporary file in the same directory, synced, then
// renamed over the path, so that a crash while writing leaves no torn
// file under its name. Call it once the purge bus consumer has stopped
// (PauseBus, or on the way down), so that the position it records is the
// cache's.
func (s *Server) WriteSnapshot() error {
	path := s.g().cfg.Cache.SnapshotPath
	if path == "" {
		return nil
	}
	start := time.Now()
	meta := snapshotMeta{Node: s.cfg.Edge.NodeID, Written: start.UTC()}
	if s.bus != nil {
		if p := s.bus.consumer().Position(); p.Known() {
			meta.Bus = &p
		}
	}
	mb, _ := json.Marshal(meta)
	st, err := s.writeSnapshotFile(path, mb)
	if err != nil {
		s.m.snapshotErrors.WithLabelValues("write").Inc()
		s.log.Error("cache snapshot not written", "path", path, "err", err)
		return fmt.Errorf("cache snapshot %s: %w", path, err)
	}
	took := time.Since(start)
	s.m.snapshotObjects.WithLabelValues("write").Set(float64(st.Objects))
	s.m.snapshotSeconds.WithLabelValues("write").Set(took.Seconds())
	s.log.Info("cache snapshot written", "path", path, "objects", st.Objects, "skipped_expired", st.Skipped,
		"bytes", st.Bytes, "seconds", took.Seconds(), "purge_bus_position", meta.Bus)
	return nil
}

func (s *Server) writeSnapshotFile(path string, meta []byte) (store.SnapshotStats, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return store.SnapshotStats{}, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	st, err := s.store.WriteSnapshot(f, meta, s.now())
	if err != nil {
		return st, err
	}
	if err := f.Sync(); err != nil {
		return st, err
	}
	if err := f.Close(); err != nil {
		return st, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return st, err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename, on disk
		d.Close()
	}
	return st, nil
}

// RemoveSnapshot removes the snapshot an upgrade wrote when the upgrade
// failed: this process keeps serving (and applying purges), and a later
// start must not load a cache older than what it served.
func (s *Server) RemoveSnapshot() {
	if path := s.g().cfg.Cache.SnapshotPath; path != "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cache snapshot: could not remove it after the failed upgrade", "path", path, "err", err)
		}
	}
}

// HoldPurges makes the purge API and PURGE answer 503 with Retry-After
// (true) or serve again (false): an upgrade holds them from writing its
// snapshot until the new process serves, so that no purge applies only to
// the cache being left behind.
func (s *Server) HoldPurges(hold bool) { s.purgesHeld.Store(hold) }

// purgeHeldRetry is the Retry-After of a purge refused during a hand-over.
const purgeHeldRetry = 1

const purgeHeldMsg = "the edge is handing its cache to a new process (an upgrade): send the purge again"

// refusePurgeAPI answers a purge API request during a hand-over; it
// reports whether it did.
func (s *Server) refusePurgeAPI(w http.ResponseWriter) bool {
	if !s.purgesHeld.Load() {
		return false
	}
	s.m.purgeRefusals.WithLabelValues("handover").Inc()
	w.Header().Set("Retry-After", strconv.Itoa(purgeHeldRetry))
	apiError(w, http.StatusServiceUnavailable, purgeHeldMsg)
	return true
}

// refusePurgeMethod answers a PURGE during a hand-over; it reports
// whether it did.
func (r *request) refusePurgeMethod() bool {
	if !r.s.purgesHeld.Load() {
		return false
	}
	r.s.m.purgeRefusals.WithLabelValues("handover").Inc()
	r.ctx.Response.SetStatusCode(fasthttp.StatusServiceUnavailable)
	r.ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(purgeHeldRetry))
	r.ctx.Response.SetBodyString(`{"error":"` + purgeHeldMsg + `"}` + "\n")
	return true
}
