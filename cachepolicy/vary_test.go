package cachepolicy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVary(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
		star bool
	}{
		{nil, nil, false},
		{[]string{""}, nil, false},
		{[]string{" , ,"}, nil, false},
		{[]string{"Accept-Encoding"}, []string{"accept-encoding"}, false},
		{[]string{"accept-encoding, ACCEPT-ENCODING,Accept-Encoding"}, []string{"accept-encoding"}, false},
		{[]string{"Cookie, Accept-Encoding"}, []string{"accept-encoding", "cookie"}, false},
		{[]string{"Cookie", "Accept-Language", "cookie"}, []string{"accept-language", "cookie"}, false},
		{[]string{"\tOrigin\t,\tX-Foo "}, []string{"origin", "x-foo"}, false},
		{[]string{"*"}, nil, true},
		{[]string{"Accept-Encoding, *"}, []string{"accept-encoding"}, true},
		{[]string{"Accept-Encoding", "*"}, []string{"accept-encoding"}, true},
		{[]string{"*x"}, []string{"*x"}, false}, // a token, not the star
		{[]string{"Accept Encoding"}, []string{"accept", "encoding"}, false},
		{[]string{"Accept-Encoding;q=1"}, nil, true},
		{[]string{`"Cookie"`}, nil, true},
		{[]string{"Cookie\x00"}, nil, true},
		{[]string{"Coo\xffkie"}, nil, true},
		{[]string{"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p"}, strings.Split("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p", ","), false},
		{[]string{"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"}, strings.Split("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", ","), true},
		{[]string{strings.Repeat("a,", 100)}, []string{"a"}, false},
	}
	for _, tt := range tests {
		values := fieldLines(tt.in)
		got, star := ParseVary(nil, values...)
		if star != tt.star || (!star && !cmp.Equal(got, tt.want, cmpEmpty)) {
			t.Errorf("ParseVary(%q): got %q, %v, want %q, %v", tt.in, got, star, tt.want, tt.star)
		}
	}
	// It appends to names, and sorts the whole.
	got, _ := ParseVary([]string{"x-old"}, []byte("Accept"))
	if want := []string{"accept", "x-old"}; !cmp.Equal(got, want) {
		t.Errorf("ParseVary([x-old], Accept): got %q, want %q", got, want)
	}
}

// fieldLines returns the values of header field lines as bytes.
func fieldLines(lines []string) [][]byte {
	values := make([][]byte, len(lines))
	for i, l := range lines {
		values[i] = []byte(l)
	}
	return values
}

// cmpEmpty makes nil and empty slices equal.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })

func FuzzParseVary(f *testing.F) {
	for _, s := range []string{"Accept-Encoding", "*", "Cookie, accept-encoding, COOKIE", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "\"x\", \x00", " \t,"} {
		f.Add([]byte(s), []byte("Accept-Language"))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		names, star := ParseVary(nil, a, b)
		if star {
			return
		}
		if len(names) > MaxVaryFields || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("ParseVary(%q, %q) = %q: not a short sorted set", a, b, names)
		}
		for _, n := range names {
			if n == "" || n != strings.ToLower(n) || n == "*" {
				t.Errorf("ParseVary(%q, %q) = %q: bad name %q", a, b, names, n)
			}
			for _, c := range []byte(n) {
				if !isTokenChar(c) {
					t.Errorf("ParseVary(%q, %q) = %q: bad name %q", a, b, names, n)
				}
			}
		}
		// Order of the values does not matter.
		if swapped, _ := ParseVary(nil, b, a); !cmp.Equal(swapped, names, cmpEmpty) {
			t.Errorf("ParseVary(%q, %q) = %q, swapped %q", a, b, names, swapped)
		}
	})
}

func TestAppendVaryValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"gzip", "gzip"},
		{"  gzip  ", "gzip"},
		{"gzip, deflate", "gzip,deflate"},
		{"gzip ,deflate", "gzip,deflate"},
		{"gzip\t,\t deflate", "gzip,deflate"},
		{"en-US  en", "en-US en"},
		{"a \t b", "a b"},
		{"a , , b", "a,,b"},
		{"Gzip", "Gzip"},
	}
	for _, tt := range tests {
		if got := AppendVaryValue([]byte("k="), []byte(tt.in)); string(got) != "k="+tt.want {
			t.Errorf("AppendVaryValue(%q): got %q, want %q", tt.in, got, "k="+tt.want)
		}
	}
}
