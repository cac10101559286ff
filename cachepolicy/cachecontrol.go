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
func (d *Directives) Parse(b []byte) {
	d.parse(b, "")
}

// ParseTargeted is Parse for Surrogate-Control (Edge Architecture 1.0): a
// directive followed by ";target" applies only when target equals name.
func (d *Directives) ParseTargeted(b []byte, name string) {
	d.parse(b, name)
}

func (d *Directives) parse(b []byte, target string) {
	i := 0
	for i < len(b) {
		// Skip separators and whitespace.
		for i < len(b) && (b[i] == ',' || b[i] == ' ' || b[i] == '\t') {
			i++
		}
		start := i
		for i < len(b) && isTokenChar(b[i]) {
			i++
		}
		name := b[start:i]
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		var value []byte
		hasValue := false
		valueOK := true
		if i < len(b) && b[i] == '=' {
			hasValue = true
			i++
			for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
				i++
			}
			if i < len(b) && b[i] == '"' {
				i++
				vs := i
				for i < len(b) && b[i] != '"' {
					if b[i] == '\\' && i+1 < len(b) {
						i++
					}
					i++
				}
				value = b[vs:i]
				if i < len(b) {
					i++ // closing quote
				} else {
					valueOK = false
				}
			} else {
				vs := i
				for i < len(b) && isTokenChar(b[i]) {
					i++
				}
				value = b[vs:i]
			}
		}
		// Optional ";target" (Surrogate-Control only).
		targeted := false
		applies := true
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i < len(b) && b[i] == ';' {
			i++
			ts := i
			for i < len(b) && isTokenChar(b[i]) {
				i++
			}
			targeted = true
			applies = target != "" && equalFold(b[ts:i], target)
		}
		// Anything else up to the next comma is garbage: skip it.
		for i < len(b) && b[i] != ',' {
			i++
		}
		if len(name) == 0 || (targeted && !applies) {
			continue
		}
		d.apply(name, value, hasValue, valueOK)
	}
}

func (d *Directives) apply(name, value []byte, hasValue, valueOK bool) {
	switch {
	case equalFold(name, "max-age"):
		setFreshness(&d.MaxAge, value, hasValue && valueOK)
	case equalFold(name, "s-maxage"):
		setFreshness(&d.SMaxAge, value, hasValue && valueOK)
	case equalFold(name, "stale-while-revalidate"):
		setLenient(&d.StaleWhileRevalidate, value, hasValue && valueOK)
	case equalFold(name, "stale-if-error"):
		setLenient(&d.StaleIfError, value, hasValue && valueOK)
	case equalFold(name, "max-stale"):
		if !hasValue {
			d.MaxStale = maxDelta
		} else {
			setLenient(&d.MaxStale, value, valueOK)
		}
	case equalFold(name, "min-fresh"):
		setLenient(&d.MinFresh, value, hasValue && valueOK)
	case equalFold(name, "no-store"):
		d.NoStore = true
	case equalFold(name, "no-cache"):
		d.NoCache = true
	case equalFold(name, "private"):
		d.Private = true
	case equalFold(name, "public"):
		d.Public = true
	case equalFold(name, "must-revalidate"):
		d.MustRevalidate = true
	case equalFold(name, "proxy-revalidate"):
		d.ProxyRevalidate = true
	case equalFold(name, "immutable"):
		d.Immutable = true
	case equalFold(name, "no-transform"):
		d.NoTransform = true
	case equalFold(name, "only-if-cached"):
		d.OnlyIfCached = true
	case equalFold(name, "must-understand"):
		d.MustUnderstand = true
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
func equalFold(b []byte, s string) bool {
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
