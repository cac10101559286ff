//go:build linux

package bench

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// timerfd(2) constants (linux/timerfd.h), not in package syscall.
const (
	clockMonotonic = 1
	tfdNonblock    = syscall.O_NONBLOCK
	tfdCloexec     = syscall.O_CLOEXEC
)

// itimerspec is struct itimerspec.
type itimerspec struct {
	interval syscall.Timespec
	value    syscall.Timespec
}

// fdPacer sleeps on a timerfd registered with the Go runtime's network
// poller. The Go timer alone wakes an idle program up to a millisecond
// late (the runtime waits for the network with a timeout in milliseconds),
// and in an open-loop bench that lateness would count as the target's
// latency; a timerfd wakes the poller on time. A sleeping dispatcher keeps
// no thread or processor busy. Not safe for concurrent use.
type fdPacer struct {
	fd  int
	f   *os.File
	buf [8]byte
}

// newPacer returns the precise pacer, or a timer-based one when timerfd
// is not available.
func newPacer() (pacer, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return timerPacer{}, fmt.Errorf("bench: timerfd_create: %w", errno)
	}
	return &fdPacer{fd: int(fd), f: os.NewFile(fd, "timerfd")}, nil
}

func (p *fdPacer) sleep(d time.Duration) {
	spec := itimerspec{value: syscall.NsecToTimespec(int64(max(d, time.Microsecond)))}
	_, _, errno := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(p.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if errno != 0 {
		time.Sleep(d)
		return
	}
	if _, err := p.f.Read(p.buf[:]); err != nil {
		time.Sleep(d)
	}
}

func (p *fdPacer) close() { p.f.Close() }
