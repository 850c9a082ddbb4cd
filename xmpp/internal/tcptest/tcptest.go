// Package tcptest gives tests a connected pair of loopback TCP sockets.
package tcptest

import (
	"net"
	"testing"
)

// Pair returns both ends of a loopback TCP connection, closed when the test ends.
func Pair(tb testing.TB) (server, client *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	sc := <-done
	if sc == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { sc.Close(); cc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}
