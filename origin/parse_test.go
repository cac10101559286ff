package origin

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseArticlePath(t *testing.T) {
	f := func(path string, want int64, ok bool) {
		t.Helper()
		got, gotOK := parseArticlePath(path)
		if got != want || gotOK != ok {
			t.Errorf("parseArticlePath(%q) = %d, %v; want %d, %v", path, got, gotOK, want, ok)
		}
	}
	f("/news/world/42-storm-hits", 42, true)
	f("/42-x", 42, true)
	f("/news/42", 42, true)
	f("/a/b/c/9223372036854775807-max", 0, false) // 19 digits: not an article ID
	f("/news/", 0, false)
	f("/news/42-x/", 0, false)
	f("/news/042-x", 0, false)
	f("/news/0-x", 0, false)
	f("/news/-1-x", 0, false)
	f("/news/4a-x", 0, false)
	f("/news/world", 0, false)
	f("", 0, false)
	f("42-x", 0, false)
}

func FuzzParseArticlePath(f *testing.F) {
	for _, s := range []string{"/news/world/42-storm", "/1", "/x/", "/0-a", "/99999999999999999999-a", "/a/-", "//7-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		id, ok := parseArticlePath(path)
		if !ok {
			if id != 0 {
				t.Fatalf("parseArticlePath(%q) = %d with false", path, id)
			}
			return
		}
		if id <= 0 || strings.HasSuffix(path, "/") {
			t.Fatalf("parseArticlePath(%q) = %d, true", path, id)
		}
		// The canonical URL of that ID under the same section parses back.
		dir := path[:strings.LastIndexByte(path, '/')+1]
		if back, ok := parseArticlePath(articleURL(dir, id, "slug")); !ok || back != id {
			t.Fatalf("canonical URL of %d under %q parses as %d, %v", id, dir, back, ok)
		}
		if !strings.Contains(path, "/"+strconv.FormatInt(id, 10)) {
			t.Fatalf("parseArticlePath(%q) = %d: not in the path", path, id)
		}
	})
}

func TestSlug(t *testing.T) {
	f := func(title, want string) {
		t.Helper()
		if got := Slug(title); got != want {
			t.Errorf("Slug(%q) = %q, want %q", title, got, want)
		}
	}
	f("Storm closes the coast road", "storm-closes-the-coast-road")
	f("  Jyväskylä: 5 questions answered! ", "jyvaskyla-5-questions-answered")
	f("Ice Hockey", "ice-hockey")
	f("---", "article")
	f("", "article")
	f("日本語", "article")
	f(strings.Repeat("ab ", 50), strings.TrimSuffix(strings.Repeat("ab-", 27), "-"))
}

func FuzzSlug(f *testing.F) {
	for _, s := range []string{"Storm closes the coast road", "Ääkköset ÖÖ", "a--b", strings.Repeat("x", 200), "\xff\xfe", " -a- "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, title string) {
		s := Slug(title)
		if s == "" || len(s) > maxSlugBytes || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
			t.Fatalf("Slug(%q) = %q", title, s)
		}
		for i := range len(s) {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				t.Fatalf("Slug(%q) = %q: byte %q", title, s, c)
			}
		}
		if Slug(s) != s {
			t.Fatalf("Slug is not idempotent: %q → %q → %q", title, s, Slug(s))
		}
	})
}

func TestETagMatch(t *testing.T) {
	f := func(inm, etag string, want bool) {
		t.Helper()
		if got := etagMatch(inm, etag); got != want {
			t.Errorf("etagMatch(%q, %q) = %v, want %v", inm, etag, got, want)
		}
	}
	f(`"abc"`, `"abc"`, true)
	f(`W/"abc"`, `"abc"`, true)
	f(`"x", "abc"`, `"abc"`, true)
	f(`*`, `"abc"`, true)
	f(``, `"abc"`, false)
	f(`"abcd"`, `"abc"`, false)
	f(`abc`, `"abc"`, false)
	f(`W/"abc"`, `W/"abc"`, true)
	f(`"abc"`, `W/"abc"`, true)
	f(`W/`, `W/`, true) // found by FuzzETagMatch
}

func FuzzETagMatch(f *testing.F) {
	f.Add(`"a", W/"b"`, `"b"`)
	f.Add(`*`, `"x"`)
	f.Fuzz(func(t *testing.T, inm, etag string) {
		got := etagMatch(inm, etag)
		if strings.Contains(etag, ",") || strings.TrimSpace(etag) != etag || etag == "" {
			return // not an ETag this origin makes
		}
		if !etagMatch(etag, etag) || !etagMatch(inm+", "+etag, etag) {
			t.Fatalf("etag %q does not match itself in a list", etag)
		}
		if got && !strings.Contains(inm, strings.TrimPrefix(etag, "W/")) && !strings.Contains(inm, "*") {
			t.Fatalf("etagMatch(%q, %q) matched something not there", inm, etag)
		}
	})
}
