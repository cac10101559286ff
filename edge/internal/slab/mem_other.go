//go:build !linux

package slab

// Elsewhere than Linux, memory comes from the Go heap: the pool's logic
// and accounting are the same, but nothing goes back to the system before
// Close (and, for large slots, the garbage collector).

// runsPerChunk makes chunks of 4 MiB.
const runsPerChunk = 16

func mapChunk(size int) ([]byte, error) { return make([]byte, size), nil }
func mapLarge(size int) ([]byte, error) { return make([]byte, size), nil }
func unmap([]byte) error                { return nil }
func release([]byte) error              { return nil }
