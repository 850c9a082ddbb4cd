package transport

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"parley.im/parley/xmpp/stream"
)

// ErrParked is returned by Parker.Next when it has parked the connection: its reader's goroutine returns, and
// Resume runs on a new goroutine when the client sends more.
var ErrParked = errors.New("transport: parked")

// Parking. A goroutine blocked in a TLS read keeps the stack it grew while it negotiated TLS, SASL and handled
// stanzas (4 to 8 KiB or more), and the read buffer it reads into: most of an idle session's memory. So a bound
// session's read waits at most ParkAfter for the client; when that passes with nothing buffered, Next gives the
// scanner's buffer back (stream.Reader.Park), registers the socket with the process's poller (one epoll set and
// one goroutine for all parked connections, park_linux.go) and returns ErrParked; the reader's goroutine then
// returns. When the socket becomes readable the poller starts a new goroutine that runs Resume. A busy
// connection never parks. A TLS read that times out keeps what it has of a record, so nothing is lost, and TLS
// holds no complete record then (it would have returned it). Where the poller is unavailable a goroutine waits
// for the socket without reading (MSG_PEEK); a connection that cannot be waited on that way (WebSocket) reads as
// before.

// ParkAfter is how long a connection's reader waits for its peer before parking.
const ParkAfter = time.Second

// Parker parks the reader of one connection while its peer is idle. Its fields are set (Init) before the first
// Next; only the reader's goroutine calls Next.
type Parker struct {
	// Conn is the socket whose read deadline Next sets (the TCP connection, under any TLS).
	Conn net.Conn
	// Raw is the socket waited on; nil: Next reads as usual and never parks.
	Raw syscall.RawConn
	// Resume goes on reading after the connection was parked; it runs on a goroutine of its own.
	Resume func()

	fd int32 // the socket's descriptor + 1 while parked in the poller (guarded by its lock)
	// readDeadline is the read deadline set for parking (zero: none); only the reader's goroutine uses it.
	readDeadline time.Time
}

// Init sets p up for the socket nc (which may be anything: only TCP parks) and the function that resumes
// reading.
func (p *Parker) Init(nc net.Conn, resume func()) {
	p.Conn, p.Raw, p.Resume = nc, Parkable(nc), resume
}

// Next returns the next element from rd, which reads from p's socket, or ErrParked.
func (p *Parker) Next(rd *stream.Reader) (*stream.Element, error) {
	if p.Raw == nil {
		return rd.Next()
	}
	if rd.Buffered() == 0 {
		// The deadline moves only when it is less than half of ParkAfter away (a timer change per stanza
		// was 2% of the CPU per chat message): a connection parks after between half of ParkAfter and ParkAfter
		// without input.
		if dl := time.Now().Add(ParkAfter); dl.Sub(p.readDeadline) > ParkAfter/2 {
			p.Conn.SetReadDeadline(dl)
			p.readDeadline = dl
		}
	} // else the deadline of an earlier call may pass while the rest of this element arrives: handled below
	el, err := rd.Next()
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return el, err
	}
	p.Conn.SetReadDeadline(time.Time{})
	p.readDeadline = time.Time{}
	if rd.Buffered() > 0 {
		return rd.Next() // part of an element came: the rest is on its way
	}
	rd.Park()
	if pl := parkPoller(); pl == nil || !pl.park(p) {
		go p.unpark()
	}
	return nil, ErrParked
}

// unpark waits for the peer to send more and resumes.
func (p *Parker) unpark() {
	waitReadable(p.Raw) // an error shows at the next read
	p.Resume()
}

// Wake resumes a parked connection whose socket was closed, so that its reader sees the end. Closing a socket
// drops it from the epoll set without an event: whoever closes a connection's socket calls Wake afterwards.
func (p *Parker) Wake() {
	if pl := parkPoller(); pl != nil {
		pl.wake(p)
	}
}

// Parked reports whether the connection waits in the process's poller.
func (p *Parker) Parked() bool {
	pl := parkPoller()
	return pl != nil && pl.parked(p)
}
