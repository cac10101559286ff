package cachepolicy

import (
	"time"
)

// ETagMatchWeak reports whether an If-None-Match field value matches etag
// by weak comparison (RFC 9110 §13.1.2): "*" matches any stored
// representation, and W/"x" matches "x".
func ETagMatchWeak(ifNoneMatch, etag []byte) bool {
	if len(etag) == 0 {
		return false
	}
	tag := opaqueTag(etag)
	if tag == nil {
		return false
	}
	v := ifNoneMatch
	for len(v) > 0 {
		for len(v) > 0 && (v[0] == ',' || v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		if len(v) == 0 {
			break
		}
		if v[0] == '*' {
			return true
		}
		if len(v) >= 2 && v[0] == 'W' && v[1] == '/' {
			v = v[2:]
		}
		if len(v) == 0 || v[0] != '"' {
			return false // malformed list: no match
		}
		end := indexByte(v[1:], '"')
		if end < 0 {
			return false
		}
		if string(v[1:1+end]) == string(tag) {
			return true
		}
		v = v[end+2:]
	}
	return false
}

// ETagMatchStrong reports whether an If-Range (or If-Match) entity tag
// equals etag by strong comparison: neither may be weak or malformed.
func ETagMatchStrong(want, etag []byte) bool {
	if len(want) < 2 || want[0] != '"' || want[len(want)-1] != '"' {
		return false
	}
	return string(want) == string(etag)
}

// opaqueTag returns the quoted part of an entity tag without quotes and
// without a W/ prefix, or nil when it is malformed.
func opaqueTag(etag []byte) []byte {
	if len(etag) >= 2 && etag[0] == 'W' && etag[1] == '/' {
		etag = etag[2:]
	}
	if len(etag) < 2 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		return nil
	}
	return etag[1 : len(etag)-1]
}

// NotModifiedSince reports whether a stored response last modified at
// lastModified satisfies If-Modified-Since: ims (RFC 9110 §13.1.3). An
// invalid date does not match.
func NotModifiedSince(ims []byte, lastModified time.Time) bool {
	if lastModified.IsZero() {
		return false
	}
	t, ok := ParseHTTPDate(ims)
	if !ok {
		return false
	}
	return !lastModified.After(t)
}

// ParseRange reads a Range header for a representation of size bytes. It
// supports one byte range ("bytes=0-99", "bytes=100-", "bytes=-100"); other
// units and multiple ranges return ok=false, which means "ignore Range and
// send the whole representation" (allowed by RFC 9110 §14.2). A range that
// cannot be satisfied returns ok=true, satisfiable=false (416).
func ParseRange(b []byte, size int64) (start, end int64, ok, satisfiable bool) {
	const prefix = "bytes="
	if len(b) <= len(prefix) || !EqualFold(b[:len(prefix)], prefix) {
		return 0, 0, false, false
	}
	spec := trimOWS(b[len(prefix):])
	if indexByte(spec, ',') >= 0 {
		return 0, 0, false, false
	}
	dash := indexByte(spec, '-')
	if dash < 0 {
		return 0, 0, false, false
	}
	first, last := trimOWS(spec[:dash]), trimOWS(spec[dash+1:])
	num := func(s []byte) (int64, bool) {
		if len(s) == 0 || len(s) > 18 {
			return 0, false
		}
		var n int64
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		return n, true
	}
	switch {
	case len(first) == 0: // suffix range
		n, good := num(last)
		if !good {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size - 1, true, true
	default:
		s, good := num(first)
		if !good {
			return 0, 0, false, false
		}
		e := size - 1
		if len(last) > 0 {
			v, good := num(last)
			if !good || v < s {
				return 0, 0, false, false
			}
			e = min(v, size-1)
		}
		if s >= size {
			return 0, 0, true, false
		}
		return s, e, true, true
	}
}
