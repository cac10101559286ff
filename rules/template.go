package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// template is a compiled value template: literal text and variables,
// ${1}... (the captures of the rule's path_regex, or of rewrite_path's
// regex), ${host}, ${path} (with query), ${header:NAME}, ${cookie:NAME},
// ${bucket} and ${node} (resolved when compiled).
type template struct {
	parts []part
	// constant is the whole value when there are no variables: expanding
	// it costs nothing.
	constant []byte
	// captures says a part is a capture: the rule's regular expression
	// must be run for its submatches; maxCapture is the highest (-1:
	// none).
	captures   bool
	maxCapture int
}

type partKind uint8

const (
	partText partKind = iota
	partCapture
	partHost
	partPath
	partHeader
	partCookie
	partBucket
)

type part struct {
	kind partKind
	text string // partText: the text; partHeader, partCookie: the name
	n    int    // partCapture: the capture's number
}

// template parses s; an empty s is a nil template.
func (c *compiler) template(field, s string) *template {
	if s == "" {
		return nil
	}
	t := &template{maxCapture: -1}
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			t.parts = append(t.parts, part{kind: partText, text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			text.WriteString(s[i:])
			break
		}
		text.WriteString(s[i : i+j])
		i += j
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			c.errorf(field, "an unclosed ${ at byte %d of %q", i, s)
			return nil
		}
		v := s[i+2 : i+end]
		i += end + 1
		name, arg, hasArg := strings.Cut(v, ":")
		switch {
		case name == "node" && !hasArg:
			text.WriteString(c.node)
			continue
		case name == "host" && !hasArg:
			flush()
			t.parts = append(t.parts, part{kind: partHost})
		case name == "path" && !hasArg:
			flush()
			t.parts = append(t.parts, part{kind: partPath})
		case name == "bucket" && !hasArg:
			flush()
			t.parts = append(t.parts, part{kind: partBucket})
		case (name == "header" || name == "cookie") && hasArg && arg != "":
			flush()
			k := partHeader
			if name == "cookie" {
				k = partCookie
			}
			t.parts = append(t.parts, part{kind: k, text: arg})
		default:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 99 {
				c.errorf(field, "unknown variable ${%s} in %q (${1}..., ${host}, ${path}, ${header:NAME}, ${cookie:NAME}, ${bucket}, ${node})", v, s)
				return nil
			}
			flush()
			t.parts = append(t.parts, part{kind: partCapture, n: n})
			t.captures = true
			t.maxCapture = max(t.maxCapture, n)
		}
	}
	flush()
	if len(t.parts) == 0 {
		t.constant = []byte{}
	} else if len(t.parts) == 1 && t.parts[0].kind == partText {
		t.constant = []byte(t.parts[0].text)
	}
	return t
}

// expand appends the template's value to dst. caps holds submatch
// indexes into subject (regexp's FindSubmatchIndex), or nil.
func (t *template) expand(dst []byte, req Request, subject []byte, caps []int) []byte {
	if t.constant != nil {
		return append(dst, t.constant...)
	}
	for _, p := range t.parts {
		switch p.kind {
		case partText:
			dst = append(dst, p.text...)
		case partCapture:
			if 2*p.n+1 < len(caps) && caps[2*p.n] >= 0 {
				dst = append(dst, subject[caps[2*p.n]:caps[2*p.n+1]]...)
			}
		case partHost:
			dst = append(dst, req.Host()...)
		case partPath:
			dst = append(dst, req.URI()...)
		case partHeader:
			v, _ := req.Header(p.text)
			dst = append(dst, v...)
		case partCookie:
			v, _ := req.Cookie(p.text)
			dst = append(dst, v...)
		case partBucket:
			dst = strconv.AppendInt(dst, int64(req.Bucket()), 10)
		}
	}
	return dst
}

// String shows the template as written (for explain).
func (t *template) String() string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partText:
			b.WriteString(p.text)
		case partCapture:
			fmt.Fprintf(&b, "${%d}", p.n)
		case partHost:
			b.WriteString("${host}")
		case partPath:
			b.WriteString("${path}")
		case partHeader:
			b.WriteString("${header:" + p.text + "}")
		case partCookie:
			b.WriteString("${cookie:" + p.text + "}")
		case partBucket:
			b.WriteString("${bucket}")
		}
	}
	return b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }
