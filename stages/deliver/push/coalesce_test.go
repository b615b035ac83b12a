package push

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the connection underneath.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tcpPair is a connected loopback TCP pair.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Writers that take turns under a lock, as TLS records and HTTP/2 frames
// do, get their bytes to the peer whole and in order, in fewer system
// calls than Writes.
func TestCoalescedConnKeepsOrder(t *testing.T) {
	raw, peer := tcpPair(t)
	counted := &countingConn{Conn: raw}
	c := newCoalescedConn(counted)
	const writers, each = 8, 2000
	var (
		mu   sync.Mutex
		seq  uint64
		want int64
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// A record: its sequence number, its length, filler.
				n := 8 + (w*each+i)%300
				rec := make([]byte, 12+n)
				mu.Lock()
				binary.BigEndian.PutUint64(rec, seq)
				binary.BigEndian.PutUint32(rec[8:], uint32(n))
				seq++
				want += int64(len(rec))
				_, err := c.Write(rec)
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	got := make(chan error, 1)
	go func() {
		var hdr [12]byte
		for next := uint64(0); next < writers*each; next++ {
			if _, err := io.ReadFull(peer, hdr[:]); err != nil {
				got <- err
				return
			}
			if s := binary.BigEndian.Uint64(hdr[:]); s != next {
				got <- errors.New("records out of order")
				return
			}
			if _, err := io.CopyN(io.Discard, peer, int64(binary.BigEndian.Uint32(hdr[8:]))); err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	wg.Wait()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the peer did not get every record")
	}
	if n := counted.writes.Load(); n >= writers*each {
		t.Errorf("%d system writes for %d Writes: nothing was coalesced", n, writers*each)
	}
	t.Logf("%d Writes (%d bytes) in %d system writes", writers*each, want, counted.writes.Load())
}

// A peer that stops reading makes Write wait once 256 KiB are queued, as a
// plain connection would when the kernel's buffers are full; every byte
// arrives once it reads again.
func TestCoalescedConnPushesBack(t *testing.T) {
	raw, peer := net.Pipe() // synchronous: a write waits for the reader
	c := newCoalescedConn(raw)
	defer c.Close()
	const writes = 1000
	chunk := bytes.Repeat([]byte{'x'}, 1024)
	var done atomic.Int64
	finished := make(chan error, 1)
	go func() {
		for range writes {
			if _, err := c.Write(chunk); err != nil {
				finished <- err
				return
			}
			done.Add(1)
		}
		finished <- nil
	}()
	// Wait until the Writes stop moving: the queue is full.
	last := int64(-1)
	for n := done.Load(); n != last; n = done.Load() {
		last = n
		time.Sleep(200 * time.Millisecond)
	}
	if last >= writes {
		t.Fatalf("all %d Writes of 1 KiB returned with nobody reading: no push back", writes)
	}
	n, err := io.CopyN(io.Discard, peer, writes*1024)
	if err != nil || n != writes*1024 {
		t.Fatalf("read %d bytes (%v), want %d", n, err, writes*1024)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	t.Logf("Writes waited after %d KiB queued", last)
}

// A write that fails is reported by the Writes after it; a closed
// connection refuses Writes.
func TestCoalescedConnErrors(t *testing.T) {
	raw, peer := tcpPair(t)
	c := newCoalescedConn(raw)
	peer.Close()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write(make([]byte, 64<<10))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("Writes to a closed peer never failed")
	}
	if _, again := c.Write([]byte("x")); again == nil {
		t.Error("a Write after the failure succeeded")
	}

	raw2, _ := tcpPair(t)
	c2 := newCoalescedConn(raw2)
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}
