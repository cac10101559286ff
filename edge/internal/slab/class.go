package slab

import "math/bits"

// Size classes: minClass, then eight classes per power of two, up to
// maxClassSize, the largest class below the run size. Larger sizes get a
// mapping of their own (large.go). Eight, not four: a slot wastes at most
// an eighth of a doubling (a 4.3 KiB object takes a 4.5 KiB slot, not a 5
// KiB one), and the classes in use each keep at most one run partly
// filled, which eight per doubling leaves small next to the cache.
const (
	minClass     = 64
	maxClassSize = 224 << 10
	// MaxClassSize is the largest slot of a size class: those stay mapped
	// until the pool closes, even when freed; larger ones are mappings of
	// their own, unmapped when freed (unless kept for reuse).
	MaxClassSize = maxClassSize
	perDoubling  = 8
	nClasses     = 95 // classOf(maxClassSize) + 1
	largeClass   = 255
)

// classSizes holds the size of each class, increasing.
var classSizes = func() [nClasses]int {
	var s [nClasses]int
	s[0] = minClass
	for i := 1; i < nClasses; i++ {
		k := 7 + (i-1)/perDoubling               // the class is in (2^(k-1), 2^k]
		j := perDoubling + 1 + (i-1)%perDoubling // in steps of 2^(k-4): 9 to 16 of them
		s[i] = j << (k - 4)
	}
	return s
}()

// classOf returns the class of an n-byte slot, 0 <= n <= maxClassSize.
func classOf(n int) int {
	if n <= minClass {
		return 0
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n <= 2^k
	shift := k - 4             // eight steps of 2^(k-4) above 2^(k-1)
	j := (n + 1<<shift - 1) >> shift
	return (k-7)*perDoubling + j - perDoubling
}
