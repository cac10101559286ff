package cachepolicy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var (
	stripRules = &KeyRules{StripQuery: []string{"utm_*", "fbclid", "gclid", "?ref"}}
	sortRules  = &KeyRules{SortQuery: true}
	bothRules  = &KeyRules{StripQuery: []string{"utm_*", "fbclid"}, SortQuery: true}
)

func TestNormalizeTarget(t *testing.T) {
	const bad = "ERROR"
	tests := []struct {
		raw   string
		rules *KeyRules
		want  string // bad: ErrBadTarget
		host  string
	}{
		// Origin-form, unchanged.
		{raw: "/", want: "/"},
		{raw: "/a/b", want: "/a/b"},
		{raw: "/A/B.html", want: "/A/B.html"},
		{raw: "/a?b=1", want: "/a?b=1"},
		{raw: "/!$&'()*+,;=:@-._~", want: "/!$&'()*+,;=:@-._~"},
		{raw: "//a", want: "//a"},
		{raw: "/a//b", want: "/a//b"},

		// Percent-encoding (RFC 3986 §6.2.2.1, §6.2.2.2).
		{raw: "/%7Euser", want: "/~user"},
		{raw: "/%41%62%2d%5f%2E%7e%30", want: "/Ab-_.~0"},
		{raw: "/a%2fb", want: "/a%2Fb"},
		{raw: "/a%2Fb", want: "/a%2Fb"},
		{raw: "/a%3fb", want: "/a%3Fb"},
		{raw: "/a%23b", want: "/a%23b"},
		{raw: "/a%25b", want: "/a%25b"},
		{raw: "/a%26b%3d", want: "/a%26b%3D"},
		{raw: "/a%20b", want: "/a%20b"},
		{raw: "/a%00b", want: "/a%00b"},
		{raw: "/a%c3%a4", want: "/a%C3%A4"},
		{raw: "/a%21", want: "/a%21"}, // sub-delims stay encoded
		{raw: "/a b", want: "/a%20b"},
		{raw: "/\xc3\xa4", want: "/%C3%A4"},
		{raw: "/\xff", want: "/%FF"},
		{raw: "/\"<>\\^`{|}", want: "/%22%3C%3E%5C%5E%60%7B%7C%7D"},
		{raw: "/[a]", want: "/%5Ba%5D"},
		{raw: "/a?b", want: "/a?b"},

		// Dot segments (RFC 3986 §5.2.4), also when encoded.
		{raw: "/a/./b", want: "/a/b"},
		{raw: "/a/../b", want: "/b"},
		{raw: "/../../a", want: "/a"},
		{raw: "/a/b/..", want: "/a/"},
		{raw: "/a/b/../", want: "/a/"},
		{raw: "/a/.", want: "/a/"},
		{raw: "/.", want: "/"},
		{raw: "/..", want: "/"},
		{raw: "/./", want: "/"},
		{raw: "/a/b/../../../c", want: "/c"},
		{raw: "/a//../b", want: "/a/b"},
		{raw: "/a/.../b", want: "/a/.../b"},
		{raw: "/.a/a./..b/b..", want: "/.a/a./..b/b.."},
		{raw: "/a/%2e/b", want: "/a/b"},
		{raw: "/a/%2E%2E/b", want: "/b"},
		{raw: "/a/.%2e/b", want: "/b"},
		{raw: "/a/%2e./b", want: "/b"},
		{raw: "/a%2e", want: "/a."},
		{raw: "/a/..%2f..%2fb", want: "/a/..%2F..%2Fb"}, // %2F is not a delimiter
		{raw: "/a/..%2F", want: "/a/..%2F"},
		{raw: "/a/..;/b", want: "/a/..;/b"},
		{raw: "/a/b/..?c=/../d", want: "/a/?c=/../d"},

		// Query.
		{raw: "/a?", want: "/a"},
		{raw: "/a?&", want: "/a"},
		{raw: "/a?&&b=1&&", want: "/a?b=1"},
		{raw: "/a?b", want: "/a?b"},
		{raw: "/a?b=", want: "/a?b="},
		{raw: "/a?=", want: "/a?="},
		{raw: "/a?x=%2f%3f%23%26%3d%25%41", want: "/a?x=%2F%3F%23%26%3D%25A"},
		{raw: "/a?q=a+b", want: "/a?q=a+b"},
		{raw: "/a?q=a b", want: "/a?q=a%20b"},
		{raw: "/a?next=/b?c=d", want: "/a?next=/b?c=d"},
		{raw: "/a?b=1&b=1", want: "/a?b=1&b=1"},
		{raw: "/a?b=2&a=1", want: "/a?b=2&a=1"},

		// Absolute-form.
		{raw: "http://Example.COM/a", want: "/a", host: "Example.COM"},
		{raw: "HTTP://h/a", want: "/a", host: "h"},
		{raw: "https://h/a?b", want: "/a?b", host: "h"},
		{raw: "hTtPs://h/a", want: "/a", host: "h"},
		{raw: "http://h", want: "/", host: "h"},
		{raw: "http://h?x=1", want: "/?x=1", host: "h"},
		{raw: "http://h?", want: "/", host: "h"},
		{raw: "http://h:8080/a", want: "/a", host: "h:8080"},
		{raw: "http://[::1]:80/a", want: "/a", host: "[::1]:80"},
		{raw: "http://h/../a/./b", want: "/a/b", host: "h"},
		{raw: "http://h/a@b", want: "/a@b", host: "h"},
		{raw: "http://h?utm_source=x", rules: stripRules, want: "/", host: "h"},

		// Bad targets.
		{raw: "", want: bad},
		{raw: "a", want: bad},
		{raw: "*", want: bad},
		{raw: "h:80", want: bad},
		{raw: "ftp://h/a", want: bad},
		{raw: "http:/h/a", want: bad},
		{raw: "http:", want: bad},
		{raw: "http://", want: bad},
		{raw: "http:///a", want: bad},
		{raw: "http://?a", want: bad},
		{raw: "http://user@h/", want: bad},
		{raw: "http://user:pw@h/a", want: bad},
		{raw: "http://@h/a", want: bad},
		{raw: "/%", want: bad},
		{raw: "/%4", want: bad},
		{raw: "/a%4", want: bad},
		{raw: "/%zz", want: bad},
		{raw: "/%g0", want: bad},
		{raw: "/%0g", want: bad},
		{raw: "/% 41", want: bad},
		{raw: "/a\x00", want: bad},
		{raw: "/a\r\nX-Injected: 1", want: bad},
		{raw: "/a\t", want: bad},
		{raw: "/a\x1f", want: bad},
		{raw: "/a\x7f", want: bad},
		{raw: "/a#frag", want: bad},
		{raw: "/a?b#c", want: bad},
		{raw: "/#", want: bad},
		{raw: "/a?%zz", want: bad},
		{raw: "/a?b=%", want: bad},
		{raw: "/a?\x01", want: bad},
		{raw: "/a?b\x7f", want: bad},
		{raw: "http://h/a#b", want: bad},
		{raw: "http://h/%zz", want: bad},
		{raw: "http://h?%zz", want: bad},
		{raw: "http://h\x00/a", want: bad},
		{raw: "http://h\r\nX: y/a", want: bad},
		{raw: "http://h x/a", want: bad},
		{raw: "http://h\t/a", want: bad},
		{raw: "http://h\x7f", want: bad},
		{raw: "http://h#frag", want: bad},
		{raw: "http://h#@evil/a", want: bad},

		// Stripping query parameters.
		{raw: "/a?utm_source=x", rules: stripRules, want: "/a"},
		{raw: "/a?utm_source=x&id=1", rules: stripRules, want: "/a?id=1"},
		{raw: "/a?id=1&utm_source=x", rules: stripRules, want: "/a?id=1"},
		{raw: "/a?id=1&utm_source=x&b=2", rules: stripRules, want: "/a?id=1&b=2"},
		{raw: "/a?utm_source=x&utm_medium=y&&fbclid", rules: stripRules, want: "/a"},
		{raw: "/a?utm_source=x&&id=1&&gclid=2&", rules: stripRules, want: "/a?id=1"},
		{raw: "/a?utm%5Fsource=x", rules: stripRules, want: "/a"},
		{raw: "/a?%75tm_source=x", rules: stripRules, want: "/a"},
		{raw: "/a?UTM_source=x", rules: stripRules, want: "/a?UTM_source=x"},
		{raw: "/a?utm=1", rules: stripRules, want: "/a?utm=1"},
		{raw: "/a?utm_=1", rules: stripRules, want: "/a"},
		{raw: "/a?fbclid", rules: stripRules, want: "/a"},
		{raw: "/a?fbclid=", rules: stripRules, want: "/a"},
		{raw: "/a?fbclidx=1", rules: stripRules, want: "/a?fbclidx=1"},
		{raw: "/a?xref=1", rules: stripRules, want: "/a"},
		{raw: "/a?ref=1", rules: stripRules, want: "/a?ref=1"},
		{raw: "/a?id=utm_source", rules: stripRules, want: "/a?id=utm_source"},
		{raw: "/a?utm_source%3Dx=1", rules: stripRules, want: "/a"},
		{raw: "/a?fbclid%3D=1", rules: stripRules, want: "/a?fbclid%3D=1"},
		{raw: "/a?=utm_source", rules: stripRules, want: "/a?=utm_source"},
		{raw: "/a?utm_source=%zz", rules: stripRules, want: bad},
		{raw: "/a?b=1", rules: &KeyRules{}, want: "/a?b=1"},

		// Sorting, stably.
		{raw: "/a?b=1&a=2", rules: sortRules, want: "/a?a=2&b=1"},
		{raw: "/a?b=1&a=2&b=0&a=1", rules: sortRules, want: "/a?a=2&a=1&b=1&b=0"},
		{raw: "/a?a=1", rules: sortRules, want: "/a?a=1"},
		{raw: "/a?ab=1&a=2&a_=3", rules: sortRules, want: "/a?a=2&a_=3&ab=1"},
		{raw: "/a?b&a=", rules: sortRules, want: "/a?a=&b"},
		{raw: "/a?b=1&B=1&a=1", rules: sortRules, want: "/a?B=1&a=1&b=1"},
		{raw: "/a?%62=1&a=2", rules: sortRules, want: "/a?a=2&b=1"},
		{raw: "/a?a%3Db=1&a=0", rules: sortRules, want: "/a?a=0&a%3Db=1"},
		{raw: "/a?=2&=1&a", rules: sortRules, want: "/a?=2&=1&a"},
		{raw: "/a?c&&b&&a", rules: sortRules, want: "/a?a&b&c"},
		{raw: "/a?z=1&y=%zz", rules: sortRules, want: bad},

		// Both.
		{raw: "/a?utm_a=1&c=3&b=2&utm_b", rules: bothRules, want: "/a?b=2&c=3"},
		{raw: "/a?utm_a=1", rules: bothRules, want: "/a"},
		{raw: "/a?c=1&utm_a=1&b=2&a=3", rules: bothRules, want: "/a?a=3&b=2&c=1"},
		{raw: "http://H/x/../a?fbclid=1&b=2&a", rules: bothRules, want: "/a?a&b=2", host: "H"},
	}
	for _, tt := range tests {
		out, host, err := NormalizeTarget(nil, []byte(tt.raw), tt.rules)
		if tt.want == bad {
			if !errors.Is(err, ErrBadTarget) {
				t.Errorf("NormalizeTarget(%q, %+v): got %q, %v, want ErrBadTarget", tt.raw, tt.rules, out, err)
			}
			continue
		}
		if err != nil || string(out) != tt.want || string(host) != tt.host {
			t.Errorf("NormalizeTarget(%q, %+v): got %q host %q err %v, want %q host %q", tt.raw, tt.rules, out, host, err, tt.want, tt.host)
		}
		checkNormalizeTarget(t, []byte(tt.raw), tt.rules)
	}
}

// TestNormalizeTargetManyParams covers sorting beyond the parameters sorted
// on the stack.
func TestNormalizeTargetManyParams(t *testing.T) {
	for _, n := range []int{maxSortParams - 1, maxSortParams, maxSortParams + 1, 3 * maxSortParams} {
		// Names p000.., each twice with values that record their order,
		// interleaved with stripped parameters, in a shuffled order.
		r := rand.New(rand.NewPCG(uint64(n), 1))
		var params []string
		for i := range n {
			params = append(params, fmt.Sprintf("p%03d=%d", i, 1), fmt.Sprintf("p%03d=%d", i, 2), fmt.Sprintf("utm_%d=x", i))
		}
		r.Shuffle(len(params), func(i, j int) { params[i], params[j] = params[j], params[i] })
		// Stable sorting keeps value 1 before value 2 where the shuffle
		// put it first: compute the expectation from the shuffled order.
		var want []string
		for _, p := range params {
			if !strings.HasPrefix(p, "utm_") {
				want = append(want, p)
			}
		}
		slices.SortStableFunc(want, func(a, b string) int { return strings.Compare(a[:4], b[:4]) })
		raw := "/a?" + strings.Join(params, "&")
		out, _, err := NormalizeTarget(nil, []byte(raw), bothRules)
		if wantS := "/a?" + strings.Join(want, "&"); err != nil || string(out) != wantS {
			t.Errorf("%d params: got %q, %v, want %q", n, out, err, wantS)
		}
		checkNormalizeTarget(t, []byte(raw), bothRules)
	}
}

func TestNormalizeTargetAppends(t *testing.T) {
	for _, raw := range []string{"/a/../b?d=1&c=2", "http://h?utm_x=1", "http://h", "/%zz", "http://h?%zz", "/a?b=%zz&c", "http://u@h/"} {
		for _, rules := range []*KeyRules{nil, bothRules} {
			want, wantHost, wantErr := NormalizeTarget(nil, []byte(raw), rules)
			prefix := []byte("prefix")
			got, host, err := NormalizeTarget(prefix, []byte(raw), rules)
			if wantErr != nil {
				want = nil
			}
			if string(got) != "prefix"+string(want) || string(host) != string(wantHost) || err != wantErr {
				t.Errorf("NormalizeTarget(%q, %q): got %q %q %v, want %q %q %v", "prefix", raw, got, host, err, "prefix"+string(want), wantHost, wantErr)
			}
		}
	}
}

// checkNormalizeTarget checks the properties every output of NormalizeTarget
// must have. It is shared by the table, property and fuzz tests.
func checkNormalizeTarget(t *testing.T, raw []byte, rules *KeyRules) {
	t.Helper()
	out, host, err := NormalizeTarget(nil, raw, rules)
	if err != nil {
		if !errors.Is(err, ErrBadTarget) {
			t.Errorf("NormalizeTarget(%q): error %v is not ErrBadTarget", raw, err)
		}
		return
	}
	if len(out) == 0 || out[0] != '/' {
		t.Errorf("NormalizeTarget(%q) = %q: not origin-form", raw, out)
	}
	// Only URI characters, no fragment, escapes normalised.
	for i, c := range out {
		if c <= ' ' || c >= 0x7f || c == '#' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' {
			t.Errorf("NormalizeTarget(%q) = %q: byte %q at %d", raw, out, c, i)
		}
		if c == '%' {
			if i+2 >= len(out) || !strings.ContainsRune(upperHex, rune(out[i+1])) || !strings.ContainsRune(upperHex, rune(out[i+2])) {
				t.Errorf("NormalizeTarget(%q) = %q: bad escape at %d", raw, out, i)
			} else if h, _ := unhex(out[i+1]); isUnreserved(h<<4 | unhexOrZero(out[i+2])) {
				t.Errorf("NormalizeTarget(%q) = %q: encoded unreserved byte at %d", raw, out, i)
			}
		}
	}
	// Delimiters are never created by decoding: each appears at most as
	// often as in the input after the authority (plus the '/' added for
	// "http://h" and "http://h?q").
	rest := raw
	if host != nil {
		rest = raw[bytes.Index(raw, []byte("://"))+3+len(host):]
	}
	for _, c := range []byte("/?&=;") {
		extra := 0
		if c == '/' && host != nil {
			extra = 1
		}
		if n, m := bytes.Count(out, []byte{c}), bytes.Count(rest, []byte{c}); n > m+extra {
			t.Errorf("NormalizeTarget(%q) = %q: %d %q, input has %d", raw, out, n, c, m)
		}
	}
	path, _, _ := bytes.Cut(out, []byte("?"))
	if hasDotSegment(path) {
		t.Errorf("NormalizeTarget(%q) = %q: dot segment left", raw, out)
	}
	// Idempotent: the output normalises to itself, in origin-form and,
	// with the host, in absolute-form.
	again, againHost, err := NormalizeTarget(nil, out, rules)
	if err != nil || !bytes.Equal(again, out) || againHost != nil {
		t.Errorf("NormalizeTarget(%q) = %q, which normalises to %q host %q err %v", raw, out, again, againHost, err)
	}
	if host != nil {
		abs := append([]byte("http://"), host...)
		abs = append(abs, out...)
		again, againHost, err := NormalizeTarget(nil, abs, rules)
		if err != nil || !bytes.Equal(again, out) || !bytes.Equal(againHost, host) {
			t.Errorf("NormalizeTarget(%q) = %q host %q; %q gives %q host %q err %v", raw, out, host, abs, again, againHost, err)
		}
	}
	// Appending keeps the prefix and appends the same bytes.
	prefixed, _, err := NormalizeTarget([]byte("k:"), raw, rules)
	if err != nil || string(prefixed) != "k:"+string(out) {
		t.Errorf("NormalizeTarget(%q, %q) = %q %v, want %q", "k:", raw, prefixed, err, "k:"+string(out))
	}
}

func unhexOrZero(c byte) byte {
	v, _ := unhex(c)
	return v
}

// hasDotSegment reports whether path has a "." or ".." segment.
func hasDotSegment(path []byte) bool {
	for _, seg := range bytes.Split(path, []byte("/")) {
		if string(seg) == "." || string(seg) == ".." {
			return true
		}
	}
	return false
}

// targetPieces are the bits random targets are made of: delimiters, dots,
// escapes good and bad, encoded delimiters, controls and non-ASCII.
var targetPieces = []string{
	"/", "/", "/", "a", "B", ".", "..", "%2e", "%2E", "%2f", "%2F", "%3f", "%23", "%25", "%41", "%7e", "%zz", "%",
	"?", "&", "=", "&&", "utm_", "x", "fbclid", "#", " ", "\x00", "\x7f", "\xc3\xa4", "+", ";", "@", ":", "~", "\\",
}

func randomTarget(r *rand.Rand) []byte {
	var b []byte
	switch r.IntN(8) {
	case 0:
		b = append(b, "http://Host:8080"...)
	case 1:
		b = append(b, "HTTPS://h"...)
	}
	if len(b) == 0 || r.IntN(2) == 0 {
		b = append(b, '/')
	}
	for range r.IntN(12) {
		b = append(b, targetPieces[r.IntN(len(targetPieces))]...)
	}
	return b
}

func TestNormalizeTargetProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		raw := randomTarget(r)
		for _, rules := range []*KeyRules{nil, stripRules, sortRules, bothRules} {
			checkNormalizeTarget(t, raw, rules)
		}
		if t.Failed() {
			return
		}
	}
}

// refRemoveDotSegments is RFC 3986 §5.2.4 as written, on strings.
func refRemoveDotSegments(in string) string {
	out := ""
	popLast := func() {
		out = out[:max(strings.LastIndexByte(out, '/'), 0)]
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			popLast()
		case in == "/..":
			in = "/"
			popLast()
		case in == "." || in == "..":
			in = ""
		default:
			j := strings.IndexByte(in[1:], '/')
			if j < 0 {
				j = len(in)
			} else {
				j++
			}
			out += in[:j]
			in = in[j:]
		}
	}
	return out
}

func TestRemoveDotSegments(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(removeDotSegments([]byte(in))); got != want {
			t.Errorf("removeDotSegments(%q): got %q, want %q", in, got, want)
		}
	}
	// RFC 3986 §5.2.4 and §5.4 examples.
	f("/a/b/c/./../../g", "/a/g")
	f("/b/c/../../../g", "/g")
	f("/b/c/./g", "/b/c/g")
	f("/b/c/g/.", "/b/c/g/")
	f("/b/c/g/..", "/b/c/")
	f("/b/c/d;p/../g", "/b/c/g")
	f("/b/c/g;x=1/./y", "/b/c/g;x=1/y")
	f("/b/c/g;x=1/../y", "/b/c/y")
	f("", "")
	f("/", "/")
	f("/..", "/")
	f("/../..", "/")
	f("/a/..", "/")
	f("/a/../", "/")
	f("//..", "/")
	f("/a//..", "/a/")
	f("/..a", "/..a")
	f("relative/../x", "relative/../x") // not a path from the root: untouched

	// Random paths against the reference.
	segs := []string{"a", "bc", "", ".", "..", "...", ".a", "a.", "..."}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		var b strings.Builder
		for range 1 + r.IntN(8) {
			b.WriteByte('/')
			b.WriteString(segs[r.IntN(len(segs))])
		}
		in := b.String()
		got := string(removeDotSegments([]byte(in)))
		want := refRemoveDotSegments(in)
		if want == "" {
			want = "/"
		}
		if got != want {
			t.Fatalf("removeDotSegments(%q): got %q, want %q", in, got, want)
		}
		if hasDotSegment([]byte(got)) || strings.Contains(got, "/./") || strings.Contains(got, "/../") {
			t.Fatalf("removeDotSegments(%q) = %q: dot segment left", in, got)
		}
	}
}

func FuzzNormalizeTarget(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b?c=d", "/a/%2e%2E/b", "/a%2fb/..%2F", "http://H:80/x/../y?b=1&a=2", "/a?utm_source=x&b&&a=1",
		"/a?%75tm_x=1", "/%zz", "/a#b", "http://u@h/", "/\xc3\xa4?\xff", "/a/./b/../../..", "/a?b=1&b=0&a=2",
		"/a?" + strings.Repeat("p=1&", 70),
	} {
		f.Add([]byte(s), uint8(3))
	}
	rulesFor := []*KeyRules{nil, stripRules, sortRules, bothRules}
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		checkNormalizeTarget(t, raw, rulesFor[int(which)%len(rulesFor)])
	})
}

func TestNormalizeHost(t *testing.T) {
	const bad = "ERROR"
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com:80", "example.com"},
		{"example.com:8080", "example.com:8080"},
		{"example.com:443", "example.com:443"},
		{"example.com:8", "example.com:8"},
		{"example.com:800", "example.com:800"},
		{"example.com.", "example.com"},
		{"example.com.:80", "example.com"},
		{"EXAMPLE.com.:8080", "example.com:8080"},
		{"localhost", "localhost"},
		{"my_host-1.example", "my_host-1.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:80", "127.0.0.1"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"[::1]", "[::1]"},
		{"[::1]:80", "[::1]"},
		{"[::1]:8080", "[::1]:8080"},
		{"[2001:DB8::1]", "[2001:db8::1]"},
		{"[::ffff:192.0.2.1]:81", "[::ffff:192.0.2.1]:81"},
		{strings.Repeat("a", 255), strings.Repeat("a", 255)},

		{"", bad},
		{":80", bad},
		{".", bad},
		{".:80", bad},
		{"a b", bad},
		{" a", bad},
		{"a/b", bad},
		{"a@b", bad},
		{"u@example.com", bad},
		{"a,b", bad},
		{"a\x00", bad},
		{"a\r\n", bad},
		{"\xc3\xa4.com", bad},
		{"a%2eb", bad},
		{"a:b:c", bad},
		{"a:", bad},
		{"a:8o", bad},
		{"a:-1", bad},
		{"a:123456", bad},
		{"a: 80", bad},
		{"[::1", bad},
		{"[::1]x", bad},
		{"[::1]:", bad},
		{"[::1]:x", bad},
		{"[g::1]", bad},
		{"[::1%25eth0]", bad},
		{"[v1.x]", bad},
		{"[a]b]", bad},
		{"::1", bad},
		{"[]", bad},
		{"[]:80", bad},
		{"[:]", bad},
		{"[1.2.3.4]", bad},
		{"[ab]", bad},
		{"example.com..", bad},
		{"a..b", bad},
		{".a", bad},
		{"..", bad},
		{".example.com.", bad},
		{strings.Repeat("a", 262), bad},
	}
	for _, tt := range tests {
		got, err := NormalizeHost(nil, []byte(tt.in))
		if tt.want == bad {
			if !errors.Is(err, ErrBadHost) {
				t.Errorf("NormalizeHost(%q): got %q, %v, want ErrBadHost", tt.in, got, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("NormalizeHost(%q): got %q, %v, want %q", tt.in, got, err, tt.want)
		}
		checkNormalizeHost(t, []byte(tt.in))
	}
}

// checkNormalizeHost checks the properties of every NormalizeHost output.
func checkNormalizeHost(t *testing.T, in []byte) {
	t.Helper()
	out, err := NormalizeHost([]byte("k"), in)
	if err != nil {
		if !errors.Is(err, ErrBadHost) || string(out) != "k" {
			t.Errorf("NormalizeHost(%q) = %q, %v: want the prefix alone and ErrBadHost", in, out, err)
		}
		return
	}
	out = out[1:]
	if !bytes.Equal(out, bytes.ToLower(out)) || bytes.ContainsAny(out, "/?#@ %\\") || bytes.HasSuffix(out, []byte(":80")) || len(out) == 0 {
		t.Errorf("NormalizeHost(%q) = %q", in, out)
	}
	again, err := NormalizeHost(nil, out)
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("NormalizeHost(%q) = %q, which normalises to %q, %v", in, out, again, err)
	}
	if !bytes.Equal(HostWithoutPort(out), HostWithoutPort(HostWithoutPort(out))) {
		t.Errorf("HostWithoutPort(%q) is not idempotent", out)
	}
}

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.:80", "[::1]:8080", "[2001:DB8::1]", "a:b:c", "example.com..", "[]", "a.-b_c:65535"} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkNormalizeHost)
}

func TestHostWithoutPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "a"},
		{"a:8080", "a"},
		{"a.example.com:1", "a.example.com"},
		{":80", ""},
		{"[::1]", "[::1]"},
		{"[::1]:8080", "[::1]"},
		{"[2001:db8::1]", "[2001:db8::1]"},
		{"[::1", "[::1"},
		{"[", "["},
		{"[:", "[:"},
		{"]", "]"},
	}
	for _, tt := range tests {
		if got := HostWithoutPort([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("HostWithoutPort(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", "", true},
		{"*", "abc", true},
		{"**", "x", true},
		{"?", "", false},
		{"?", "a", true},
		{"?", "ab", false},
		{"a", "a", true},
		{"a", "A", false},
		{"a*", "abc", true},
		{"a*", "bac", false},
		{"*c", "abc", true},
		{"*c", "abcd", false},
		{"a*c", "abbbc", true},
		{"a*c", "ac", true},
		{"a*c", "abcd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*a*b*", "xaybz", true},
		{"*a*b", "ab", true},
		{"*a*b", "ba", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "acb", false},
		{"utm_*", "utm_", true},
		{"utm_*", "utm_source", true},
		{"utm_*", "utm", false},
		{"utm_*", "xutm_a", false},
		{"[a]", "[a]", true},
		{"\\*", "\\x", true},
		{"*x", strings.Repeat("x", 40) + "y", false},
		{"*?*?*", "ab", true},
		{"*?*?*", "a", false},
		{"\xff*", "\xff\xfe", true},
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, []byte(tt.name)); got != tt.want {
			t.Errorf("Glob(%q, %q): got %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
	// Random patterns against a recursive reference.
	var ref func(p, n string) bool
	ref = func(p, n string) bool {
		switch {
		case p == "":
			return n == ""
		case p[0] == '*':
			return ref(p[1:], n) || (n != "" && ref(p, n[1:]))
		case n != "" && (p[0] == '?' || p[0] == n[0]):
			return ref(p[1:], n[1:])
		}
		return false
	}
	alpha := "ab*?"
	r := rand.New(rand.NewPCG(5, 6))
	gen := func(chars string) string {
		b := make([]byte, r.IntN(7))
		for i := range b {
			b[i] = chars[r.IntN(len(chars))]
		}
		return string(b)
	}
	for range 50000 {
		p, n := gen(alpha), gen(alpha[:2])
		if got, want := Glob(p, []byte(n)), ref(p, n); got != want {
			t.Fatalf("Glob(%q, %q): got %v, want %v", p, n, got, want)
		}
	}
}
