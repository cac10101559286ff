// Package cachekey is the one place that knows the format of the edge's
// cache keys: how one is built from a request, and how it is taken apart
// again (for refreshes, the tag index and purges).
//
// A key is a URL key, optionally followed by a variant suffix:
//
//	URL key:      host target                  "www.example.com/news?id=1"
//	variant key:  URL key NUL (value NUL)...   "www.example.com/news\x00fi\x00"
//
// The host and target are the normalised forms cachepolicy makes (the
// host lower-cased, without port 80; the target normalised as RFC 3986
// allows). A host never contains '/', so the two cannot run into each
// other, and a normalised target never contains NUL, so a URL key ends at
// the first NUL. The variant suffix holds, for each request header the
// object varies on (in the order of its Vary names), the request's value
// normalised by cachepolicy.AppendVaryValue, then a NUL; fasthttp refuses
// NUL in header values, so the values can be split apart again.
//
// Functions append to a caller's buffer and do not allocate beyond it.
package cachekey

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/cachepolicy"
)

// AppendURL appends the URL key of a normalised host and target.
func AppendURL(dst, host, target []byte) []byte {
	dst = append(dst, host...)
	return append(dst, target...)
}

// SplitURL returns the host and target of a URL key.
func SplitURL(url []byte) (host, target []byte) {
	i := bytes.IndexByte(url, '/')
	if i < 0 {
		return url, nil
	}
	return url[:i], url[i:]
}

// AppendVariant appends the variant key that request header h selects
// among the variants of url, which vary on names (lower-case). A field
// sent on several lines counts as one comma-separated list (RFC 9110
// §5.3), which is how the edge forwards it.
func AppendVariant(dst, url []byte, names []string, h *fasthttp.RequestHeader) []byte {
	dst = append(dst, url...)
	dst = append(dst, 0)
	for _, n := range names {
		if n == "cookie" {
			// Requests that reach the cache carry no cookie the origin
			// sees (the rest are passed; ignorable ones are stripped), so
			// the variant is the cookie-less one, whatever analytics
			// cookies the client sent.
			dst = append(dst, 0)
			continue
		}
		for i, v := range h.PeekAll(n) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = cachepolicy.AppendVaryValue(dst, v)
		}
		dst = append(dst, 0)
	}
	return dst
}

// AppendVariantValues appends the variant key of url for values taken
// from another variant key (Values): a background refresh builds the key
// of the variant it refreshes.
func AppendVariantValues(dst, url []byte, values [][]byte) []byte {
	dst = append(dst, url...)
	dst = append(dst, 0)
	for _, v := range values {
		dst = append(dst, v...)
		dst = append(dst, 0)
	}
	return dst
}

// URL returns the URL key at the start of key.
func URL(key []byte) []byte {
	if i := bytes.IndexByte(key, 0); i >= 0 {
		return key[:i]
	}
	return key
}

// Values returns the n header values of a variant key (nil for a URL key),
// aliasing key.
func Values(key []byte, n int) [][]byte {
	i := bytes.IndexByte(key, 0)
	if n == 0 || i < 0 {
		return nil
	}
	rest := key[i+1:]
	vals := make([][]byte, 0, n)
	for range n {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			break
		}
		vals = append(vals, rest[:j])
		rest = rest[j+1:]
	}
	return vals
}

// Extras are the key parts rules add after the URL (a backend pool, the
// values of request headers): each is 0x01, a name, 0x02 and a value. A
// base key with extras is still a URL key to the rest of this package
// (URL, AppendVariant); RealURL drops them, for purges and refreshes.
const (
	extraSep = 0x01
	extraKV  = 0x02
)

// AppendExtra appends one key part to a URL key. Control bytes in value
// (a header value has none, but the key format must not depend on that)
// become '?'.
func AppendExtra(dst []byte, name string, value []byte) []byte {
	dst = append(dst, extraSep)
	dst = append(dst, name...)
	dst = append(dst, extraKV)
	for _, c := range value {
		if c < 0x20 {
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

// RealURL returns the URL of a URL key without its extras.
func RealURL(url []byte) []byte {
	if i := bytes.IndexByte(url, extraSep); i >= 0 {
		return url[:i]
	}
	return url
}

// HasExtras reports whether a URL key has extras.
func HasExtras(url []byte) bool { return bytes.IndexByte(url, extraSep) >= 0 }

// EachExtra calls f with every extra of a URL key, in order.
func EachExtra(url []byte, f func(name, value []byte)) {
	i := bytes.IndexByte(url, extraSep)
	for i >= 0 {
		rest := url[i+1:]
		end := bytes.IndexByte(rest, extraSep)
		part := rest
		if end >= 0 {
			part = rest[:end]
		}
		if j := bytes.IndexByte(part, extraKV); j >= 0 {
			f(part[:j], part[j+1:])
		}
		if end < 0 {
			return
		}
		i += 1 + end
	}
}
