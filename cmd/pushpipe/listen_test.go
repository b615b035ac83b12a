package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// get sends one keep-alive request on c and reports whether an answer came
// within wait.
func get(t *testing.T, c net.Conn, br *bufio.Reader, wait time.Duration) bool {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Clients get at most --max-conns connections; one more waits, unserved,
// until an idle keep-alive is closed (--idle-timeout); meanwhile the
// operator's address serves at once.
func TestAPIConnectionCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	op, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const idle = time.Second
	go func() { done <- serveCapped(ctx, ln, op, 2, idle, ok, zerolog.Nop()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	dial := func(addr string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	for range 2 { // two clients take both places and keep them, idle
		c, br := dial(ln.Addr().String())
		if !get(t, c, br, 5*time.Second) {
			t.Fatal("a client within the cap was not served")
		}
	}
	third, thirdBR := dial(ln.Addr().String()) // connects: the kernel queues it
	start := time.Now()
	if get(t, third, thirdBR, idle/2) {
		t.Fatal("a third client was served past a cap of 2")
	}
	c, br := dial(op.Addr().String())
	if !get(t, c, br, 5*time.Second) {
		t.Fatal("the operator's address did not serve while clients held every place")
	}
	// Once the idle keep-alives are closed, the third is served.
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(thirdBR, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting client: %v %v", resp, err)
	}
	if waited := time.Since(start); waited < idle/2 || waited > 5*idle {
		t.Fatalf("the waiting client was served after %v, want about the idle timeout (%v)", waited, idle)
	}
}
