package edge

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/backend"
	"github.com/lakka-cache/lakka/edge/internal/store"
	"github.com/lakka-cache/lakka/rules"
)

// request is one client request on its way through the stages: the
// per-request scratch memory (pooled, so that a hit does not allocate) and
// what the stages decided. Nothing in it outlives the handler: bytes from
// the RequestCtx are borrowed, and copied where kept.
type request struct {
	s   *Server
	ctx *fasthttp.RequestCtx
	// g is the generation the request started under (reload.go).
	g *generation

	host    []byte // normalised host
	target  []byte // normalised target
	key     []byte // URL key (cachekey)
	vkey    []byte // variant key, when the URL varies
	cookie  []byte // Cookie after stripping ignorable cookies
	scratch []byte
	start   responseStart
	// probe is scratch for checking a hit header before it is kept
	// (fromServerLoop).
	probe fasthttp.ResponseHeader

	raw       rawCounts
	route     int // index into policy.routes, or -1
	isHEAD    bool
	hasCookie bool
	ae        cachepolicy.AcceptEncoding
	result    cacheResult
	detail    detail
	began     time.Time // fasthttp's time of the request
	// now is the request's time on the freshness clock.
	now time.Time
	// held are the entries (and decoded copies) whose stored bytes this
	// request may read (store.Entry.Acquire): released when the handler
	// ends, except the one whose body is sent, which the body reader
	// releases once written (setBody).
	held  [maxHeld]heldBytes
	nheld int
	// sent is the length of a stored body being sent (for the bytes-sent
	// metric), or -1.
	sent int
	// The rules (rules.go): ruled says the request phase ran; view is
	// the request as conditions read it; rres and dres are the request
	// and deliver phases' results; dir is the pool a rule chose (nil:
	// the default).
	ruled      bool
	view       ruleView
	rres, dres rules.Result
	dir        *backend.Director
	// The cluster (cluster.go, peer.go): peer is how a peer request asks
	// (peerNone for a client's), peerLife the lifetimes its sender's rules
	// set, peerHops its hop list (borrowed from ctx); peerNode is the peer
	// that answered this request's miss (Cache-Status).
	peer     peerMode
	peerLife lifetimes
	peerHops []byte
	peerNode string
	// peerWait is how long a peer waits for this request's fetch.
	peerWait time.Duration
}

// maxHeld bounds what one request holds: a Vary marker and the object
// served or revalidated, its decoded copy, and what a fetch brought.
const maxHeld = 6

// heldBytes is stored bytes a request holds a reference on: an entry
// (store.Entry) or a decoded copy (store.Copy).
type heldBytes interface {
	Release()
	Sealed() bool // in a slot of the store's pool, not on the heap
}

// hold records a reference the request took on e (nil: nothing), to be
// released when the handler ends.
func (r *request) hold(e *store.Entry) {
	if e != nil {
		r.holdBytes(e)
	}
}

func (r *request) holdBytes(b heldBytes) {
	if r.nheld == maxHeld {
		panic("BUG: a request holds too many entries")
	}
	r.held[r.nheld] = b
	r.nheld++
}

// releaseHeld gives back every reference the request holds.
func (r *request) releaseHeld() {
	for i := range r.nheld {
		r.held[i].Release()
		r.held[i] = nil
	}
	r.nheld = 0
}

// maxRetainedScratch bounds buffers kept in the pool.
const maxRetainedScratch = 64 << 10

// equalFold reports whether b is s ignoring ASCII case.
func equalFold(b []byte, s string) bool { return cachepolicy.EqualFold(b, s) }

// inListCGI is inList where '_' in name also matches '-': CGI, PHP and
// many frameworks read "X_Forwarded_Host" as X-Forwarded-Host.
func inListCGI(list []string, name []byte) bool {
	if bytes.IndexByte(name, '_') < 0 {
		return inList(list, name)
	}
	for _, s := range list {
		if len(name) != len(s) {
			continue
		}
		same := true
		for i := range len(name) {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 32
			} else if c == '_' {
				c = '-'
			}
			if c != s[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func inList(list []string, name []byte) bool {
	for _, s := range list {
		if equalFold(name, s) {
			return true
		}
	}
	return false
}

// connectionTokens reports whether name is listed in a Connection value.
func connectionTokens(conn, name []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		tok, conn = nextListItem(conn)
		if len(tok) == len(name) && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// nextListItem splits the first item, without surrounding whitespace, off
// a comma-separated field value.
func nextListItem(list []byte) (item, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		return bytes.TrimSpace(list[:i]), list[i+1:]
	}
	return bytes.TrimSpace(list), nil
}

// rawCounts counts the header lines the edge must see more than once of,
// from the raw header bytes (fasthttp's parsed view merges or drops
// repeats).
type rawCounts struct {
	contentLength, transferEncoding, host, cookie int
	// Presence of headers the hit path would otherwise Peek for: a Peek
	// normalises the name and scans every header, so looking only for
	// what is there saves most of them.
	authorization, cacheControl, rangeHdr, ifRange, ifNoneMatch, ifModifiedSince, connection bool
	// complete says the raw headers were available; without them every
	// header counts as present (never as absent).
	complete bool
}

// has reports whether a header may be present.
func (c *rawCounts) has(flag bool) bool { return flag || !c.complete }

func countRaw(raw []byte) (c rawCounts) {
	c.complete = len(raw) > 0
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		line := raw
		if end >= 0 {
			line, raw = raw[:end], raw[end+1:]
		} else {
			raw = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := line[:colon]
		switch name[0] | 0x20 {
		case 'c':
			switch {
			case equalFold(name, "content-length"):
				c.contentLength++
			case equalFold(name, "cookie"):
				c.cookie++
			case equalFold(name, "cache-control"):
				c.cacheControl = true
			case equalFold(name, "connection"):
				c.connection = true
			}
		case 't':
			if equalFold(name, "transfer-encoding") {
				c.transferEncoding++
			}
		case 'h':
			if equalFold(name, "host") {
				c.host++
			}
		case 'a':
			if equalFold(name, "authorization") {
				c.authorization = true
			}
		case 'r':
			if equalFold(name, "range") {
				c.rangeHdr = true
			}
		case 'i':
			switch {
			case equalFold(name, "if-none-match"):
				c.ifNoneMatch = true
			case equalFold(name, "if-modified-since"):
				c.ifModifiedSince = true
			case equalFold(name, "if-range"):
				c.ifRange = true
			}
		default:
			// fasthttp folds continuation lines into the header before;
			// a name-less line changes nothing here.
		}
	}
	return c
}
