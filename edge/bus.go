package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakka-cache/lakka/edge/internal/store"
	"github.com/lakka-cache/lakka/purge"
	"github.com/lakka-cache/lakka/purge/bus"
)

// purgeBus is the edge's side of the purge bus (purge.bus.url): the
// consumer that applies every purge of the stream, and the publisher of
// the purges this edge is sent (its purge API and the PURGE method), so
// that a purge sent to one edge reaches all.
type purgeBus struct {
	b    *bus.Bus
	node string
	// ready turns true once the consumer caught up with the stream, or
	// when purge.bus.catch_up_timeout passed without the bus.
	ready atomic.Bool
	// hooks and self are what a consumer is started with (again after a
	// pause, see PauseBus).
	hooks bus.Hooks
	self  bus.Member
	log   *slog.Logger
	// from is the position of a cache loaded from a snapshot, for the
	// first consumer only.
	from bus.Position

	mu     sync.Mutex // guards cons, cancel
	cons   *bus.Consumer
	cancel context.CancelFunc
	done   chan struct{} // closed by stop
}

// consume starts a consumer.
func (pb *purgeBus) consume() *bus.Consumer {
	ctx, cancel := context.WithCancel(context.Background())
	pb.mu.Lock()
	from := pb.from
	pb.from = bus.Position{}
	pb.mu.Unlock()
	c := pb.b.ConsumeFrom(ctx, pb.self, pb.hooks, pb.log, from)
	pb.mu.Lock()
	pb.cons, pb.cancel = c, cancel
	pb.mu.Unlock()
	return c
}

// consumer is the current consumer (a stopped one while paused).
func (pb *purgeBus) consumer() *bus.Consumer {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.cons
}

// pause stops consuming (the member entry goes) until consume is called
// again.
func (pb *purgeBus) pause() {
	pb.mu.Lock()
	c, cancel := pb.cons, pb.cancel
	pb.mu.Unlock()
	cancel()
	c.Wait()
}

// startBus connects to the bus and starts consuming; the edge reports not
// ready (/healthz 503) until the consumer has applied what the stream
// holds for it. A bus that cannot be reached does not stop the edge: the
// connection is retried, and after purge.bus.catch_up_timeout the edge
// serves anyway (an empty cache has nothing a missed purge could concern;
// it catches up when the bus returns).
func (s *Server) startBus() error {
	cfg := s.cfg.Purge.Bus
	pb := &purgeBus{node: bus.NodeName(s.cfg.Edge.NodeID), done: make(chan struct{}), from: s.snapshotFrom}
	b, err := bus.Connect(cfg, bus.Options{
		Name:  "lakka edge " + pb.node,
		Retry: true,
		Log:   s.log,
		OnState: func(up bool) {
			if up {
				s.m.busConnected.Set(1)
			} else {
				s.m.busConnected.Set(0)
			}
		},
	})
	if err != nil {
		return err
	}
	pb.b = b
	if err := s.checkNodeFree(pb); err != nil {
		b.Close()
		return err
	}
	pb.self = bus.Member{NodeID: pb.node, Zone: s.cfg.Edge.Zone, Admin: s.AdminAddr()}
	if s.cluster != nil {
		pb.self.Cluster = s.cluster.self.Addr
		if len(s.cfg.Cluster.Peers) == 0 {
			go s.cluster.watchMembers(pb)
		}
	}
	pb.log = s.log
	pb.hooks = bus.Hooks{
		Apply: func(m purge.Message) error {
			p, err := s.purger.compile(m)
			if err != nil {
				return err
			}
			s.purger.apply(p, m.ID, m.Issuer)
			return nil
		},
		Gap: func(reason string) {
			s.m.busGaps.Inc()
			n := s.purger.apply(store.Purge{All: true, Soft: true}, "", "purge bus gap")
			s.log.Warn("purge bus gap: every stored object marked stale", "objects", n, "reason", reason)
		},
		Applied: func(_ purge.Message, lag time.Duration) {
			s.m.busLag.Observe(lag.Seconds())
			if s.busApplied != nil {
				s.busApplied(lag)
			}
		},
		Failed: func(err error) {
			// A purge this edge cannot apply may have concerned anything
			// it stores: treat it as a gap.
			s.m.busApplyErrors.Inc()
			n := s.purger.apply(store.Purge{All: true, Soft: true}, "", "purge bus: unusable purge")
			s.log.Warn("purge bus: a purge could not be applied; every stored object marked stale", "objects", n, "err", err)
		},
		Positioned: func(created bool) {
			// A consumer made at the stream's end applies nothing
			// published before: if the edge stored objects before that
			// (the bus was unreachable at start), a purge may have
			// concerned them.
			if objects, _ := s.store.Size(); created && objects > 0 {
				s.m.busGaps.Inc()
				n := s.purger.apply(store.Purge{All: true, Soft: true}, "", "purge bus start")
				s.log.Warn("purge bus: consumer created after the edge stored objects; every stored object marked stale", "objects", n)
			}
		},
	}
	cons := pb.consume()
	s.bus = pb
	// Serve only once the position is known (normally milliseconds), so
	// that nothing is stored before it; without the bus, Positioned
	// covers what is stored meanwhile.
	select {
	case <-cons.Placed():
	case <-time.After(2 * time.Second):
		s.log.Warn("purge bus: no position after 2s; serving, and anything stored before it will be marked stale", "bus", cfg.URL)
	}
	go func() {
		t := time.NewTimer(cfg.CatchUpTimeout)
		defer t.Stop()
		for {
			select {
			case <-cons.CaughtUp():
				s.log.Info("purge bus: caught up", "node", pb.node, "applied", cons.Status().Applied)
			case <-t.C:
				if pb.b.Connected() {
					// Reachable and catching up: a large backlog takes
					// its time; readiness waits for it.
					s.log.Warn("purge bus: still catching up", "node", pb.node, "applied", cons.Status().Applied, "pending", cons.Status().Pending)
					t.Reset(cfg.CatchUpTimeout)
					continue
				}
				s.m.busCatchUpTimeouts.Inc()
				s.log.Warn("purge bus unreachable for purge.bus.catch_up_timeout; serving without having caught up", "node", pb.node, "bus", cfg.URL, "timeout", cfg.CatchUpTimeout)
				if s.snapshotLoaded {
					// Purges issued since the snapshot cannot be
					// applied: what it held is stale (promise 12).
					s.m.busGaps.Inc()
					n := s.purger.apply(store.Purge{All: true, Soft: true}, "", "purge bus unreachable after loading a snapshot")
					s.log.Warn("purge bus: the objects loaded from the snapshot were marked stale", "objects", n)
				}
			case <-pb.done:
				return
			}
			pb.ready.Store(true)
			return
		}
	}()
	s.log.Info("purge bus", "url", cfg.URL, "node", pb.node, "zone", s.cfg.Edge.Zone, "stream", cfg.Stream)
	return nil
}

// checkNodeFree refuses to start as a node id another live edge uses:
// the two would share one durable consumer, each applying only part of
// the purges. (Without the bus at start, there is nothing to check.)
func (s *Server) checkNodeFree(pb *purgeBus) error {
	if !pb.b.Connected() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ms, err := pb.b.Members(ctx)
	if err != nil {
		return nil // the consumer will report the bus's trouble
	}
	now := time.Now()
	for _, m := range ms {
		if m.NodeID == pb.node && m.Live(now) && m.Admin != s.AdminAddr() {
			return fmt.Errorf("edge.node_id %q is in use by the live edge with admin address %s (on the purge bus %s): every edge needs its own node id", pb.node, m.Admin, s.cfg.Purge.Bus.URL)
		}
	}
	return nil
}

// stop stops consuming (the member entry is removed) and closes the
// connection.
func (pb *purgeBus) stop() {
	close(pb.done)
	pb.pause()
	pb.b.Close()
}

// PauseBus stops consuming the purge bus, so that another process may
// take over this node's durable consumer (an upgrade: two processes must
// never read one consumer at once); ResumeBus starts again (the upgrade
// failed). Without a bus they do nothing.
func (s *Server) PauseBus() {
	if s.bus != nil {
		s.bus.pause()
		s.log.Info("purge bus: paused for a hand-over", "node", s.bus.node)
	}
}

// ResumeBus starts consuming again after PauseBus.
func (s *Server) ResumeBus() {
	if s.bus != nil {
		s.bus.consume()
		s.log.Info("purge bus: resumed", "node", s.bus.node)
	}
}

// waitCaughtUp returns once the bus lets the edge serve, or it drains.
func (s *Server) waitCaughtUp() {
	start := time.Now()
	for !s.busReady() && !s.draining.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	s.log.Info("purge bus: caught up after loading the snapshot; serving", "waited", time.Since(start))
}

// busReady reports whether the bus lets the edge serve: true without one.
func (s *Server) busReady() bool { return s.bus == nil || s.bus.ready.Load() }

// publishTimeout bounds publishing a purge the edge was sent.
const publishTimeout = 2 * time.Second

// publish sends a purge this edge applied to the bus, so that every other
// edge applies it too; it returns what the answer says of it: "published",
// "duplicate" (the bus had its id), "failed: ..." or "" without a bus.
func (s *Server) publish(m purge.Message) string {
	if s.bus == nil {
		return ""
	}
	if m.ID == "" {
		m.ID = bus.NewID("edge-" + s.bus.node)
	}
	if m.Issuer == "" {
		m.Issuer = "edge " + s.bus.node
	}
	if m.IssuedAt.IsZero() {
		m.IssuedAt = time.Now()
	}
	if !s.bus.b.Connected() {
		s.m.busPublishes.WithLabelValues("error").Inc()
		s.log.Error("purge bus: not connected; purge applied on this edge only", "id", m.ID, "bus", s.cfg.Purge.Bus.URL)
		return "failed: not connected to the purge bus " + s.cfg.Purge.Bus.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	p, err := s.bus.b.Publish(ctx, m)
	switch {
	case err != nil:
		s.m.busPublishes.WithLabelValues("error").Inc()
		s.log.Error("purge bus: publish failed; applied on this edge only", "id", m.ID, "err", err)
		return "failed: " + err.Error()
	case p.Duplicate:
		s.m.busPublishes.WithLabelValues("duplicate").Inc()
		return "duplicate"
	default:
		s.m.busPublishes.WithLabelValues("ok").Inc()
		return "published"
	}
}

// Ready reports whether the edge serves and would answer /healthz 200:
// not draining, and caught up with the purge bus when it has one.
func (s *Server) Ready() bool { return !s.draining.Load() && s.busReady() }
