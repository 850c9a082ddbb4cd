//go:build !linux

package c2s

import (
	"net"
	"syscall"
)

// parkable returns nil off Linux: sessions read as usual (see conn.next).
func parkable(net.Conn) syscall.RawConn { return nil }

func waitReadable(syscall.RawConn) error { return nil }

type poller struct{}

func parkPoller() *poller       { return nil }
func (*poller) park(*conn) bool { return false }
func (*poller) wake(*conn)      {}

func sendRoom(syscall.RawConn) *roomCheck { return nil }

type roomCheck struct{}

func (*roomCheck) wrote(int)     {}
func (*roomCheck) fits(int) bool { return false }
