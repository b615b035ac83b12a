package pipeline_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestDLQRetryKilledMidwayLeavesItsLettersToTheNext: `pushpipe dlq retry`
// SIGKILLed after it claimed its letters and before it deleted them (here:
// its XADDs never reach Redis) left claims that held every one of them for
// a minute: the next retry re-injected none ("run this again in a
// minute"). A claim names its retry's connection, which closed with the
// process; the next retry takes the letters of a holder Redis no longer
// has, and re-injects every one at once.
func TestDLQRetryKilledMidwayLeavesItsLettersToTheNext(t *testing.T) {
	c, keys := opsRedis(t)
	ctx := t.Context()
	bad := opsDeadLetters(t, c, keys, 60)
	q := pipeline.NewDLQ(c, keys)
	letters, err := q.List(ctx, pipeline.DLQFilter{})
	if err != nil || len(letters) != len(bad) {
		t.Fatalf("%d letters %v, want %d", len(letters), err, len(bad))
	}
	addr, err := c.Do(ctx, c.B().ConfigGet().Parameter("port").Build()).AsStrMap()
	if err != nil {
		t.Fatal(err)
	}
	p := stallAt(t, "127.0.0.1:"+addr["port"], []byte("XADD"))
	cmd := exec.Command(pipelinetest.Binary(t), "dlq", "retry", "--all",
		"--redis-addr", p.addr, "--prefix", keys.Prefix, "--partitions", strconv.Itoa(keys.Partitions))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // ended already, when the test got that far
	claims := make([]string, len(letters))
	for i, d := range letters {
		claims[i] = keys.DLQClaim(d.ID)
	}
	pipelinetest.Eventually(t, 20*time.Second, "the retry claimed every letter, its XADDs held", func() bool {
		n, err := c.Do(ctx, c.B().Exists().Key(claims...).Build()).AsInt64()
		return err == nil && n == int64(len(claims)) && p.stalled.Load()
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the retry ended by itself:\n%s", out.String())
	}
	pipelinetest.Eventually(t, 10*time.Second, "the killed retry's connections closed", func() bool { return p.open.Load() == 0 })
	res, err := q.Retry(ctx, pipeline.DLQFilter{})
	if err != nil || len(res.Done) != len(letters) || len(res.Busy) != 0 || len(res.Failed) != 0 {
		t.Fatalf("the next retry: %d retried, %d left to another retry, failed %v, %v; want all %d retried",
			len(res.Done), len(res.Busy), res.Failed, err, len(letters))
	}
	if n, err := q.Len(ctx); err != nil || n != 0 {
		t.Errorf("%d dead letters left (%v)", n, err)
	}
}

// stalling is a TCP proxy to a Redis that forwards everything until a
// client sends a command holding word: that connection's bytes go no
// further (the process hangs waiting for the answer). A client that
// closes has its Redis connection closed, as Redis sees a killed
// process's.
type stalling struct {
	addr    string
	stalled atomic.Bool  // a connection is held
	open    atomic.Int64 // connections to Redis open
}

func stallAt(t *testing.T, redis string, word []byte) *stalling {
	t.Helper()
	p := &stalling{}
	p.addr = pipelinetest.ForwardT(t, redis, func(cl, up net.Conn) {
		p.open.Add(1)
		replies := make(chan struct{})
		go func() {
			defer close(replies)
			io.Copy(cl, up) //nolint:errcheck // ends when either side closes
			cl.Close()
		}()
		defer func() { <-replies }()
		defer p.open.Add(-1)
		defer up.Close()
		buf := make([]byte, 64<<10)
		held := false
		for {
			n, err := cl.Read(buf)
			if n > 0 && !held {
				if bytes.Contains(buf[:n], word) {
					held = true
					p.stalled.Store(true)
				} else if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					cl.Close()
				}
				return
			}
		}
	})
	return p
}

// TestDLQClaimOfAGoneHolderIsTaken: a retry takes a letter whose claim
// names a connection Redis no longer has, and leaves one whose holder is
// connected, or whose claim names none (a retry before holders were
// named), to its holder; on a cluster too, where the claims and the
// question go to the DLQ's node.
func TestDLQClaimOfAGoneHolderIsTaken(t *testing.T) {
	for _, server := range []string{"standalone", "cluster"} {
		t.Run(server, func(t *testing.T) {
			ctx := t.Context()
			addrs := []string{env.Redis.Addr}
			if server == "cluster" {
				addrs = env.Cluster.Addrs
			}
			c, keys := client(t, addrs...), opsKeys()
			opsDeadLetters(t, c, keys, 9)
			q := pipeline.NewDLQ(c, keys)
			letters, err := q.List(ctx, pipeline.DLQFilter{})
			if err != nil || len(letters) != 3 {
				t.Fatalf("%d letters %v, want 3", len(letters), err)
			}
			// holder is a connection of its own to the DLQ's node, and
			// its CLIENT ID.
			holder := func(c rueidis.Client) (rueidis.DedicatedClient, int64, func()) {
				dc, cancel := c.Dedicate()
				t.Cleanup(cancel)
				res := dc.DoMulti(ctx, dc.B().Xlen().Key(keys.DLQ()).Build(), dc.B().ClientId().Build())
				id, err := res[1].AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				return dc, id, cancel
			}
			asker, _, _ := holder(c)
			_, live, _ := holder(c)
			other := client(t, addrs...)
			_, gone, back := holder(other)
			back() // to the pool, which Close closes
			other.Close()
			pipelinetest.Eventually(t, 10*time.Second, "Redis dropped the closed connection", func() bool {
				s, err := asker.Do(ctx, asker.B().ClientList().Id().ClientId(gone).Build()).ToString()
				return err == nil && !strings.Contains(s, "id="+strconv.FormatInt(gone, 10)+" ")
			})
			for i, v := range []string{"conn:" + strconv.FormatInt(gone, 10), "conn:" + strconv.FormatInt(live, 10), "1"} {
				if err := c.Do(ctx, c.B().Set().Key(keys.DLQClaim(letters[i].ID)).Value(v).Px(time.Minute).Build()).Error(); err != nil {
					t.Fatal(err)
				}
			}
			res, err := q.Retry(ctx, pipeline.DLQFilter{})
			if err != nil || !slices.Equal(res.Done, []string{letters[0].ID}) || !slices.Equal(res.Busy, []string{letters[1].ID, letters[2].ID}) {
				t.Fatalf("retried %v, left to others %v (%v); want %s retried, %s and %s left",
					res.Done, res.Busy, err, letters[0].ID, letters[1].ID, letters[2].ID)
			}
		})
	}
}
