package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// The lease alone: it runs span from when it was last sent for, a renewal
// never shortens it, and a batch built by hand is always held.
func TestLeaseRuns(t *testing.T) {
	const idle = time.Second
	span := idle - leaseMargin(idle)
	now := time.Now()
	tests := []struct {
		name  string
		sent  time.Time   // the read or claim
		renew []time.Time // keeps that found every entry ours, when sent
		want  bool
	}{
		{"just read", now, nil, true},
		{"read a span ago", now.Add(-span), nil, false},
		{"read long ago, renewed since", now.Add(-2 * span), []time.Time{now.Add(-span / 2)}, true},
		{"renewed a span ago", now.Add(-2 * span), []time.Time{now.Add(-span)}, false},
		{"an older keep answered last", now.Add(-2 * span), []time.Time{now.Add(-span / 2), now.Add(-span)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Batch{lease: newLease(tt.sent, idle)}
			for _, s := range tt.renew {
				b.lease.renew(s)
			}
			if got := b.lease.held(now); got != tt.want {
				t.Errorf("held = %v, want %v", got, tt.want)
			}
		})
	}
	if b := (&Batch{}); !b.Held() || !b.WaitHeld(t.Context()) {
		t.Error("a batch built by hand is not held")
	}
}

// The background keep renews a batch's lease only when it reaches Redis and
// finds every entry still ours: not while Redis is cut off (the keep gets
// no answer), nor once another consumer claimed an entry. WaitHeld waits
// for the renewal, or returns false once the batch is lost.
func TestLeaseRenewedOnlyByAKeepThatFindsTheBatchOurs(t *testing.T) {
	redis, err := localserver.StartRedis(localserver.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Close() })
	const idle = 600 * time.Millisecond
	span := idle - leaseMargin(idle)
	tests := []struct {
		name     string
		cut      bool   // Redis cut off from the runner (a proxy that stops forwarding)
		other    string // what another consumer did to the first entry
		wantHeld bool   // past the first span
		wantLost bool
	}{
		{"every entry ours", false, "", true, false},
		{"Redis cut off", true, "", false, false},
		{"one claimed by another consumer", false, "claimed", false, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := pipelinetest.ProxyT(t, redis.Addr, 0)
			c, err := NewRedis(proxy.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			r, b := ownedBatch(t, c, "ls"+string(rune('a'+i)), tt.other, false)
			r.opts.ClaimIdle, r.opts.KeepEvery = idle, 20*time.Millisecond
			read := time.Now()
			b.lease = newLease(read, idle)
			if tt.cut {
				proxy.Hold()
			}
			stop := r.keepClaimed(b)
			defer stop()
			time.Sleep(time.Until(read.Add(span + 100*time.Millisecond)))
			if got := b.Held(); got != tt.wantHeld {
				t.Errorf("held past the read's span = %v, want %v", got, tt.wantHeld)
			}
			if got := b.IsLost(); got != tt.wantLost {
				t.Errorf("lost = %v, want %v", got, tt.wantLost)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if got := b.WaitHeld(ctx); got != tt.wantHeld {
				t.Errorf("WaitHeld = %v, want %v", got, tt.wantHeld)
			}
			if !tt.cut {
				return
			}
			// Back: the next keep finds every entry ours and renews it.
			proxy.Release()
			ctx, cancel = context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if !b.WaitHeld(ctx) || b.IsLost() {
				t.Errorf("not held again once Redis is back (lost %v)", b.IsLost())
			}
		})
	}
}

// The lease starts when the read, or the claim, that delivered the entries
// was sent: a claim comes only ClaimIdle after another consumer's read.
func TestLeaseFromTheReadOrClaim(t *testing.T) {
	c := redisClient(t)
	const idle = 500 * time.Millisecond
	span := idle - leaseMargin(idle)
	for _, claim := range []bool{false, true} {
		t.Run(map[bool]string{false: "read", true: "claimed"}[claim], func(t *testing.T) {
			keys := NewKeys(map[bool]string{false: "lr", true: "lc"}[claim], 1)
			stream := keys.Stream(StreamDedupe, 0)
			do := func(cmd rueidis.Completed) {
				t.Helper()
				if err := c.Do(t.Context(), cmd).Error(); err != nil {
					t.Fatal(err)
				}
			}
			do(c.B().XgroupCreate().Key(stream).Group("dedupe").Id("0").Mkstream().Build())
			do(c.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("n", "1").Build())
			begin := time.Now() // the runner's read is sent after it
			if claim {
				do(c.B().Xreadgroup().Group("dedupe", "gone").Streams().Key(stream).Id(">").Build()) // and never kept
			}
			type seen struct {
				until   time.Time
				at      time.Time
				claimed bool
				held    bool
			}
			got := make(chan seen, 1)
			r := NewRunner(c, keys, Options{Stage: "dedupe", Stream: StreamDedupe, Consumer: "d1", ClaimIdle: idle, Block: 50 * time.Millisecond},
				HandlerFunc(func(_ context.Context, b *Batch) error {
					select {
					case got <- seen{until: *b.lease.until.Load(), at: time.Now(), claimed: b.Claimed(), held: b.Held()}:
					default:
					}
					return nil
				}), zerolog.Nop(), nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { defer close(done); r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			var s seen
			select {
			case s = <-got:
			case <-time.After(30 * time.Second):
				t.Fatal("the entry was never handled")
			}
			low := begin.Add(span)
			if claim {
				// The other consumer's read made the entry idle from
				// after begin: nobody claims it before begin + ClaimIdle
				// (less a little: Redis's clock against ours).
				low = begin.Add(idle + span - 50*time.Millisecond)
			}
			if s.claimed != claim || !s.held || s.until.Before(low) || s.until.After(s.at.Add(span)) {
				t.Errorf("claimed %v, held %v, lease until %v after begin; want claimed %v, held, until between %v and %v",
					s.claimed, s.held, s.until.Sub(begin), claim, low.Sub(begin), s.at.Add(span).Sub(begin))
			}
		})
	}
}
