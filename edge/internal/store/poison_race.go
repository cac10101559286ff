//go:build race

package store

// poisonFreed fills a slot with 0xdb before it goes back to the pool, so
// that a read after the last Release shows as garbage in tests (which run
// with the race detector) instead of as a plausible body.
const poisonFreed = true
