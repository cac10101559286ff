//go:build !linux

package slab

import "testing"

// kernelResident reports false: only Linux is asked.
func kernelResident(testing.TB, *Pool) (int64, bool) { return 0, false }

// memResident reports false: only Linux is asked.
func memResident(testing.TB, []byte) (int64, bool) { return 0, false }

// agree does nothing: only Linux is asked.
func agree(testing.TB, *Pool, string) {}
