package cachepolicy

import (
	"bytes"
	"testing"
)

func TestStripCookies(t *testing.T) {
	analytics := []string{"_ga*", "_gid", "__utm?"}
	tests := []struct {
		in    string
		globs []string
		want  string
	}{
		{"", analytics, ""},
		{"; ;", analytics, ""},
		{"a=1", nil, "a=1"},
		{"a=1;b=2", nil, "a=1; b=2"},
		{"  a=1 ;\tb=2  ", nil, "a=1; b=2"},
		{"_ga=GA1.2.3", analytics, ""},
		{"_ga=1; _gid=2; _gat_x=3", analytics, ""},
		{"_ga=1; session=abc; _gid=2", analytics, "session=abc"},
		{"session=abc; _ga=1", analytics, "session=abc"},
		{"__utma=1; __utmz=2; __utm=3", analytics, "__utm=3"},
		{"_GA=1", analytics, "_GA=1"},
		{"x_ga=1", analytics, "x_ga=1"},
		{"_ga =1", analytics, ""},
		{"_ga=1=2", analytics, ""},
		{"a=", analytics, "a="},
		// Pieces without '=' are kept whatever their name: the origin may
		// read them.
		{"_gid; a=1", analytics, "_gid; a=1"},
		{"_ga", analytics, "_ga"},
		{"a=1; _gat", []string{"*"}, "_gat"},
		{"=1", analytics, "=1"},
		{"=1", []string{""}, ""},
		{"a=b; c=d", []string{"*"}, ""},
		{`a="x;y"`, nil, `a="x; y"`},
	}
	for _, tt := range tests {
		got := StripCookies([]byte("Cookie: "), []byte(tt.in), tt.globs)
		if string(got) != "Cookie: "+tt.want {
			t.Errorf("StripCookies(%q, %q): got %q, want %q", tt.in, tt.globs, got, "Cookie: "+tt.want)
		}
	}
}

func FuzzStripCookies(f *testing.F) {
	for _, s := range []string{"_ga=1; session=abc", "a=1;;b", " =; = ;", "_gid", "a=\"x;y\"; _ga=\x00"} {
		f.Add([]byte(s))
	}
	globs := []string{"_ga*", "_gid", "*_tracking"}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := StripCookies(nil, in, globs)
		if bytes.Contains(out, []byte(";;")) || bytes.HasPrefix(out, []byte(";")) || bytes.HasSuffix(out, []byte(";")) {
			t.Errorf("StripCookies(%q) = %q: empty piece", in, out)
		}
		// Stripping is idempotent and never adds anything.
		if again := StripCookies(nil, out, globs); !bytes.Equal(again, out) {
			t.Errorf("StripCookies(%q) = %q, then %q", in, out, again)
		}
		if len(out) > len(in)+bytes.Count(in, []byte(";")) {
			t.Errorf("StripCookies(%q) = %q: longer than the input", in, out)
		}
		// Malformed pieces are kept.
		for _, piece := range bytes.Split(in, []byte(";")) {
			if p := bytes.TrimSpace(piece); len(p) > 0 && !bytes.ContainsAny(p, "=\t") && !bytes.Contains(out, p) {
				t.Errorf("StripCookies(%q) = %q: dropped %q, which has no '='", in, out, p)
			}
		}
		// No globs: every non-empty piece is kept.
		if all := StripCookies(nil, in, nil); bytes.Count(all, []byte(";")) < bytes.Count(out, []byte(";")) {
			t.Errorf("StripCookies(%q, nil) = %q keeps less than with globs (%q)", in, all, out)
		}
	})
}

func TestFilterCookiesAndCookieValue(t *testing.T) {
	in := []byte(" a=1;; b = 2 ;c;d=\"x\"")
	keep := func(n []byte) bool { return string(n) != "b" }
	if got := string(FilterCookies(nil, in, keep)); got != `a=1; c; d="x"` {
		t.Errorf("FilterCookies = %q", got)
	}
	for name, want := range map[string]string{"a": "1", "b": "2", "d": `"x"`} {
		if v, ok := CookieValue(in, name); !ok || string(v) != want {
			t.Errorf("CookieValue(%q) = %q, %v; want %q", name, v, ok, want)
		}
	}
	if _, ok := CookieValue(in, "c"); ok {
		t.Error("a piece without '=' has no value")
	}
}

// FuzzFilterCookies: FilterCookies keeping everything with a name agrees
// with StripCookies without globs, and CookieValue finds what is kept.
func FuzzFilterCookies(f *testing.F) {
	for _, s := range []string{"_ga=1; session=abc", "a=1;;b", " =; = ;", "a=\"x;y\"; b=\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		all := FilterCookies(nil, in, func([]byte) bool { return true })
		if strip := StripCookies(nil, in, nil); !bytes.Equal(all, strip) {
			t.Errorf("FilterCookies(%q) = %q, StripCookies without globs %q", in, all, strip)
		}
		if none := FilterCookies(nil, in, func([]byte) bool { return false }); len(none) != 0 {
			t.Errorf("FilterCookies(%q, none) = %q", in, none)
		}
		for piece, name, rest := nextCookie(in); piece != nil; piece, name, rest = nextCookie(rest) {
			if name == nil {
				continue
			}
			if _, ok := CookieValue(in, string(name)); !ok {
				t.Errorf("CookieValue(%q, %q): not found", in, name)
			}
		}
	})
}
