package deliver

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// The bulk lane's in-flight limit halves while express entries wait longer
// than the target, at most every cutEvery and down to its floor, and
// doubles back every regrowEvery; an express lane waiting on its own
// permits cuts nothing.
func TestYieldHalvesAndRegrows(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type event struct {
		at     time.Duration
		late   time.Duration // an express round started this late
		permit time.Duration // an express send waited this long for its permit
	}
	tests := []struct {
		name   string
		target time.Duration
		events []event
		at     time.Duration
		want   int
	}{
		{"nothing late", 25 * time.Millisecond, nil, 0, 1024},
		{"late within the target", 25 * time.Millisecond, []event{{late: 25 * time.Millisecond}}, 0, 1024},
		{"a burst: a round on time within cutEvery", 25 * time.Millisecond,
			[]event{{late: 10 * time.Millisecond}, {at: cutEvery - time.Millisecond, late: time.Second}}, cutEvery - time.Millisecond, 1024},
		{"a lasting wait: none on time for cutEvery", 25 * time.Millisecond,
			[]event{{late: 10 * time.Millisecond}, {at: cutEvery, late: time.Second}}, cutEvery, 512},
		{"one late round", 25 * time.Millisecond, []event{{late: 30 * time.Millisecond}}, 0, 512},
		{"two within cutEvery cut once", 25 * time.Millisecond,
			[]event{{late: time.Second}, {at: cutEvery - time.Millisecond, late: time.Second}}, cutEvery - time.Millisecond, 512},
		{"two cutEvery apart cut twice", 25 * time.Millisecond,
			[]event{{late: time.Second}, {at: cutEvery, late: time.Second}}, cutEvery, 256},
		{"regrows", 25 * time.Millisecond,
			[]event{{late: time.Second}, {at: cutEvery, late: time.Second}}, cutEvery + regrowEvery, 512},
		{"back to all", 25 * time.Millisecond,
			[]event{{late: time.Second}, {at: cutEvery, late: time.Second}}, cutEvery + 2*regrowEvery, 1024},
		{"a cut after regrowing halves what it regrew to", 25 * time.Millisecond,
			[]event{{late: time.Second}, {at: cutEvery, late: time.Second}, {at: cutEvery + regrowEvery, late: time.Second}},
			cutEvery + regrowEvery, 256},
		{"never below the floor", 25 * time.Millisecond, func() []event {
			var ev []event
			for i := range 20 {
				ev = append(ev, event{at: time.Duration(i) * cutEvery, late: time.Second})
			}
			return ev
		}(), 19 * cutEvery, 1024 / 128},
		{"express held by its own cap", 25 * time.Millisecond,
			[]event{{permit: 30 * time.Millisecond}, {at: time.Millisecond, late: time.Second}}, time.Millisecond, 1024},
		{"a short permit wait is no cap", 25 * time.Millisecond,
			[]event{{permit: 20 * time.Millisecond}, {at: time.Millisecond, late: time.Second}}, time.Millisecond, 512},
		{"cuts again once the cap lets go", 25 * time.Millisecond,
			[]event{{permit: time.Second}, {at: cappedFor, late: time.Second}}, cappedFor, 512},
		{"target 0 never yields", 0, []event{{late: time.Hour}}, 0, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := newYield(tt.target, 1024, zerolog.Nop())
			for _, e := range tt.events {
				if e.permit > 0 {
					y.permitWait(e.permit, at(e.at))
				}
				if e.late > 0 {
					y.late(e.late, at(e.at))
				}
			}
			if got := y.limit(at(tt.at)); got != tt.want {
				t.Errorf("limit = %d, want %d", got, tt.want)
			}
		})
	}
}

// Slots with a limit hand out no more than it allows, and more once it
// grows.
func TestSlotsKeepUnderTheLimit(t *testing.T) {
	var limit atomic.Int64
	limit.Store(2)
	s := newSlots(8)
	s.limit = func(time.Time) int { return int(limit.Load()) }
	ctx := t.Context()
	if n, err := s.take(ctx, 8); n != 2 || err != nil {
		t.Fatalf("take 8 under a limit of 2: got %d, %v", n, err)
	}
	limit.Store(1) // a cut below what is in use: nothing more until sends end
	s.give(1)
	got := make(chan int)
	go func() {
		n, _ := s.take(ctx, 8)
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("took %d with 1 in use under a limit of 1", n)
	case <-time.After(50 * time.Millisecond):
	}
	limit.Store(8)
	s.give(1)
	if n := <-got; n != 8 {
		t.Fatalf("under a limit of 8 with none in use, a waiter took %d", n)
	}
}

// A process sending a campaign (the provider holds its requests) and then
// handed a message that waited in the express
// stream longer than the target: the message goes out at once over the
// express lane, the bulk lane's limit is halved, and the campaign still ends
// with every device sent once.
func TestBulkYieldsToALateMessage(t *testing.T) {
	f := newFixture(t)
	bulkFake, expressFake := fakeprovider.Start(t, fakeprovider.Options{}), fakeprovider.Start(t, fakeprovider.Options{})
	const users, inFlight = 300, 64
	devs := f.seedDevices(users, false)
	f.createCampaign("bulk-1", "{}")
	f.createCampaign("chat-1", "{}")

	release := bulkFake.Hold()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	s := f.startStageWith(Config{
		Senders:        map[push.Platform]push.Sender{push.IOS: apnsSender(t, bulkFake)},
		ExpressSenders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, expressFake)},
		InFlight:       inFlight, ExpressTarget: 25 * time.Millisecond,
	}, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Express: true, Consumer: "d1",
		Concurrency: 2, BatchSize: 4, Block: 100 * time.Millisecond, ClaimIdle: time.Minute, ShutdownTimeout: 5 * time.Second})
	f.emitUsers("bulk-1", userRange(users))
	pipelinetest.Eventually(t, 30*time.Second, "the campaign's sends in flight", func() bool { return bulkFake.Held() > 0 })
	if got := s.h.yield.limit(time.Now()); got != inFlight {
		t.Fatalf("before any message, the bulk limit is %d, want all %d", got, inFlight)
	}

	// Written two seconds ago: it waited in the stream for a busy process.
	const user = 7
	entry := pipeline.DeliverEntry{Campaign: "chat-1", Users: []int64{user}}.Fields()
	id := fmt.Sprintf("%d-0", time.Now().Add(-2*time.Second).UnixMilli())
	cmd := f.rdb.B().Xadd().Key(f.keys.Stream(pipeline.StreamDeliverExpress, f.keys.UserPartition(user))).Id(id).FieldValue()
	for i := 0; i < len(entry); i += 2 {
		cmd = cmd.FieldValue(entry[i], entry[i+1])
	}
	if err := f.rdb.Do(f.ctx, cmd.Build()).Error(); err != nil {
		t.Fatal(err)
	}
	f.waitDone("chat-1", 1, 30*time.Second)
	want := 0
	for _, d := range devs {
		if d.user == user {
			want++
		}
	}
	if n := len(expressFake.Receipts()); n != want {
		t.Errorf("the message reached the express provider %d times, want %d (its user's devices) while the bulk lane is held", n, want)
	}
	s.h.yield.mu.Lock()
	base, cut := s.h.yield.base, s.h.yield.cut
	s.h.yield.mu.Unlock()
	if cut.IsZero() || base != inFlight/2 {
		t.Errorf("after a message that waited 2 s, the bulk limit was cut to %d (cut at %v), want %d", base, cut, inFlight/2)
	}
	// Operators see the wait: deliver's queue, apart from its sends.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.h.metrics.expressWait)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v, %v", mfs, err)
	}
	h := mfs[0].GetMetric()[0].GetHistogram()
	if n, sum := h.GetSampleCount(), h.GetSampleSum(); n != 1 || sum < 1.5 || sum > 10 {
		t.Errorf("express_wait_seconds observed %d rounds, %.3f s in all; want the one message's round, about 2 s", n, sum)
	}

	release()
	released = true
	f.waitDone("bulk-1", users, 60*time.Second)
	got := map[string]int{}
	for _, rc := range bulkFake.Receipts() {
		got[rc.Token]++
	}
	for _, d := range devs {
		if got[d.token] != 1 {
			t.Errorf("device %s of the campaign got %d sends, want 1", d.token, got[d.token])
		}
	}
}

// Yielding is logged when it starts and when it ends, at most once a
// minute: a lane on the edge of keeping up would otherwise log every few
// seconds.
func TestYieldLogsOnceAMinute(t *testing.T) {
	var buf strings.Builder
	y := newYield(25*time.Millisecond, 1024, zerolog.New(&buf))
	t0 := time.Unix(1_700_000_000, 0)
	back := cutEvery + 8*regrowEvery // from one cut, back to all of it
	for _, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second, 61 * time.Second} {
		y.late(time.Second, t0.Add(at))
		y.limit(t0.Add(at + back))
	}
	got := [2]int{strings.Count(buf.String(), "yields"), strings.Count(buf.String(), "back to all")}
	if got != [2]int{2, 2} {
		t.Errorf("logged yielding %d times and its end %d times over four cuts in 61 s, want 2 and 2:\n%s", got[0], got[1], buf.String())
	}
}
