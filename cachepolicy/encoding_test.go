package cachepolicy

import (
	"strings"
	"testing"
)

func TestParseAcceptEncoding(t *testing.T) {
	tests := []struct {
		in   []string // field lines; nil: no header
		want AcceptEncoding
	}{
		{nil, AcceptEncoding{0, 0, 1}},
		{[]string{""}, AcceptEncoding{0, 0, 1}},
		{[]string{",,, ,"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip"}, AcceptEncoding{1000, 0, 1}},
		{[]string{" gzip "}, AcceptEncoding{1000, 0, 1}},
		{[]string{"GZIP"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip,"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip, deflate, br"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip, deflate, br, zstd"}, AcceptEncoding{1000, 1000, 1}},
		{[]string{"br;q=1, gzip;q=0.5"}, AcceptEncoding{500, 0, 1}},
		{[]string{"gzip;q=0"}, AcceptEncoding{0, 0, 1}},
		{[]string{"*"}, AcceptEncoding{1000, 1000, 1}},
		{[]string{"*;q=0"}, AcceptEncoding{0, 0, 0}},
		{[]string{"*;q=0.5, gzip;q=0"}, AcceptEncoding{0, 500, 1}},
		{[]string{"gzip;q=0, *"}, AcceptEncoding{0, 1000, 1}},
		{[]string{"*;q=0, identity"}, AcceptEncoding{0, 0, 1000}},
		{[]string{"identity;q=0"}, AcceptEncoding{0, 0, 0}},
		{[]string{"identity;q=0, gzip"}, AcceptEncoding{1000, 0, 0}},
		{[]string{"identity"}, AcceptEncoding{0, 0, 1000}},
		{[]string{"x-gzip"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"X-GZIP;Q=0.3"}, AcceptEncoding{300, 0, 1}},
		{[]string{"gzip ; q=0.5"}, AcceptEncoding{500, 0, 1}},
		{[]string{"gzip;level=9;q=0.5"}, AcceptEncoding{500, 0, 1}},
		{[]string{"gzip;level=9"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip;q=0.5;q=1"}, AcceptEncoding{500, 0, 1}},
		{[]string{"gzip;q=0.5, gzip;q=0.8"}, AcceptEncoding{800, 0, 1}},
		{[]string{"gzip;q=0", "gzip"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"zstd", "gzip;q=0.1"}, AcceptEncoding{100, 1000, 1}},

		// q-values (RFC 9110 §12.4.2); malformed ones count as 0.
		{[]string{"gzip;q=1"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip;q=1."}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip;q=1.000"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip;q=0.001"}, AcceptEncoding{1, 0, 1}},
		{[]string{"gzip;q=0.1"}, AcceptEncoding{100, 0, 1}},
		{[]string{"gzip;q=0.12"}, AcceptEncoding{120, 0, 1}},
		{[]string{"gzip;q=0.999"}, AcceptEncoding{999, 0, 1}},
		{[]string{"gzip;q=0."}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=0.000"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q="}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=abc"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=1.5"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=1.0000"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=0.1234"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=.5"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=-1"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=5"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=x"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=0.5x"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=01"}, AcceptEncoding{0, 0, 1}},
		{[]string{"*;q=abc"}, AcceptEncoding{0, 0, 0}},
		{[]string{"gzip;q=10"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=100"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=1..0"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=1.0."}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q=0.5."}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q =0"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;Q = 0.5"}, AcceptEncoding{500, 0, 1}},
		{[]string{"gzip;qq=0"}, AcceptEncoding{1000, 0, 1}},
		{[]string{"gzip;q"}, AcceptEncoding{0, 0, 1}},
		{[]string{"gzip;q;level=1"}, AcceptEncoding{0, 0, 1}},
	}
	for _, tt := range tests {
		values := fieldLines(tt.in)
		if got := ParseAcceptEncoding(values...); got != tt.want {
			t.Errorf("ParseAcceptEncoding(%q): got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestChoose(t *testing.T) {
	type offer struct{ gzip, zstd bool }
	tests := []struct {
		in    string // one field line; "-" means no header
		offer offer
		want  Encoding
		ok    bool
	}{
		{"-", offer{true, true}, Identity, true},
		{"", offer{true, true}, Identity, true},
		{"gzip", offer{true, true}, Gzip, true},
		{"gzip", offer{false, true}, Identity, true},
		{"gzip, deflate, br", offer{true, false}, Gzip, true},
		{"gzip, deflate, br", offer{false, false}, Identity, true},
		{"br;q=1, gzip;q=0.5", offer{true, true}, Gzip, true},
		{"gzip;q=0", offer{true, true}, Identity, true},
		{"*", offer{true, true}, Zstd, true},
		{"*", offer{true, false}, Gzip, true},
		{"*", offer{false, true}, Zstd, true},
		{"*", offer{false, false}, Identity, true},
		{"*;q=0", offer{true, true}, Identity, false},
		{"identity;q=0", offer{true, true}, Identity, false},
		{"identity;q=0, gzip", offer{true, true}, Gzip, true},
		{"identity;q=0, gzip", offer{false, true}, Identity, false},
		{"x-gzip", offer{true, false}, Gzip, true},
		{"gzip;q=abc", offer{true, true}, Identity, true},
		{"gzip;q=0, *", offer{true, true}, Zstd, true},
		{"zstd;q=0, *", offer{true, true}, Gzip, true},
		{"zstd, gzip", offer{true, true}, Zstd, true},
		{"gzip, zstd", offer{true, true}, Zstd, true},
		{"gzip, deflate, br, zstd", offer{true, true}, Zstd, true},
		{"gzip, deflate, br, zstd", offer{true, false}, Gzip, true},
		{"zstd;q=0.5, gzip", offer{true, true}, Gzip, true},
		{"zstd;q=1, gzip;q=0.9", offer{true, true}, Zstd, true},
		{"zstd", offer{true, false}, Identity, true},
		{"zstd", offer{true, true}, Zstd, true},
		{"identity;q=0.5, gzip;q=0.5", offer{true, true}, Gzip, true},
		{"identity, gzip;q=0.5", offer{true, true}, Identity, true},
		{"*;q=0.5, gzip;q=0", offer{true, true}, Zstd, true},
		{"*;q=0, identity", offer{true, true}, Identity, true},
		// Ties: zstd (offered only when configured), then gzip, then identity.
		{"zstd, identity", offer{false, true}, Zstd, true},
		{"zstd;q=0.5, identity;q=0.5", offer{true, true}, Zstd, true},
		{"gzip;q=0.5, zstd;q=0.5, identity;q=0.5", offer{true, true}, Zstd, true},
		{"gzip;q=0.5, zstd;q=0.5, identity;q=0.5", offer{true, false}, Gzip, true},
		{"*", offer{false, true}, Zstd, true},
	}
	for _, tt := range tests {
		var ae AcceptEncoding
		if tt.in == "-" {
			ae = ParseAcceptEncoding()
		} else {
			ae = ParseAcceptEncoding([]byte(tt.in))
		}
		got, ok := ae.Choose(tt.offer.gzip, tt.offer.zstd)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseAcceptEncoding(%q).Choose(%v, %v): got %v, %v, want %v, %v", tt.in, tt.offer.gzip, tt.offer.zstd, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEncodingString(t *testing.T) {
	for e, want := range map[Encoding]string{Identity: "identity", Gzip: "gzip", Zstd: "zstd", 9: "identity"} {
		if got := e.String(); got != want {
			t.Errorf("Encoding(%d).String(): got %q, want %q", e, got, want)
		}
	}
}

func FuzzParseAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip", "gzip, deflate, br", "br;q=1, gzip;q=0.5", "gzip;q=0", "", "*", "*;q=0", "identity;q=0", "x-gzip", "gzip;q=abc", "zstd;q=0.999, *;q=0.1", "gzip;q =0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ae := ParseAcceptEncoding(b)
		for _, q := range []int{ae.GzipQ, ae.ZstdQ, ae.IdentityQ} {
			if q < 0 || q > 1000 {
				t.Errorf("ParseAcceptEncoding(%q) = %+v: q out of [0, 1000]", b, ae)
			}
		}
		// Splitting the list into field lines changes nothing.
		lines := strings.Split(string(b), ",")
		if split := ParseAcceptEncoding(fieldLines(lines)...); split != ae {
			t.Errorf("ParseAcceptEncoding(%q) = %+v, as %d lines %+v", b, ae, len(lines), split)
		}
		for _, offer := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			e, ok := ae.Choose(offer[0], offer[1])
			q := map[Encoding]int{Identity: ae.IdentityQ, Gzip: ae.GzipQ, Zstd: ae.ZstdQ}[e]
			switch {
			case e == Gzip && !offer[0], e == Zstd && !offer[1]:
				t.Errorf("ParseAcceptEncoding(%q).Choose(%v) = %v: not offered", b, offer, e)
			case ok != (q > 0):
				t.Errorf("ParseAcceptEncoding(%q).Choose(%v) = %v, %v with q %d", b, offer, e, ok, q)
			case offer[0] && ae.GzipQ > q, offer[1] && ae.ZstdQ > q, e != Identity && ae.IdentityQ > q:
				t.Errorf("ParseAcceptEncoding(%q) = %+v: Choose(%v) = %v, not the best", b, ae, offer, e)
			case q > 0 && e != Zstd && offer[1] && ae.ZstdQ == q, q > 0 && e == Identity && offer[0] && ae.GzipQ == q:
				t.Errorf("ParseAcceptEncoding(%q) = %+v: Choose(%v) = %v, not the preferred among equals", b, ae, offer, e)
			}
		}
	})
}
