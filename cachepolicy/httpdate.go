package cachepolicy

import (
	"time"
)

// TimeFormat is the IMF-fixdate layout of HTTP dates (RFC 9110 §5.6.7).
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// ParseHTTPDate reads an HTTP date in any of the three formats of RFC 9110
// §5.6.7. The preferred IMF-fixdate is parsed without allocating.
func ParseHTTPDate(b []byte) (time.Time, bool) {
	if t, ok := parseIMFFixdate(b); ok {
		return t, true
	}
	if len(b) > 64 {
		return time.Time{}, false
	}
	s := string(b)
	// rfc850-date is GMT only. time.Parse would accept any zone
	// abbreviation and look it up in time.Local, making the result depend
	// on the process's time zone.
	// time.Parse also takes a fraction after the seconds ("00:00:00,1")
	// although the layouts have none; an HTTP-date has whole seconds.
	if len(s) > 4 && s[len(s)-4:] == " GMT" {
		if t, err := time.Parse(time.RFC850, s); err == nil && t.Nanosecond() == 0 {
			return t.UTC(), true
		}
	}
	if t, err := time.Parse(time.ANSIC, s); err == nil && t.Nanosecond() == 0 {
		return t.UTC(), true
	}
	return time.Time{}, false
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(b []byte) (time.Time, bool) {
	if len(b) != 29 || b[3] != ',' || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' ||
		b[16] != ' ' || b[19] != ':' || b[22] != ':' || b[25] != ' ' ||
		b[26] != 'G' || b[27] != 'M' || b[28] != 'T' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	day, ok1 := num(b[5:7])
	year, ok2 := num(b[12:16])
	hh, ok3 := num(b[17:19])
	mm, ok4 := num(b[20:22])
	ss, ok5 := num(b[23:25])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	month := 0
	for i, m := range months {
		if b[8] == m[0] && b[9] == m[1] && b[10] == m[2] {
			month = i + 1
			break
		}
	}
	if month == 0 {
		return time.Time{}, false
	}
	// time.Date normalises 31 Feb to 3 Mar: such a day does not exist.
	if time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() != day {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hh, mm, ss, 0, time.UTC), true
}

// AppendHTTPDate appends t as an IMF-fixdate.
func AppendHTTPDate(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimeFormat)
}
