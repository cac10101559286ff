package slab

import "math/bits"

// Size classes: minClass, then four classes per power of two, up to
// maxClassSize, the largest class below the run size. Larger sizes get a
// mapping of their own (large.go).
const (
	minClass     = 64
	maxClassSize = 224 << 10
	nClasses     = 48 // classOf(maxClassSize) + 1
	largeClass   = 255
)

// classSizes holds the size of each class, increasing.
var classSizes = func() [nClasses]int {
	var s [nClasses]int
	s[0] = minClass
	for i := 1; i < nClasses; i++ {
		k := 7 + (i-1)/4 // the class is in (2^(k-1), 2^k]
		j := 5 + (i-1)%4 // in steps of 2^(k-3): 5, 6, 7 or 8 of them
		s[i] = j << (k - 3)
	}
	return s
}()

// classOf returns the class of an n-byte slot, 0 <= n <= maxClassSize.
func classOf(n int) int {
	if n <= minClass {
		return 0
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n <= 2^k
	shift := k - 3             // four steps of 2^(k-3) above 2^(k-1)
	j := (n + 1<<shift - 1) >> shift
	return (k-7)*4 + j - 4
}
