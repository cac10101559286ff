// Package coding holds the content codings of the edge's bodies: gzip and
// zstd made once at store time, decoding for clients without gzip (whole,
// or while sending), and the checks that keep a corrupt or inflating gzip
// body from the origin from reaching a client whole or the store at all.
//
// Every body is compressed at most once per stored object, never per
// request; a stored body is decoded once per object while identity clients
// ask for it (the edge's identity pool keeps the copy), or while sending
// for bodies too large to keep decoded. Memory stays bounded whatever a
// body inflates to.
package coding

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// MaxInflation bounds how much larger than cache.max_object_bytes a
// decoded gzip body from the origin may be (gzip bombs): more is refused
// with 502 and not stored.
const MaxInflation = 8

// ErrCorrupt marks an origin body labelled gzip that does not decode
// (bad header, bad data, bad checksum, trailing garbage) or decodes to more
// than MaxInflation allows.
var ErrCorrupt = errors.New("edge: gzip body from origin does not decode")

// ErrInflation means a gzip body decodes to more than the limit asked.
var ErrInflation = errors.New("decoded body too large")

var gzipWriters [10]sync.Pool // *gzip.Writer, by level

// Gzip compresses body at level (1-9); the result has no spare capacity
// (it is stored, and counted by length).
func Gzip(body []byte, level int) []byte {
	return bytes.Clone(GzipAppend(make([]byte, 0, len(body)/3+64), body, level))
}

// GzipAppend compresses body at level (1-9) and appends it to dst, which
// it grows only when the compressed form does not fit.
func GzipAppend(dst, body []byte, level int) []byte {
	buf := bytes.NewBuffer(dst)
	w, _ := gzipWriters[level].Get().(*gzip.Writer)
	if w == nil {
		w, _ = gzip.NewWriterLevel(buf, level) // level is validated: 1-9
	} else {
		w.Reset(buf)
	}
	_, _ = w.Write(body) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	w.Reset(io.Discard) // the writer goes back to the pool without buf
	gzipWriters[level].Put(w)
	return buf.Bytes()
}

// NewZstdEncoder returns the encoder of stored zstd forms. Its level is
// fixed: the form is made once per object, so a better level than zstd's
// default pays; the window stays within the 8 MiB that RFC 9659 asks HTTP
// clients to support.
func NewZstdEncoder() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithWindowSize(8<<20),
		zstd.WithEncoderConcurrency(2),
	)
}

// Zstd compresses body with enc (safe for concurrent use); the result
// has no spare capacity.
func Zstd(enc *zstd.Encoder, body []byte) []byte {
	return bytes.Clone(enc.EncodeAll(body, make([]byte, 0, len(body)/3+64)))
}

var gzipReaders sync.Pool // *gzip.Reader

// acquireGzipReader returns a pooled reader of r's gzip stream.
func acquireGzipReader(r io.Reader) (*gzip.Reader, error) {
	if zr, _ := gzipReaders.Get().(*gzip.Reader); zr != nil {
		if err := zr.Reset(r); err != nil {
			gzipReaders.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(r)
}

func releaseGzipReader(zr *gzip.Reader) {
	if zr != nil {
		gzipReaders.Put(zr)
	}
}

// GunzipLen decodes body to count its decoded length, checking the CRC and
// that nothing but gzip members follows, and refusing more than limit
// bytes. Memory stays bounded whatever the body inflates to.
func GunzipLen(body []byte, limit int64) (int64, error) {
	zr, err := acquireGzipReader(bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer releaseGzipReader(zr)
	n, err := io.Copy(io.Discard, io.LimitReader(zr, limit+1))
	if err != nil {
		return 0, err
	}
	if n > limit {
		return 0, ErrInflation
	}
	return n, nil
}

// GunzipExact decodes a gzip body known to decode to exactly n bytes (a
// stored body, checked by GunzipLen) into a slice of that size.
func GunzipExact(body []byte, n int64) ([]byte, error) {
	out := make([]byte, n)
	if err := GunzipInto(out, body); err != nil {
		return nil, err
	}
	return out, nil
}

// GunzipInto decodes a gzip body known to decode to exactly len(dst)
// bytes into dst.
func GunzipInto(dst, body []byte) error {
	zr, err := acquireGzipReader(bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer releaseGzipReader(zr)
	if _, err := io.ReadFull(zr, dst); err != nil {
		return err
	}
	var one [1]byte
	if m, err := zr.Read(one[:]); m != 0 || err != io.EOF {
		return fmt.Errorf("decoded body longer than %d bytes (%v)", len(dst), err)
	}
	return nil
}

// GunzipStream decodes a stored gzip body while fasthttp sends it: memory
// per request is the decoder's, whatever the body's size. fasthttp closes
// it when done, which returns the decoder to its pool.
type GunzipStream struct {
	zr *gzip.Reader
	br bytes.Reader
}

// NewGunzipStream starts decoding body.
func NewGunzipStream(body []byte) (*GunzipStream, error) {
	g := &GunzipStream{}
	g.br.Reset(body)
	zr, err := acquireGzipReader(&g.br)
	if err != nil {
		return nil, err
	}
	g.zr = zr
	return g, nil
}

func (g *GunzipStream) Read(p []byte) (int, error) { return g.zr.Read(p) }

// Close returns the decoder to its pool.
func (g *GunzipStream) Close() error {
	releaseGzipReader(g.zr)
	g.zr = nil
	return nil
}

// GzipCheck passes a gzip stream from the origin through unchanged while
// decoding it on the side, so that a corrupt body is never delivered whole:
// a byte goes to the client only after the decoder has read it, and the
// decoder reads a member's checksum in the same call that checks it. On a
// decoding error the bytes read since are withheld and the stream fails,
// which makes fasthttp abort the response (short body, no final chunk).
// Memory is two small buffers, whatever the stream's size.
type GzipCheck struct {
	src io.Reader
	// data[handed:consumed] went to the decoder, not yet to the client;
	// data[consumed:filled] was read from src, not yet decoded.
	data                     []byte
	handed, consumed, filled int
	srcErr                   error
	zr                       *gzip.Reader
	scratch                  []byte // decoded bytes, discarded
	err                      error
	onCorrupt                func(error)
}

// maxCheckBuffer bounds GzipCheck's buffer (a header with a huge name or
// extra field is corrupt enough).
const maxCheckBuffer = 1 << 20

// NewGzipCheck checks the gzip stream src while it is read; onCorrupt is
// told once when it does not decode (not when src itself fails).
func NewGzipCheck(src io.Reader, onCorrupt func(error)) *GzipCheck {
	return &GzipCheck{src: src, data: make([]byte, 32<<10), scratch: make([]byte, 32<<10), onCorrupt: onCorrupt}
}

func (c *GzipCheck) Read(p []byte) (int, error) {
	for c.handed == c.consumed {
		if c.err != nil {
			return 0, c.err
		}
		if c.zr == nil {
			zr, err := gzip.NewReader(checkSource{c}) // a ByteReader: no read-ahead
			if err != nil {
				c.fail(err)
				return 0, c.err
			}
			c.zr = zr
			continue
		}
		_, err := c.zr.Read(c.scratch)
		if err == io.EOF {
			c.err = io.EOF // every byte was decoded (multistream reads to src's end)
		} else if err != nil {
			c.fail(err)
			return 0, c.err
		}
	}
	n := copy(p, c.data[c.handed:c.consumed])
	c.handed += n
	return n, nil
}

func (c *GzipCheck) fail(err error) {
	c.handed = c.consumed // withhold what the decoder read since
	if c.srcErr != nil && c.srcErr != io.EOF {
		// The origin's stream failed (timeout, reset): not a gzip error.
		c.err = c.srcErr
		return
	}
	c.err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	if c.onCorrupt != nil {
		c.onCorrupt(err)
	}
}

// srcTap remembers the first error other than io.EOF its reader returned,
// so that a decoder's failure can be told from its source's.
type srcTap struct {
	r   io.Reader
	err error
}

func (t *srcTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// NewGunzipRelay decodes an origin's gzip stream r for a client without
// gzip. onCorrupt is told once when the stream does not decode (not when r
// itself fails): at once when its header is bad (then the error is
// returned too), or later while reading.
func NewGunzipRelay(r io.Reader, onCorrupt func(error)) (io.Reader, error) {
	src := &srcTap{r: r}
	zr, err := gzip.NewReader(src)
	if err != nil {
		if src.err == nil && onCorrupt != nil {
			onCorrupt(err)
		}
		return nil, err
	}
	return &gunzipRelay{zr: zr, src: src, onCorrupt: onCorrupt}, nil
}

// gunzipRelay decodes an origin's gzip stream for a client without gzip,
// reporting a decoding failure (not a failure of the origin's stream) once.
type gunzipRelay struct {
	zr        *gzip.Reader
	src       *srcTap
	onCorrupt func(error)
}

func (g *gunzipRelay) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF && g.src.err == nil && g.onCorrupt != nil {
		g.onCorrupt(err)
		g.onCorrupt = nil
	}
	return n, err
}

// checkSource is the decoder's side of a GzipCheck: it hands out
// data[consumed:filled]. Being an io.ByteReader, the decoder reads exactly
// what it decodes and buffers nothing of its own.
type checkSource struct{ c *GzipCheck }

func (s checkSource) Read(p []byte) (int, error) { return s.c.read(p) }
func (s checkSource) ReadByte() (byte, error)    { return s.c.readByte() }

func (c *GzipCheck) readByte() (byte, error) {
	if c.consumed == c.filled {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	b := c.data[c.consumed]
	c.consumed++
	return b, nil
}

func (c *GzipCheck) read(p []byte) (int, error) {
	if c.consumed == c.filled {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.data[c.consumed:c.filled])
	c.consumed += n
	return n, nil
}

// fill reads more of src, first moving what the client has not taken yet
// to the front.
func (c *GzipCheck) fill() error {
	if c.srcErr != nil {
		return c.srcErr
	}
	if c.handed > 0 {
		copy(c.data, c.data[c.handed:c.filled])
		c.consumed -= c.handed
		c.filled -= c.handed
		c.handed = 0
	}
	if c.filled == len(c.data) {
		if len(c.data) >= maxCheckBuffer {
			c.srcErr = errors.New("gzip stream: decoder read too far ahead")
			return c.srcErr
		}
		c.data = append(c.data, make([]byte, len(c.data))...)
	}
	n, err := c.src.Read(c.data[c.filled:])
	c.filled += n
	if err != nil && n == 0 {
		c.srcErr = err
		return err
	}
	return nil
}

// compressedMagic lists the leading bytes of formats that are compressed
// already (gzip, zstd, zip, xz, bzip2, 7z, PNG, JPEG, GIF, RIFF/WebP,
// WOFF, WOFF2): an .svgz served as image/svg+xml without Content-Encoding
// must not be compressed again.
var compressedMagic = [][]byte{
	{0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}, []byte("PK\x03\x04"), {0xfd, '7', 'z', 'X', 'Z', 0},
	[]byte("BZh"), {'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}, {0x89, 'P', 'N', 'G'}, {0xff, 0xd8, 0xff},
	[]byte("GIF8"), []byte("RIFF"), []byte("wOFF"), []byte("wOF2"),
}

// IsCompressed reports whether body starts like a compressed format, so
// that compressing it again would be wasted work.
func IsCompressed(body []byte) bool {
	for _, m := range compressedMagic {
		if bytes.HasPrefix(body, m) {
			return true
		}
	}
	return false
}
