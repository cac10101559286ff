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
