package edge

import (
	"errors"
	"fmt"
)

// errOriginFraming means a backend sent a response head whose framing or
// status line the edge refuses to interpret (RELIABILITY promise 2: the
// same rules apply to what the origin sends). The fetch fails with 502,
// nothing is stored, and fasthttp closes the connection.
var errOriginFraming = errors.New("edge: bad response framing from backend")

// headCheck checks the response heads read from one backend connection,
// before fasthttp parses them. fasthttp's response parser tolerates what a
// proxy must not: Content-Length together with Transfer-Encoding (chunked
// wins and the connection is kept: a desync), Transfer-Encoding in an
// HTTP/1.0 response (ignored: the chunk framing becomes the body, RFC 9112
// §6.1 says to treat it as faulty), obs-fold (RFC 9112 §5.2), protocol
// versions other than HTTP/1.0 and 1.1, status codes outside 100-599 (a
// "000" even reads as 200), and 101 Switching Protocols, which the edge
// never asks for (it strips Upgrade).
//
// It sees the bytes of each Read; when a head is bad it cuts the bytes
// before the end of the offending line and returns an error, so that
// fasthttp never sees a complete head and fails the fetch. The zero value
// is idle; start arms it for the next response. Not safe for concurrent
// use (a connection carries one exchange at a time).
type headCheck struct {
	active bool
	// line holds the first bytes of the current line: enough for the
	// status line and for the field names that matter here.
	line    [24]byte
	lineLen int  // bytes in the current line so far, without CR
	cr      bool // the previous byte was CR
	lines   int  // complete lines of the current head
	cl, te  int  // Content-Length and Transfer-Encoding lines
	http10  bool
	interim bool // the current head is a 1xx: another head follows
	err     error
}

// start arms the check for the response to a request just written.
func (h *headCheck) start() {
	*h = headCheck{active: true, err: h.err}
}

// scan checks p, the bytes of one Read. It returns how many bytes of p may
// be handed on and, when the head is bad, the error to return with them.
// Once a connection has sent a bad head every later scan fails too.
func (h *headCheck) scan(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	for i := 0; h.active && i < len(p); i++ {
		c := p[i]
		if c != '\n' {
			if h.cr && h.lineLen < len(h.line) {
				// A CR inside a line: fasthttp rejects bare CR in fields;
				// keep it so that the line does not look blank.
				h.line[h.lineLen] = '\r'
				h.lineLen++
			}
			h.cr = c == '\r'
			if !h.cr {
				if h.lineLen < len(h.line) {
					h.line[h.lineLen] = c
				}
				h.lineLen++
			}
			continue
		}
		if err := h.endLine(); err != nil {
			h.err = err
			return i, err
		}
	}
	return len(p), nil
}

// endLine processes the line that just ended.
func (h *headCheck) endLine() error {
	n, line := h.lineLen, h.line[:min(h.lineLen, len(h.line))]
	h.lineLen, h.cr = 0, false
	switch {
	case n == 0 && h.lines == 0:
		return fmt.Errorf("%w: empty line before the status line", errOriginFraming)
	case n == 0:
		return h.endHead()
	case h.lines == 0:
		h.lines++
		return h.statusLine(line, n)
	}
	h.lines++
	if line[0] == ' ' || line[0] == '\t' {
		return fmt.Errorf("%w: obsolete line folding", errOriginFraming)
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
	case asciiEqualFold(name, "content-length"):
		h.cl++
	case asciiEqualFold(name, "transfer-encoding"):
		h.te++
	}
	return nil
}

// statusLine checks "HTTP/1.x NNN[ reason]".
func (h *headCheck) statusLine(line []byte, n int) error {
	const proto = "HTTP/1."
	if n < len(proto)+5 || string(line[:len(proto)]) != proto ||
		(line[7] != '0' && line[7] != '1') || line[8] != ' ' || (n > 12 && line[12] != ' ') {
		return fmt.Errorf("%w: malformed status line", errOriginFraming)
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: malformed status line", errOriginFraming)
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || status > 599 || status == 101 {
		return fmt.Errorf("%w: status %d", errOriginFraming, status)
	}
	h.http10 = line[7] == '0'
	h.interim = status < 200
	return nil
}

// endHead checks a complete head; after a 1xx the next head is checked too.
func (h *headCheck) endHead() error {
	switch {
	case h.te > 0 && h.cl > 0:
		return fmt.Errorf("%w: Content-Length with Transfer-Encoding", errOriginFraming)
	case h.te > 0 && h.http10:
		return fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 response", errOriginFraming)
	}
	if h.interim {
		h.start()
		return nil
	}
	h.active = false
	return nil
}
