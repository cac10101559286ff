package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lakka-cache/lakka/purge"
)

// Hooks are what a consumer does with the stream.
type Hooks struct {
	// Apply applies one purge. It must be idempotent: a purge may come
	// twice. An error is logged and counted; the message is acknowledged
	// all the same (retrying a purge the edge refuses would stop the
	// stream for every later one).
	Apply func(purge.Message) error
	// Gap soft-purges everything stored: purges were missed. It is called
	// before anything after the gap is applied.
	Gap func(reason string)
	// Applied observes each applied purge and its lag (applied time minus
	// issued time); nil to ignore.
	Applied func(m purge.Message, lag time.Duration)
	// Failed is told of a purge that could not be applied (a bad message,
	// or Apply failed); nil to ignore. The purge counts as applied: an
	// edge treats it as a gap.
	Failed func(err error)
	// Positioned is called once, when the consumer knows where it starts:
	// created is true when there was no consumer and it was made at the
	// stream's end (purges published before that are not applied: what
	// the edge stored before must be treated as a gap would be); nil to
	// ignore.
	Positioned func(created bool)
}

// Status is a consumer's state.
type Status struct {
	// Connected says the bus connection is up.
	Connected bool `json:"connected"`
	// CaughtUp says the consumer has applied everything the stream held
	// when it looked last.
	CaughtUp bool `json:"caught_up"`
	// Applied is the stream sequence of the last purge applied (or of the
	// position the consumer started from).
	Applied uint64 `json:"applied"`
	// Pending is the purges known still to apply.
	Pending uint64 `json:"pending"`
	// Gaps counts the gaps found.
	Gaps uint64 `json:"gaps"`
}

// Consumer applies the stream's purges on one edge, in stream order, as
// the durable consumer named by its node id, and keeps its entry in the
// members bucket fresh.
type Consumer struct {
	b     *Bus
	self  Member
	h     Hooks
	log   *slog.Logger
	kick  chan struct{} // write the member entry now
	done  chan struct{}
	ready chan struct{} // closed once caught up the first time
	// placed is closed once the consumer's position is known.
	placed chan struct{}

	mu sync.Mutex
	st Status
	// positioned says st.Applied is known: from the consumer found at
	// start, or the stream's end when there was none.
	positioned bool
	// streamCreated identifies the stream st.Applied counts in.
	streamCreated time.Time
	// reposition says the consumer must be made again after st.Applied
	// (purges were delivered out of order).
	reposition bool
	// checkFloor says the position came from outside (ConsumeFrom): the
	// durable consumer, if there is one, must start right after it.
	checkFloor bool
	member     Member // self, with the last applied purge
	readyOne   sync.Once
}

// Position is a place in the purge stream: the last purge applied, in the
// stream created at Stream. A cache written to a snapshot records it, so
// that the next process applies every purge after it.
type Position struct {
	Stream  time.Time `json:"stream_created"`
	Applied uint64    `json:"applied"`
}

// Known reports whether p names a place (the zero Position does not).
func (p Position) Known() bool { return !p.Stream.IsZero() }

// Position returns where the consumer stands: the last purge applied and
// the stream it counts in; not Known before the consumer has seen the
// stream.
func (c *Consumer) Position() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.positioned || c.streamCreated.IsZero() {
		return Position{}
	}
	return Position{Stream: c.streamCreated, Applied: c.st.Applied}
}

// Consume starts consuming for the edge self (NodeID set) until ctx ends;
// Wait waits for it to let go (its member entry removed).
func (b *Bus) Consume(ctx context.Context, self Member, h Hooks, log *slog.Logger) *Consumer {
	return b.ConsumeFrom(ctx, self, h, log, Position{})
}

// ConsumeFrom is Consume for an edge whose cache is as of from (loaded
// from a snapshot): it applies every purge after from.Applied, whatever
// position its durable consumer holds, and a stream made again since, or
// purges after from that already left the stream, are a gap. A from that
// is not Known is Consume.
func (b *Bus) ConsumeFrom(ctx context.Context, self Member, h Hooks, log *slog.Logger, from Position) *Consumer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{
		b: b, self: self, h: h, log: log,
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
		placed: make(chan struct{}),
	}
	c.member = self
	if from.Known() {
		c.streamCreated, c.member.Stream = from.Stream, from.Stream
		c.checkFloor = true
		c.setPosition(from.Applied, false)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.run(ctx) }()
	go func() { defer wg.Done(); c.announce(ctx) }()
	go func() { wg.Wait(); close(c.done) }()
	return c
}

// Wait returns once the consumer stopped (after its context ended).
func (c *Consumer) Wait() { <-c.done }

// CaughtUp is closed once the consumer has applied every purge the stream
// held when it started (or found the stream empty).
func (c *Consumer) CaughtUp() <-chan struct{} { return c.ready }

// Placed is closed once the consumer knows its position in the stream.
func (c *Consumer) Placed() <-chan struct{} { return c.placed }

// Status returns the consumer's state now.
func (c *Consumer) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Connected = c.b.Connected()
	return st
}

// durable is the consumer's name on the stream.
func (c *Consumer) durable() string { return c.self.NodeID }

func (c *Consumer) run(ctx context.Context) {
	wait := 250 * time.Millisecond
	for ctx.Err() == nil {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("purge bus consumer", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
		if err == nil {
			wait = 250 * time.Millisecond
		}
	}
}

// session consumes until an error (the connection or the consumer lost).
func (c *Consumer) session(ctx context.Context) error {
	s, err := c.b.stream(ctx)
	if err != nil {
		return err
	}
	if err := c.checkStream(s.CachedInfo()); err != nil {
		return err
	}
	cons, err := c.consumer(ctx, s)
	if err != nil {
		return err
	}
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 && info.NumAckPending == 0 {
		if err := c.checkGap(ctx, s); err != nil {
			return err
		}
		c.caughtUp()
	}
	lastCheck := time.Time{}
	for ctx.Err() == nil {
		if time.Since(lastCheck) >= 2*time.Second {
			if err := c.checkGap(ctx, s); err != nil {
				return err
			}
			lastCheck = time.Now()
		}
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if err := c.handle(ctx, s, msg); err != nil {
				c.mu.Lock()
				c.reposition = true
				c.mu.Unlock()
				for range batch.Messages() { // the rest comes again
				}
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("fetch: %w", err)
		}
		if n == 0 {
			// Nothing came: caught up only if the server says so (a
			// fetch also ends empty when the server is paused or the
			// connection dropped).
			info, err := cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("consumer %s: %w", c.durable(), err)
			}
			if info.NumPending == 0 && info.NumAckPending == 0 {
				c.mu.Lock()
				c.st.Pending = 0
				c.mu.Unlock()
				c.caughtUp()
			}
		}
	}
	return nil
}

// consumer returns the durable consumer, creating it when it does not
// exist: at the stream's end for a consumer new to this process (nothing
// stored yet can be stale), after the last applied purge for one lost
// while the process ran. A consumer with purges delivered but not
// acknowledged (its previous process died) is recreated at its
// acknowledged position, so they come again now rather than after the
// acknowledgement wait.
func (c *Consumer) consumer(ctx context.Context, s jetstream.Stream) (jetstream.Consumer, error) {
	cons, err := s.Consumer(ctx, c.durable())
	c.mu.Lock()
	positioned, applied, reposition, checkFloor := c.positioned, c.st.Applied, c.reposition, c.checkFloor
	c.reposition = false
	if err == nil {
		c.checkFloor = false
	}
	c.mu.Unlock()
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if !positioned {
			applied = info.AckFloor.Stream
			c.setPosition(applied, false)
		}
		if checkFloor && info.AckFloor.Stream != applied {
			// The durable consumer stands elsewhere than the cache:
			// start again after the cache's position.
			c.log.Info("purge bus: consumer moved to the snapshot's position", "consumer", c.durable(), "was", info.AckFloor.Stream, "applied", applied)
			reposition = true
		}
		if info.NumAckPending == 0 && !reposition {
			return cons, nil
		}
		if err := s.DeleteConsumer(ctx, c.durable()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("consumer %s: %w", c.durable(), err)
		}
		return c.create(ctx, s, applied+1)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if positioned {
			c.log.Warn("purge bus consumer was lost: recreating it after the last purge applied", "consumer", c.durable(), "applied", applied)
			return c.create(ctx, s, applied+1)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", c.b.cfg.Stream, err)
		}
		cons, err := c.create(ctx, s, info.State.LastSeq+1)
		if err != nil {
			return nil, err
		}
		c.setPosition(info.State.LastSeq, true)
		return cons, nil
	default:
		return nil, fmt.Errorf("consumer %s: %w", c.durable(), err)
	}
}

// setPosition sets where the consumer starts, the first time it knows.
func (c *Consumer) setPosition(applied uint64, created bool) {
	c.mu.Lock()
	c.st.Applied, c.positioned = applied, true
	c.mu.Unlock()
	if c.h.Positioned != nil {
		c.h.Positioned(created)
	}
	close(c.placed)
}

func (c *Consumer) create(ctx context.Context, s jetstream.Stream, start uint64) (jetstream.Consumer, error) {
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       c.durable(),
		Description:   "Lakka edge " + c.self.NodeID,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   max(start, 1),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       10 * time.Second,
		MaxAckPending: 1024,
		FilterSubject: c.b.cfg.Subject,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", c.durable(), err)
	}
	return cons, nil
}

// checkGap compares the applied position with the stream: purges after it
// that already left the stream (retention) are a gap.
func (c *Consumer) checkGap(ctx context.Context, s jetstream.Stream) error {
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.b.cfg.Stream, err)
	}
	if err := c.checkStream(info); err != nil {
		return err
	}
	c.mu.Lock()
	applied := c.st.Applied
	c.mu.Unlock()
	first, last := info.State.FirstSeq, info.State.LastSeq
	if first > applied+1 && last > applied {
		c.gap(fmt.Sprintf("purges %d to %d left the stream before they were applied", applied+1, first-1), first-1)
	}
	return nil
}

// errStreamReset ends a session whose stream was deleted and made again.
var errStreamReset = errors.New("the purge stream was recreated")

// checkStream compares the stream with the one the consumer has been
// reading (its creation time): a stream made again (its store lost, or
// deleted) numbers from 1 again, and whatever the old one held after the
// applied position may be lost. That is a gap; the position starts over
// at the new stream's beginning.
func (c *Consumer) checkStream(info *jetstream.StreamInfo) error {
	if info == nil {
		return nil
	}
	c.mu.Lock()
	known := c.streamCreated
	if known.IsZero() {
		c.streamCreated = info.Created
		c.member.Stream = info.Created
	}
	c.mu.Unlock()
	if known.IsZero() || known.Equal(info.Created) {
		return nil
	}
	c.gap(fmt.Sprintf("the stream was recreated at %s", info.Created.Format(time.RFC3339)), 0)
	c.mu.Lock()
	c.streamCreated = info.Created
	c.member.Stream = info.Created
	c.st.Applied = 0
	c.st.CaughtUp = false
	c.mu.Unlock()
	return errStreamReset
}

// gap reports missed purges and moves the position past them.
func (c *Consumer) gap(reason string, to uint64) {
	c.log.Warn("purge bus gap: soft-purging everything stored", "node", c.self.NodeID, "reason", reason)
	if c.h.Gap != nil {
		c.h.Gap(reason)
	}
	c.mu.Lock()
	c.st.Gaps++
	if c.st.Applied < to {
		c.st.Applied = to
	}
	c.member.Gaps = c.st.Gaps
	c.mu.Unlock()
}

// handle applies one delivered message, in order, then acknowledges it.
func (c *Consumer) handle(ctx context.Context, s jetstream.Stream, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		c.fail(fmt.Errorf("message without metadata: %w", err))
		_ = msg.Term()
		return nil
	}
	seq := md.Sequence.Stream
	c.mu.Lock()
	applied := c.st.Applied
	c.mu.Unlock()
	if seq <= applied {
		_ = msg.Ack() // delivered again: applied already
		return nil
	}
	if seq > applied+1 {
		// Purges before this one were skipped: they left the stream (a
		// gap), or they went to a fetch that was given up (a paused or
		// slow server) and wait for redelivery. Never apply out of order:
		// in the second case, start again after the last applied.
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", c.b.cfg.Stream, err)
		}
		if info.State.FirstSeq <= applied+1 {
			return errOutOfOrder
		}
		c.gap(fmt.Sprintf("purges %d to %d left the stream before they were applied", applied+1, seq-1), seq-1)
	}
	var m purge.Message
	if err := json.Unmarshal(msg.Data(), &m); err != nil {
		c.fail(fmt.Errorf("purge %d: bad message: %w", seq, err))
	} else if err := m.Check(); err != nil {
		c.fail(fmt.Errorf("purge %d (%s): %w", seq, m.ID, err))
	} else if err := c.h.Apply(m); err != nil {
		c.fail(fmt.Errorf("purge %d (%s): %w", seq, m.ID, err))
	}
	_ = msg.Ack()
	now := time.Now()
	issued := m.IssuedAt
	if issued.IsZero() {
		issued = md.Timestamp
	}
	lag := max(now.Sub(issued), 0)
	c.mu.Lock()
	c.st.Applied = seq
	c.st.Pending = md.NumPending
	c.member.AppliedID = m.ID
	c.member.AppliedAt = now
	c.member.Lag = lag
	c.mu.Unlock()
	if c.h.Applied != nil && m.ID != "" {
		c.h.Applied(m, lag)
	}
	if md.NumPending == 0 {
		c.caughtUp()
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// errOutOfOrder ends a session that was delivered a purge after one not
// yet applied that is still on the stream: the next session makes the
// consumer again after the last applied purge.
var errOutOfOrder = errors.New("purges delivered out of order: starting again after the last applied")

func (c *Consumer) fail(err error) {
	c.log.Error("purge bus: purge not applied", "err", err)
	if c.h.Failed != nil {
		c.h.Failed(err)
	}
}

func (c *Consumer) caughtUp() {
	c.mu.Lock()
	first := !c.st.CaughtUp
	c.st.CaughtUp = true
	c.mu.Unlock()
	c.readyOne.Do(func() { close(c.ready) })
	if first {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// announce keeps the member entry fresh: every RefreshEvery, and at once
// after purges were applied. It removes the entry when ctx ends.
func (c *Consumer) announce(ctx context.Context) {
	var kv jetstream.KeyValue
	tick := time.NewTicker(RefreshEvery)
	defer tick.Stop()
	for {
		if kv == nil && c.b.Connected() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			kv, _ = c.b.members(cctx)
			cancel()
		}
		if kv != nil {
			c.mu.Lock()
			m := c.member
			m.Applied, m.Pending, m.Gaps, m.Ready = c.st.Applied, c.st.Pending, c.st.Gaps, c.st.CaughtUp
			c.mu.Unlock()
			b, _ := json.Marshal(m)
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if _, err := kv.Put(cctx, c.self.NodeID, b); err != nil && ctx.Err() == nil && c.b.Connected() {
				c.log.Debug("purge bus: member entry not written", "err", err)
				kv = nil // the bucket may have gone: make it again
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			if kv != nil {
				dctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = kv.Delete(dctx, c.self.NodeID)
				cancel()
			}
			return
		case <-tick.C:
		case <-c.kick:
		}
	}
}
