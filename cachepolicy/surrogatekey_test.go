package cachepolicy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSurrogateKeys(t *testing.T) {
	var distinct []string
	for i := range MaxTags + 44 {
		distinct = append(distinct, fmt.Sprintf("t%03d", i))
	}
	tests := []struct {
		name    string
		old     []string
		in      []string
		want    []string
		skipped int
	}{
		{"nothing", nil, nil, nil, 0},
		{"empty", nil, []string{"", " , \t"}, nil, 0},
		{"spaces", nil, []string{"front article-42 section-news"}, []string{"article-42", "front", "section-news"}, 0},
		{"sorted and unique", nil, []string{"c b a b c"}, []string{"a", "b", "c"}, 0},
		{"commas (xkey)", nil, []string{"a,b, c ,d"}, []string{"a", "b", "c", "d"}, 0},
		{"tabs", nil, []string{"\ta\t\tb\t"}, []string{"a", "b"}, 0},
		{"several lines", nil, []string{"a", "b a"}, []string{"a", "b"}, 0},
		{"appends to tags", []string{"z", "a"}, []string{"m"}, []string{"a", "m", "z"}, 0},
		{"case matters", nil, []string{"A a"}, []string{"A", "a"}, 0},
		{"punctuation is fine", nil, []string{`"q" a/b x:y;z`}, []string{`"q"`, "a/b", "x:y;z"}, 0},
		{"control character", nil, []string{"a\x00b c"}, []string{"c"}, 1},
		{"DEL", nil, []string{"a\x7f"}, nil, 1},
		{"non-ASCII", nil, []string{"caf\xc3\xa9 ok"}, []string{"ok"}, 1},
		{"longest tag", nil, []string{strings.Repeat("x", MaxTagLength)}, []string{strings.Repeat("x", MaxTagLength)}, 0},
		{"too long", nil, []string{strings.Repeat("x", MaxTagLength+1) + " y"}, []string{"y"}, 1},
		{"too many", nil, []string{strings.Join(distinct, " ")}, distinct[:MaxTags], 44},
		{"duplicates do not count", nil, []string{strings.Repeat("a ", 2*MaxTags) + "b"}, []string{"a", "b"}, 0},
		{"duplicates over several lines", nil, []string{strings.Join(distinct[:MaxTags], " "), strings.Join(distinct[:MaxTags], ","), "t000"}, distinct[:MaxTags], 0},
		{"limit with old tags", distinct[:MaxTags-1], []string{"x y"}, append(slices.Clone(distinct[:MaxTags-1]), "x"), 1},
	}
	for _, tt := range tests {
		values := fieldLines(tt.in)
		got, skipped := ParseSurrogateKeys(slices.Clone(tt.old), values...)
		if !cmp.Equal(got, tt.want, cmpEmpty) || skipped != tt.skipped {
			t.Errorf("ParseSurrogateKeys, %s: got %d skipped, want %d; tags (-want +got)\n%s", tt.name, skipped, tt.skipped, cmp.Diff(tt.want, got))
		}
	}
}

func FuzzParseSurrogateKeys(f *testing.F) {
	for _, s := range []string{"front article-42", "a,b c\td", "a\x00 b", strings.Repeat("k ", 300), strings.Repeat("x", 300)} {
		f.Add([]byte(s), []byte("extra"))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		tags, skipped := ParseSurrogateKeys(nil, a, b)
		if len(tags) > MaxTags || !slices.IsSorted(tags) || len(slices.Compact(slices.Clone(tags))) != len(tags) {
			t.Errorf("ParseSurrogateKeys(%q, %q) = %d tags: not a bounded sorted set", a, b, len(tags))
		}
		for _, tag := range tags {
			if tag == "" || len(tag) > MaxTagLength || !printable([]byte(tag)) || strings.ContainsRune(tag, ',') {
				t.Errorf("ParseSurrogateKeys(%q, %q): bad tag %q", a, b, tag)
			}
		}
		tokens := strings.FieldsFunc(string(a)+" "+string(b), func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		if skipped > len(tokens) || (skipped == 0 && len(tags) != len(slices.Compact(slices.Sorted(slices.Values(tokens))))) {
			t.Errorf("ParseSurrogateKeys(%q, %q) = %d tags, %d skipped, from %d tokens", a, b, len(tags), skipped, len(tokens))
		}
	})
}
