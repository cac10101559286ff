package cachepolicy

import (
	"bytes"
	"errors"
)

// Errors from NormalizeTarget and NormalizeHost. The edge answers 400 to
// all of them.
var (
	ErrBadTarget = errors.New("cachepolicy: malformed request target")
	ErrBadHost   = errors.New("cachepolicy: malformed host")
)

// KeyRules configures query normalisation. The zero value keeps every
// parameter in its order.
type KeyRules struct {
	// StripQuery lists parameter-name globs ("utm_*"; '*' and '?' are the
	// only wildcards) removed from the target.
	StripQuery []string
	// SortQuery sorts parameters by name, stably (repeated names keep their
	// order, which can matter to the origin).
	SortQuery bool
}

// maxSortParams bounds the parameters sorted without allocating.
const maxSortParams = 64

// NormalizeTarget appends the normalised origin-form target ("/path" or
// "/path?query") of raw to dst and returns it, with the host of an
// absolute-form target ("http://host/path"), which is a sub-slice of raw
// (nil for origin-form).
//
// The same bytes are both the cache key and what is forwarded, so every
// normalisation here is one the origin cannot tell apart (RFC 3986 §6.2.2):
// percent-encoded unreserved characters are decoded, other escapes get
// upper-case hex, characters not allowed in a URI are percent-encoded, and
// "." and ".." segments are removed. Encoded delimiters (%2F, %3F, %23, %26,
// %3D) are never decoded. Query parameters matching rules.StripQuery are
// removed, empty ones dropped, and all sorted when rules.SortQuery.
//
// Control characters, a fragment, a bad escape or a target that is neither
// origin-form nor http(s) absolute-form give ErrBadTarget.
func NormalizeTarget(dst, raw []byte, rules *KeyRules) (out, host []byte, err error) {
	if len(raw) == 0 {
		return dst, nil, ErrBadTarget
	}
	orig := len(dst)
	if raw[0] != '/' {
		// absolute-form: scheme "://" authority [ path-abempty ] [ "?" query ]
		rest, ok := cutSchemePrefix(raw)
		if !ok {
			return dst, nil, ErrBadTarget
		}
		end := 0
		for end < len(rest) && rest[end] != '/' && rest[end] != '?' {
			end++
		}
		host = rest[:end]
		if len(host) == 0 || indexByte(host, '@') >= 0 {
			// userinfo in a request target is an attack, not a URL.
			return dst, nil, ErrBadTarget
		}
		for _, c := range host {
			if c <= ' ' || c == 0x7f || c == '#' {
				return dst, nil, ErrBadTarget
			}
		}
		raw = rest[end:]
		if len(raw) == 0 || raw[0] == '?' {
			dst = append(dst, '/')
			if len(raw) == 0 {
				return dst, host, nil
			}
		}
	}
	q := indexByte(raw, '?')
	path, query := raw, []byte(nil)
	if q >= 0 {
		path, query = raw[:q], raw[q+1:]
	}
	start := len(dst)
	dst, err = appendNormalizedComponent(dst, path, false)
	if err != nil {
		return dst[:orig], nil, err
	}
	if len(dst) > start {
		dst = append(dst[:start], removeDotSegments(dst[start:])...)
	}
	if q >= 0 {
		dst, err = appendNormalizedQuery(dst, query, rules)
		if err != nil {
			return dst[:orig], nil, err
		}
	}
	return dst, host, nil
}

func cutSchemePrefix(b []byte) ([]byte, bool) {
	for _, s := range [...]string{"http://", "https://"} {
		if len(b) >= len(s) && EqualFold(b[:len(s)], s) {
			return b[len(s):], true
		}
	}
	return nil, false
}

// appendNormalizedComponent appends a path or a query parameter with
// percent-encoding normalised. In a query, '?' and '/' are allowed as-is.
func appendNormalizedComponent(dst, b []byte, query bool) ([]byte, error) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '%':
			if i+2 >= len(b) {
				return dst, ErrBadTarget
			}
			h, ok1 := unhex(b[i+1])
			l, ok2 := unhex(b[i+2])
			if !ok1 || !ok2 {
				return dst, ErrBadTarget
			}
			v := h<<4 | l
			if isUnreserved(v) {
				dst = append(dst, v)
			} else {
				dst = append(dst, '%', upperHex[v>>4], upperHex[v&15])
			}
			i += 2
		case c < 0x20 || c == 0x7f || c == '#':
			return dst, ErrBadTarget
		case isPathChar(c) || (query && c == '?'):
			dst = append(dst, c)
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst, nil
}

type span struct{ start, end, nameEnd int }

func appendNormalizedQuery(dst, query []byte, rules *KeyRules) ([]byte, error) {
	qmark := len(dst)
	dst = append(dst, '?')
	for len(query) > 0 {
		amp := indexByte(query, '&')
		param := query
		if amp >= 0 {
			param, query = query[:amp], query[amp+1:]
		} else {
			query = nil
		}
		if len(param) == 0 {
			continue
		}
		start := len(dst)
		if start > qmark+1 {
			dst = append(dst, '&')
			start++
		}
		var err error
		dst, err = appendNormalizedComponent(dst, param, true)
		if err != nil {
			return dst, err
		}
		nameEnd := len(dst)
		if eq := indexByte(dst[start:], '='); eq >= 0 {
			nameEnd = start + eq
		}
		if rules != nil && matchAny(rules.StripQuery, dst[start:nameEnd]) {
			dst = dst[:start]
			if dst[len(dst)-1] == '&' {
				dst = dst[:len(dst)-1]
			}
			continue
		}
	}
	if len(dst) == qmark+1 {
		return dst[:qmark], nil // nothing left: no '?'
	}
	if rules != nil && rules.SortQuery {
		dst = sortQuery(dst, qmark+1)
	}
	return dst, nil
}

// sortQuery sorts the normalised parameters in dst[from:] (joined by '&').
// It is separate so that the span array is only set up when sorting.
func sortQuery(dst []byte, from int) []byte {
	var stack [maxSortParams]span
	spans := stack[:0]
	for i := from; i < len(dst); {
		end := i + indexByte(dst[i:], '&')
		if end < i {
			end = len(dst)
		}
		nameEnd := end
		if eq := indexByte(dst[i:end], '='); eq >= 0 {
			nameEnd = i + eq
		}
		spans = append(spans, span{i, end, nameEnd})
		i = end + 1
	}
	if len(spans) < 2 {
		return dst
	}
	return sortParams(dst, from, spans)
}

// sortParams rewrites dst[from:] with the parameters in spans sorted stably
// by name. Insertion sort: parameter lists are short, and it allocates
// nothing for up to maxSortParams (spans grows on the heap beyond).
func sortParams(dst []byte, from int, spans []span) []byte {
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && compareBytes(dst[spans[j].start:spans[j].nameEnd], dst[spans[j-1].start:spans[j-1].nameEnd]) < 0; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	// Append the sorted parameters after the current end, then move them
	// down over the unsorted ones.
	end := len(dst)
	for i, s := range spans {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, dst[s.start:s.end]...)
	}
	n := copy(dst[from:], dst[end:])
	return dst[:from+n]
}

func compareBytes(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

// removeDotSegments removes "." and ".." segments in place (RFC 3986
// §5.2.4) from a path that starts with '/', and returns the result.
func removeDotSegments(p []byte) []byte {
	if len(p) == 0 || p[0] != '/' {
		return p
	}
	if indexByte(p, '.') < 0 {
		return p
	}
	w := 0 // p[:w] is the output; it never overtakes the read position
	i := 0
	for i < len(p) {
		// p[i] == '/': read the segment after it.
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg := p[i+1 : j]
		last := j == len(p)
		switch {
		case len(seg) == 1 && seg[0] == '.':
			if last {
				p[w] = '/'
				w++
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			// Pop the last output segment with its leading '/'.
			for w > 0 && p[w-1] != '/' {
				w--
			}
			if w > 0 {
				w--
			}
			if last {
				p[w] = '/'
				w++
			}
		default:
			w += copy(p[w:], p[i:j])
		}
		i = j
	}
	if w == 0 {
		p[0] = '/'
		w = 1
	}
	return p[:w]
}

// NormalizeHost appends the normalised form of a Host header value (or the
// authority of an absolute-form target) to dst: lower-case, without a
// trailing dot and without the default port 80. Hosts with characters a DNS
// name, IPv4 or bracketed IPv6 literal cannot have give ErrBadHost.
func NormalizeHost(dst, host []byte) ([]byte, error) {
	if len(host) == 0 || len(host) > 255+6 {
		return dst, ErrBadHost
	}
	name, port := host, []byte(nil)
	if host[0] == '[' {
		end := indexByte(host, ']')
		if end < 0 {
			return dst, ErrBadHost
		}
		name = host[:end+1]
		rest := host[end+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return dst, ErrBadHost
			}
			port = rest[1:]
		}
		// An IPv6 address has at least two colons ("::").
		inner := name[1 : len(name)-1]
		if len(inner) < 2 || indexByte(inner, ':') < 0 {
			return dst, ErrBadHost
		}
		for _, c := range inner {
			if !(isHex(c) || c == ':' || c == '.') {
				return dst, ErrBadHost
			}
		}
	} else {
		if c := lastIndexByte(host, ':'); c >= 0 {
			name, port = host[:c], host[c+1:]
		}
		if len(name) > 0 && name[len(name)-1] == '.' {
			name = name[:len(name)-1]
		}
		// Empty labels ("a..b", ".a", "a..") are not DNS names; accepting
		// "a.." would also normalise it to "a.", which normalises again
		// to "a".
		if len(name) == 0 || name[0] == '.' || name[len(name)-1] == '.' || bytes.Contains(name, []byte("..")) {
			return dst, ErrBadHost
		}
		for _, c := range name {
			if !(isAlnum(c) || c == '-' || c == '.' || c == '_') {
				return dst, ErrBadHost
			}
		}
	}
	if port != nil {
		if len(port) == 0 || len(port) > 5 {
			return dst, ErrBadHost
		}
		n := 0
		for _, c := range port {
			if c < '0' || c > '9' {
				return dst, ErrBadHost
			}
			n = n*10 + int(c-'0')
		}
		if n > 65535 {
			return dst, ErrBadHost
		}
	}
	for _, c := range name {
		dst = append(dst, lower(c))
	}
	if len(port) > 0 && !(len(port) == 2 && port[0] == '8' && port[1] == '0') {
		dst = append(dst, ':')
		dst = append(dst, port...)
	}
	return dst, nil
}

// matchAny reports whether name matches one of the globs.
func matchAny(globs []string, name []byte) bool {
	for _, g := range globs {
		if Glob(g, name) {
			return true
		}
	}
	return false
}

// Glob reports whether name matches pattern, where '*' matches any run of
// bytes and '?' any one byte; everything else matches itself. It does not
// allocate.
func Glob(pattern string, name []byte) bool {
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			starP, starN = p, n
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case starP >= 0:
			p = starP + 1
			starN++
			n = starN
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isHex(c byte) bool { _, ok := unhex(c); return ok }

func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// isUnreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3).
func isUnreserved(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

// isPathChar: pchar / "/" (RFC 3986 §3.3), without '%', which the caller
// handles.
func isPathChar(c byte) bool {
	if isUnreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	}
	return false
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

func lastIndexByte(b []byte, c byte) int { return bytes.LastIndexByte(b, c) }
