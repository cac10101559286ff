package store

import (
	"time"

	"github.com/lakka-cache/lakka/edge/internal/cachekey"
)

// Purge is one invalidation as the store applies it.
type Purge struct {
	Tags []string
	// URLs are URL keys, or targets ("/path?query") that purge the URL on
	// every host.
	URLs [][]byte
	All  bool
	// Soft marks entries stale instead of removing them.
	Soft bool
}

// Purge applies p and returns the number of objects (responses and
// variants, not markers) it affected. The purge is
// recorded first, so that fetches in flight do not store older objects
// afterwards; then the affected entries are marked (soft: stale from now;
// hard: dead, never served again) and hard-purged ones are handed to the
// reaper, which frees their memory in the background.
func (s *Store) Purge(p Purge, now time.Time) int {
	hosts := s.idx.record(p)
	var affected []*Entry
	for _, t := range p.Tags {
		affected = s.idx.tagged(affected, t)
	}
	for _, u := range p.URLs {
		if len(u) > 0 && u[0] == '/' {
			for _, h := range hosts {
				hu := cachekey.AppendURL(nil, []byte(h), u)
				affected = s.urlEntries(affected, hu)
				affected = s.idx.taggedURL(affected, hu)
			}
			continue
		}
		affected = s.urlEntries(affected, u)
		// Entries keyed by rules (a pool, a device class) under this URL.
		affected = s.idx.taggedURL(affected, u)
	}
	if p.All {
		affected = s.allEntries(affected)
	}
	if len(p.Tags)+len(p.URLs) > 0 || p.All {
		affected = dedupe(affected)
	}
	n := 0
	live := affected[:0]
	for _, e := range affected {
		if e.has(flagDead) {
			// Hard-purged before and not yet reaped: not affected again.
			continue
		}
		e.invalidate(p.Soft, now)
		if e.Kind == KindObject {
			n++
		}
		live = append(live, e)
	}
	if !p.Soft {
		s.reap(live)
	}
	return n
}

// urlEntries appends the entries stored for a URL key: the object, or a
// Vary marker and its variants.
func (s *Store) urlEntries(dst []*Entry, url []byte) []*Entry {
	e := s.Peek(url)
	if e == nil {
		return dst
	}
	dst = append(dst, e)
	if e.Kind == KindVary {
		if vs := e.variantList(); vs != nil {
			dst = append(dst, vs...)
		}
	}
	return dst
}

// allEntries appends every stored entry.
func (s *Store) allEntries(dst []*Entry) []*Entry {
	s.c.IterValues(func(e *Entry) bool {
		dst = append(dst, e)
		return false
	})
	return append(dst, s.win.entries()...)
}

func dedupe(es []*Entry) []*Entry {
	seen := make(map[*Entry]struct{}, len(es))
	out := es[:0]
	for _, e := range es {
		if _, dup := seen[e]; !dup {
			seen[e] = struct{}{}
			out = append(out, e)
		}
	}
	return out
}
