package cachekey

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestURL(t *testing.T) {
	tests := []struct{ host, target string }{
		{"example.com", "/"},
		{"example.com:8080", "/a?b=/c"},
		{"[::1]", "/x"},
		{"", "/x"},
	}
	for _, tt := range tests {
		key := AppendURL([]byte("old"), []byte(tt.host), []byte(tt.target))
		if string(key) != "old"+tt.host+tt.target {
			t.Errorf("AppendURL(%q, %q): got %q, want %q", tt.host, tt.target, key, "old"+tt.host+tt.target)
		}
		host, target := SplitURL(key[3:])
		if string(host) != tt.host || string(target) != tt.target {
			t.Errorf("SplitURL(%q): got %q %q, want %q %q", key[3:], host, target, tt.host, tt.target)
		}
	}
	if host, target := SplitURL([]byte("nohost")); string(host) != "nohost" || target != nil {
		t.Errorf("SplitURL(%q): got %q %q, want %q nil", "nohost", host, target, "nohost")
	}
}

func TestVariant(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Add("Accept-Language", "fi,  en")
	h.Add("Accept-Language", "sv")
	h.Add("Cookie", "_ga=1")
	h.Add("X-Device", "mobile")
	url := []byte("www.example.com/news")
	names := []string{"accept-language", "cookie", "x-device", "x-absent"}
	key := AppendVariant(nil, url, names, &h)
	want := "www.example.com/news\x00fi,en,sv\x00\x00mobile\x00\x00"
	if string(key) != want {
		t.Fatalf("AppendVariant: got %q, want %q", key, want)
	}
	if got := URL(key); !bytes.Equal(got, url) {
		t.Errorf("URL: got %q", got)
	}
	vals := Values(key, len(names))
	if len(vals) != len(names) || string(vals[0]) != "fi,en,sv" || len(vals[1]) != 0 || string(vals[2]) != "mobile" {
		t.Errorf("Values: got %q", vals)
	}
	if again := AppendVariantValues(nil, url, vals); !bytes.Equal(again, key) {
		t.Errorf("AppendVariantValues: got %q, want %q", again, key)
	}
	if Values(url, 2) != nil || !bytes.Equal(URL(url), url) {
		t.Errorf("a URL key has no variant values")
	}
}

// FuzzVariant checks that a variant key gives back its URL and values,
// and that AppendVariantValues rebuilds it from them.
func FuzzVariant(f *testing.F) {
	f.Add("example.com", "/a?b=1", "fi", "gzip, br")
	f.Add("[::1]:8080", "/", "", "")
	f.Fuzz(func(t *testing.T, host, target, v1, v2 string) {
		if bytes.IndexByte([]byte(host+target+v1+v2), 0) >= 0 || bytes.IndexByte([]byte(host), '/') >= 0 {
			return // never in normalised hosts and targets, nor in parsed header values
		}
		var h fasthttp.RequestHeader
		h.Set("X-One", v1)
		h.Set("X-Two", v2)
		url := AppendURL(nil, []byte(host), []byte(target))
		key := AppendVariant(nil, url, []string{"x-one", "x-two"}, &h)
		if got := URL(key); !bytes.Equal(got, url) {
			t.Fatalf("URL(%q) = %q, want %q", key, got, url)
		}
		vals := Values(key, 2)
		if len(vals) != 2 {
			t.Fatalf("Values(%q): %q", key, vals)
		}
		if again := AppendVariantValues(nil, url, vals); !bytes.Equal(again, key) {
			t.Fatalf("rebuilt %q, want %q", again, key)
		}
	})
}

func TestExtras(t *testing.T) {
	base := AppendURL(nil, []byte("example.fi"), []byte("/a?b=1"))
	k := AppendExtra(append([]byte(nil), base...), "@pool", []byte("canary"))
	k = AppendExtra(k, "x-device", []byte("mob\x01ile"))
	if string(RealURL(k)) != string(base) || !HasExtras(k) || HasExtras(base) || string(URL(k)) != string(k) {
		t.Fatalf("RealURL %q, HasExtras %v/%v, URL %q", RealURL(k), HasExtras(k), HasExtras(base), URL(k))
	}
	var got []string
	EachExtra(k, func(n, v []byte) { got = append(got, string(n)+"="+string(v)) })
	if strings.Join(got, " ") != "@pool=canary x-device=mob?ile" {
		t.Fatalf("extras %q", got)
	}
	v := AppendVariantValues(nil, k, [][]byte{[]byte("fi")})
	if string(URL(v)) != string(k) || string(RealURL(URL(v))) != string(base) {
		t.Fatalf("variant of a key with extras: URL %q", URL(v))
	}
}
