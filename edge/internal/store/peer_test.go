package store

import (
	"bytes"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/config"
)

// An object sent to a peer comes back byte for byte, as old on the
// receiver's clock as it was on the sender's, with its lifetimes, tags
// and validators; it can then be sealed and stored.
func TestObjectRoundTrip(t *testing.T) {
	src, dst := snapStore(t), snapStore(t)
	senderNow := time.Now()
	for i := range 12 {
		e := snapEntry(src, i, senderNow.Add(-7*time.Second))
		b := AppendObject(nil, e, senderNow)
		receiverNow := senderNow.Add(time.Hour) // another clock
		g, err := dst.DecodeObject(b, receiverNow)
		if err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
		if !bytes.Equal(g.Hdr, e.Hdr) || !bytes.Equal(g.Body, e.Body) || g.Status != e.Status || g.Enc != e.Enc ||
			g.TTL != e.TTL || g.Grace != e.Grace || g.Keep != e.Keep || g.InitialAge != e.InitialAge ||
			g.TagList() != e.TagList() || !bytes.Equal(g.ETag(), e.ETag()) ||
			!bytes.Equal(g.Vary(), e.Vary()) || (e.Zstd() != nil) != (g.Zstd() != nil) {
			t.Fatalf("object %d came back different", i)
		}
		if a, b := g.Age(receiverNow), e.Age(senderNow); a != b {
			t.Fatalf("object %d: age %s at the receiver, %s at the sender", i, a, b)
		}
		if g.Sealed() {
			t.Fatalf("object %d: decoded into a slot; it should be on the heap until sealed", i)
		}
		if !dst.Seal(g) || !dst.Put(g, dst.Generation()) {
			t.Fatalf("object %d: not stored", i)
		}
		g.Release()
		if !bytes.Equal(b[len(b)-len(e.Body):], e.Body) && e.Zstd() == nil {
			t.Fatal("the body is not last")
		}
		// Any cut is refused.
		for _, n := range []int{0, 1, len(b) / 2, len(b) - 1} {
			if _, err := dst.DecodeObject(b[:n], receiverNow); err == nil {
				t.Fatalf("object %d cut at %d of %d bytes: accepted", i, n, len(b))
			}
		}
	}
}

// Copies of objects other edges own count apart, within their limit, and
// stop counting when they leave.
func TestPutCopyWithinLimit(t *testing.T) {
	st := snapStore(t)
	now := time.Now()
	a := snapEntry(st, 1, now)
	limit := int64(0)
	if !st.Seal(a) {
		t.Fatal("seal")
	}
	limit = a.Cost + a.Cost/2
	if !st.PutCopy(a, st.Generation(), limit) {
		t.Fatal("first copy refused")
	}
	b := snapEntry(st, 2, now)
	if !st.Seal(b) {
		t.Fatal("seal")
	}
	if st.PutCopy(b, st.Generation(), limit) {
		t.Fatal("a copy over the limit was stored")
	}
	b.Release()
	if n, bytes := st.Copies(); n != 1 || bytes != a.Cost {
		t.Fatalf("copies %d (%d bytes), want 1 (%d)", n, bytes, a.Cost)
	}
	st.Purge(Purge{URLs: [][]byte{a.Key}}, now)
	a.Release()
	st.Wait()
	eventuallyStore(t, func() bool { n, _ := st.Copies(); return n == 0 })
}

func eventuallyStore(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A purge applied here after a peer stored an object concerns the copy
// it sends: GenerationBefore its stored time is before the purge.
func TestGenerationBefore(t *testing.T) {
	st := snapStore(t)
	before := time.Now()
	time.Sleep(time.Millisecond)
	st.Purge(Purge{Tags: []string{"front"}}, before)
	if g := st.GenerationBefore(before); g >= st.Generation() {
		t.Fatalf("generation before the purge %d, now %d", g, st.Generation())
	}
	if g := st.GenerationBefore(time.Now()); g != st.Generation() {
		t.Fatalf("generation before now %d, want the current %d", g, st.Generation())
	}
	e := snapEntry(st, 3, before) // tagged front, stored before the purge
	if !st.Seal(e) {
		t.Fatal("seal")
	}
	if st.Put(e, st.GenerationBefore(e.StoredAt())) {
		t.Fatal("an object stored before a purge of its tag was stored after it")
	}
	e.Release()
}

func FuzzDecodeObject(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	st, err := New(config.Budget{Store: 8 << 20, Window: 1 << 20}, 16, testMetrics())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(st.Close)
	for i := range 6 {
		f.Add(AppendObject(nil, snapEntry(st, i, now.Add(-time.Second)), now))
	}
	f.Add([]byte{recordEntry})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := st.DecodeObject(b, now)
		if err != nil {
			return
		}
		// Accepted: every span and field lies in its header bytes, and
		// the entry survives being served and sealed.
		_ = e.ETag()
		_ = e.Vary()
		for i := range e.NumFields() {
			e.Field(i)
		}
		if st.Seal(e) {
			e.Release()
		}
		if live := st.SlabStats().Live; live != 0 {
			t.Fatalf("%d bytes of slots kept", live)
		}
	})
}
