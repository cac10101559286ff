//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package backend

import "net"

// idleConnDirty cannot look at the socket on this platform: a pooled
// connection is assumed clean.
func idleConnDirty(net.Conn) bool { return false }
