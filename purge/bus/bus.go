// Package bus carries purge messages over NATS JetStream: one stream that
// every publisher (an origin's outbox, "lakka purge", an edge's purge API)
// sends to, a durable consumer per edge that applies them in stream order,
// and a key-value bucket where edges announce themselves and the last
// purge they applied.
//
// Invariants (docs/RELIABILITY.md, promise 12):
//   - a message is published with its id as JetStream's message id, so a
//     purge published twice within the duplicate window is stored once;
//     ids are namespaced by their issuer and never reuse a counter that
//     restarts with a process;
//   - a consumer applies messages in stream order and acknowledges each
//     only after applying it; a message delivered again (an
//     acknowledgement lost) is skipped, since it was applied; a message
//     delivered after one still on the stream but not yet applied (it went
//     to a fetch given up on) makes the consumer start again after the
//     last applied one;
//   - a gap (messages that left the stream before the consumer applied
//     them, or a consumer lost and recreated past them) is never silent:
//     the consumer calls Gap before it applies anything after it.
package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/purge"
)

// LiveFor is how long a member's entry counts as live after its last
// refresh; members refresh theirs every RefreshEvery.
const (
	LiveFor      = 10 * time.Second
	RefreshEvery = time.Second
	// membersTTL is the members bucket's max age: entries of edges gone
	// for good disappear after it (NATS 2.9 has no per-key TTL).
	membersTTL = time.Minute
)

// Bus is a connection to the purge bus.
type Bus struct {
	cfg config.Bus
	nc  *nats.Conn
	js  jetstream.JetStream
}

// Options are how a process connects.
type Options struct {
	// Name is the connection's name, shown by the NATS server.
	Name string
	// Retry keeps trying when the server cannot be reached at first (an
	// edge starts without its bus and catches up later); without it,
	// Connect fails at once (a command that must report the failure).
	Retry bool
	// Log receives connection events; nil discards them.
	Log *slog.Logger
	// OnState is called when the connection goes up (true) or down.
	OnState func(connected bool)
}

// Connect connects to the bus of cfg (cfg.URL set). LAKKA_BUS_TOKEN
// overrides cfg.Token.
func Connect(cfg config.Bus, o Options) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("bus: no URL")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	state := o.OnState
	if state == nil {
		state = func(bool) {}
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(2 * time.Second),
		nats.ConnectHandler(func(*nats.Conn) { state(true) }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("purge bus reconnected", "server", c.ConnectedUrlRedacted())
			state(true)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("purge bus disconnected", "err", err)
			}
			state(false)
		}),
	}
	if o.Retry {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	token := cfg.Token
	if t := os.Getenv("LAKKA_BUS_TOKEN"); t != "" {
		token = t
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case token != "":
		opts = append(opts, nats.Token(token))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("purge bus %s: %w", cfg.URL, err)
	}
	if nc.IsConnected() {
		state(true)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("purge bus %s: %w", cfg.URL, err)
	}
	return &Bus{cfg: cfg, nc: nc, js: js}, nil
}

// Close closes the connection.
func (b *Bus) Close() { b.nc.Close() }

// Connected reports whether the connection is up now.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// URL is the configured server list.
func (b *Bus) URL() string { return b.cfg.URL }

// Ensure creates the stream and the members bucket, or updates them to the
// configuration. Every process that uses the bus calls it: the first one
// creates them.
func (b *Bus) Ensure(ctx context.Context) error {
	if _, err := b.stream(ctx); err != nil {
		return err
	}
	_, err := b.members(ctx)
	return err
}

func (b *Bus) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        b.cfg.Stream,
		Description: "Lakka purges",
		Subjects:    []string{b.cfg.Subject},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      b.cfg.MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DuplicateWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("purge bus %s: stream %s: %w", b.cfg.URL, b.cfg.Stream, err)
	}
	return s, nil
}

func (b *Bus) members(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.cfg.MembersBucket,
		Description: "Lakka edges and the last purge each applied",
		History:     1,
		TTL:         membersTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("purge bus %s: bucket %s: %w", b.cfg.URL, b.cfg.MembersBucket, err)
	}
	return kv, nil
}

// Published is where JetStream stored a message.
type Published struct {
	Seq uint64
	// Duplicate says JetStream had the id already (within the duplicate
	// window): the purge was stored before, at Seq.
	Duplicate bool
}

// Publish stores m on the stream, waiting for JetStream's acknowledgement.
// m.ID must be set (NewID makes one): it is JetStream's message id.
func (b *Bus) Publish(ctx context.Context, m purge.Message) (Published, error) {
	if m.ID == "" {
		return Published{}, errors.New("purge bus: a message needs an id")
	}
	if err := m.Check(); err != nil {
		return Published{}, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return Published{}, err
	}
	ack, err := b.js.Publish(ctx, b.cfg.Subject, body, jetstream.WithMsgID(m.ID), jetstream.WithExpectStream(b.cfg.Stream))
	if err != nil {
		return Published{}, fmt.Errorf("purge bus %s: publish: %w", b.cfg.URL, err)
	}
	return Published{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// NewID returns a message id for a purge issued by issuer, unique without
// any counter: the issuer, then 16 random hex digits.
func NewID(issuer string) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return issuer + ":" + hex.EncodeToString(r[:])
}

// Member is an edge's entry in the members bucket.
type Member struct {
	NodeID  string `json:"node_id"`
	Zone    string `json:"zone,omitempty"`
	Admin   string `json:"admin,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	// Ready is false while the edge catches up with the stream.
	Ready bool `json:"ready"`
	// Applied is the stream sequence of the last purge applied, AppliedID
	// its id, AppliedAt when, and Lag how long after it was issued.
	Applied   uint64        `json:"applied"`
	AppliedID string        `json:"applied_id,omitempty"`
	AppliedAt time.Time     `json:"applied_at,omitzero"`
	Lag       time.Duration `json:"lag_ns"`
	// Pending is how many purges the edge has still to apply.
	Pending uint64 `json:"pending"`
	// Gaps counts the gaps the edge found since it started.
	Gaps uint64 `json:"gaps"`
	// Stream is the creation time of the stream Applied counts in: a
	// stream made again numbers from 1 again.
	Stream time.Time `json:"stream_created,omitzero"`
	// Updated is when the entry was last written (the bucket's time, not
	// the edge's clock).
	Updated time.Time `json:"-"`
}

// Live reports whether m's entry was refreshed within LiveFor of now
// (best taken from the server's clock: StoredAt).
func (m Member) Live(now time.Time) bool { return now.Sub(m.Updated) < LiveFor }

// Members lists every entry in the members bucket, live or not, by node
// id.
func (b *Bus) Members(ctx context.Context) ([]Member, error) {
	kv, err := b.js.KeyValue(ctx, b.cfg.MembersBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("purge bus %s: bucket %s: %w", b.cfg.URL, b.cfg.MembersBucket, err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("purge bus %s: members: %w", b.cfg.URL, err)
	}
	var out []Member
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue
			}
			return nil, fmt.Errorf("purge bus %s: member %s: %w", b.cfg.URL, k, err)
		}
		var m Member
		if err := json.Unmarshal(e.Value(), &m); err != nil {
			continue // not ours
		}
		m.Updated = e.Created()
		out = append(out, m)
	}
	return out, nil
}

// StreamState is where the stream stands.
type StreamState struct {
	First, Last uint64
	// Created identifies the stream (Member.Stream).
	Created time.Time
}

// Head is the stream's state now.
func (b *Bus) Head(ctx context.Context) (StreamState, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return StreamState{}, fmt.Errorf("purge bus %s: stream %s: %w", b.cfg.URL, b.cfg.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return StreamState{}, fmt.Errorf("purge bus %s: stream %s: %w", b.cfg.URL, b.cfg.Stream, err)
	}
	return StreamState{First: info.State.FirstSeq, Last: info.State.LastSeq, Created: info.Created}, nil
}

// StoredAt is when the server stored the message at seq (the server's
// clock, which member entries' times also come from).
func (b *Bus) StoredAt(ctx context.Context, seq uint64) (time.Time, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return time.Time{}, fmt.Errorf("purge bus %s: stream %s: %w", b.cfg.URL, b.cfg.Stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return time.Time{}, fmt.Errorf("purge bus %s: message %d: %w", b.cfg.URL, seq, err)
	}
	return m.Time, nil
}

// NodeName is the node id of an edge configured with id: id itself, or the
// host name with every character NATS does not take in a consumer name
// replaced by "-".
func NodeName(id string) string {
	if id != "" {
		return id
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "edge"
	}
	h = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, h)
	if len(h) > 64 {
		h = h[:64]
	}
	return h
}
