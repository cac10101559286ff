// Package cachepolicy holds the rules of the cache as pure functions of
// header bytes, URLs, a time and configured rules: Cache-Control and
// Surrogate-Control parsing, freshness, grace and keep, storability, cache
// key and request target normalisation, Vary, Accept-Encoding, cookies and
// Surrogate-Key.
//
// Nothing here does I/O, starts goroutines, reads the clock or keeps global
// mutable state: callers pass "now". Functions that return []byte append to
// a caller-supplied buffer so that the edge's hit path can reuse memory.
// Parsers accept any input without panicking (they are fuzzed).
package cachepolicy

import (
	"time"
)

// Absent marks a delta-seconds directive that was not given.
const Absent time.Duration = -1

// maxDelta is the largest delta-seconds value we represent: RFC 9111 §1.2.2
// says to treat larger values as 2^31 seconds.
const maxDelta = (1 << 31) * time.Second

// Directives are the parsed Cache-Control (or Surrogate-Control) directives
// of one message. Durations are Absent when the directive is not present.
// The zero value is not "nothing parsed": use Reset or NewDirectives.
type Directives struct {
	MaxAge               time.Duration
	SMaxAge              time.Duration
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	MaxStale             time.Duration // request only; maxDelta when given without a value
	MinFresh             time.Duration // request only

	NoStore         bool
	NoCache         bool // qualified forms (no-cache="field") count as unqualified
	Private         bool // qualified forms (private="field") count as unqualified
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	Immutable       bool
	NoTransform     bool
	OnlyIfCached    bool // request only
	MustUnderstand  bool
}

// NewDirectives returns Directives with nothing set.
func NewDirectives() Directives {
	var d Directives
	d.Reset()
	return d
}

// Reset clears d to "nothing set".
func (d *Directives) Reset() {
	*d = Directives{
		MaxAge:               Absent,
		SMaxAge:              Absent,
		StaleWhileRevalidate: Absent,
		StaleIfError:         Absent,
		MaxStale:             Absent,
		MinFresh:             Absent,
	}
}

// Parse adds the directives of one Cache-Control field value to d. Call it
// once per header line: repeated lines combine as if joined by commas.
//
// Directive names are case-insensitive; values may be tokens or quoted
// strings. Unknown directives are ignored. When a freshness directive
// (max-age, s-maxage) appears more than once with different values, or with
// a value that is not a number, it is set to 0 so that the response is
// treated as stale (RFC 9111 §4.2.1 and §1.2.2).
//
// A directive followed by anything but a comma ("no-store;x", "max-age=60
// 30") is malformed: restrictive directives (no-store, private, no-cache,
// must-revalidate, ...) still apply, a malformed freshness lifetime is 0, and
// malformed permissive ones (public, immutable, must-understand, stale
// windows) are ignored. An unterminated quoted string ends at the next comma,
// so that it cannot hide the directives after it.
func (d *Directives) Parse(b []byte) {
	var set uint32
	d.parse(b, "", false, false, &set)
}

// ParseTargeted is Parse for Surrogate-Control (Edge Architecture 1.0): a
// directive followed by ";target" applies only when target equals name
// (ASCII case-insensitively), and then wins over the same directive without
// a target in the same field value ("max-age=10, max-age=60;lakka" means 60
// for lakka). max-age may carry a revalidation lifetime ("max-age=60+30"),
// which is read as stale-while-revalidate=30.
func (d *Directives) ParseTargeted(b []byte, name string) {
	var set uint32
	if name != "" {
		d.parse(b, name, true, true, &set)
	}
	d.parse(b, name, true, false, &set)
}

// directive is what one list member of Cache-Control says.
type directive struct {
	name, value []byte
	hasValue    bool
	malformed   bool // unterminated quote, or garbage before the next comma
	targeted    bool // followed by ";target" (Surrogate-Control only)
	target      []byte
}

// nextDirective reads the list member of b that starts at or after i and
// returns it with the index after it.
func nextDirective(b []byte, i int, surrogate bool) (directive, int) {
	var dir directive
	skipOWS := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
	}
	for i < len(b) && (b[i] == ',' || b[i] == ' ' || b[i] == '\t') {
		i++
	}
	start := i
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	dir.name = b[start:i]
	skipOWS()
	if i < len(b) && b[i] == '=' {
		dir.hasValue = true
		i++
		skipOWS()
		if i < len(b) && b[i] == '"' {
			i++
			vs := i
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' && i+1 < len(b) {
					i++
				}
				i++
			}
			if i < len(b) {
				dir.value = b[vs:i]
				i++ // closing quote
			} else {
				// Unterminated: the "string" ends at the next comma.
				dir.malformed = true
				i = vs
			}
		} else {
			vs := i
			for i < len(b) && isTokenChar(b[i]) {
				i++
			}
			dir.value = b[vs:i]
		}
	}
	skipOWS()
	if surrogate && i < len(b) && b[i] == ';' {
		i++
		skipOWS()
		ts := i
		for i < len(b) && isTokenChar(b[i]) {
			i++
		}
		dir.targeted = true
		dir.target = b[ts:i]
		skipOWS()
	}
	if i < len(b) && b[i] != ',' {
		dir.malformed = true
		for i < len(b) && b[i] != ',' {
			i++
		}
	}
	return dir, i
}

// parse applies the directives of b: in a targeted pass only those aimed at
// target, else only those without a target (or all, for Cache-Control).
// set collects the kinds applied by a targeted pass, which an untargeted
// pass then leaves alone.
func (d *Directives) parse(b []byte, target string, surrogate, targetedPass bool, set *uint32) {
	for i := 0; i < len(b); {
		var dir directive
		dir, i = nextDirective(b, i, surrogate)
		if len(dir.name) == 0 || dir.targeted != targetedPass {
			continue
		}
		if dir.targeted && !EqualFold(dir.target, target) {
			continue
		}
		k := kindOf(dir.name)
		if k == kindUnknown || (!targetedPass && *set&(1<<k) != 0) {
			continue
		}
		d.apply(k, dir, surrogate)
		if targetedPass {
			*set |= 1 << k
		}
	}
}

type kind uint8

const (
	kindUnknown kind = iota
	kindMaxAge
	kindSMaxAge
	kindStaleWhileRevalidate
	kindStaleIfError
	kindMaxStale
	kindMinFresh
	kindNoStore
	kindNoCache
	kindPrivate
	kindPublic
	kindMustRevalidate
	kindProxyRevalidate
	kindImmutable
	kindNoTransform
	kindOnlyIfCached
	kindMustUnderstand
)

var kindNames = [...]string{
	kindMaxAge:               "max-age",
	kindSMaxAge:              "s-maxage",
	kindStaleWhileRevalidate: "stale-while-revalidate",
	kindStaleIfError:         "stale-if-error",
	kindMaxStale:             "max-stale",
	kindMinFresh:             "min-fresh",
	kindNoStore:              "no-store",
	kindNoCache:              "no-cache",
	kindPrivate:              "private",
	kindPublic:               "public",
	kindMustRevalidate:       "must-revalidate",
	kindProxyRevalidate:      "proxy-revalidate",
	kindImmutable:            "immutable",
	kindNoTransform:          "no-transform",
	kindOnlyIfCached:         "only-if-cached",
	kindMustUnderstand:       "must-understand",
}

func kindOf(name []byte) kind {
	for k := kindMaxAge; int(k) < len(kindNames); k++ {
		if EqualFold(name, kindNames[k]) {
			return k
		}
	}
	return kindUnknown
}

func (d *Directives) apply(k kind, dir directive, surrogate bool) {
	ok := dir.hasValue && !dir.malformed
	switch k {
	case kindMaxAge:
		value := dir.value
		if surrogate {
			// Edge Architecture: max-age=freshness[+revalidation].
			if plus := indexByte(value, '+'); plus >= 0 {
				setLenient(&d.StaleWhileRevalidate, value[plus+1:], ok)
				value = value[:plus]
			}
		}
		setFreshness(&d.MaxAge, value, ok)
	case kindSMaxAge:
		setFreshness(&d.SMaxAge, dir.value, ok)
	case kindStaleWhileRevalidate:
		setLenient(&d.StaleWhileRevalidate, dir.value, ok)
	case kindStaleIfError:
		setLenient(&d.StaleIfError, dir.value, ok)
	case kindMaxStale:
		if !dir.hasValue && !dir.malformed {
			d.MaxStale = maxDelta
		} else {
			setLenient(&d.MaxStale, dir.value, ok)
		}
	case kindMinFresh:
		setLenient(&d.MinFresh, dir.value, ok)
	case kindNoStore:
		d.NoStore = true
	case kindNoCache:
		d.NoCache = true
	case kindPrivate:
		d.Private = true
	case kindPublic:
		d.Public = d.Public || !dir.malformed
	case kindMustRevalidate:
		d.MustRevalidate = true
	case kindProxyRevalidate:
		d.ProxyRevalidate = true
	case kindImmutable:
		d.Immutable = d.Immutable || !dir.malformed
	case kindNoTransform:
		d.NoTransform = true
	case kindOnlyIfCached:
		d.OnlyIfCached = true
	case kindMustUnderstand:
		d.MustUnderstand = d.MustUnderstand || !dir.malformed
	}
}

// setFreshness sets a lifetime directive; a bad or conflicting value makes
// it 0 (stale), never longer.
func setFreshness(dst *time.Duration, value []byte, ok bool) {
	v, good := parseDelta(value)
	if !ok || !good {
		*dst = 0
		return
	}
	if *dst != Absent && *dst != v {
		*dst = 0
		return
	}
	*dst = v
}

// setLenient sets a directive whose bad value is ignored; on conflict the
// smaller value wins.
func setLenient(dst *time.Duration, value []byte, ok bool) {
	v, good := parseDelta(value)
	if !ok || !good {
		return
	}
	if *dst == Absent || v < *dst {
		*dst = v
	}
}

// parseDelta reads delta-seconds: 1*DIGIT, saturating at 2^31 s.
// ParseAge reads an Age field value (delta-seconds, RFC 9111 §5.1) with
// optional surrounding whitespace; values beyond 2^31 s saturate there.
func ParseAge(b []byte) (time.Duration, bool) {
	return parseDelta(trimOWS(b))
}

func parseDelta(b []byte) (time.Duration, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<31 {
			n = n*10 + int64(c-'0')
		}
	}
	d := time.Duration(n) * time.Second
	if n >= 1<<31 {
		d = maxDelta
	}
	return d, true
}

// isTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	return tokenTable[c]
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-32] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// equalFold compares ASCII case-insensitively without allocating.
// EqualFold reports whether b and s are equal ignoring ASCII case (header
// names and tokens; no Unicode folding, and no allocation).
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 32
	}
	return c
}
