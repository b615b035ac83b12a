package pipelinetest

import (
	"net"
	"sync"
	"testing"
)

// ForwardT listens on a free local port until t's cleanup and, for each
// connection it accepts, dials addr and hands both ends to pipe, which
// copies between them as the test wants (late, held, filtered). The
// proxies of the tests share this loop and differ only in their pipe.
// pipe runs in its own goroutine and must return once both ends are
// closed: at cleanup every connection is closed and the pipes waited for,
// so nothing of a test outlives it. It returns the address to dial.
func ForwardT(t testing.TB, addr string, pipe func(client, server net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, server)
			if closed { // accepted as the cleanup ran: nobody else closes these
				client.Close()
				server.Close()
			}
			mu.Unlock()
			wg.Go(func() { pipe(client, server) })
		}
	})
	return ln.Addr().String()
}
