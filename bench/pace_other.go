//go:build !linux

package bench

// newPacer returns the Go timer's pacer: elsewhere than Linux there is no
// timerfd, and sleeps may end up to a timer tick late.
func newPacer() (pacer, error) { return timerPacer{}, nil }
