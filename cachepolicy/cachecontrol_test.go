package cachepolicy

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// describe renders d as "name=seconds name ..." in a fixed order, so that
// table rows can state the expected directives in one short string.
func describe(d Directives) string {
	var parts []string
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"max-age", d.MaxAge},
		{"s-maxage", d.SMaxAge},
		{"stale-while-revalidate", d.StaleWhileRevalidate},
		{"stale-if-error", d.StaleIfError},
		{"max-stale", d.MaxStale},
		{"min-fresh", d.MinFresh},
	} {
		switch {
		case f.v == Absent:
		case f.v%time.Second == 0:
			parts = append(parts, f.name+"="+strconv.FormatInt(int64(f.v/time.Second), 10))
		default:
			parts = append(parts, f.name+"="+f.v.String())
		}
	}
	for _, f := range []struct {
		name string
		v    bool
	}{
		{"no-store", d.NoStore},
		{"no-cache", d.NoCache},
		{"private", d.Private},
		{"public", d.Public},
		{"must-revalidate", d.MustRevalidate},
		{"proxy-revalidate", d.ProxyRevalidate},
		{"immutable", d.Immutable},
		{"no-transform", d.NoTransform},
		{"only-if-cached", d.OnlyIfCached},
		{"must-understand", d.MustUnderstand},
	} {
		if f.v {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, " ")
}

// parseCC parses each line as one Cache-Control field line.
func parseCC(lines ...string) Directives {
	d := NewDirectives()
	for _, l := range lines {
		d.Parse([]byte(l))
	}
	return d
}

// parseSC parses each line as one Surrogate-Control field line for target.
func parseSC(target string, lines ...string) Directives {
	d := NewDirectives()
	for _, l := range lines {
		d.ParseTargeted([]byte(l), target)
	}
	return d
}

func TestNewDirectivesAndReset(t *testing.T) {
	if got := describe(NewDirectives()); got != "" {
		t.Errorf("NewDirectives: got %q, want %q", got, "")
	}
	d := parseCC("max-age=5, s-maxage=6, stale-while-revalidate=7, stale-if-error=8, max-stale=9, min-fresh=1, no-store, no-cache, private, public, must-revalidate, proxy-revalidate, immutable, no-transform, only-if-cached, must-understand")
	const all = "max-age=5 s-maxage=6 stale-while-revalidate=7 stale-if-error=8 max-stale=9 min-fresh=1 no-store no-cache private public must-revalidate proxy-revalidate immutable no-transform only-if-cached must-understand"
	if got := describe(d); got != all {
		t.Errorf("every directive: got %q, want %q", got, all)
	}
	d.Reset()
	if got := describe(d); got != "" {
		t.Errorf("after Reset: got %q, want %q", got, "")
	}
}

func TestParseCacheControl(t *testing.T) {
	const big = "max-age=2147483648" // 2^31 s, RFC 9111 §1.2.2
	tests := []struct {
		in   string
		want string
	}{
		// Empty and garbage.
		{"", ""},
		{" ", ""},
		{",,, ,", ""},
		{"=", ""},
		{"=60", ""},
		{`"max-age=60"`, ""},
		{"nostore", ""},
		{"no_store", ""},
		{"max-age-60", ""},
		{"\x00\xff", ""},

		// Freshness lifetimes.
		{"max-age=60", "max-age=60"},
		{"max-age=0", "max-age=0"},
		{"max-age=0060", "max-age=60"},
		{`max-age="60"`, "max-age=60"}, // RFC 9111 §5.2: accept the quoted form
		{"MAX-AGE=60", "max-age=60"},
		{"Max-Age=60", "max-age=60"},
		{"max-age = 60", "max-age=60"},
		{"\tmax-age=60\t", "max-age=60"},
		{" , ,max-age=60,, ", "max-age=60"},
		{"s-maxage=10, max-age=5", "max-age=5 s-maxage=10"},
		{"max-age=2147483647", "max-age=2147483647"},
		{"max-age=2147483648", big},
		{"max-age=99999999999999999999999999", big},

		// Bad or conflicting lifetimes are stale (0), never longer.
		{"max-age=", "max-age=0"},
		{"max-age", "max-age=0"},
		{"max-age=-1", "max-age=0"},
		{"max-age=1.5", "max-age=0"},
		{"max-age=1e3", "max-age=0"},
		{"max-age=abc", "max-age=0"},
		{"max-age=0x10", "max-age=0"},
		{`max-age="60`, "max-age=0"},
		{`max-age="6\0"`, "max-age=0"},
		{`max-age=""`, "max-age=0"},
		{"max-age=60, max-age=60", "max-age=60"},
		{"max-age=60, max-age=30", "max-age=0"},
		{"max-age=60, max-age=abc", "max-age=0"},
		{"max-age=abc, max-age=60", "max-age=0"},
		{"max-age=60, max-age=abc, max-age=60", "max-age=0"},
		{"s-maxage=1, s-maxage=2", "s-maxage=0"},
		{"s-maxage", "s-maxage=0"},

		// Stale windows: bad values are ignored, the smaller one wins.
		{"stale-while-revalidate=30", "stale-while-revalidate=30"},
		{"stale-while-revalidate=30, stale-while-revalidate=10", "stale-while-revalidate=10"},
		{"stale-while-revalidate=10, stale-while-revalidate=30", "stale-while-revalidate=10"},
		{"stale-while-revalidate=30, stale-while-revalidate=x", "stale-while-revalidate=30"},
		{"stale-while-revalidate", ""},
		{"stale-if-error=abc", ""},
		{"stale-if-error=600", "stale-if-error=600"},
		{`stale-if-error="600"`, "stale-if-error=600"},

		// Request directives.
		{"max-stale", "max-stale=2147483648"},
		{"max-stale=5", "max-stale=5"},
		{"max-stale, max-stale=5", "max-stale=5"},
		{"max-stale=x", ""},
		{"min-fresh=5", "min-fresh=5"},
		{"min-fresh", ""},
		{"only-if-cached", "only-if-cached"},

		// Flags, in any case, with or without arguments.
		{"no-store", "no-store"},
		{"NO-STORE", "no-store"},
		{"no-cache", "no-cache"},
		{`no-cache="Set-Cookie"`, "no-cache"},
		{`no-cache="Set-Cookie, X-Foo", max-age=5`, "max-age=5 no-cache"},
		{"no-cache=Set-Cookie", "no-cache"},
		{"private", "private"},
		{`private="Set-Cookie"`, "private"},
		{"public", "public"},
		{"public, max-age=60, must-revalidate", "max-age=60 public must-revalidate"},
		{"proxy-revalidate", "proxy-revalidate"},
		{"immutable", "immutable"},
		{"no-transform", "no-transform"},
		{"must-understand, no-store", "no-store must-understand"},
		{"no-store,no-cache,private", "no-store no-cache private"},
		{"no-store, no-store", "no-store"},

		// Unknown directives are skipped, including quoted commas.
		{"foo=bar, max-age=5", "max-age=5"},
		{`foo="a,max-age=1", max-age=5`, "max-age=5"},
		{`foo="a\"b,max-age=1", max-age=5`, "max-age=5"},
		{`community="UCI", max-age=5`, "max-age=5"},
		{"x-max-age=5", ""},

		// Malformed members: restrictive directives still apply, lifetimes
		// become 0, permissive ones are dropped.
		{"no-store;x", "no-store"},
		{"private garbage", "private"},
		{"no-cache x, max-age=60", "max-age=60 no-cache"},
		{"must-revalidate;", "must-revalidate"},
		{"max-age=60;x", "max-age=0"},
		{"max-age=60 30", "max-age=0"},
		{"max-age=60\x00", "max-age=0"},
		{`max-age="60"x`, "max-age=0"},
		{"max-age=60+30", "max-age=0"}, // Surrogate-Control syntax only
		{"public;x", ""},
		{"public x, max-age=60", "max-age=60"},
		{`public="x`, ""},
		{"immutable;x", ""},
		{"no-store;x, must-understand;x", "no-store"},
		{"stale-while-revalidate=30 x", ""},
		{"max-stale x", ""},
		// An unterminated quoted string does not hide what follows.
		{`foo="x, private`, "private"},
		{`no-cache="Set-Cookie, no-store`, "no-store no-cache"},
		{`max-age="60, no-store`, "max-age=0 no-store"},
	}
	for _, tt := range tests {
		if got := describe(parseCC(tt.in)); got != tt.want {
			t.Errorf("Parse(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseCacheControlLines(t *testing.T) {
	f := func(want string, lines ...string) {
		t.Helper()
		if got := describe(parseCC(lines...)); got != want {
			t.Errorf("Parse(%q): got %q, want %q", lines, got, want)
		}
	}
	f("max-age=60 no-store", "max-age=60", "no-store")
	f("max-age=0", "max-age=60", "max-age=30")
	f("max-age=60", "max-age=60", "max-age=60")
	f("stale-while-revalidate=5", "stale-while-revalidate=9", "stale-while-revalidate=5")
	f("max-age=60 public", "public", "", "max-age=60")
}

func TestParseSurrogateControl(t *testing.T) {
	tests := []struct {
		in, target string
		want       string
	}{
		{"max-age=60", "lakka", "max-age=60"},
		{"max-age=60;lakka", "lakka", "max-age=60"},
		{"max-age=60;LAKKA", "lakka", "max-age=60"},
		{"max-age=60 ; lakka", "lakka", "max-age=60"},
		{"max-age=60;other", "lakka", ""},
		{"max-age=60;", "lakka", ""},
		{"no-store;other, max-age=60", "lakka", "max-age=60"},
		{"no-store;lakka, max-age=60", "lakka", "max-age=60 no-store"},
		{`content="ESI/1.0";lakka, max-age=60`, "lakka", "max-age=60"},
		{"max-age=60;lakka", "", ""},
		// Targeted directives win over untargeted ones of the same kind.
		{"max-age=10, max-age=60;lakka", "lakka", "max-age=60"},
		{"max-age=60;lakka, max-age=10", "lakka", "max-age=60"},
		{"max-age=10, max-age=60;other", "lakka", "max-age=10"},
		{"max-age=60;lakka, max-age=30;lakka", "lakka", "max-age=0"},
		{"no-store, max-age=60;lakka", "lakka", "max-age=60 no-store"},
		{"stale-if-error=5, stale-if-error=600;lakka", "lakka", "stale-if-error=600"},
		// Edge Architecture max-age=freshness+revalidation.
		{"max-age=60+30", "lakka", "max-age=60 stale-while-revalidate=30"},
		{"max-age=60+30;lakka", "lakka", "max-age=60 stale-while-revalidate=30"},
		{"max-age=60+x", "lakka", "max-age=60"},
		{"max-age=x+30", "lakka", "max-age=0 stale-while-revalidate=30"},
		{"max-age=60+", "lakka", "max-age=60"},
		{"max-age=+30", "lakka", "max-age=0 stale-while-revalidate=30"},
		// Garbage after the target makes the member malformed.
		{"max-age=60;lakka x", "lakka", "max-age=0"},
		{"no-store;lakka x", "lakka", "no-store"},
		{"public;lakka x", "lakka", ""},
		{"max-age=60", "", "max-age=60"},
	}
	for _, tt := range tests {
		if got := describe(parseSC(tt.target, tt.in)); got != tt.want {
			t.Errorf("ParseTargeted(%q, %q): got %q, want %q", tt.in, tt.target, got, tt.want)
		}
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"", "max-age=60", `max-age="60"`, "max-age=60, max-age=30", "no-store;lakka",
		"max-age=60+30;lakka", `no-cache="Set-Cookie, X", private`, `foo="unterminated, no-store`,
		"s-maxage=99999999999999999999", "stale-while-revalidate=30, stale-if-error=600",
		"max-stale, min-fresh=5, only-if-cached", "\x00,\xff=\"\\", "public;x , must-understand",
	} {
		f.Add([]byte(s), "lakka")
	}
	f.Fuzz(func(t *testing.T, b []byte, target string) {
		for _, tgt := range []string{"", target} {
			d := NewDirectives()
			d.ParseTargeted(b, tgt)
			for name, v := range map[string]time.Duration{
				"max-age": d.MaxAge, "s-maxage": d.SMaxAge,
				"stale-while-revalidate": d.StaleWhileRevalidate, "stale-if-error": d.StaleIfError,
				"max-stale": d.MaxStale, "min-fresh": d.MinFresh,
			} {
				if v != Absent && (v < 0 || v > maxDelta || v%time.Second != 0) {
					t.Errorf("ParseTargeted(%q, %q): %s = %v, want whole seconds in [0, 2^31 s]", b, tgt, name, v)
				}
			}
			// Parsing the same bytes again as a second line never makes a
			// lifetime longer.
			again := d
			again.ParseTargeted(b, tgt)
			if again.MaxAge > d.MaxAge || again.SMaxAge > d.SMaxAge {
				t.Errorf("ParseTargeted(%q, %q) twice: max-age %v s-maxage %v, once: %v %v", b, tgt, again.MaxAge, again.SMaxAge, d.MaxAge, d.SMaxAge)
			}
		}
		// Without targets or "+" (Surrogate-Control syntax), Parse is
		// ParseTargeted without a name.
		if !strings.ContainsAny(string(b), ";+") {
			p, q := NewDirectives(), NewDirectives()
			p.Parse(b)
			q.ParseTargeted(b, "")
			if describe(p) != describe(q) {
				t.Errorf("Parse(%q) = %q, ParseTargeted(%q, \"\") = %q", b, describe(p), b, describe(q))
			}
		}
	})
}
