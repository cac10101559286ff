package cachepolicy

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	rfc := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC) // RFC 9110 §5.6.7
	tests := []struct {
		in   string
		want time.Time // zero: invalid
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", rfc},
		{"Sunday, 06-Nov-94 08:49:37 GMT", rfc},
		{"Sun Nov  6 08:49:37 1994", rfc},
		{"Sun Nov 16 08:49:37 1994", rfc.AddDate(0, 0, 10)},
		{"Mon, 01 Jan 2024 12:00:00 GMT", t0},
		{"Thu, 29 Feb 2024 00:00:00 GMT", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"Thu, 01 Jan 1970 00:00:00 GMT", time.Unix(0, 0).UTC()},
		{"Fri, 31 Dec 9999 23:59:59 GMT", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"Sat, 31 Dec 2016 23:59:60 GMT", time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)}, // leap second
		{"Mon, 06 Nov 1994 08:49:37 GMT", rfc},                                         // the weekday is not checked
		{"Wednesday, 01-Jan-70 00:00:00 GMT", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},

		{"", time.Time{}},
		{"0", time.Time{}},
		{"-1", time.Time{}},
		{"Sun, 06 Nov 1994 08:49:37 UTC", time.Time{}},
		{"Sun, 06 Nov 1994 08:49:37 gmt", time.Time{}},
		{"Sun, 06 Nov 1994 08:49:37 GMT ", time.Time{}},
		{" Sun, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"Sun, 6 Nov 1994 08:49:37 GMT", time.Time{}},
		{"Sun, 06 nov 1994 08:49:37 GMT", time.Time{}},
		{"Sun, 06 Nox 1994 08:49:37 GMT", time.Time{}},
		{"Sun, 00 Nov 1994 08:49:37 GMT", time.Time{}},
		{"Sun, 32 Nov 1994 08:49:37 GMT", time.Time{}},
		{"Sun, 06 Nov 1994 24:00:00 GMT", time.Time{}},
		{"Sun, 06 Nov 1994 08:60:00 GMT", time.Time{}},
		{"Sun, 06 Nov 1994 08:49:61 GMT", time.Time{}},
		{"Sun, 06 Nov 19x4 08:49:37 GMT", time.Time{}},
		{"Sun, 06 Nov 1994 08-49-37 GMT", time.Time{}},
		{"Sun, 06 Nov -994 08:49:37 GMT", time.Time{}},
		{"Sunday, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"Sunday, 06-Nov-94 08:49:37,1 GMT", time.Time{}}, // a fraction (found by fuzzing)
		{"Sun Nov  6 08:49:37.5 1994", time.Time{}},
		{"Sun Nov 6 08:49:37 1994", rfc}, // lenient: the space before a 1-digit day is optional
		{"1994-11-06T08:49:37Z", time.Time{}},
		// Days that do not exist are invalid, not the next month.
		{"Thu, 31 Feb 1994 08:49:37 GMT", time.Time{}},
		{"Thu, 29 Feb 2023 08:49:37 GMT", time.Time{}},
		{"Sun, 31 Apr 1994 08:49:37 GMT", time.Time{}},
		{"Thursday, 31-Feb-94 08:49:37 GMT", time.Time{}},
		// RFC 850 dates are GMT only: other zones must not depend on the
		// process's time zone (time.Parse would look them up in Local).
		{"Sunday, 06-Nov-94 08:49:37 PST", time.Time{}},
		{"Sunday, 06-Nov-94 08:49:37 CET", time.Time{}},
		{"Sunday, 06-Nov-94 08:49:37 UTC", time.Time{}},
		{"Sunday, 06-Nov-94 08:49:37 GMT+1", time.Time{}},
		{"Sunday, 06-Nov-94 08:49:37 XYZ", time.Time{}},
		{"Sun, 06 Nov 1994 08:49:37 GMT" + string(make([]byte, 40)), time.Time{}},
	}
	for _, tt := range tests {
		got, ok := ParseHTTPDate([]byte(tt.in))
		if ok != !tt.want.IsZero() || !got.Equal(tt.want) || (ok && got.Location() != time.UTC) {
			t.Errorf("ParseHTTPDate(%q): got %v, %v, want %v", tt.in, got, ok, tt.want)
		}
	}
}

func TestAppendHTTPDate(t *testing.T) {
	f := func(tm time.Time, want string) {
		t.Helper()
		if got := AppendHTTPDate([]byte("Date: "), tm); string(got) != "Date: "+want {
			t.Errorf("AppendHTTPDate(%v): got %q, want %q", tm, got, "Date: "+want)
		}
	}
	f(t0, "Mon, 01 Jan 2024 12:00:00 GMT")
	f(t0.In(time.FixedZone("EET", 2*3600)), "Mon, 01 Jan 2024 12:00:00 GMT")
	f(t0.Add(999*time.Millisecond), "Mon, 01 Jan 2024 12:00:00 GMT")
	f(time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC), "Sun, 06 Nov 1994 08:49:37 GMT")

	// Round trip, to the second, for years 0 to 9999.
	r := rand.New(rand.NewPCG(7, 8))
	lo, hi := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	for range 20000 {
		tm := time.Unix(lo+r.Int64N(hi-lo+1), r.Int64N(1e9))
		b := AppendHTTPDate(nil, tm)
		got, ok := ParseHTTPDate(b)
		if want := tm.Truncate(time.Second).UTC(); !ok || !got.Equal(want) {
			t.Fatalf("ParseHTTPDate(AppendHTTPDate(%v) = %q): got %v, %v, want %v", tm, b, got, ok, want)
		}
	}
}

func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Sun, 31 Feb 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 PST", "Sat, 31 Dec 2016 23:59:60 GMT", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, ok := ParseHTTPDate(b)
		if !ok {
			if !tm.IsZero() {
				t.Errorf("ParseHTTPDate(%q) = %v, false: want the zero time", b, tm)
			}
			return
		}
		if tm.Location() != time.UTC || tm.Nanosecond() != 0 {
			t.Errorf("ParseHTTPDate(%q) = %v: not whole seconds in UTC", b, tm)
		}
		if tm.Year() < 0 || tm.Year() > 9999 {
			return
		}
		if again, ok := ParseHTTPDate(AppendHTTPDate(nil, tm)); !ok || !again.Equal(tm) {
			t.Errorf("ParseHTTPDate(%q) = %v, which formats to %q and parses to %v, %v", b, tm, AppendHTTPDate(nil, tm), again, ok)
		}
	})
}
