package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/config"
)

// snapEntry builds an entry the way the edge does: header fields and
// their table in Hdr, Vary and a derived ETag appended, tags, a body.
func snapEntry(st *Store, i int, stored time.Time) *Entry {
	e := &Entry{
		Key:         []byte("news.example/a/" + strconv.Itoa(i)),
		ID:          st.NextID(),
		Status:      200,
		Kind:        KindObject,
		Enc:         cachepolicy.Gzip,
		ETagEnc:     cachepolicy.Identity,
		TTL:         time.Minute,
		Grace:       time.Minute,
		Keep:        time.Hour,
		InitialAge:  3 * time.Second,
		LastModTime: 1_700_000_000,
		IdentityLen: 999,
		tags:        "article:" + strconv.Itoa(i) + " front",
	}
	e.SetStoredAt(stored)
	var spans []FieldSpan
	var buf []byte
	add := func(k, v string) {
		sp := FieldSpan{K0: uint32(len(buf))}
		buf = append(buf, k...)
		sp.K1 = uint32(len(buf))
		buf = append(buf, v...)
		sp.V1 = uint32(len(buf))
		spans = append(spans, sp)
	}
	add("Cache-Control", "max-age=60")
	add("X-Article", strconv.Itoa(i))
	e.InitHdr(buf, 0)
	e.SetSpan(SpanCT, e.AppendHdr([]byte("text/html")))
	e.SetSpan(SpanDate, e.AppendHdr([]byte("Mon, 07 Dec 2026 12:00:00 GMT")))
	e.SetSpan(SpanETag, e.AppendHdr([]byte(`"v`+strconv.Itoa(i)+`"`)))
	e.AppendFields(spans)
	e.SetSpan(SpanVary, e.AppendHdr([]byte("Accept-Encoding")))
	e.SetSpan(SpanETagOther, e.AppendHdr([]byte(`"v`+strconv.Itoa(i)+`-gzip"`)))
	e.Body = bytes.Repeat([]byte{byte(i)}, 100+i*37)
	if i%3 == 0 {
		e.VaryNames = []string{"accept-language"}
		e.Key = append(e.Key, "\x00accept-language=fi"...)
	}
	if i%5 == 0 {
		e.SetZstd(&ZstdForm{Body: []byte("zstd" + strconv.Itoa(i)), ETag: []byte(`"z"`)})
	}
	e.Cost = EntryOverhead + int64(len(e.Key)+len(e.Hdr)+len(e.Body))
	return e
}

func snapStore(t *testing.T) *Store {
	st, err := New(config.Budget{Store: 64 << 20, Window: 1 << 20}, 16, testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		if live := st.SlabStats().Live; live != 0 {
			t.Errorf("%d bytes of slots still in use after Close", live)
		}
	})
	return st
}

// TestSnapshotRoundTrip: what is written comes back byte for byte, with its
// age still counting, tags purgeable and variants behind their marker;
// expired and dead objects are left out.
func TestSnapshotRoundTrip(t *testing.T) {
	now := time.Now()
	src := snapStore(t)
	var want []*Entry
	for i := range 40 {
		e := snapEntry(src, i, now.Add(-10*time.Second))
		want = append(want, e)
		putSealed(t, src, e)
	}
	gone := snapEntry(src, 1000, now.Add(-2*time.Hour)) // past keep
	putSealed(t, src, gone)
	src.Wait()
	src.Purge(Purge{URLs: [][]byte{[]byte("news.example/a/7")}}, now) // hard: dead
	want = append(want[:7], want[8:]...)
	src.Purge(Purge{Tags: []string{"article:8"}, Soft: true}, now)
	var buf bytes.Buffer
	ws, err := src.WriteSnapshot(&buf, []byte(`{"node":"a1"}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Objects != len(want) {
		t.Fatalf("wrote %d objects, want %d (%+v)", ws.Objects, len(want), ws)
	}

	dst := snapStore(t)
	later := now.Add(5 * time.Second)
	l, err := dst.ReadSnapshot(bytes.NewReader(buf.Bytes()), later)
	if err != nil {
		t.Fatal(err)
	}
	if string(l.Meta) != `{"node":"a1"}` || l.Stats.Objects != len(want) {
		t.Fatalf("meta %q, %d objects", l.Meta, l.Stats.Objects)
	}
	if n := l.Store(dst); n != len(want) {
		t.Fatalf("stored %d of %d", n, len(want))
	}
	for _, w := range want {
		g := dst.Get(w.Key)
		if g == nil {
			t.Fatalf("%s not found after loading", w.Key)
		}
		if !bytes.Equal(g.Hdr, w.Hdr) || !bytes.Equal(g.Body, w.Body) || g.Status != w.Status || g.Enc != w.Enc ||
			g.TTL != w.TTL || g.Grace != w.Grace || g.Keep != w.Keep || g.LastModTime != w.LastModTime ||
			g.IdentityLen != w.IdentityLen || g.TagList() != w.TagList() ||
			strings.Join(g.VaryNames, " ") != strings.Join(w.VaryNames, " ") || !bytes.Equal(g.Vary(), w.Vary()) ||
			!bytes.Equal(g.ETagOther(), w.ETagOther()) {
			t.Fatalf("%s came back different", w.Key)
		}
		if (g.Zstd() == nil) != (w.Zstd() == nil) || g.Zstd() != nil && (!bytes.Equal(g.Zstd().Body, w.Zstd().Body) || !bytes.Equal(g.Zstd().ETag, w.Zstd().ETag)) {
			t.Fatalf("%s: zstd form came back different", w.Key)
		}
		for i := range w.NumFields() {
			wk, wv := w.Field(i)
			gk, gv := g.Field(i)
			if !bytes.Equal(wk, gk) || !bytes.Equal(wv, gv) {
				t.Fatalf("%s: field %d is %s: %s, want %s: %s", w.Key, i, gk, gv, wk, wv)
			}
		}
		if a := g.Age(later); a < 18*time.Second-time.Millisecond || a > 18*time.Second+time.Millisecond {
			t.Fatalf("%s: age %v after loading, want 18s (3s initial + 15s since stored)", w.Key, a)
		}
		wantState := Fresh
		if string(w.Key) == "news.example/a/8" {
			wantState = InGrace // soft-purged before the snapshot
		}
		if s := g.State(later); s != wantState {
			t.Fatalf("%s: state %v, want %v", w.Key, s, wantState)
		}
		g.Release()
	}
	if m := dst.Peek([]byte("news.example/a/0")); m == nil || m.Kind != KindVary {
		t.Fatal("a variant came back without its Vary marker")
	}
	if dst.Peek(gone.Key) != nil {
		t.Fatal("an object past keep was written")
	}
	if n := dst.Purge(Purge{Tags: []string{"front"}}, later); n != len(want) {
		t.Fatalf("purging tag front after loading affected %d, want %d", n, len(want))
	}
}

// TestSnapshotRefused: a foreign file, a file of another version, a torn
// one (cut anywhere) and a corrupted one are refused whole: nothing is
// stored and every slot taken while reading is given back.
func TestSnapshotRefused(t *testing.T) {
	now := time.Now()
	src := snapStore(t)
	for i := range 12 {
		putSealed(t, src, snapEntry(src, i, now))
	}
	src.Wait()
	var buf bytes.Buffer
	if _, err := src.WriteSnapshot(&buf, []byte("meta"), now); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	dst := snapStore(t)
	refuse := func(name string, b []byte, want string) {
		t.Helper()
		l, err := dst.ReadSnapshot(bytes.NewReader(b), now)
		if err == nil {
			l.Discard()
			t.Fatalf("%s: loaded", name)
		}
		if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want an ErrSnapshot saying %q", name, err, want)
		}
		if live := dst.SlabStats().Live; live != 0 {
			t.Fatalf("%s: %d bytes of slots kept after refusing", name, live)
		}
		if objects, _ := dst.Size(); objects != 0 {
			t.Fatalf("%s: %d objects stored", name, objects)
		}
	}
	refuse("foreign", []byte("GIF89a and then some bytes of a picture"), "does not start like a Lakka snapshot")
	refuse("empty", nil, "does not start like a Lakka snapshot")
	v2 := bytes.Clone(file)
	v2[15] = 2
	refuse("version 2", v2, "format version 2")
	for cut := 16; cut < len(file); cut += max(1, len(file)/97) {
		refuse(fmt.Sprintf("cut at %d of %d", cut, len(file)), file[:cut], "")
	}
	refuse("last byte missing", file[:len(file)-1], "")
	for _, at := range []int{len(file) / 3, len(file) / 2, len(file) - 20} {
		bad := bytes.Clone(file)
		bad[at] ^= 0x40
		refuse(fmt.Sprintf("byte %d changed", at), bad, "")
	}
	refuse("trailing bytes", append(bytes.Clone(file), 'x'), "after the end marker")
	l, err := dst.ReadSnapshot(bytes.NewReader(file), now)
	if err != nil {
		t.Fatalf("the intact file: %v", err)
	}
	if n := l.Store(dst); n != 12 {
		t.Fatalf("stored %d of 12", n)
	}
}

// FuzzReadSnapshot: no input makes the reader panic, allocate without
// bound or keep a slot.
func FuzzReadSnapshot(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	st, err := New(config.Budget{Store: 8 << 20, Window: 1 << 20}, 16, testMetrics())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		putSealed(f, st, snapEntry(st, i, now))
	}
	st.Wait()
	var buf bytes.Buffer
	if _, err := st.WriteSnapshot(&buf, []byte("{}"), now); err != nil {
		f.Fatal(err)
	}
	st.Close()
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Add([]byte(snapshotMagic + "\x00Z"))
	// One store for every input (making one per input costs more than
	// the read): an accepted input is given back, so each starts empty.
	dst, err := New(config.Budget{Store: 8 << 20, Window: 1 << 20}, 16, testMetrics())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dst.Close)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := dst.ReadSnapshot(bytes.NewReader(b), now)
		if err == nil {
			l.Discard()
		}
		if live := dst.SlabStats().Live; live != 0 {
			t.Fatalf("read (%v), then %d bytes of slots kept", err, live)
		}
	})
}

// TestSnapshotFigures writes and loads a snapshot of 100,000 objects
// holding 1 GiB (10,737-byte bodies) through a file in a temporary
// directory, and reports the times and the file's size. It needs about 2.5
// GiB of memory and a second or more per step: it runs only with
// LAKKA_SNAPSHOT_FIGURES=1.
func TestSnapshotFigures(t *testing.T) {
	if os.Getenv("LAKKA_SNAPSHOT_FIGURES") == "" {
		t.Skip("set LAKKA_SNAPSHOT_FIGURES=1 to measure a 1 GiB snapshot")
	}
	const n = 100_000
	const total = 1 << 30
	budget := config.Budget{Store: 3 << 29, Window: 1 << 24}
	src, err := New(budget, 16, testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := bytes.Repeat([]byte("<p>the council met on Tuesday</p>\n"), total/n/34+1)[:total/n]
	for i := range n {
		e := snapEntry(src, i, now)
		e.Body = body
		e.Cost = EntryOverhead + int64(len(e.Key)+len(e.Hdr)+len(e.Body))
		putSealed(t, src, e)
		if i%256 == 255 {
			src.Wait()
		}
	}
	src.Wait()
	objects, _ := src.Size()
	path := filepath.Join(t.TempDir(), "edge.snapshot")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ws, err := src.WriteSnapshot(f, []byte("{}"), now)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	write := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	fi, _ := os.Stat(path)

	dst, err := New(budget, 16, testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	start = time.Now()
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := dst.ReadSnapshot(f, now)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	stored := l.Store(dst)
	load := time.Since(start)
	t.Logf("%d objects stored (%d entries with markers), %d written, %.0f MiB of stored bytes: write (with fsync) %v, file %.0f MiB, load %v, %d loaded into the store",
		n, objects, ws.Objects, float64(ws.Bytes)/(1<<20), write.Round(time.Millisecond), float64(fi.Size())/(1<<20), load.Round(time.Millisecond), stored)
	if stored < ws.Objects*99/100 {
		t.Errorf("only %d of %d written objects loaded", stored, ws.Objects)
	}
}
