package bus

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/internal/natstest"
	"github.com/lakka-cache/lakka/purge"
)

func testBusConfig(url string) config.Bus {
	c := config.Default().Purge.Bus
	c.URL = url
	return c
}

func connect(t *testing.T, c config.Bus) *Bus {
	t.Helper()
	b, err := Connect(c, Options{Name: t.Name(), Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder is an edge's side for tests: the purges applied, in order, and
// the gaps.
type recorder struct {
	mu      sync.Mutex
	applied []string
	gaps    []string
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Apply: func(m purge.Message) error {
			r.mu.Lock()
			r.applied = append(r.applied, m.ID)
			r.mu.Unlock()
			return nil
		},
		Gap: func(reason string) {
			r.mu.Lock()
			r.gaps = append(r.gaps, reason)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) snapshot() (applied, gaps []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied), slices.Clone(r.gaps)
}

// waitApplied waits until r applied want, exactly and in order.
func (r *recorder) waitApplied(t *testing.T, want []string) {
	t.Helper()
	r.waitAppliedWithin(t, want, 10*time.Second)
}

// waitAppliedWithin is waitApplied with a deadline of its own.
func (r *recorder) waitAppliedWithin(t *testing.T, want []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, _ := r.snapshot()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) || len(got) > len(want) {
			t.Fatalf("applied %d purges %v\nwant %d %v", len(got), got, len(want), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publish(t *testing.T, b *Bus, ids ...string) []Published {
	t.Helper()
	var out []Published
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		p, err := b.Publish(ctx, purge.Message{ID: id, Tags: []string{"t-" + id}, IssuedAt: time.Now(), Issuer: "test"})
		cancel()
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		out = append(out, p)
	}
	return out
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func consume(t *testing.T, b *Bus, node string, r *recorder) (*Consumer, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c := b.Consume(ctx, Member{NodeID: node, Zone: "a", Admin: "127.0.0.1:1"}, r.hooks(), log)
	t.Cleanup(func() { cancel(); c.Wait() })
	select {
	case <-c.CaughtUp():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not caught up after 10s", node)
	}
	return c, func() { cancel(); c.Wait() }
}

// TestPurgesAppliedInOrderAndAnnounced: purges published by two
// publishers reach two consumers, each in stream order; a purge published
// again with the same id is stored once; each edge announces itself and
// the last purge it applied.
func TestPurgesAppliedInOrderAndAnnounced(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	pub1, pub2 := connect(t, c), connect(t, c)
	var r1, r2 recorder
	consume(t, connect(t, c), "e1", &r1)
	consume(t, connect(t, c), "e2", &r2)

	want := ids("p", 0, 100)
	var last Published
	for i, id := range want {
		b := pub1
		if i%2 == 1 {
			b = pub2
		}
		last = publish(t, b, id)[0]
	}
	again := publish(t, pub2, want[len(want)-1])[0]
	if !again.Duplicate || again.Seq != last.Seq {
		t.Errorf("the same id published again: %+v, want a duplicate of seq %d", again, last.Seq)
	}
	r1.waitApplied(t, want)
	r2.waitApplied(t, want)

	deadline := time.Now().Add(5 * time.Second)
	for {
		ms, err := pub1.Members(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		done := len(ms) == 2
		for _, m := range ms {
			done = done && m.Live(time.Now()) && m.Applied == last.Seq && m.AppliedID == want[len(want)-1] && m.Ready && m.Zone == "a"
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members %+v: want e1 and e2 live, ready, applied seq %d", ms, last.Seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServerRestartLosesNothing: nats-server killed and restarted on the
// same store while purges flow: every purge published before and after
// is applied once, in order, without a gap.
func TestServerRestartLosesNothing(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	pub := connect(t, c)
	var r recorder
	cons, _ := consume(t, connect(t, c), "e1", &r)
	want := ids("a", 0, 30)
	publish(t, pub, want...)
	r.waitApplied(t, want)
	ns.Restart()
	more := ids("b", 0, 30)
	publish(t, pub, more...) // the publisher reconnects
	r.waitApplied(t, append(want, more...))
	if _, gaps := r.snapshot(); len(gaps) != 0 {
		t.Errorf("gaps %v after a restart that lost nothing", gaps)
	}
	if st := cons.Status(); !st.Connected || st.Applied != 60 {
		t.Errorf("status %+v, want connected and applied 60", st)
	}
}

// TestConsumerRestartResumes: an edge process that stops and starts again
// (the same node id) applies what was published while it was away, from
// its durable consumer's position, and is caught up only after that.
func TestConsumerRestartResumes(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	pub := connect(t, c)
	var r recorder
	_, stop := consume(t, connect(t, c), "e1", &r)
	first := ids("a", 0, 10)
	publish(t, pub, first...)
	r.waitApplied(t, first)
	stop()
	away := ids("b", 0, 200)
	publish(t, pub, away...)
	var r2 recorder
	cons, _ := consume(t, connect(t, c), "e1", &r2) // returns once caught up
	if got, _ := r2.snapshot(); !slices.Equal(got, away) {
		t.Fatalf("caught up having applied %d purges, want the %d published while away", len(got), len(away))
	}
	if st := cons.Status(); st.Gaps != 0 || st.Pending != 0 || !st.CaughtUp {
		t.Errorf("status %+v", st)
	}
}

// TestGapSoftPurges: purges that left the stream (max_age) before an edge
// applied them are a gap: the edge is told before it applies anything
// after, and counts it.
func TestGapSoftPurges(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	c.MaxAge = time.Second
	c.DuplicateWindow = time.Second
	pub := connect(t, c)
	var r recorder
	_, stop := consume(t, connect(t, c), "e1", &r)
	publish(t, pub, "a0")
	r.waitApplied(t, []string{"a0"})
	stop()
	publish(t, pub, "b0", "b1", "b2")
	time.Sleep(2500 * time.Millisecond) // they expire
	var r2 recorder
	cons, _ := consume(t, connect(t, c), "e1", &r2)
	if _, gaps := r2.snapshot(); len(gaps) != 1 {
		t.Fatalf("gaps %v, want one for the expired purges", gaps)
	}
	publish(t, pub, "c0")
	r2.waitApplied(t, []string{"c0"})
	if st := cons.Status(); st.Gaps != 1 {
		t.Errorf("status %+v, want 1 gap", st)
	}
}

// TestLostConsumerRecreated: a consumer deleted under a running edge is
// recreated after the last purge applied; nothing is applied twice or
// missed.
func TestLostConsumerRecreated(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	pub := connect(t, c)
	var r recorder
	consume(t, connect(t, c), "e1", &r)
	first := ids("a", 0, 5)
	publish(t, pub, first...)
	r.waitApplied(t, first)
	s, err := pub.js.Stream(t.Context(), c.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConsumer(t.Context(), "e1"); err != nil {
		t.Fatal(err)
	}
	more := ids("b", 0, 5)
	publish(t, pub, more...)
	r.waitApplied(t, append(first, more...))
	if _, gaps := r.snapshot(); len(gaps) != 0 {
		t.Errorf("gaps %v: nothing left the stream", gaps)
	}
}

// TestClusterLosingANodeLosesNothing: a three-node NATS cluster (stream
// and bucket with three replicas) loses one node while purges flow:
// publishers retry with the same id (stored once), and the consumer applies
// every purge once, in order, without a gap.
func TestClusterLosingANodeLosesNothing(t *testing.T) {
	cl := natstest.StartCluster(t)
	c := testBusConfig(cl.URL())
	c.Replicas = 3
	// The cluster takes a moment to know all three peers: until then an
	// R3 stream has no placement.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := Connect(c, Options{Name: "placement"})
		if err == nil {
			err = b.Ensure(t.Context())
			b.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("R3 stream not placed after 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pub := connect(t, c)
	var r recorder
	cons, _ := consume(t, connect(t, c), "e1", &r)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consumer status at the end: %+v", cons.Status())
		}
	})
	publishRetry := func(id string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			_, err := pub.Publish(ctx, purge.Message{ID: id, Tags: []string{"t"}, IssuedAt: time.Now()})
			cancel()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	want := ids("c", 0, 100)
	for i, id := range want {
		if i == 40 {
			cl.Servers[0].Kill()
		}
		publishRetry(id)
	}
	// Losing a node moves stream and consumer leaders; on a loaded
	// machine (CI runs packages side by side) that has taken over 10 s.
	r.waitAppliedWithin(t, want, 45*time.Second)
	if _, gaps := r.snapshot(); len(gaps) != 0 {
		t.Errorf("gaps %v with a quorum left", gaps)
	}
}

// TestWireIsThePurgeMessage: what the bus stores is the purge package's
// message as JSON, which the edge's purge API decodes too (purge.Decode,
// strict): one wire type for the edge, the origin, the CLI and the bench.
func TestWireIsThePurgeMessage(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	b := connect(t, c)
	sent := purge.Message{ID: NewID("test"), Tags: []string{"article:42"}, URLs: []string{"http://www.example.com/x"}, Soft: true,
		IssuedAt: time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC), Issuer: "test"}
	p, err := b.Publish(t.Context(), sent)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.js.Stream(t.Context(), c.Stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(t.Context(), p.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("Nats-Msg-Id") != sent.ID || raw.Subject != c.Subject {
		t.Errorf("stored with Nats-Msg-Id %q on %q, want %q on %q", raw.Header.Get("Nats-Msg-Id"), raw.Subject, sent.ID, c.Subject)
	}
	got, err := purge.Decode(bytes.NewReader(raw.Data))
	if err != nil {
		t.Fatalf("purge.Decode(%s): %v", raw.Data, err)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("decoded %+v, want %+v", got, sent)
	}
	if _, err := b.Publish(t.Context(), purge.Message{Tags: []string{"x"}}); err == nil {
		t.Error("a message without an id was published")
	}
	if _, err := b.Publish(t.Context(), purge.Message{ID: "x"}); err == nil {
		t.Error("a message purging nothing was published")
	}
}

// TestAuthAndTLS: a bus that requires a token, or user and password, or
// TLS (a CA of the test's own), is reached with purge.bus's credentials;
// without them the connection is refused with an error naming the bus.
func TestAuthAndTLS(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		ns := natstest.Start(t, "--auth", "s3cret")
		c := testBusConfig(ns.URL())
		if _, err := Connect(c, Options{Name: "no token"}); err == nil || !strings.Contains(err.Error(), ns.URL()) {
			t.Fatalf("without the token: %v, want an error naming %s", err, ns.URL())
		}
		c.Token = "s3cret"
		roundTrip(t, c)
		c.Token = ""
		t.Setenv("LAKKA_BUS_TOKEN", "s3cret")
		roundTrip(t, c)
	})
	t.Run("user", func(t *testing.T) {
		ns := natstest.Start(t, "--user", "edge", "--pass", "pw")
		c := testBusConfig(ns.URL())
		c.User, c.Password = "edge", "pw"
		roundTrip(t, c)
	})
	t.Run("tls", func(t *testing.T) {
		dir := t.TempDir()
		ca, cert, key := writeTestCerts(t, dir)
		ns := natstest.Start(t, "--tls", "--tlscert", cert, "--tlskey", key)
		c := testBusConfig(strings.Replace(ns.URL(), "nats://", "tls://", 1))
		if _, err := Connect(c, Options{Name: "no CA"}); err == nil {
			t.Fatal("connected over TLS without trusting the server's CA")
		}
		c.CAFile = ca
		roundTrip(t, c)
	})
}

// roundTrip publishes one purge on c's bus and reads it back through a
// consumer.
func roundTrip(t *testing.T, c config.Bus) {
	t.Helper()
	b := connect(t, c)
	var r recorder
	consume(t, b, strings.ReplaceAll(NewID("rt"), ":", "-"), &r) // a consumer of its own
	publish(t, b, NewID("rt"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := r.snapshot(); len(got) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the purge did not come back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeTestCerts writes a CA and a server certificate for 127.0.0.1 into
// dir and returns the CA's, the certificate's and the key's paths.
func writeTestCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lakka test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// TestStreamRecreatedIsAGap: a stream deleted and made again numbers from 1
// again: the consumer reports a gap (what the old stream held after its
// position may be lost), starts over at the new stream's beginning, and
// applies what is published there.
func TestStreamRecreatedIsAGap(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	pub := connect(t, c)
	var r recorder
	cons, _ := consume(t, connect(t, c), "e1", &r)
	first := ids("a", 0, 20)
	publish(t, pub, first...)
	r.waitApplied(t, first)
	if err := pub.js.DeleteStream(t.Context(), c.Stream); err != nil {
		t.Fatal(err)
	}
	if err := pub.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	more := ids("b", 0, 5)
	publish(t, pub, more...)
	r.waitApplied(t, append(first, more...))
	if st := cons.Status(); st.Gaps != 1 || st.Applied != 5 {
		t.Errorf("status %+v: want one gap and applied 5 (the new stream's numbering)", st)
	}
}

// TestNotCaughtUpWhileServerPaused: a consumer catching up on a backlog
// is not caught up because a fetch came back empty while the server was
// paused (SIGSTOP); it is once it has applied everything.
func TestNotCaughtUpWhileServerPaused(t *testing.T) {
	ns := natstest.Start(t)
	c := testBusConfig(ns.URL())
	pub := connect(t, c)
	var r recorder
	_, stop := consume(t, connect(t, c), "e1", &r)
	stop()
	backlog := ids("p", 0, 1500)
	publish(t, pub, backlog...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var r2 recorder
	cons := connect(t, c).Consume(ctx, Member{NodeID: "e1"}, r2.hooks(), nil)
	defer cons.Wait()
	defer cancel()
	time.Sleep(20 * time.Millisecond)
	ns.Signal(syscall.SIGSTOP)
	time.Sleep(3 * time.Second)
	select {
	case <-cons.CaughtUp():
		if got, _ := r2.snapshot(); len(got) < len(backlog) {
			ns.Signal(syscall.SIGCONT)
			t.Fatalf("caught up after %d of %d purges, while the server was paused", len(got), len(backlog))
		}
	default:
	}
	ns.Signal(syscall.SIGCONT)
	select {
	case <-cons.CaughtUp():
	case <-time.After(20 * time.Second):
		t.Fatal("not caught up 20s after the server continued")
	}
	if got, _ := r2.snapshot(); !slices.Equal(got, backlog) {
		t.Errorf("caught up having applied %d of %d (or out of order)", len(got), len(backlog))
	}
	if st := cons.Status(); st.Gaps != 0 {
		t.Errorf("status %+v: a paused server loses nothing, no gap", st)
	}
}
