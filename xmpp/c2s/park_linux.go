package c2s

import (
	"net"
	"syscall"
)

// parkable returns the raw socket of a TCP connection, for waitReadable; nil for anything else.
func parkable(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitReadable blocks until the socket has data (or an error, or end of stream) to read, without reading it.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing yet, so wait for the poller. Anything else (data, end of stream, an error) is for the
		// next Read to see.
		return err != syscall.EAGAIN
	})
}
