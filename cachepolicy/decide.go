package cachepolicy

import (
	"time"
)

// Reason says why a response may or may not be stored.
type Reason uint8

// Reasons returned in Decision.Reason. Their String forms are stable: they
// appear in logs and in the Cache-Status "detail" parameter.
const (
	ReasonStored         Reason = iota // storable
	ReasonRequestNoStore               // the request said no-store
	ReasonNoStore                      // Cache-Control or Surrogate-Control no-store
	ReasonPrivate                      // Cache-Control: private
	ReasonNoCache                      // Cache-Control: no-cache (revalidate on every use)
	ReasonAuthorization                // request had Authorization; response did not allow sharing
	ReasonSetCookie                    // response sets a cookie
	ReasonVaryStar                     // Vary: *
	ReasonStatus                       // status is not cacheable here
	ReasonNoLifetime                   // nothing makes it usable: no freshness, grace or keep
	ReasonTooLarge                     // body larger than the store's object limit
	ReasonPass                         // a route or the request says pass
	// NumReasons is the number of reasons (a closed set: tables indexed
	// by Reason use it).
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonStored:         "stored",
	ReasonRequestNoStore: "request-no-store",
	ReasonNoStore:        "no-store",
	ReasonPrivate:        "private",
	ReasonNoCache:        "no-cache",
	ReasonAuthorization:  "authorization",
	ReasonSetCookie:      "set-cookie",
	ReasonVaryStar:       "vary-star",
	ReasonStatus:         "status",
	ReasonNoLifetime:     "no-lifetime",
	ReasonTooLarge:       "too-large",
	ReasonPass:           "pass",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Response is what Decide needs to know about a response. The edge fills it
// from the origin's header bytes with the parsers of this package.
type Response struct {
	Status int
	// CacheControl holds the Cache-Control directives (NewDirectives when
	// the header is absent).
	CacheControl Directives
	// SurrogateControl holds Surrogate-Control directives, which win over
	// Cache-Control for this cache; HasSurrogateControl says it was present.
	SurrogateControl    Directives
	HasSurrogateControl bool
	// Date and Expires as sent; zero when absent. ExpiresPresent with a zero
	// Expires means an invalid date, which means "already expired".
	Date           time.Time
	Expires        time.Time
	ExpiresPresent bool
	// Age as sent; Absent when missing or invalid.
	Age time.Duration
	// SetCookie says the response sets a cookie.
	SetCookie bool
	// VaryStar says Vary contains "*".
	VaryStar bool
	// HasValidator says the response has an ETag or a Last-Modified, so that
	// it can be revalidated.
	HasValidator bool
}

// Request is what Decide needs to know about the request that caused the
// fetch.
type Request struct {
	// Authorization says the request carried credentials.
	Authorization bool
	// CacheControl holds the request's Cache-Control directives.
	CacheControl Directives
}

// Rules are the configured defaults and the matched route's overrides.
type Rules struct {
	DefaultTTL time.Duration
	Grace      time.Duration
	Keep       time.Duration
	// Route overrides; nil means "not set".
	TTL, MinTTL, MaxTTL *time.Duration
	RouteGrace          *time.Duration
	RouteKeep           *time.Duration
	// StripSetCookie allows storing a response whose Set-Cookie the caller
	// removes.
	StripSetCookie bool
}

// Decision is the outcome of Decide.
type Decision struct {
	// Store says the response may be stored; Reason says why or why not.
	Store  bool
	Reason Reason
	// TTL is the freshness lifetime, counted from the response's age 0.
	TTL time.Duration
	// Grace is how long after expiry the object may be served stale while
	// one background refresh runs; Keep is how long after that it is kept
	// for revalidation and for serving when the origin fails.
	Grace time.Duration
	Keep  time.Duration
	// InitialAge is the corrected initial age (RFC 9111 §4.2.3): the Age the
	// response had when it arrived, plus the time the fetch took.
	InitialAge time.Duration
	// Revalidate says the stored object must be revalidated before every
	// use (no-cache with a validator); TTL, Grace and Keep then only bound
	// how long it is kept for revalidation.
	Revalidate bool
	// HitForMiss says the answer is uncacheable because of the response, so
	// later requests for the object should skip request coalescing for a
	// while. It is false when the request alone made the answer unstorable.
	HitForMiss bool
}

// Lifetime returns how long after storage the object is kept in all:
// freshness, grace and keep, less the age it arrived with (never negative).
func (d Decision) Lifetime() time.Duration {
	return max(d.TTL+d.Grace+d.Keep-d.InitialAge, 0)
}

// Decide applies RFC 9111 (as a shared cache) and the configured rules to a
// response that was fetched between requestTime and responseTime.
//
// Freshness comes from, in order: a route's TTL; Surrogate-Control max-age;
// s-maxage; max-age; Expires minus Date; the default TTL for statuses that
// are cacheable by default. A route's MinTTL and MaxTTL then clamp it.
// Grace and Keep come from a route, else from stale-while-revalidate and
// stale-if-error (Surrogate-Control first), else from the defaults; the
// defaults do not apply to responses that forbid serving stale
// (must-revalidate, proxy-revalidate, s-maxage, no-cache).
func Decide(req Request, resp Response, requestTime, responseTime time.Time, rules Rules) Decision {
	d := Decision{Reason: ReasonStored}
	cc := &resp.CacheControl
	sc := &resp.SurrogateControl

	// Age (RFC 9111 §4.2.3). The apparent age from Date is not used: a
	// skewed origin clock must not shorten every lifetime. Date still
	// anchors Expires, where the skew cancels out.
	// Both terms are clamped first: a zero requestTime makes Sub saturate,
	// and the sum must not overflow into a negative age.
	delay := clampDelta(responseTime.Sub(requestTime))
	d.InitialAge = delay
	if resp.Age != Absent {
		d.InitialAge = min(clampDelta(resp.Age)+delay, maxDelta)
	}

	switch {
	case req.CacheControl.NoStore:
		return d.refuse(ReasonRequestNoStore, false)
	case sc.NoStore && resp.HasSurrogateControl:
		return d.refuse(ReasonNoStore, true)
	case cc.NoStore && !(cc.MustUnderstand && understoodStatus(resp.Status)):
		return d.refuse(ReasonNoStore, true)
	case cc.Private:
		return d.refuse(ReasonPrivate, true)
	case resp.VaryStar:
		return d.refuse(ReasonVaryStar, true)
	case resp.SetCookie && !rules.StripSetCookie:
		return d.refuse(ReasonSetCookie, true)
	case req.Authorization && !(cc.Public || cc.SMaxAge != Absent || cc.MustRevalidate):
		// RFC 9111 §3.5.
		return d.refuse(ReasonAuthorization, false)
	}

	explicit := true
	var ttl time.Duration
	switch {
	case resp.HasSurrogateControl && sc.MaxAge != Absent:
		ttl = sc.MaxAge
	case cc.SMaxAge != Absent:
		ttl = cc.SMaxAge
	case cc.MaxAge != Absent:
		ttl = cc.MaxAge
	case resp.ExpiresPresent:
		if !resp.Expires.IsZero() {
			base := resp.Date
			if base.IsZero() {
				base = responseTime
			}
			ttl = max(resp.Expires.Sub(base), 0)
		}
	default:
		explicit = false
		ttl = rules.DefaultTTL
	}
	if rules.TTL != nil {
		ttl, explicit = *rules.TTL, true
	}
	if !storableStatus(resp.Status, explicit) {
		return d.refuse(ReasonStatus, true)
	}
	if rules.MinTTL != nil {
		ttl = max(ttl, *rules.MinTTL)
	}
	if rules.MaxTTL != nil {
		ttl = min(ttl, *rules.MaxTTL)
	}
	d.TTL = clampDelta(ttl)

	noCache := cc.NoCache || (resp.HasSurrogateControl && sc.NoCache)
	noStale := cc.MustRevalidate || cc.ProxyRevalidate || cc.SMaxAge != Absent || noCache
	d.Grace = clampDelta(window(rules.RouteGrace, sc.StaleWhileRevalidate, resp.HasSurrogateControl, cc.StaleWhileRevalidate, rules.Grace, noStale))
	// stale-if-error counts from expiry, like grace, so keep is what it adds
	// after grace. A configured or route keep is already "after grace".
	switch {
	case rules.RouteKeep != nil:
		d.Keep = *rules.RouteKeep
	case resp.HasSurrogateControl && sc.StaleIfError != Absent:
		d.Keep = max(sc.StaleIfError-d.Grace, 0)
	case cc.StaleIfError != Absent:
		d.Keep = max(cc.StaleIfError-d.Grace, 0)
	case noStale:
		d.Keep = 0
	default:
		d.Keep = rules.Keep
	}
	d.Keep = clampDelta(d.Keep)

	if noCache {
		// Stored only to be revalidated before every use, which needs a
		// validator; it is kept for the lifetime it announced.
		if !resp.HasValidator {
			return d.refuse(ReasonNoCache, true)
		}
		d.Revalidate = true
		if d.TTL+d.Grace+d.Keep <= d.InitialAge {
			d.TTL = rules.DefaultTTL + d.InitialAge
		}
	}
	if d.TTL+d.Grace+d.Keep <= d.InitialAge {
		return d.refuse(ReasonNoLifetime, true)
	}
	d.Store = true
	return d
}

// clampDelta bounds a duration to [0, 2^31 s], the range of delta-seconds
// (RFC 9111 §1.2.2), so that sums of lifetimes cannot overflow.
func clampDelta(v time.Duration) time.Duration {
	return min(max(v, 0), maxDelta)
}

// window picks a stale window: route override, then Surrogate-Control, then
// Cache-Control, then the default unless serving stale is forbidden.
func window(route *time.Duration, sc time.Duration, hasSC bool, cc, def time.Duration, noStale bool) time.Duration {
	switch {
	case route != nil:
		return *route
	case hasSC && sc != Absent:
		return sc
	case cc != Absent:
		return cc
	case noStale:
		return 0
	}
	return def
}

func (d Decision) refuse(r Reason, hitForMiss bool) Decision {
	d.Store = false
	d.Reason = r
	d.HitForMiss = hitForMiss
	d.TTL, d.Grace, d.Keep = 0, 0, 0
	d.Revalidate = false
	return d
}

// storableStatus reports whether a response with this status may be
// stored. Statuses cacheable by default (RFC 9110 §15.1) may use the default
// TTL; a few more only with explicit freshness. Errors are never stored
// (docs/RELIABILITY.md, promise 5), except 404 and 410, which are
// stable answers about a URL and protect the origin from floods of dead
// links. 206 is never stored: the edge fetches whole objects.
func storableStatus(status int, explicit bool) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 410:
		return true
	case 302, 303, 307:
		return explicit
	}
	return false
}

// understoodStatus reports whether must-understand may override no-store
// for this status (RFC 9111 §5.2.2.3): the cache understands the caching
// rules of the statuses it can store.
func understoodStatus(status int) bool {
	return storableStatus(status, true)
}

// IsStorableStatus reports whether a response with this status can ever be
// stored (with explicit freshness).
func IsStorableStatus(status int) bool { return storableStatus(status, true) }
