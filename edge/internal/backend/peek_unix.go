//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package backend

import (
	"errors"
	"net"
	"syscall"
)

// idleConnDirty reports whether a pooled backend connection has bytes
// waiting that nobody asked for, or was closed or reset by the backend,
// without blocking and without consuming anything (MSG_PEEK|MSG_DONTWAIT).
// fasthttp does not look: it would read such bytes as the answer to the
// next request it sends on the connection.
func idleConnDirty(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	dirty := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		for {
			_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(rerr, syscall.EINTR) {
				continue
			}
			// EAGAIN: nothing waiting, the connection is clean. Anything
			// else is bytes waiting, end of stream or an error.
			dirty = !errors.Is(rerr, syscall.EAGAIN) && !errors.Is(rerr, syscall.EWOULDBLOCK)
			return true // never wait for readability
		}
	})
	return dirty || err != nil
}
