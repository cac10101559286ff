//go:build !race

package store

// poisonFreed: see poison_race.go.
const poisonFreed = false
