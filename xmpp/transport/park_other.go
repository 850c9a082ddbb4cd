//go:build !linux

package transport

import (
	"net"
	"syscall"
)

// Parkable returns nil off Linux: connections read as usual (see Parker.Next).
func Parkable(net.Conn) syscall.RawConn { return nil }

func waitReadable(syscall.RawConn) error { return nil }

type poller struct{}

func parkPoller() *poller           { return nil }
func (*poller) park(*Parker) bool   { return false }
func (*poller) wake(*Parker)        {}
func (*poller) parked(*Parker) bool { return false }

// SendRoom returns nil off Linux: every write goes to a writer goroutine.
func SendRoom(syscall.RawConn) *RoomCheck { return nil }

// RoomCheck tells a Queue whether its socket's send buffer has room; off Linux it never has.
type RoomCheck struct{}

func (*RoomCheck) wrote(int)     {}
func (*RoomCheck) fits(int) bool { return false }
