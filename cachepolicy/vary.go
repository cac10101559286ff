package cachepolicy

import (
	"slices"
)

// MaxVaryFields bounds the header fields one Vary may name; more is treated
// like Vary: * (not stored): no real origin varies on that many.
const MaxVaryFields = 16

// ParseVary returns the lower-case, sorted, de-duplicated field names of
// one or more Vary field values, and whether any is "*" (or the list is
// unreasonably long). Names are appended to names.
func ParseVary(names []string, values ...[]byte) ([]string, bool) {
	for _, v := range values {
		i := 0
		for i < len(v) {
			for i < len(v) && (v[i] == ',' || v[i] == ' ' || v[i] == '\t') {
				i++
			}
			start := i
			for i < len(v) && v[i] != ',' && v[i] != ' ' && v[i] != '\t' {
				i++
			}
			tok := v[start:i]
			if len(tok) == 0 {
				continue
			}
			if len(tok) == 1 && tok[0] == '*' {
				return names, true
			}
			for _, c := range tok {
				if !isTokenChar(c) {
					return names, true // not a field name: cannot honour it
				}
			}
			b := make([]byte, len(tok))
			for j, c := range tok {
				b[j] = lower(c)
			}
			names = append(names, string(b))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > MaxVaryFields {
		return names, true
	}
	return names, false
}

// AppendVaryValue appends a request header value normalised for comparing
// variants (RFC 9111 §4.1): leading and trailing whitespace removed, runs of
// whitespace collapsed to one space, and whitespace around commas dropped.
func AppendVaryValue(dst, v []byte) []byte {
	space := false
	start := len(dst)
	for _, c := range v {
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space && len(dst) > start && c != ',' && dst[len(dst)-1] != ',' {
			dst = append(dst, ' ')
		}
		space = false
		dst = append(dst, c)
	}
	return dst
}
