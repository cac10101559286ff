package cachepolicy

// StripCookies appends to dst the cookies of a Cookie header value whose
// names match none of the globs, joined by "; ", and returns it. A result
// equal to dst means no cookie is left. Malformed pieces (without '=') are
// kept: the origin may read them, so they must count.
func StripCookies(dst, cookie []byte, globs []string) []byte {
	start := len(dst)
	for len(cookie) > 0 {
		end := indexByte(cookie, ';')
		piece := cookie
		if end >= 0 {
			piece, cookie = cookie[:end], cookie[end+1:]
		} else {
			cookie = nil
		}
		piece = trimOWS(piece)
		if len(piece) == 0 {
			continue
		}
		if eq := indexByte(piece, '='); eq >= 0 && matchAny(globs, trimOWS(piece[:eq])) {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ';', ' ')
		}
		dst = append(dst, piece...)
	}
	return dst
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
// accepts (by name), "; "-separated; it allocates nothing beyond dst.
func FilterCookies(dst, cookie []byte, keep func(name []byte) bool) []byte {
	start := len(dst)
	for len(cookie) > 0 {
		end := indexByte(cookie, ';')
		piece := cookie
		if end >= 0 {
			piece, cookie = cookie[:end], cookie[end+1:]
		} else {
			cookie = nil
		}
		piece = trimOWS(piece)
		if len(piece) == 0 {
			continue
		}
		name := piece
		if eq := indexByte(piece, '='); eq >= 0 {
			name = trimOWS(piece[:eq])
		}
		if !keep(name) {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ';', ' ')
		}
		dst = append(dst, piece...)
	}
	return dst
}

// CookieValue returns the value of the first cookie called name in a
// Cookie header, and whether there is one.
func CookieValue(cookie []byte, name string) ([]byte, bool) {
	for len(cookie) > 0 {
		end := indexByte(cookie, ';')
		piece := cookie
		if end >= 0 {
			piece, cookie = cookie[:end], cookie[end+1:]
		} else {
			cookie = nil
		}
		piece = trimOWS(piece)
		eq := indexByte(piece, '=')
		if eq < 0 {
			continue
		}
		if string(trimOWS(piece[:eq])) == name {
			return trimOWS(piece[eq+1:]), true
		}
	}
	return nil, false
}
