//go:build !linux

package main

import (
	"syscall"
	"time"
)

// userTimeout is Linux's alone (TCP_USER_TIMEOUT); elsewhere the
// keepalives find a vanished server, once what was sent is acknowledged.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
