package cachepolicy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// surrogateName is the Surrogate-Control target the tests use for the edge.
const surrogateName = "lakka"

// response builds a Response from "Name: value" header lines the way the
// edge does, with this package's parsers.
func response(status int, lines ...string) Response {
	r := Response{
		Status:           status,
		CacheControl:     NewDirectives(),
		SurrogateControl: NewDirectives(),
		Age:              Absent,
	}
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		v := []byte(strings.TrimSpace(value))
		switch strings.ToLower(name) {
		case "cache-control":
			r.CacheControl.Parse(v)
		case "surrogate-control":
			r.HasSurrogateControl = true
			r.SurrogateControl.ParseTargeted(v, surrogateName)
		case "date":
			r.Date, _ = ParseHTTPDate(v)
		case "expires":
			r.ExpiresPresent = true
			r.Expires, _ = ParseHTTPDate(v)
		case "age":
			if age, ok := parseDelta(v); ok {
				r.Age = age
			}
		case "set-cookie":
			r.SetCookie = true
		case "vary":
			_, star := ParseVary(nil, v)
			r.VaryStar = r.VaryStar || star
		case "etag", "last-modified":
			r.HasValidator = true
		}
	}
	return r
}

// request builds a Request from "Name: value" header lines.
func request(lines ...string) Request {
	r := Request{CacheControl: NewDirectives()}
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "authorization":
			r.Authorization = true
		case "cache-control":
			r.CacheControl.Parse([]byte(strings.TrimSpace(value)))
		}
	}
	return r
}

func dur(d time.Duration) *time.Duration { return &d }

const (
	sec  = time.Second
	hour = time.Hour
)

var (
	t0 = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	// Header dates relative to t0.
	dateT0       = "Date: Mon, 01 Jan 2024 12:00:00 GMT"
	expiresT0300 = "Expires: Mon, 01 Jan 2024 12:05:00 GMT"
	// baseRules are the configured defaults of most cases.
	baseRules = Rules{DefaultTTL: 120 * sec, Grace: 10 * sec, Keep: hour}
)

// stored is the decision to store with these lifetimes.
func stored(ttl, grace, keep time.Duration) Decision {
	return Decision{Store: true, Reason: ReasonStored, TTL: ttl, Grace: grace, Keep: keep}
}

// refused is the decision not to store for r.
func refused(r Reason, hitForMiss bool) Decision {
	return Decision{Reason: r, HitForMiss: hitForMiss}
}

func withAge(d Decision, age time.Duration) Decision {
	d.InitialAge = age
	return d
}

func revalidate(d Decision) Decision {
	d.Revalidate = true
	return d
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		req    []string
		status int
		resp   []string
		delay  time.Duration  // responseTime - requestTime
		rules  func(r *Rules) // changes to baseRules
		want   Decision
	}{
		// Never store.
		{name: "request no-store", req: []string{"Cache-Control: no-store"}, status: 200, resp: []string{"Cache-Control: max-age=60"},
			want: refused(ReasonRequestNoStore, false)},
		{name: "no-store", status: 200, resp: []string{"Cache-Control: no-store"},
			want: refused(ReasonNoStore, true)},
		{name: "no-store upper case, with max-age", status: 200, resp: []string{"Cache-Control: NO-STORE, max-age=60"},
			want: refused(ReasonNoStore, true)},
		{name: "no-store on a second line", status: 200, resp: []string{"Cache-Control: max-age=60", "Cache-Control: no-store"},
			want: refused(ReasonNoStore, true)},
		{name: "no-store with a malformed suffix", status: 200, resp: []string{"Cache-Control: no-store;x, max-age=60"},
			want: refused(ReasonNoStore, true)},
		{name: "no-store, must-understand, understood status", status: 200, resp: []string{"Cache-Control: no-store, must-understand, max-age=60"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "no-store, must-understand, default lifetime", status: 200, resp: []string{"Cache-Control: no-store, must-understand"},
			want: stored(120*sec, 10*sec, hour)},
		{name: "no-store, must-understand, status not understood", status: 299, resp: []string{"Cache-Control: no-store, must-understand, max-age=60"},
			want: refused(ReasonNoStore, true)},
		{name: "no-store, must-understand, 500", status: 500, resp: []string{"Cache-Control: no-store, must-understand, max-age=60"},
			want: refused(ReasonNoStore, true)},
		{name: "Surrogate-Control no-store wins over max-age", status: 200, resp: []string{"Surrogate-Control: no-store", "Cache-Control: max-age=60"},
			want: refused(ReasonNoStore, true)},
		{name: "Surrogate-Control no-store for another cache", status: 200, resp: []string{"Surrogate-Control: no-store;other", "Cache-Control: max-age=60"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "Surrogate-Control max-age does not lift no-store", status: 200, resp: []string{"Surrogate-Control: max-age=60", "Cache-Control: no-store"},
			want: refused(ReasonNoStore, true)},
		{name: "private", status: 200, resp: []string{"Cache-Control: private, max-age=60"},
			want: refused(ReasonPrivate, true)},
		{name: "qualified private", status: 200, resp: []string{`Cache-Control: private="Set-Cookie", max-age=60`},
			want: refused(ReasonPrivate, true)},
		{name: "private and public", status: 200, resp: []string{"Cache-Control: public, private"},
			want: refused(ReasonPrivate, true)},
		{name: "private with Surrogate-Control max-age", status: 200, resp: []string{"Surrogate-Control: max-age=60", "Cache-Control: private, s-maxage=60"},
			want: refused(ReasonPrivate, true)},
		{name: "Vary *", status: 200, resp: []string{"Cache-Control: max-age=60", "Vary: *"},
			want: refused(ReasonVaryStar, true)},
		{name: "Vary list with *", status: 200, resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding, *"},
			want: refused(ReasonVaryStar, true)},
		{name: "Vary with too many fields", status: 200, resp: []string{"Vary: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"},
			want: refused(ReasonVaryStar, true)},
		{name: "Vary Accept-Encoding", status: 200, resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "Set-Cookie", status: 200, resp: []string{"Cache-Control: public, max-age=60", "Set-Cookie: a=b"},
			want: refused(ReasonSetCookie, true)},
		{name: "Set-Cookie stripped by the route", status: 200, resp: []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"},
			rules: func(r *Rules) { r.StripSetCookie = true },
			want:  stored(60*sec, 10*sec, hour)},
		{name: "Set-Cookie stripped, still private", status: 200, resp: []string{"Cache-Control: private", "Set-Cookie: a=b"},
			rules: func(r *Rules) { r.StripSetCookie = true },
			want:  refused(ReasonPrivate, true)},

		// Authorization (RFC 9111 §3.5).
		{name: "Authorization", req: []string{"Authorization: Bearer x"}, status: 200,
			want: refused(ReasonAuthorization, false)},
		{name: "Authorization with max-age", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Cache-Control: max-age=60"},
			want: refused(ReasonAuthorization, false)},
		{name: "Authorization with Surrogate-Control max-age", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Surrogate-Control: max-age=60"},
			want: refused(ReasonAuthorization, false)},
		{name: "Authorization with malformed public", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Cache-Control: public;x, max-age=60"},
			want: refused(ReasonAuthorization, false)},
		{name: "Authorization with public", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Cache-Control: public, max-age=60"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "Authorization with s-maxage", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Cache-Control: s-maxage=60"},
			want: stored(60*sec, 0, 0)},
		{name: "Authorization with must-revalidate", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Cache-Control: must-revalidate, max-age=60"},
			want: stored(60*sec, 0, 0)},
		{name: "Authorization with public and no-store", req: []string{"Authorization: Bearer x"}, status: 200, resp: []string{"Cache-Control: public, no-store"},
			want: refused(ReasonNoStore, true)},

		// Statuses.
		{name: "200 default TTL", status: 200,
			want: stored(120*sec, 10*sec, hour)},
		{name: "203 default TTL", status: 203, want: stored(120*sec, 10*sec, hour)},
		{name: "204 default TTL", status: 204, want: stored(120*sec, 10*sec, hour)},
		{name: "300 default TTL", status: 300, want: stored(120*sec, 10*sec, hour)},
		{name: "301 default TTL", status: 301, want: stored(120*sec, 10*sec, hour)},
		{name: "308 default TTL", status: 308, want: stored(120*sec, 10*sec, hour)},
		{name: "404 default TTL", status: 404, want: stored(120*sec, 10*sec, hour)},
		{name: "410 default TTL", status: 410, want: stored(120*sec, 10*sec, hour)},
		{name: "302 without freshness", status: 302, want: refused(ReasonStatus, true)},
		{name: "303 without freshness", status: 303, want: refused(ReasonStatus, true)},
		{name: "307 without freshness", status: 307, want: refused(ReasonStatus, true)},
		{name: "302 with max-age", status: 302, resp: []string{"Cache-Control: max-age=60"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "307 with Expires", status: 307, resp: []string{dateT0, expiresT0300},
			want: stored(300*sec, 10*sec, hour)},
		{name: "302 with Surrogate-Control max-age", status: 302, resp: []string{"Surrogate-Control: max-age=60"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "302 with a route TTL", status: 302,
			rules: func(r *Rules) { r.TTL = dur(30 * sec) },
			want:  stored(30*sec, 10*sec, hour)},
		{name: "302 with only a route MinTTL", status: 302,
			rules: func(r *Rules) { r.MinTTL = dur(30 * sec) },
			want:  refused(ReasonStatus, true)},
		{name: "206", status: 206, resp: []string{"Cache-Control: max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "400", status: 400, want: refused(ReasonStatus, true)},
		{name: "400 with max-age", status: 400, resp: []string{"Cache-Control: public, max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "403 with max-age", status: 403, resp: []string{"Cache-Control: max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "405", status: 405, want: refused(ReasonStatus, true)},
		{name: "414", status: 414, want: refused(ReasonStatus, true)},
		{name: "431 with max-age", status: 431, resp: []string{"Cache-Control: max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "500", status: 500, want: refused(ReasonStatus, true)},
		{name: "500 with max-age", status: 500, resp: []string{"Cache-Control: max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "501", status: 501, want: refused(ReasonStatus, true)},
		{name: "502 with Surrogate-Control", status: 502, resp: []string{"Surrogate-Control: max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "503 with a route TTL", status: 503, rules: func(r *Rules) { r.TTL = dur(60 * sec) }, want: refused(ReasonStatus, true)},
		{name: "504", status: 504, want: refused(ReasonStatus, true)},
		{name: "100", status: 100, want: refused(ReasonStatus, true)},
		{name: "304", status: 304, resp: []string{"Cache-Control: max-age=60"}, want: refused(ReasonStatus, true)},
		{name: "0", status: 0, want: refused(ReasonStatus, true)},
		{name: "999", status: 999, resp: []string{"Cache-Control: max-age=60"}, want: refused(ReasonStatus, true)},

		// Freshness precedence: Surrogate-Control max-age > s-maxage > max-age > Expires > default.
		{name: "Surrogate-Control max-age first", status: 200,
			resp: []string{"Surrogate-Control: max-age=30", "Cache-Control: s-maxage=20, max-age=10", dateT0, expiresT0300},
			want: stored(30*sec, 0, 0)},
		{name: "targeted Surrogate-Control max-age", status: 200,
			resp: []string{"Surrogate-Control: max-age=5, max-age=30;lakka", "Cache-Control: max-age=10"},
			want: stored(30*sec, 10*sec, hour)},
		{name: "Surrogate-Control max-age for another cache", status: 200,
			resp: []string{"Surrogate-Control: max-age=30;other", "Cache-Control: max-age=10"},
			want: stored(10*sec, 10*sec, hour)},
		{name: "Surrogate-Control without max-age", status: 200,
			resp: []string{"Surrogate-Control: stale-if-error=100", "Cache-Control: max-age=10"},
			want: stored(10*sec, 10*sec, 90*sec)},
		{name: "s-maxage over max-age and Expires", status: 200,
			resp: []string{"Cache-Control: s-maxage=20, max-age=10", dateT0, expiresT0300},
			want: stored(20*sec, 0, 0)},
		{name: "max-age over Expires", status: 200,
			resp: []string{"Cache-Control: max-age=10", dateT0, expiresT0300},
			want: stored(10*sec, 10*sec, hour)},
		{name: "max-age=0 over Expires", status: 200,
			resp: []string{"Cache-Control: max-age=0", dateT0, expiresT0300},
			want: stored(0, 10*sec, hour)},
		{name: "conflicting max-age is stale", status: 200,
			resp: []string{"Cache-Control: max-age=60, max-age=600"},
			want: stored(0, 10*sec, hour)},
		{name: "Expires minus Date", status: 200, resp: []string{dateT0, expiresT0300},
			want: stored(300*sec, 10*sec, hour)},
		{name: "Expires with a skewed Date", status: 200,
			resp: []string{"Date: Mon, 01 Jan 2024 11:00:00 GMT", "Expires: Mon, 01 Jan 2024 11:05:00 GMT"},
			want: stored(300*sec, 10*sec, hour)},
		{name: "Expires without Date counts from the response time", status: 200, resp: []string{expiresT0300}, delay: 2 * sec,
			want: withAge(stored(298*sec, 10*sec, hour), 2*sec)},
		{name: "Expires in the past", status: 200, resp: []string{dateT0, "Expires: Mon, 01 Jan 2024 11:00:00 GMT"},
			want: stored(0, 10*sec, hour)},
		{name: "Expires invalid is already expired", status: 200, resp: []string{dateT0, "Expires: 0"},
			want: stored(0, 10*sec, hour)},
		{name: "Expires empty is already expired", status: 200, resp: []string{"Expires:"},
			want: stored(0, 10*sec, hour)},
		{name: "Expires in RFC 850 form", status: 200, resp: []string{dateT0, "Expires: Monday, 01-Jan-24 12:01:00 GMT"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "Expires in asctime form", status: 200, resp: []string{dateT0, "Expires: Mon Jan  1 12:01:00 2024"},
			want: stored(60*sec, 10*sec, hour)},
		{name: "expired with nothing to serve stale", status: 200, resp: []string{"Cache-Control: max-age=0"},
			rules: func(r *Rules) { r.Grace, r.Keep = 0, 0 },
			want:  refused(ReasonNoLifetime, true)},
		{name: "default TTL 0 and no stale windows", status: 200,
			rules: func(r *Rules) { *r = Rules{} },
			want:  refused(ReasonNoLifetime, true)},
		{name: "largest lifetime", status: 200, resp: []string{"Cache-Control: max-age=99999999999"},
			want: stored(maxDelta, 10*sec, hour)},

		// Age (RFC 9111 §4.2.3): Age plus the response delay.
		{name: "Age", status: 200, resp: []string{"Cache-Control: max-age=60", "Age: 20"},
			want: withAge(stored(60*sec, 10*sec, hour), 20*sec)},
		{name: "Age and response delay", status: 200, resp: []string{"Cache-Control: max-age=60", "Age: 20"}, delay: 5 * sec,
			want: withAge(stored(60*sec, 10*sec, hour), 25*sec)},
		{name: "response delay without Age", status: 200, resp: []string{"Cache-Control: max-age=60"}, delay: 3 * sec,
			want: withAge(stored(60*sec, 10*sec, hour), 3*sec)},
		{name: "invalid Age is ignored", status: 200, resp: []string{"Cache-Control: max-age=60", "Age: abc"}, delay: 1 * sec,
			want: withAge(stored(60*sec, 10*sec, hour), 1*sec)},
		{name: "responseTime before requestTime", status: 200, resp: []string{"Cache-Control: max-age=60", "Age: 5"}, delay: -10 * sec,
			want: withAge(stored(60*sec, 10*sec, hour), 5*sec)},
		{name: "Age beyond every window", status: 200, resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=10, stale-if-error=20", "Age: 80"},
			want: withAge(refused(ReasonNoLifetime, true), 80*sec)},
		{name: "Age within grace", status: 200, resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=10", "Age: 65"},
			want: withAge(stored(60*sec, 10*sec, hour), 65*sec)},
		{name: "huge Age saturates", status: 200, resp: []string{"Cache-Control: max-age=60", "Age: 99999999999999"},
			want: withAge(refused(ReasonNoLifetime, true), maxDelta)},
		{name: "Age with the date heuristics unused", status: 200, resp: []string{"Date: Mon, 01 Jan 2024 10:00:00 GMT", "Cache-Control: max-age=60"},
			want: stored(60*sec, 10*sec, hour)},

		// Route overrides.
		{name: "route TTL replaces max-age", status: 200, resp: []string{"Cache-Control: max-age=60"},
			rules: func(r *Rules) { r.TTL = dur(300 * sec) },
			want:  stored(300*sec, 10*sec, hour)},
		{name: "route TTL replaces Surrogate-Control", status: 200, resp: []string{"Surrogate-Control: max-age=60"},
			rules: func(r *Rules) { r.TTL = dur(5 * sec) },
			want:  stored(5*sec, 10*sec, hour)},
		{name: "route MinTTL raises", status: 200, resp: []string{"Cache-Control: max-age=10"},
			rules: func(r *Rules) { r.MinTTL = dur(60 * sec) },
			want:  stored(60*sec, 10*sec, hour)},
		{name: "route MinTTL does not lower", status: 200, resp: []string{"Cache-Control: max-age=300"},
			rules: func(r *Rules) { r.MinTTL = dur(60 * sec) },
			want:  stored(300*sec, 10*sec, hour)},
		{name: "route MinTTL raises an invalid Expires", status: 200, resp: []string{"Expires: never"},
			rules: func(r *Rules) { r.MinTTL = dur(60 * sec) },
			want:  stored(60*sec, 10*sec, hour)},
		{name: "route MaxTTL lowers", status: 200, resp: []string{"Cache-Control: max-age=300"},
			rules: func(r *Rules) { r.MaxTTL = dur(60 * sec) },
			want:  stored(60*sec, 10*sec, hour)},
		{name: "route MaxTTL lowers the default", status: 200,
			rules: func(r *Rules) { r.MaxTTL = dur(60 * sec) },
			want:  stored(60*sec, 10*sec, hour)},
		{name: "route MaxTTL clamps the route TTL", status: 200,
			rules: func(r *Rules) { r.TTL, r.MaxTTL = dur(600*sec), dur(60*sec) },
			want:  stored(60*sec, 10*sec, hour)},
		{name: "route MinTTL and MaxTTL", status: 200, resp: []string{"Cache-Control: max-age=1"},
			rules: func(r *Rules) { r.MinTTL, r.MaxTTL = dur(10*sec), dur(60*sec) },
			want:  stored(10*sec, 10*sec, hour)},
		{name: "route grace replaces stale-while-revalidate", status: 200, resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=30"},
			rules: func(r *Rules) { r.RouteGrace = dur(5 * sec) },
			want:  stored(60*sec, 5*sec, hour)},
		{name: "route grace 0", status: 200, resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=30"},
			rules: func(r *Rules) { r.RouteGrace = dur(0) },
			want:  stored(60*sec, 0, hour)},
		{name: "route grace despite must-revalidate", status: 200, resp: []string{"Cache-Control: max-age=60, must-revalidate"},
			rules: func(r *Rules) { r.RouteGrace = dur(5 * sec) },
			want:  stored(60*sec, 5*sec, 0)},
		{name: "route keep replaces stale-if-error", status: 200, resp: []string{"Cache-Control: max-age=60, stale-if-error=600"},
			rules: func(r *Rules) { r.RouteKeep = dur(7 * sec) },
			want:  stored(60*sec, 10*sec, 7*sec)},
		{name: "route keep despite s-maxage", status: 200, resp: []string{"Cache-Control: s-maxage=60"},
			rules: func(r *Rules) { r.RouteKeep = dur(7 * sec) },
			want:  stored(60*sec, 0, 7*sec)},

		// Grace and keep.
		{name: "stale-while-revalidate", status: 200, resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=30"},
			want: stored(60*sec, 30*sec, hour)},
		{name: "stale-if-error counts from expiry", status: 200, resp: []string{"Cache-Control: max-age=60, stale-if-error=600"},
			want: stored(60*sec, 10*sec, 590*sec)},
		{name: "stale-if-error shorter than grace", status: 200, resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=30, stale-if-error=20"},
			want: stored(60*sec, 30*sec, 0)},
		{name: "Surrogate-Control windows first", status: 200,
			resp: []string{"Surrogate-Control: max-age=60, stale-while-revalidate=40, stale-if-error=100", "Cache-Control: max-age=10, stale-while-revalidate=30, stale-if-error=600"},
			want: stored(60*sec, 40*sec, 60*sec)},
		{name: "Surrogate-Control revalidation lifetime", status: 200, resp: []string{"Surrogate-Control: max-age=60+30"},
			want: stored(60*sec, 30*sec, hour)},
		{name: "must-revalidate forbids default windows", status: 200, resp: []string{"Cache-Control: max-age=60, must-revalidate"},
			want: stored(60*sec, 0, 0)},
		{name: "proxy-revalidate forbids default windows", status: 200, resp: []string{"Cache-Control: max-age=60, proxy-revalidate"},
			want: stored(60*sec, 0, 0)},
		{name: "s-maxage forbids default windows", status: 200, resp: []string{"Cache-Control: s-maxage=60"},
			want: stored(60*sec, 0, 0)},
		{name: "must-revalidate with explicit stale-while-revalidate", status: 200, resp: []string{"Cache-Control: max-age=60, must-revalidate, stale-while-revalidate=30"},
			want: stored(60*sec, 30*sec, 0)},
		{name: "must-revalidate with explicit stale-if-error", status: 200, resp: []string{"Cache-Control: max-age=60, must-revalidate, stale-if-error=600"},
			want: stored(60*sec, 0, 600*sec)},
		{name: "must-revalidate, max-age=0, no windows", status: 200, resp: []string{"Cache-Control: max-age=0, must-revalidate"},
			want: refused(ReasonNoLifetime, true)},
		{name: "immutable changes nothing here", status: 200, resp: []string{"Cache-Control: max-age=60, immutable"},
			want: stored(60*sec, 10*sec, hour)},

		// no-cache: stored only to be revalidated, which needs a validator.
		{name: "no-cache without validator", status: 200, resp: []string{"Cache-Control: no-cache, max-age=60"},
			want: refused(ReasonNoCache, true)},
		{name: "qualified no-cache without validator", status: 200, resp: []string{`Cache-Control: no-cache="Set-Cookie"`},
			want: refused(ReasonNoCache, true)},
		{name: "no-cache with ETag", status: 200, resp: []string{"Cache-Control: no-cache", `ETag: "x"`},
			want: revalidate(stored(120*sec, 0, 0))},
		{name: "no-cache with ETag and max-age", status: 200, resp: []string{"Cache-Control: no-cache, max-age=300", `ETag: "x"`},
			want: revalidate(stored(300*sec, 0, 0))},
		{name: "no-cache, max-age=0, Last-Modified", status: 200, resp: []string{"Cache-Control: no-cache, max-age=0", "Last-Modified: Mon, 01 Jan 2024 10:00:00 GMT"},
			want: revalidate(stored(120*sec, 0, 0))},
		{name: "no-cache, max-age=0, ETag and Age", status: 200, resp: []string{"Cache-Control: no-cache, max-age=0", `ETag: "x"`, "Age: 30"},
			want: withAge(revalidate(stored(150*sec, 0, 0)), 30*sec)},
		{name: "no-cache with default TTL 0", status: 200, resp: []string{"Cache-Control: no-cache", `ETag: "x"`},
			rules: func(r *Rules) { r.DefaultTTL = 0 },
			want:  refused(ReasonNoLifetime, true)},
		{name: "Surrogate-Control no-cache with ETag", status: 200, resp: []string{"Surrogate-Control: no-cache", "Cache-Control: max-age=60", `ETag: "x"`},
			want: revalidate(stored(60*sec, 0, 0))},
		{name: "Surrogate-Control no-cache without validator", status: 200, resp: []string{"Surrogate-Control: no-cache", "Cache-Control: max-age=60"},
			want: refused(ReasonNoCache, true)},
		{name: "no-cache on a 302 without freshness", status: 302, resp: []string{"Cache-Control: no-cache", `ETag: "x"`},
			want: refused(ReasonStatus, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := baseRules
			if tt.rules != nil {
				tt.rules(&rules)
			}
			got := Decide(request(tt.req...), response(tt.status, tt.resp...), t0, t0.Add(tt.delay), rules)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide(%q, %d %q): (-want +got)\n%s", tt.req, tt.status, tt.resp, diff)
			}
		})
	}
}

// TestDecideClamps checks the arithmetic at the edges: a zero request time
// (Sub saturates), a huge Age, and nonsensical negative route values.
func TestDecideClamps(t *testing.T) {
	f := func(name string, resp Response, requestTime time.Time, rules Rules, want Decision) {
		t.Helper()
		got := Decide(request(), resp, requestTime, t0, rules)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", name, diff)
		}
	}
	f("zero request time", response(200, "Cache-Control: max-age=60"), time.Time{}, baseRules,
		withAge(refused(ReasonNoLifetime, true), maxDelta))
	f("zero request time and Age", response(200, "Cache-Control: max-age=60", "Age: 2147483647"), time.Time{}, baseRules,
		withAge(refused(ReasonNoLifetime, true), maxDelta))
	r := response(200, "Cache-Control: max-age=60")
	r.Age = maxDelta * 4
	f("Age beyond delta-seconds", r, t0, baseRules, withAge(refused(ReasonNoLifetime, true), maxDelta))
	r.Age = -5 * sec
	f("negative Age", r, t0, baseRules, stored(60*sec, 10*sec, hour))
	f("negative route values", response(200), t0,
		Rules{DefaultTTL: -sec, TTL: dur(-sec), RouteGrace: dur(-sec), RouteKeep: dur(hour)},
		stored(0, 0, hour))
	f("negative defaults", response(200, "Cache-Control: max-age=60"), t0, Rules{Grace: -sec, Keep: -sec},
		stored(60*sec, 0, 0))
	f("huge route windows", response(200), t0, Rules{RouteGrace: dur(1 << 62), RouteKeep: dur(1 << 62)},
		stored(0, maxDelta, maxDelta))
}

func TestDecisionLifetime(t *testing.T) {
	tests := []struct {
		d    Decision
		want time.Duration
	}{
		{Decision{}, 0},
		{Decision{TTL: 60 * sec, Grace: 10 * sec, Keep: 100 * sec}, 170 * sec},
		{Decision{TTL: 60 * sec, Grace: 10 * sec, Keep: 100 * sec, InitialAge: 20 * sec}, 150 * sec},
		{Decision{TTL: 60 * sec, InitialAge: 60 * sec}, 0},
		{Decision{TTL: 60 * sec, InitialAge: 600 * sec}, 0},
		{Decision{TTL: maxDelta, Grace: maxDelta, Keep: maxDelta}, 3 * maxDelta},
	}
	for _, tt := range tests {
		if got := tt.d.Lifetime(); got != tt.want {
			t.Errorf("%+v.Lifetime(): got %v, want %v", tt.d, got, tt.want)
		}
	}
}

func TestReasonString(t *testing.T) {
	want := []string{"stored", "request-no-store", "no-store", "private", "no-cache", "authorization",
		"set-cookie", "vary-star", "status", "no-lifetime", "too-large", "pass"}
	for r, w := range want {
		if got := Reason(r).String(); got != w {
			t.Errorf("Reason(%d).String(): got %q, want %q", r, got, w)
		}
	}
	if got := Reason(len(want)).String(); got != "unknown" {
		t.Errorf("Reason(%d).String(): got %q, want %q", len(want), got, "unknown")
	}
}

func TestIsStorableStatus(t *testing.T) {
	storable := map[int]bool{200: true, 203: true, 204: true, 300: true, 301: true, 302: true, 303: true, 307: true, 308: true, 404: true, 410: true}
	for status := 0; status < 1000; status++ {
		if got := IsStorableStatus(status); got != storable[status] {
			t.Errorf("IsStorableStatus(%d): got %v, want %v", status, got, storable[status])
		}
	}
}

func FuzzDecide(f *testing.F) {
	f.Add(200, []byte("max-age=60"), []byte(""), []byte(""), []byte(""), []byte(""), false, false, int64(0))
	f.Add(200, []byte("no-cache, max-age=0"), []byte("max-age=30+60;lakka"), []byte("99999999999"), []byte("Mon, 01 Jan 2024 12:00:00 GMT"), []byte("0"), true, true, int64(5e9))
	f.Add(302, []byte("s-maxage=10, stale-if-error=600"), []byte("no-store;other"), []byte("5"), []byte(""), []byte("Mon, 01 Jan 2024 12:05:00 GMT"), false, true, int64(-1))
	f.Add(500, []byte("public, must-understand, no-store"), []byte(""), []byte("x"), []byte("garbage"), []byte("Sunday, 06-Nov-94 08:49:37 GMT"), true, false, int64(1<<62))
	f.Fuzz(func(t *testing.T, status int, cc, sc, age, date, expires []byte, auth, validator bool, delay int64) {
		resp := response(status, "Cache-Control: "+string(cc), "Age: "+string(age), "Date: "+string(date), "Expires: "+string(expires))
		if len(sc) > 0 {
			resp.HasSurrogateControl = true
			resp.SurrogateControl.ParseTargeted(sc, surrogateName)
		}
		resp.HasValidator = validator
		req := request()
		req.Authorization = auth
		for _, rules := range []Rules{baseRules, {}, {TTL: dur(hour), MinTTL: dur(sec), MaxTTL: dur(24 * hour), RouteGrace: dur(hour), RouteKeep: dur(hour)}} {
			d := Decide(req, resp, t0, t0.Add(time.Duration(delay)), rules)
			if d.InitialAge < 0 || d.InitialAge > maxDelta {
				t.Errorf("InitialAge %v out of [0, 2^31 s]", d.InitialAge)
			}
			if d.Store != (d.Reason == ReasonStored) {
				t.Errorf("Store %v with Reason %v", d.Store, d.Reason)
			}
			if !d.Store {
				if d.TTL != 0 || d.Grace != 0 || d.Keep != 0 || d.Revalidate {
					t.Errorf("refused (%v) with lifetimes %+v", d.Reason, d)
				}
				continue
			}
			if d.TTL < 0 || d.Grace < 0 || d.Keep < 0 || d.Lifetime() <= 0 {
				t.Errorf("stored with lifetimes %+v, Lifetime %v", d, d.Lifetime())
			}
			if auth && !(resp.CacheControl.Public || resp.CacheControl.SMaxAge != Absent || resp.CacheControl.MustRevalidate) {
				t.Errorf("stored a response to an authorised request without permission: %+v", resp.CacheControl)
			}
			if resp.CacheControl.Private || (resp.CacheControl.NoStore && !resp.CacheControl.MustUnderstand) || !IsStorableStatus(status) {
				t.Errorf("stored status %d with %q", status, cc)
			}
		}
	})
}
