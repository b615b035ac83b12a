package pipeline

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A runner stopped while its dead letter's XADD is in flight still acks
// the entry. rueidis gives up the reply when the context ends, not the
// XADD, which Redis ran: the letter was written, the ack never went out,
// and the entry stayed pending for the next claim to dead-letter a second
// time. TestPanickingEntryGoesToDLQ met it in CI: it stops its runner once
// it reads the dead letter, sometimes before the claim loop that wrote it
// had its reply, and read the poison entry still pending after Run
// returned. Here Redis's replies are held until the stop has come.
func TestDeadLetterOutlastsAStop(t *testing.T) {
	redis, err := localserver.StartRedis(localserver.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Close() })
	c, err := NewRedis(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := holdRepliesAfter(t, redis.Addr, []byte("XADD"))
	rc, err := NewRedis(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)

	ctx := t.Context()
	keys := NewKeys("dls", 1)
	stream := keys.Stream(StreamDedupe, 0)
	r := NewRunner(rc, keys, Options{Stage: "dedupe", Stream: StreamDedupe, Consumer: "d1"},
		HandlerFunc(func(context.Context, *Batch) error { return nil }), zerolog.Nop(), nil)
	id, err := c.Do(ctx, c.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("n", "poison").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range c.DoMulti(ctx, // the entry pending for d1, as a claim leaves it
		c.B().XgroupCreate().Key(stream).Group("dedupe").Id("0").Build(),
		c.B().Xreadgroup().Group("dedupe", "d1").Count(1).Streams().Key(stream).Id(">").Build()) {
		if err := res.Error(); err != nil {
			t.Fatal(err)
		}
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- r.deadLetter(rctx, stream, []deadEntry{{Entry: Entry{ID: id, Fields: map[string]string{"n": "poison"}},
			Reason: "claimed for delivery 3, past --max-deliveries 2", Deliveries: 3}}, "")
	}()
	pipelinetest.Eventually(t, 10*time.Second, "the dead letter written, its reply held", func() bool {
		n, err := c.Do(ctx, c.B().Xlen().Key(keys.DLQ()).Build()).AsInt64()
		return err == nil && n == 1
	})
	stop()
	// A dead-lettering that gives up at the stop returns at once; one that
	// waits for its reply gets it a second later. (On a machine too slow
	// for that second the old code would pass, never the new one fail.)
	select {
	case err = <-done:
	case <-time.After(time.Second):
		p.release()
		err = <-done
	}
	p.release()
	pending, perr := c.Do(ctx, c.B().Xpending().Key(stream).Group("dedupe").Build()).ToArray()
	if perr != nil {
		t.Fatal(perr)
	}
	if n, _ := pending[0].AsInt64(); err != nil || n != 0 {
		t.Fatalf("deadLetter: %v, %d entries left pending; want the entry acked", err, n)
	}
}

// replyHold is a TCP proxy to a Redis that passes everything on until a
// client sends a command holding word: that connection's commands still
// go to Redis and run, but Redis's replies wait until release.
type replyHold struct {
	addr    string
	gate    chan struct{} // closed on release
	release func()
}

func holdRepliesAfter(t *testing.T, redis string, word []byte) *replyHold {
	t.Helper()
	p := &replyHold{gate: make(chan struct{})}
	var once sync.Once
	p.release = func() { once.Do(func() { close(p.gate) }) }
	p.addr = pipelinetest.ForwardT(t, redis, func(cl, up net.Conn) {
		var held atomic.Bool // set before the command goes on, so its reply finds it set
		commands := make(chan struct{})
		go func() {
			defer close(commands)
			defer up.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := cl.Read(buf)
				if n > 0 {
					if bytes.Contains(buf[:n], word) {
						held.Store(true)
					}
					if _, werr := up.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		defer func() { <-commands }()
		defer cl.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if held.Load() {
					<-p.gate
				}
				if _, werr := cl.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(p.release) // before ForwardT's: held replies go, and the pipes end
	return p
}
