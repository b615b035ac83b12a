package campaign

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// waitCanceled waits until cs says campaign id is canceled, failing t if
// that takes more than within after returned (when the cancel returned).
func waitCanceled(t *testing.T, cs *Cancels, id string, returned time.Time, within time.Duration) {
	t.Helper()
	for {
		canceled, err := cs.Canceled(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if canceled {
			t.Logf("seen canceled %v after the cancel returned", time.Since(returned))
			return
		}
		if time.Since(returned) > within {
			t.Fatalf("not seen canceled %v after the cancel returned", time.Since(returned))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A campaign the watcher forgot (nobody asked about it for Forget) and
// that was canceled meanwhile is seen canceled when asked about again.
func TestCancelsRereadAForgottenCampaign(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c3", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	cs := NewCancels(rdb, keys)
	cs.Forget = time.Millisecond
	if canceled, err := cs.Canceled(ctx, "c3"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	for cs.Watching() > 0 { // forgotten at the next poll
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "c3"); err != nil {
		t.Fatal(err)
	}
	if canceled, err := cs.Canceled(ctx, "c3"); err != nil || !canceled {
		t.Fatalf("asked after it was forgotten and canceled: %v %v, want canceled", canceled, err)
	}
}

// Under a Redis whose every answer comes later than CancelPoll, the
// refreshes still finish and a cancel is seen within the 1 s bound
// (DESIGN, guarantee 7), not never.
func TestCancelsSeenUnderASlowRedis(t *testing.T) {
	rdb, db, keys, addr := worldAt(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c4", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	slow, err := pipeline.NewRedis(latencyProxy(t, addr, CancelPoll+50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	cs := NewCancels(slow, keys)
	if canceled, err := cs.Canceled(ctx, "c4"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "c4"); err != nil {
		t.Fatal(err)
	}
	waitCanceled(t, cs, "c4", time.Now(), time.Second)
}

// latencyProxy forwards TCP connections to addr, holding what addr answers
// for d before passing it on: a Redis slowed down (by load, a long script,
// a far network), as its client sees it. It returns the proxy's address.
func latencyProxy(t *testing.T, addr string, d time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
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
			mu.Unlock()
			go func() { io.Copy(server, client) }()
			go late(client, server, d)
		}
	}()
	return ln.Addr().String()
}

// late copies src to dst, each read d after it arrived, in order.
func late(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				chunks <- chunk{b[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			src.Close() // ends the reader
		}
	}
}
