package edge

import (
	"github.com/lakka-cache/lakka/cachepolicy"
	"github.com/lakka-cache/lakka/edge/internal/backend"
)

// cacheResult is the closed set of X-Cache values (docs/CONTRACTS.md); it
// indexes the pre-resolved metric children, so that the hit path never
// looks up labels.
type cacheResult uint8

const (
	resHit cacheResult = iota
	resMiss
	resStale
	resRevalidated
	resPass
	resError
	resPurge
	// resSynth is an answer a rule made (synthetic, redirect, deny).
	resSynth
	numResults
)

var resultNames = [numResults]string{"HIT", "MISS", "STALE", "REVALIDATED", "PASS", "ERROR", "PURGE", "SYNTH"}

func (r cacheResult) String() string { return resultNames[r] }

// xcacheValues are the X-Cache values as header bytes.
var xcacheValues = func() (v [numResults][]byte) {
	for r := range numResults {
		v[r] = []byte(r.String())
	}
	return v
}()

// detail is the closed set of what a response's Cache-Status says beyond
// its result: why it was stale, passed or refused, whether a miss was
// stored or collapsed. Bad-request details are also the reason label of
// lakka_edge_bad_requests_total.
type detail uint8

const (
	detailNone detail = iota
	// Misses: "; stored", "; collapsed", or detail=not-stored.
	detailStored
	detailCollapsed
	detailNotStored
	// Stale answers.
	detailGrace
	detailOriginError
	detailOriginDown
	detailWaitTimeout
	detailSlowOrigin
	// Passes and direct fetches.
	detailMethod
	detailRoute
	detailCookie
	detailAuthorization
	detailUncacheable
	detailNoTransform
	detailBodyBudget
	// detailRule: a rule passed the request, or answered it (SYNTH).
	detailRule
	// Edge-generated answers.
	detailOnlyIfCached
	detailPurge
	// detailPeer: another edge of the cluster answered the miss
	// (Cache-Status says "detail=peer-NODE").
	detailPeer
	// Bad requests (firstBadRequest..lastBadRequest), counted by reason.
	detailCLAndTE
	detailDuplicateHost
	detailMissingHost
	detailTarget
	detailHost
	detailURITooLong
	detailHeaderTooLarge
	detailBodyTooLarge
	detailReadTimeout
	detailParse
	detailVariant
	// A failed fetch: detailFetch + backend.Failure.
	detailFetch
	// Why a fetched response was not stored: detailPolicy +
	// cachepolicy.Reason.
	detailPolicy = detailFetch + detail(backend.NumFailures)
	numDetails   = detailPolicy + detail(cachepolicy.NumReasons)

	firstBadRequest = detailCLAndTE
	lastBadRequest  = detailVariant
)

var detailNames = func() (n [numDetails]string) {
	copy(n[:], []string{
		"", "stored", "collapsed", "not-stored",
		"grace", "origin-error", "origin-down", "wait-timeout", "slow-origin",
		"method", "route", "cookie", "authorization", "uncacheable", "no-transform", "body-budget", "rule",
		"only-if-cached", "purge", "peer",
		"cl-and-te", "duplicate-host", "missing-host", "target", "host", "uri-too-long",
		"header-too-large", "body-too-large", "timeout", "parse", "variant",
	})
	for f := range backend.NumFailures {
		n[detailFetch+detail(f)] = f.String()
	}
	for r := range cachepolicy.NumReasons {
		n[detailPolicy+detail(r)] = r.String()
	}
	return n
}()

func (d detail) String() string { return detailNames[d] }

// badRequest reports whether d is the reason a request was refused before
// lookup.
func (d detail) badRequest() bool { return d >= firstBadRequest && d <= lastBadRequest }

// fetchDetail is the detail of a failed fetch.
func fetchDetail(f backend.Failure) detail { return detailFetch + detail(f) }

// policyDetail is the detail of a response not stored for reason r.
func policyDetail(r cachepolicy.Reason) detail { return detailPolicy + detail(r) }
