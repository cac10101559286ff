package cachepolicy

import (
	"testing"
	"time"
)

func TestETagMatchWeak(t *testing.T) {
	tests := []struct {
		inm, etag string
		want      bool
	}{
		{`"x"`, `"x"`, true},
		{`"x"`, `W/"x"`, true},
		{`W/"x"`, `"x"`, true},
		{`W/"x"`, `W/"x"`, true},
		{`"y"`, `"x"`, false},
		{`"a", "x"`, `"x"`, true},
		{`"a","x"`, `"x"`, true},
		{` "a" ,	W/"x" `, `"x"`, true},
		{`"a", "b"`, `"x"`, false},
		{`"a", `, `"x"`, false},
		{`"a",,	`, `"a"`, true},
		{`"a,x", "b"`, `"x"`, false},
		{`"a,x"`, `"a,x"`, true},
		{`*`, `"x"`, true},
		{`"a", *`, `"x"`, true},
		{`*`, ``, false},
		{`*`, `x`, false},
		{``, `"x"`, false},
		{`""`, `""`, true},
		{`""`, `"x"`, false},
		{`x`, `"x"`, false},
		{`"x`, `"x"`, false},
		{`"a"x, "x"`, `"x"`, false},
		{`w/"x"`, `"x"`, false},
		{`W/`, `"x"`, false},
		{`W/"x"`, `W/x`, false},
		{`"x"`, `"x`, false},
		{`"x"`, `W/`, false},
		{`"x"`, `"`, false},
	}
	for _, tt := range tests {
		if got := ETagMatchWeak([]byte(tt.inm), []byte(tt.etag)); got != tt.want {
			t.Errorf("ETagMatchWeak(%q, %q): got %v, want %v", tt.inm, tt.etag, got, tt.want)
		}
	}
}

func TestETagMatchStrong(t *testing.T) {
	tests := []struct {
		want, etag string
		match      bool
	}{
		{`"x"`, `"x"`, true},
		{`""`, `""`, true},
		{`"x"`, `"y"`, false},
		{`W/"x"`, `W/"x"`, false},
		{`W/"x"`, `"x"`, false},
		{`"x"`, `W/"x"`, false},
		{``, ``, false},
		{`x`, `x`, false},
		{`"`, `"`, false},
		{`"x"`, `"x" `, false},
		{`"x`, `"x`, false},
		{`Mon, 01 Jan 2024 12:00:00 GMT`, `"x"`, false},
	}
	for _, tt := range tests {
		if got := ETagMatchStrong([]byte(tt.want), []byte(tt.etag)); got != tt.match {
			t.Errorf("ETagMatchStrong(%q, %q): got %v, want %v", tt.want, tt.etag, got, tt.match)
		}
	}
}

func TestNotModifiedSince(t *testing.T) {
	lm := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ims  string
		lm   time.Time
		want bool
	}{
		{"Mon, 01 Jan 2024 12:00:00 GMT", lm, true},
		{"Mon, 01 Jan 2024 12:00:01 GMT", lm, true},
		{"Mon, 01 Jan 2024 11:59:59 GMT", lm, false},
		{"Monday, 01-Jan-24 12:00:00 GMT", lm, true},
		{"Mon Jan  1 12:00:00 2024", lm, true},
		{"Mon Jan  1 11:00:00 2024", lm, false},
		{"Mon, 01 Jan 2024 12:00:00 GMT", time.Time{}, false},
		{"Mon, 01 Jan 2024 12:00:00 UTC", lm, false},
		{"", lm, false},
		{"yesterday", lm, false},
		{"Mon, 01 Jan 2024 12:00:00 GMT", lm.Add(500 * time.Millisecond), false},
		{"Mon, 01 Jan 2024 13:00:00 GMT", lm.In(time.FixedZone("X", 3600)), true},
	}
	for _, tt := range tests {
		if got := NotModifiedSince([]byte(tt.ims), tt.lm); got != tt.want {
			t.Errorf("NotModifiedSince(%q, %v): got %v, want %v", tt.ims, tt.lm, got, tt.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	type result struct {
		start, end      int64
		ok, satisfiable bool
	}
	ignore := result{}
	unsat := result{ok: true}
	tests := []struct {
		in   string
		size int64
		want result
	}{
		{"bytes=0-99", 1000, result{0, 99, true, true}},
		{"bytes=0-0", 1000, result{0, 0, true, true}},
		{"bytes=100-", 1000, result{100, 999, true, true}},
		{"bytes=-100", 1000, result{900, 999, true, true}},
		{"bytes=-1000", 1000, result{0, 999, true, true}},
		{"bytes=-2000", 1000, result{0, 999, true, true}},
		{"bytes=0-1999", 1000, result{0, 999, true, true}},
		{"bytes=999-999", 1000, result{999, 999, true, true}},
		{"BYTES=0-9", 1000, result{0, 9, true, true}},
		{"Bytes=0-9", 1000, result{0, 9, true, true}},
		{"bytes= 0 - 9 ", 1000, result{0, 9, true, true}},
		{"bytes=000-009", 1000, result{0, 9, true, true}},
		{"bytes=999999999999999999-", 1000, unsat},

		// Unsatisfiable: 416.
		{"bytes=1000-", 1000, unsat},
		{"bytes=1000-2000", 1000, unsat},
		{"bytes=-0", 1000, unsat},
		{"bytes=0-", 0, unsat},
		{"bytes=-5", 0, unsat},
		{"bytes=0-0", 0, unsat},

		// Ignored: send the whole representation.
		{"", 1000, ignore},
		{"bytes=", 1000, ignore},
		{"bytes", 1000, ignore},
		{"bits=0-9", 1000, ignore},
		{"items=0-9", 1000, ignore},
		{"bytes 0-9", 1000, ignore},
		{"bytes=0-9,20-29", 1000, ignore},
		{"bytes=0-9, 20-29", 1000, ignore},
		{"bytes=9-0", 1000, ignore},
		{"bytes=-", 1000, ignore},
		{"bytes=--5", 1000, ignore},
		{"bytes=a-b", 1000, ignore},
		{"bytes=0-b", 1000, ignore},
		{"bytes=0x10-", 1000, ignore},
		{"bytes=+5-", 1000, ignore},
		{"bytes=5", 1000, ignore},
		{"bytes=0-9-", 1000, ignore},
		{"bytes=1234567890123456789-", 1000, ignore},
		{"bytes=-1234567890123456789", 1000, ignore},
		{"bytes=0-1234567890123456789", 1000, ignore},
	}
	for _, tt := range tests {
		var got result
		got.start, got.end, got.ok, got.satisfiable = ParseRange([]byte(tt.in), tt.size)
		if got != tt.want {
			t.Errorf("ParseRange(%q, %d): got %+v, want %+v", tt.in, tt.size, got, tt.want)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-100", "bytes=100-", "bytes=0-9,20-29", "BYTES= 5 - ", "bytes=999999999999999999-999999999999999999", "bytes=-0"} {
		f.Add([]byte(s), int64(1000))
	}
	f.Add([]byte("bytes=0-"), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		start, end, ok, satisfiable := ParseRange(b, size)
		if !ok && satisfiable {
			t.Errorf("ParseRange(%q, %d): satisfiable but not ok", b, size)
		}
		if satisfiable && !(0 <= start && start <= end && end < size) {
			t.Errorf("ParseRange(%q, %d) = %d-%d: outside the representation", b, size, start, end)
		}
		if !satisfiable && (start != 0 || end != 0) {
			t.Errorf("ParseRange(%q, %d) = %d-%d but not satisfiable", b, size, start, end)
		}
	})
}
