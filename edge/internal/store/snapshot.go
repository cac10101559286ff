package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/slab"
)

// A snapshot is the store written to a file on the way down and read back
// by the next process, so that a restart or an upgrade keeps the cache.
//
// The format (version 1), all integers little-endian or uvarint/varint:
//
//	"LAKKA-SNAPSHOT\x00\x01"   magic and version (16 bytes)
//	uvarint n, n bytes          the caller's metadata (the edge's JSON)
//	records                     'E' and one stored object each
//	'Z'                         the end of the records
//	uint64 count                the objects written
//	uint32 crc                  CRC-32C of every byte before it
//	"LAKKA-END"                 (9 bytes)
//
// Nothing in a file is trusted: every length is bounded before anything is
// allocated, every span is checked against its buffer, and entries are
// only handed to the store once the end marker and the checksum have been
// read, so a torn or foreign file is refused whole, never half-loaded.
const (
	snapshotMagic   = "LAKKA-SNAPSHOT\x00\x01"
	snapshotEnd     = "LAKKA-END"
	recordEntry     = 'E'
	recordEnd       = 'Z'
	maxSnapshotMeta = 64 << 10
	maxSnapshotKey  = 64 << 10
	maxSnapshotHdr  = 1 << 20
	maxSnapshotStrs = 4096 // tags or Vary names of one object
	maxSnapshotStr  = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshot marks a file that is not a complete snapshot this edge can
// read: foreign, torn, corrupted, or of another format version.
var ErrSnapshot = errors.New("not a usable snapshot")

// SnapshotStats says what a snapshot held.
type SnapshotStats struct {
	Objects int
	Bytes   int64 // stored bytes (header buffers and bodies)
	// Skipped counts objects left out: expired past keep, dead, or (when
	// loading) without room in the store.
	Skipped int
}

// WriteSnapshot writes every stored object still usable at now (fresh,
// in grace or in keep; not Vary or hit-for-miss markers, which come back
// with the objects) to w, after meta. The store keeps serving while it
// writes; objects stored meanwhile may or may not be in it.
func (s *Store) WriteSnapshot(w io.Writer, meta []byte, now time.Time) (SnapshotStats, error) {
	var st SnapshotStats
	if len(meta) > maxSnapshotMeta {
		return st, fmt.Errorf("snapshot metadata of %d bytes", len(meta))
	}
	h := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	bw.WriteString(snapshotMagic)
	var scratch []byte
	scratch = binary.AppendUvarint(scratch[:0], uint64(len(meta)))
	bw.Write(scratch)
	bw.Write(meta)
	for _, e := range s.allEntries(nil) {
		if e.Kind != KindObject || !e.Acquire() {
			continue
		}
		if e.State(now) == Gone || !e.Sealed() {
			e.Release()
			st.Skipped++
			continue
		}
		scratch = appendRecord(scratch[:0], e, unixEpoch)
		bw.Write(scratch)
		bw.Write(e.HdrData())
		bw.Write(e.Body)
		if e.Zstd() != nil {
			bw.Write(e.Zstd().Body)
		}
		st.Objects++
		st.Bytes += int64(len(e.HdrData()) + len(e.Body))
		e.Release()
	}
	if err := bw.WriteByte(recordEnd); err != nil {
		return st, err
	}
	scratch = binary.LittleEndian.AppendUint64(scratch[:0], uint64(st.Objects))
	bw.Write(scratch)
	if err := bw.Flush(); err != nil {
		return st, err
	}
	// The checksum covers everything up to here; it and the end marker
	// go to w alone.
	tail := binary.LittleEndian.AppendUint32(nil, h.Sum32())
	tail = append(tail, snapshotEnd...)
	_, err := w.Write(tail)
	return st, err
}

// unixEpoch is the base of a snapshot's stored times: they are Unix
// nanoseconds.
var unixEpoch = time.Unix(0, 0)

// appendRecord appends an object's record up to its byte buffers (the
// header buffer, the body and the zstd body follow it in the file). Its
// stored time is written as nanoseconds from base.
func appendRecord(b []byte, e *Entry, base time.Time) []byte {
	b = append(b, recordEntry)
	b = appendBytes(b, e.Key)
	b = binary.AppendUvarint(b, uint64(e.Status))
	var flags byte
	if e.Revalidate {
		flags |= 1
	}
	if e.NoTransform {
		flags |= 2
	}
	b = append(b, byte(e.Enc), byte(e.ETagEnc), flags)
	b = binary.AppendVarint(b, int64(e.StoredAt().Sub(base)))
	for _, d := range []time.Duration{e.InitialAge, e.TTL, e.Grace, e.Keep, time.Duration(e.purgedAt.Load())} {
		b = binary.AppendVarint(b, int64(d))
	}
	b = binary.AppendUvarint(b, uint64(e.IdentityLen))
	b = binary.AppendVarint(b, e.LastModTime)
	for _, sp := range e.spans() {
		b = binary.AppendUvarint(b, uint64(sp.Start))
		b = binary.AppendUvarint(b, uint64(sp.End))
	}
	b = appendStrings(b, e.VaryNames)
	b = binary.AppendUvarint(b, uint64(e.numTags()))
	for t := range e.Tags() {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.HdrData())))
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	if e.Zstd() != nil {
		b = binary.AppendUvarint(b, uint64(len(e.Zstd().Body)))
		b = appendBytes(b, e.Zstd().ETag)
	} else {
		b = binary.AppendUvarint(b, 0)
		b = appendBytes(b, nil)
	}
	return b
}

// spans returns the entry's spans into Hdr, in the file's order (SpanID's:
// the file holds the header bytes without the table of spans, and the
// spans apart).
func (e *Entry) spans() [numSpans]Span {
	var out [numSpans]Span
	for i := range out {
		out[i] = e.Span(SpanID(i))
	}
	return out
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// Loaded is a snapshot read and checked whole, its objects sealed into
// slots but not yet stored: Store puts them in the store, Discard gives
// them back.
type Loaded struct {
	Meta    []byte
	Stats   SnapshotStats
	entries []*Entry
}

// ReadSnapshot reads a snapshot written by WriteSnapshot. Objects whose
// lifetime ended by now are skipped; so are objects for which the pool has
// no room (the cache may be smaller than the writer's). It fails, keeping
// nothing, unless the file is complete and intact.
func (s *Store) ReadSnapshot(r io.Reader, now time.Time) (*Loaded, error) {
	l := &Loaded{}
	if err := s.readSnapshot(r, now, l); err != nil {
		l.Discard()
		return nil, err
	}
	return l, nil
}

// snapshotReader reads a snapshot, hashing what it reads.
type snapshotReader struct {
	r *bufio.Reader
	h hash.Hash32
	n int64 // bytes read
}

func (sr *snapshotReader) Read(p []byte) (int, error) {
	n, err := sr.r.Read(p)
	sr.h.Write(p[:n])
	sr.n += int64(n)
	return n, err
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	c, err := sr.r.ReadByte()
	if err == nil {
		sr.h.Write([]byte{c})
		sr.n++
	}
	return c, err
}

// full reads exactly len(p) bytes; running out is a torn file.
func (sr *snapshotReader) full(p []byte) error {
	if _, err := io.ReadFull(sr, p); err != nil {
		return torn(sr, err)
	}
	return nil
}

func torn(sr *snapshotReader, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the file ends after %d bytes, before its end marker (torn: written only in part)", ErrSnapshot, sr.n)
	}
	return err
}

func (sr *snapshotReader) uvarint(what string, limit uint64) (uint64, error) {
	v, err := binary.ReadUvarint(sr)
	if err != nil {
		return 0, torn(sr, err)
	}
	if v > limit {
		return 0, fmt.Errorf("%w: %s %d at byte %d is over %d", ErrSnapshot, what, v, sr.n, limit)
	}
	return v, nil
}

func (sr *snapshotReader) varint() (int64, error) {
	v, err := binary.ReadVarint(sr)
	if err != nil {
		return 0, torn(sr, err)
	}
	return v, nil
}

func (sr *snapshotReader) bytes(what string, limit uint64) ([]byte, error) {
	n, err := sr.uvarint(what, limit)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	return b, sr.full(b)
}

func (sr *snapshotReader) strings(what string) ([]string, error) {
	n, err := sr.uvarint(what, maxSnapshotStrs)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		b, err := sr.bytes(what, maxSnapshotStr)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}

func (s *Store) readSnapshot(r io.Reader, now time.Time, l *Loaded) error {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 1<<20), h: crc32.New(crcTable)}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(sr, magic); err != nil || string(magic[:14]) != snapshotMagic[:14] {
		return fmt.Errorf("%w: it does not start like a Lakka snapshot", ErrSnapshot)
	}
	if string(magic) != snapshotMagic {
		return fmt.Errorf("%w: format version %d, this edge reads version %d", ErrSnapshot, magic[15], snapshotMagic[15])
	}
	meta, err := sr.bytes("metadata length", maxSnapshotMeta)
	if err != nil {
		return err
	}
	l.Meta = meta
	var written uint64
	for {
		kind, err := sr.ReadByte()
		if err != nil {
			return torn(sr, err)
		}
		if kind == recordEnd {
			break
		}
		if kind != recordEntry {
			return fmt.Errorf("%w: unknown record %#x at byte %d (corrupted)", ErrSnapshot, kind, sr.n-1)
		}
		written++
		e, err := s.readEntry(sr, unixEpoch)
		if err != nil {
			return err
		}
		switch {
		case e == nil:
			l.Stats.Skipped++ // no room
		case e.State(now) == Gone:
			e.Release()
			l.Stats.Skipped++
		default:
			l.entries = append(l.entries, e)
			l.Stats.Objects++
			l.Stats.Bytes += int64(len(e.HdrData()) + len(e.Body))
		}
	}
	var tail [8]byte
	if err := sr.full(tail[:]); err != nil {
		return err
	}
	if n := binary.LittleEndian.Uint64(tail[:]); n != written {
		return fmt.Errorf("%w: it says %d objects and holds %d (corrupted)", ErrSnapshot, n, written)
	}
	sum := sr.h.Sum32()
	end := make([]byte, 4+len(snapshotEnd))
	if _, err := io.ReadFull(sr.r, end); err != nil {
		return torn(sr, err)
	}
	if string(end[4:]) != snapshotEnd {
		return fmt.Errorf("%w: no end marker (torn or corrupted)", ErrSnapshot)
	}
	if got := binary.LittleEndian.Uint32(end); got != sum {
		return fmt.Errorf("%w: checksum %08x, the contents give %08x (corrupted)", ErrSnapshot, got, sum)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: bytes after the end marker", ErrSnapshot)
	}
	return nil
}

// recordLayout is what a record says of the bytes that follow it.
type recordLayout struct {
	spans      [numSpans]Span
	hl, bl, zl uint64 // header, body and zstd body lengths
	zetag      []byte
}

// readEntry reads one object record and its bytes into a slot; nil (and
// its bytes skipped) when the pool has no room.
func (s *Store) readEntry(sr *snapshotReader, base time.Time) (*Entry, error) {
	e, l, err := s.readRecord(sr, base)
	if err != nil {
		return nil, err
	}
	n := l.hl + l.bl + l.zl
	// The key and tags join the rest in a slot of a size class only, as
	// Seal lays them out.
	moved := e.keyMoves(int(n) + SpanTableSize)
	size := int(n) + SpanTableSize
	if moved {
		size += len(e.Key) + len(e.tags)
	}
	slot, b, ok := s.pool.Alloc(size)
	if !ok {
		// No room: read past its bytes (they still count in the checksum).
		if _, err := io.CopyN(io.Discard, sr, int64(n)); err != nil {
			return nil, torn(sr, err)
		}
		return nil, nil
	}
	e.ref.set(slot)
	// The header bytes, then the table of spans (written by layOut), then
	// the bodies, then the key (as Seal lays them out).
	if moved {
		e.moveKey(b[int(n)+SpanTableSize : size])
	}
	b = b[:n+uint64(SpanTableSize)]
	if err := sr.full(b[:l.hl]); err != nil {
		e.Release()
		return nil, err
	}
	if err := sr.full(b[l.hl+uint64(SpanTableSize):]); err != nil {
		e.Release()
		return nil, err
	}
	if err := e.layOut(b, l); err != nil {
		e.Release()
		return nil, err
	}
	e.Cost = int64(slot.Size()) + heapCost(loadedHeapCost(e, moved))
	return e, nil
}

// AppendObject appends e as one peer sends it to another: its record, its
// stored time as an offset from now (the peers' clocks may differ), then
// its bytes.
func AppendObject(b []byte, e *Entry, now time.Time) []byte {
	b = appendRecord(b, e, now)
	b = append(b, e.HdrData()...)
	b = append(b, e.Body...)
	if e.Zstd() != nil {
		b = append(b, e.Zstd().Body...)
	}
	return b
}

// DecodeObject reads an object AppendObject wrote into a new entry whose
// bytes are copies on the heap (not sealed, not stored: the caller seals
// it to store it), stored as long before now as before the sender's now.
// Nothing in b is trusted.
func (s *Store) DecodeObject(b []byte, now time.Time) (*Entry, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(bytes.NewReader(b), 16), h: crc32.New(crcTable)}
	kind, err := sr.ReadByte()
	if err != nil || kind != recordEntry {
		return nil, fmt.Errorf("%w: not an object record", ErrSnapshot)
	}
	e, l, err := s.readRecord(sr, now)
	if err != nil {
		return nil, err
	}
	n := l.hl + l.bl + l.zl
	if uint64(sr.n)+n != uint64(len(b)) {
		return nil, fmt.Errorf("%w: an object record of %d bytes says %d", ErrSnapshot, len(b), uint64(sr.n)+n)
	}
	buf := make([]byte, n+uint64(SpanTableSize))
	copy(buf, b[sr.n:sr.n+int64(l.hl)])
	copy(buf[l.hl+uint64(SpanTableSize):], b[sr.n+int64(l.hl):])
	if err := e.layOut(buf, l); err != nil {
		return nil, err
	}
	e.Cost = int64(len(buf)) + loadedHeapCost(e, false) // as a fetched entry before Seal
	return e, nil
}

// layOut points e's buffers into b, which holds its header bytes, room
// for the table of spans (which it writes), its body and its zstd body,
// and checks its field table against them.
func (e *Entry) layOut(b []byte, l recordLayout) error {
	hl := l.hl + uint64(SpanTableSize)
	bl, n := l.bl, hl+l.bl+l.zl
	e.Hdr, e.Body = b[:hl:hl], b[hl:hl+bl:hl+bl]
	if l.zl > 0 || len(l.zetag) > 0 {
		e.SetZstd(&ZstdForm{Body: b[hl+bl : n : n], ETag: l.zetag})
	}
	for i, sp := range l.spans {
		e.SetSpan(SpanID(i), sp)
	}
	hl = l.hl
	for i := range e.NumFields() {
		r := e.Hdr[int(e.Span(SpanFields).Start)+i*fieldSpanSize:][:fieldSpanSize]
		k0, k1, v1 := binary.LittleEndian.Uint32(r), binary.LittleEndian.Uint32(r[4:]), binary.LittleEndian.Uint32(r[8:])
		if k0 > k1 || k1 > v1 || uint64(v1) > hl {
			return fmt.Errorf("%w: field %d outside the header bytes (corrupted)", ErrSnapshot, i)
		}
	}
	return nil
}

// readRecord reads an object record up to its bytes.
func (s *Store) readRecord(sr *snapshotReader, base time.Time) (*Entry, recordLayout, error) {
	var l recordLayout
	e := &Entry{Kind: KindObject, ID: s.NextID()}
	var err error
	if e.Key, err = sr.bytes("key length", maxSnapshotKey); err != nil {
		return nil, l, err
	}
	status, err := sr.uvarint("status", 999)
	if err != nil {
		return nil, l, err
	}
	e.Status = uint16(status)
	var small [3]byte
	if err := sr.full(small[:]); err != nil {
		return nil, l, err
	}
	e.Enc, e.ETagEnc = cachepolicy.Encoding(small[0]), cachepolicy.Encoding(small[1])
	if e.Enc != cachepolicy.Identity && e.Enc != cachepolicy.Gzip || e.ETagEnc != cachepolicy.Identity && e.ETagEnc != cachepolicy.Gzip {
		return nil, l, fmt.Errorf("%w: encoding %d/%d at byte %d (corrupted)", ErrSnapshot, small[0], small[1], sr.n)
	}
	e.Revalidate, e.NoTransform = small[2]&1 != 0, small[2]&2 != 0
	stored, err := sr.varint()
	if err != nil {
		return nil, l, err
	}
	e.SetStoredAt(base.Add(time.Duration(stored)))
	var ds [5]int64
	for i := range ds {
		if ds[i], err = sr.varint(); err != nil {
			return nil, l, err
		}
		if ds[i] < 0 {
			return nil, l, fmt.Errorf("%w: negative lifetime at byte %d (corrupted)", ErrSnapshot, sr.n)
		}
	}
	e.InitialAge, e.TTL, e.Grace, e.Keep = time.Duration(ds[0]), time.Duration(ds[1]), time.Duration(ds[2]), time.Duration(ds[3])
	e.purgedAt.Store(ds[4])
	il, err := sr.uvarint("decoded length", 1<<62)
	if err != nil {
		return nil, l, err
	}
	e.IdentityLen = int64(il)
	if e.LastModTime, err = sr.varint(); err != nil {
		return nil, l, err
	}
	var spans [numSpans]Span
	for i := range spans {
		a, err := sr.uvarint("span", maxSnapshotHdr)
		if err != nil {
			return nil, l, err
		}
		b, err := sr.uvarint("span", maxSnapshotHdr)
		if err != nil {
			return nil, l, err
		}
		spans[i] = Span{uint32(a), uint32(b)}
	}
	if e.VaryNames, err = sr.strings("Vary name"); err != nil {
		return nil, l, err
	}
	tags, err := sr.strings("tag")
	if err != nil {
		return nil, l, err
	}
	for _, t := range tags {
		// A tag as the edge parses one, or Tags would split it.
		if p, skipped := cachepolicy.ParseSurrogateKeys(nil, []byte(t)); skipped > 0 || len(p) != 1 || p[0] != t {
			return nil, l, fmt.Errorf("%w: tag %q at byte %d (corrupted)", ErrSnapshot, t, sr.n)
		}
	}
	e.SetTags(tags)
	hl, err := sr.uvarint("header length", maxSnapshotHdr)
	if err != nil {
		return nil, l, err
	}
	bl, err := sr.uvarint("body length", slab.MaxSize)
	if err != nil {
		return nil, l, err
	}
	zl, err := sr.uvarint("zstd body length", slab.MaxSize)
	if err != nil {
		return nil, l, err
	}
	zetag, err := sr.bytes("zstd ETag length", maxSnapshotStr)
	if err != nil {
		return nil, l, err
	}
	for i, sp := range spans {
		if sp.Start > sp.End || uint64(sp.End) > hl {
			return nil, l, fmt.Errorf("%w: span %d (%d-%d) outside the %d header bytes (corrupted)", ErrSnapshot, i, sp.Start, sp.End, hl)
		}
	}
	if (spans[SpanFields].End-spans[SpanFields].Start)%fieldSpanSize != 0 {
		return nil, l, fmt.Errorf("%w: a field table of %d bytes (corrupted)", ErrSnapshot, spans[SpanFields].End-spans[SpanFields].Start)
	}
	n := hl + bl + zl
	if n > slab.MaxSize {
		return nil, l, fmt.Errorf("%w: an object of %d bytes (corrupted)", ErrSnapshot, n)
	}
	l.spans, l.hl, l.bl, l.zl, l.zetag = spans, hl, bl, zl, zetag
	return e, l, nil
}

// loadedHeapCost is what a loaded entry keeps on the Go heap, counted as
// the edge counts a fetched one once sealed: the entry and its
// bookkeeping, its tags' share of the index, the zstd ETag, and its key
// and tags unless they moved into its slot (keyMoved).
func loadedHeapCost(e *Entry, keyMoved bool) int64 {
	c := EntryOverhead
	if !keyMoved { // a large object's key and tags stay on the heap
		c += int64(len(e.Key) + len(e.tags))
	}
	c += e.tagIndexCost()
	if e.Zstd() != nil {
		c += int64(len(e.Zstd().ETag)) + 48 + 32 // the ZstdForm and the entry's extra part
	}
	return c
}

// Store puts the loaded objects into the store (a marker for the ones that
// vary); it returns how many were admitted. Call it before the store serves
// requests.
func (l *Loaded) Store(s *Store) int {
	n := 0
	gen := s.Generation()
	for i, e := range l.entries {
		if len(e.VaryNames) > 0 && !s.AdmitVariant(e.URL(), e.Key) {
			e.Release()
			continue
		}
		if s.Put(e, gen) {
			n++
		}
		e.Release() // the builder's reference: the store holds its own
		if i%256 == 255 {
			s.Wait() // ristretto's buffer drops sets that come too fast
		}
	}
	s.Wait()
	l.entries = nil
	return n
}

// Discard gives back the loaded objects' slots.
func (l *Loaded) Discard() {
	for _, e := range l.entries {
		e.Release()
	}
	l.entries = nil
}
