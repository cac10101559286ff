package cachepolicy

// StripCookies appends to dst the cookies of a Cookie header value whose
// names match none of the globs, joined by "; ", and returns it. A result
// equal to dst means no cookie is left. Malformed pieces (without '=') are
// kept: the origin may read them, so they must count.
func StripCookies(dst, cookie []byte, globs []string) []byte {
	start := len(dst)
	for piece, name, rest := nextCookie(cookie); piece != nil; piece, name, rest = nextCookie(rest) {
		if name != nil && matchAny(globs, name) {
			continue
		}
		dst = appendCookie(dst, start, piece)
	}
	return dst
}

// nextCookie splits the first cookie off a Cookie header value: the piece
// (whitespace trimmed; empty pieces are skipped), its name (nil when the
// piece has no '='), and the rest. piece is nil when none is left.
func nextCookie(cookie []byte) (piece, name, rest []byte) {
	for len(cookie) > 0 {
		end := indexByte(cookie, ';')
		piece, rest = cookie, nil
		if end >= 0 {
			piece, rest = cookie[:end], cookie[end+1:]
		}
		if piece = trimOWS(piece); len(piece) > 0 {
			if eq := indexByte(piece, '='); eq >= 0 {
				name = trimOWS(piece[:eq])
			}
			return piece, name, rest
		}
		cookie = rest
	}
	return nil, nil, nil
}

// appendCookie appends a cookie to the list started at dst[start:].
func appendCookie(dst []byte, start int, piece []byte) []byte {
	if len(dst) > start {
		dst = append(dst, ';', ' ')
	}
	return append(dst, piece...)
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// FilterCookies appends to dst the cookies of a Cookie header that keep
// accepts (by name; a piece without '=' is its own name), "; "-separated;
// it allocates nothing beyond dst.
func FilterCookies(dst, cookie []byte, keep func(name []byte) bool) []byte {
	start := len(dst)
	for piece, name, rest := nextCookie(cookie); piece != nil; piece, name, rest = nextCookie(rest) {
		if name == nil {
			name = piece
		}
		if keep(name) {
			dst = appendCookie(dst, start, piece)
		}
	}
	return dst
}

// CookieValue returns the value of the first cookie called name in a
// Cookie header, and whether there is one.
func CookieValue(cookie []byte, name string) ([]byte, bool) {
	for piece, n, rest := nextCookie(cookie); piece != nil; piece, n, rest = nextCookie(rest) {
		if n != nil && string(n) == name {
			return trimOWS(piece[indexByte(piece, '=')+1:]), true
		}
	}
	return nil, false
}
