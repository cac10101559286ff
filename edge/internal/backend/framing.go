package backend

import (
	"errors"
	"fmt"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// ErrFraming means a backend sent a response header whose framing or
// status line the edge refuses to interpret (docs/RELIABILITY.md, promise 2: the
// same rules apply to what the origin sends). The fetch fails with 502,
// nothing is stored, and fasthttp closes the connection.
var ErrFraming = errors.New("edge: bad response framing from backend")

// framingCheck checks the response headers read from one backend connection,
// before fasthttp parses them. fasthttp's response parser tolerates what a
// proxy must not: Content-Length together with Transfer-Encoding (chunked
// wins and the connection is kept: a desync), Transfer-Encoding in an
// HTTP/1.0 response (ignored: the chunk framing becomes the body, RFC 9112
// §6.1 says to treat it as faulty), obs-fold (RFC 9112 §5.2), protocol
// versions other than HTTP/1.0 and 1.1, status codes outside 100-599 (a
// "000" even reads as 200), and 101 Switching Protocols, which the edge
// never asks for (it strips Upgrade).
//
// It sees the bytes of each Read; when a header is bad it cuts the bytes
// before the end of the offending line and returns an error, so that
// fasthttp never sees a complete header and fails the fetch. The zero value
// is idle; start arms it for the next response. Not safe for concurrent
// use (a connection carries one exchange at a time).
type framingCheck struct {
	active bool
	// line holds the first bytes of the current line: enough for the
	// status line and for the field names that matter here.
	line    [24]byte
	lineLen int  // bytes in the current line so far, without CR
	cr      bool // the previous byte was CR
	lines   int  // complete lines of the current header
	cl, te  int  // Content-Length and Transfer-Encoding lines
	http10  bool
	interim bool // the current header is a 1xx: another header follows
	err     error
}

// start arms the check for the response to a request just written.
func (fc *framingCheck) start() {
	*fc = framingCheck{active: true, err: fc.err}
}

// scan checks p, the bytes of one Read. It returns how many bytes of p may
// be handed on and, when the header is bad, the error to return with them.
// Once a connection has sent a bad header every later scan fails too.
func (fc *framingCheck) scan(p []byte) (int, error) {
	if fc.err != nil {
		return 0, fc.err
	}
	for i := 0; fc.active && i < len(p); i++ {
		c := p[i]
		if c != '\n' {
			if fc.cr && fc.lineLen < len(fc.line) {
				// A CR inside a line: fasthttp rejects bare CR in fields;
				// keep it so that the line does not look blank.
				fc.line[fc.lineLen] = '\r'
				fc.lineLen++
			}
			fc.cr = c == '\r'
			if !fc.cr {
				if fc.lineLen < len(fc.line) {
					fc.line[fc.lineLen] = c
				}
				fc.lineLen++
			}
			continue
		}
		if err := fc.endLine(); err != nil {
			fc.err = err
			return i, err
		}
	}
	return len(p), nil
}

// endLine processes the line that just ended.
func (fc *framingCheck) endLine() error {
	n, line := fc.lineLen, fc.line[:min(fc.lineLen, len(fc.line))]
	fc.lineLen, fc.cr = 0, false
	switch {
	case n == 0 && fc.lines == 0:
		return fmt.Errorf("%w: empty line before the status line", ErrFraming)
	case n == 0:
		return fc.endHeader()
	case fc.lines == 0:
		fc.lines++
		return fc.statusLine(line, n)
	}
	fc.lines++
	if line[0] == ' ' || line[0] == '\t' {
		return fmt.Errorf("%w: obsolete line folding", ErrFraming)
	}
	colon := -1
	for i, c := range line {
		if c == ':' {
			colon = i
			break
		}
	}
	if colon < 0 {
		return nil // a long name: not one that frames the message
	}
	name := line[:colon]
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
		name = name[:len(name)-1] // fasthttp trims it too
	}
	switch {
	case cachepolicy.EqualFold(name, "content-length"):
		fc.cl++
	case cachepolicy.EqualFold(name, "transfer-encoding"):
		fc.te++
	}
	return nil
}

// statusLine checks "HTTP/1.x NNN[ reason]".
func (fc *framingCheck) statusLine(line []byte, n int) error {
	const proto = "HTTP/1."
	if n < len(proto)+5 || string(line[:len(proto)]) != proto ||
		(line[7] != '0' && line[7] != '1') || line[8] != ' ' || (n > 12 && line[12] != ' ') {
		return fmt.Errorf("%w: malformed status line", ErrFraming)
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: malformed status line", ErrFraming)
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || status > 599 || status == 101 {
		return fmt.Errorf("%w: status %d", ErrFraming, status)
	}
	fc.http10 = line[7] == '0'
	fc.interim = status < 200
	return nil
}

// endHeader checks a complete header; after a 1xx the next header is checked too.
func (fc *framingCheck) endHeader() error {
	switch {
	case fc.te > 0 && fc.cl > 0:
		return fmt.Errorf("%w: Content-Length with Transfer-Encoding", ErrFraming)
	case fc.te > 0 && fc.http10:
		return fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 response", ErrFraming)
	}
	if fc.interim {
		fc.start()
		return nil
	}
	fc.active = false
	return nil
}
