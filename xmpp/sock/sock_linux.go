// Package sock wraps TCP connections so that their reads and writes are nonblocking system calls made from the
// runtime poller's callbacks, without the runtime's blocking-syscall bookkeeping. The c2s listener and the load
// generator use it.
package sock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a TCP connection read and written with nonblocking system calls made from the runtime
// poller's callbacks (syscall.RawConn) instead of net.TCPConn's Read and Write. Those go through the runtime's
// entersyscall, which, when every P was idle just before (the usual state between the messages of a chat load,
// where each message arrives on its own), wakes the runtime's monitor thread with a futex so that it could take
// the P back from a blocking call. On a nonblocking socket the call never blocks, so the wake is pure cost: it
// was 13% of Parley's CPU per chat message (docs/BENCHMARKS.md). Waiting (EAGAIN) still goes through the
// poller, with deadlines as for any net.Conn.
//
// A write deadline is armed only when a write has to wait, and cleared when it is done: the writer need not
// set one before every write (a timer change per stanza). Close, read deadlines and addresses are the
// TCPConn's.
type Conn struct {
	*net.TCPConn
	rc       syscall.RawConn
	wtimeout time.Duration // how long a write may wait for the client to read

	rmu    sync.Mutex
	rp     []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wp      []byte
	wn      int
	werr    error
	armed   bool // the write in progress armed the write deadline
	writeFn func(uintptr) bool

	dmu      sync.Mutex
	explicit time.Time // the write deadline set with SetWriteDeadline, restored after an armed one
}

// Wrap wraps a TCP connection; wtimeout bounds how long one write may wait (0: no bound). Anything else
// is returned as it is.
func Wrap(nc net.Conn, wtimeout time.Duration) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	s := &Conn{TCPConn: tc, rc: rc, wtimeout: wtimeout}
	s.readFn, s.writeFn = s.readFD, s.writeFD
	return s
}

// SetDeadline sets the read deadline only: how long a write may wait is the connection's own write timeout,
// armed when a write has to wait. (A deadline for both that passed would fail the write of the stream error
// that reports it.)
func (s *Conn) SetDeadline(t time.Time) error { return s.TCPConn.SetReadDeadline(t) }

// SetWriteDeadline sets a deadline for writes as on any net.Conn; the write timeout still bounds one write
// that has to wait, whichever comes first.
func (s *Conn) SetWriteDeadline(t time.Time) error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.explicit = t
	return s.TCPConn.SetWriteDeadline(t)
}

// arm sets the write deadline for a write that has to wait, unless an earlier one is set.
func (s *Conn) arm() {
	dl := time.Now().Add(s.wtimeout)
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if !s.explicit.IsZero() && s.explicit.Before(dl) {
		return
	}
	s.armed = true
	s.TCPConn.SetWriteDeadline(dl)
}

// disarm puts back the deadline that arm replaced.
func (s *Conn) disarm() {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.armed = false
	s.TCPConn.SetWriteDeadline(s.explicit)
}

func (s *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	n, rerr := s.rn, s.rerr
	s.rp = nil
	s.rmu.Unlock()
	if err != nil {
		return 0, err // closed, or the read deadline passed: an *net.OpError as from TCPConn.Read
	}
	return n, rerr
}

func (s *Conn) readFD(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rp[0])), uintptr(len(s.rp)))
		switch e {
		case 0:
			if r == 0 {
				s.rerr = io.EOF
			} else {
				s.rn = int(r)
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			s.rerr = s.opError("read", e)
			return true
		}
	}
}

func (s *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wp, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	n, werr := s.wn, s.werr
	s.wp = nil
	if s.armed {
		s.disarm() // this write had to wait; its deadline is not the next write's
	}
	if err != nil {
		return n, err
	}
	return n, werr
}

func (s *Conn) writeFD(fd uintptr) bool {
	for s.wn < len(s.wp) {
		// send(2) with MSG_NOSIGNAL: a client that went away is an EPIPE error, not a signal.
		r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.wp[s.wn])),
			uintptr(len(s.wp)-s.wn), syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			s.wn += int(r)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if !s.armed && s.wtimeout > 0 {
				s.arm()
			}
			return false
		default:
			s.werr = s.opError("write", e)
			return true
		}
	}
	return true
}

func (s *Conn) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}

// Raw returns the raw socket of a wrapped connection or of a *net.TCPConn, or nil.
func Raw(nc net.Conn) syscall.RawConn {
	switch c := nc.(type) {
	case *Conn:
		return c.rc
	case *net.TCPConn:
		if rc, err := c.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}
