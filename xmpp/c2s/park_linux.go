package c2s

import (
	"net"
	"syscall"
	"unsafe"
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

// sendRoom returns a check of whether the socket's send buffer has room for n more bytes, so that a write of
// them returns at once, and the count of bytes written to the socket that it needs (nil if the socket cannot
// tell). Half the buffer is the bound: the kernel counts its own overhead against it. The kernel's queue only
// shrinks between writes, so after one look (an ioctl) the room left is known up to what has been written
// since: the check asks the kernel again only when that bound runs out.
func sendRoom(rc syscall.RawConn) *roomCheck {
	if rc == nil {
		return nil
	}
	var sndbuf int
	rc.Control(func(fd uintptr) {
		sndbuf, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	if sndbuf <= 0 {
		return nil
	}
	return &roomCheck{rc: rc, limit: sndbuf / 2}
}

// roomCheck is used by one writer at a time (the queue's writing flag).
type roomCheck struct {
	rc    syscall.RawConn
	limit int
	left  int // room known to be left, counting what was written since the kernel was last asked
}

// wrote counts n bytes written to the socket.
func (r *roomCheck) wrote(n int) { r.left -= n + n/8 + 64 }

func (r *roomCheck) fits(n int) bool {
	need := n + n/8 + 64 // TLS adds a record header and tag per 16 KiB
	if need <= r.left {
		return true
	}
	ok := false
	r.rc.Control(func(fd uintptr) {
		var queued int32
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&queued)))
		if e == 0 {
			r.left = r.limit - int(queued)
			ok = need <= r.left
		}
	})
	return ok
}
