//go:build !unix

package bench

import "time"

// processCPU is not measured here: the report's bench_cpu stays 0.
func processCPU() time.Duration { return 0 }
