//go:build !linux

package sock

import (
	"net"
	"syscall"
	"time"
)

// Wrap returns nc as it is off Linux.
func Wrap(nc net.Conn, _ time.Duration) net.Conn { return nc }

// Raw returns the raw socket of a *net.TCPConn, or nil.
func Raw(nc net.Conn) syscall.RawConn {
	if tc, ok := nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}
