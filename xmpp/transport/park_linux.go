package transport

import (
	"log/slog"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"parley.im/parley/xmpp/sock"
)

// poller waits for every parked connection of the process at once: one epoll instance and one goroutine, so a
// parked session holds no goroutine of its own (a goroutine blocked in a read keeps a stack of 4 to 8 KiB, which
// was a third of an idle session's memory). Each parked socket is registered one-shot; when it becomes readable
// (data, end of stream, an error) the poller takes it off and starts a goroutine that resumes the connection's
// reader (Parker.Resume: c2s runs the stanza loop again).
//
// Whoever takes a connection out of waiting owns its resumption: the poller when the socket fires, wake when the
// server closes the socket itself (closing a socket drops it from the epoll set without an event, so every place
// that closes a parked connection's socket calls wake afterwards: Queue.closeConn, through Queue.OnClose, and
// c2s's resumption of a session on a new connection, through Parker.Wake).
type poller struct {
	epfd    int
	mu      sync.Mutex
	waiting map[int32]*Parker // by socket descriptor
	dead    bool              // epoll_wait failed: nothing parks any more (callers fall back to a goroutine)
}

var (
	pollerOnce sync.Once
	thePoller  *poller
)

// parkPoller returns the process's poller, or nil if epoll is unavailable (connections then park a goroutine).
func parkPoller() *poller {
	pollerOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			slog.Warn("transport: no epoll for parked sessions; each idle session keeps a goroutine", "err", err)
			return
		}
		thePoller = &poller{epfd: fd, waiting: make(map[int32]*Parker)}
		go thePoller.run()
	})
	return thePoller
}

// take removes c from waiting if it is there under fd, and reports whether it was: the caller then owns its
// resumption. p.mu is held.
func (p *poller) take(fd int32, c *Parker) bool {
	if fd < 0 || p.waiting[fd] != c {
		return false
	}
	delete(p.waiting, fd)
	c.fd = 0
	return true
}

// park registers c's socket. It reports false if it could not (the socket is closed, epoll refused it, or the
// poller has failed): the caller then waits some other way.
func (p *poller) park(c *Parker) bool {
	parked := false
	err := c.Raw.Control(func(f uintptr) {
		fd := int32(f)
		p.mu.Lock()
		if p.dead {
			p.mu.Unlock()
			return
		}
		if stale := p.waiting[fd]; stale != nil && stale != c {
			// A connection whose socket was closed without wake: resume it so that it ends (its read fails).
			p.take(fd, stale)
			go stale.Resume()
		}
		p.waiting[fd] = c
		c.fd = fd + 1
		p.mu.Unlock()
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: fd}
		if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(f), &ev); err != nil {
			p.mu.Lock()
			mine := p.take(fd, c)
			p.mu.Unlock()
			if mine {
				return // not parked: the caller goes on
			}
			// else wake or the failing poller took it meanwhile and resumes it
		}
		parked = true
	})
	return err == nil && parked
}

// wake resumes c if it is parked; called after its socket was closed.
func (p *poller) wake(c *Parker) {
	p.mu.Lock()
	mine := p.take(c.fd-1, c)
	p.mu.Unlock()
	if mine {
		go c.Resume()
	}
}

// parked reports whether c waits in the poller.
func (p *poller) parked(c *Parker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.fd != 0 && p.waiting[c.fd-1] == c
}

func (p *poller) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			p.fail(err)
			return
		}
		for i := range n {
			fd := events[i].Fd
			p.mu.Lock()
			c := p.waiting[fd]
			mine := c != nil && p.take(fd, c)
			p.mu.Unlock()
			if !mine {
				continue // taken by wake
			}
			// Off the set before the loop may park it again. An event from before the descriptor was reused
			// resumes the new connection needlessly: it reads nothing and parks again.
			c.Raw.Control(func(f uintptr) { syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(f), nil) })
			go c.Resume()
		}
	}
}

// fail stops parking in the poller after epoll_wait failed: every parked connection resumes its loop, and
// parks from then on with a goroutine of its own (Parker.Next's fallback).
func (p *poller) fail(err error) {
	slog.Error("transport: epoll wait failed; idle sessions keep a goroutine from now on", "err", err)
	p.mu.Lock()
	p.dead = true
	resume := make([]*Parker, 0, len(p.waiting))
	for fd, c := range p.waiting {
		p.take(fd, c)
		resume = append(resume, c)
	}
	p.mu.Unlock()
	for _, c := range resume {
		go c.Resume()
	}
}

// Parkable returns the raw socket of a TCP connection (or of a sock.Conn), for parking and SendRoom; nil for
// anything else.
func Parkable(nc net.Conn) syscall.RawConn { return sock.Raw(nc) }

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

// SendRoom returns a check of whether the socket's send buffer has room for n more bytes, so that a write of
// them returns at once, and the count of bytes written to the socket that it needs (nil if the socket cannot
// tell). Half the buffer is the bound: the kernel counts its own overhead against it. The kernel's queue only
// shrinks between writes, so after one look (an ioctl) the room left is known up to what has been written
// since: the check asks the kernel again only when that bound runs out.
func SendRoom(rc syscall.RawConn) *RoomCheck {
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
	return &RoomCheck{rc: rc, limit: sndbuf / 2}
}

// RoomCheck tells a Queue whether its socket's send buffer has room (SendRoom). It is used by one writer at a
// time (the queue's writing flag).
type RoomCheck struct {
	rc    syscall.RawConn
	limit int
	left  int // room known to be left, counting what was written since the kernel was last asked
}

// wrote counts n bytes written to the socket.
func (r *RoomCheck) wrote(n int) { r.left -= n + n/8 + 64 }

func (r *RoomCheck) fits(n int) bool {
	need := n + n/8 + 64 // TLS adds a record header and tag per 16 KiB
	if need <= r.left {
		return true
	}
	ok := false
	r.rc.Control(func(fd uintptr) {
		var queued int32
		_, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&queued)))
		if e == 0 {
			r.left = r.limit - int(queued)
			ok = need <= r.left
		}
	})
	return ok
}
