package cachepolicy

// Encoding is a content coding the edge can serve.
type Encoding uint8

// Encodings, in the edge's order of preference among equals.
const (
	Identity Encoding = iota
	Gzip
	Zstd
)

func (e Encoding) String() string {
	switch e {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "identity"
}

// AcceptEncoding is what a client's Accept-Encoding allows, reduced to the
// encodings the edge serves, so that the request's spelling never splits
// the cache.
type AcceptEncoding struct {
	// Gzip and Zstd are the q-values (0..1000) of each coding; 0 means not
	// acceptable. Identity is acceptable unless IdentityQ is 0.
	GzipQ, ZstdQ, IdentityQ int
}

// ParseAcceptEncoding reads one or more Accept-Encoding field values
// (RFC 9110 §12.5.3). Unknown codings are ignored, "*" applies to every
// coding not listed, "x-gzip" is gzip, and q=0 excludes. No header at all
// means identity only (a cache must not assume a client decodes gzip).
func ParseAcceptEncoding(values ...[]byte) AcceptEncoding {
	ae := AcceptEncoding{GzipQ: -1, ZstdQ: -1, IdentityQ: -1}
	star := -1
	for _, v := range values {
		for len(v) > 0 {
			end := indexByte(v, ',')
			item := v
			if end >= 0 {
				item, v = v[:end], v[end+1:]
			} else {
				v = nil
			}
			item = trimOWS(item)
			name := item
			q := 1000
			if semi := indexByte(item, ';'); semi >= 0 {
				name = trimOWS(item[:semi])
				q = parseQ(item[semi+1:])
			}
			switch {
			case EqualFold(name, "gzip") || EqualFold(name, "x-gzip"):
				ae.GzipQ = max(ae.GzipQ, q)
			case EqualFold(name, "zstd"):
				ae.ZstdQ = max(ae.ZstdQ, q)
			case EqualFold(name, "identity"):
				ae.IdentityQ = max(ae.IdentityQ, q)
			case len(name) == 1 && name[0] == '*':
				star = max(star, q)
			}
		}
	}
	for _, q := range [...]*int{&ae.GzipQ, &ae.ZstdQ} {
		if *q < 0 {
			*q = max(star, 0)
		}
	}
	if ae.IdentityQ < 0 {
		// identity is acceptable unless excluded explicitly or by "*;q=0".
		ae.IdentityQ = 1
		if star == 0 {
			ae.IdentityQ = 0
		}
	}
	return ae
}

// parseQ reads the parameters after ';' and returns the q weight in
// thousandths; a malformed weight counts as 0 (not acceptable), the safe
// reading for a cache. Whitespace around '=' is tolerated.
func parseQ(params []byte) int {
	for len(params) > 0 {
		end := indexByte(params, ';')
		p := params
		if end >= 0 {
			p, params = params[:end], params[end+1:]
		} else {
			params = nil
		}
		name, value := p, []byte(nil)
		eq := indexByte(p, '=')
		if eq >= 0 {
			name, value = p[:eq], p[eq+1:]
		}
		if !EqualFold(trimOWS(name), "q") {
			continue
		}
		if eq < 0 {
			return 0
		}
		return parseQValue(trimOWS(value))
	}
	return 1000
}

// parseQValue reads a qvalue (RFC 9110 §12.4.2) in thousandths:
// "0" [ "." 0*3DIGIT ] or "1" [ "." 0*3"0" ]; anything else is 0.
func parseQValue(v []byte) int {
	if len(v) == 0 || len(v) > 5 || (len(v) > 1 && v[1] != '.') {
		return 0
	}
	frac := v[min(len(v), 2):]
	switch v[0] {
	case '1':
		for _, c := range frac {
			if c != '0' {
				return 0
			}
		}
		return 1000
	case '0':
		q, mult := 0, 100
		for _, c := range frac {
			if c < '0' || c > '9' {
				return 0
			}
			q += int(c-'0') * mult
			mult /= 10
		}
		return q
	}
	return 0
}

// Choose returns the encoding to serve among those the edge offers: the
// acceptable one with the highest q. On ties a compressed form wins over
// identity, and zstd wins over gzip: the edge offers zstd only when the
// operator turned it on (compression.zstd) and holds a zstd form, and
// browsers list gzip, br and zstd all at q=1, so a gzip-first tie would
// leave the zstd form unused. ok is false when nothing offered is
// acceptable (then identity is the only sensible answer, or 406).
func (ae AcceptEncoding) Choose(offerGzip, offerZstd bool) (Encoding, bool) {
	best, bestQ := Identity, ae.IdentityQ
	if offerGzip && ae.GzipQ > 0 && ae.GzipQ >= bestQ {
		best, bestQ = Gzip, ae.GzipQ
	}
	if offerZstd && ae.ZstdQ > 0 && ae.ZstdQ >= bestQ {
		best, bestQ = Zstd, ae.ZstdQ
	}
	return best, bestQ > 0
}
