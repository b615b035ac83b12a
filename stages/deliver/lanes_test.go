package deliver

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// With ExpressSenders, the express lane sends over connections of its own
// and the bulk lane never uses them: here each lane's sender points at a
// provider of its own, so every receipt says which lane sent it. (Over one
// set of connections an express request waited behind the thousand bulk
// requests in flight per process.)
func TestExpressLaneHasItsOwnConnections(t *testing.T) {
	f := newFixture(t)
	bulkFake, expressFake := fakeprovider.Start(t, fakeprovider.Options{}), fakeprovider.Start(t, fakeprovider.Options{})
	const users = 100 // which lane sent a receipt is told by any number
	devs := f.seedDevices(users, false)
	f.createCampaign("bulk-1", "{}")
	f.createCampaign("urgent-1", "{}")

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	h, err := New(Config{Redis: f.rdb, DB: f.db, Keys: f.keys, Log: log,
		Senders:        map[push.Platform]push.Sender{push.IOS: apnsSender(t, bulkFake)},
		ExpressSenders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, expressFake)}})
	if err != nil {
		t.Fatal(err)
	}
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Express: true,
		Concurrency: 2, BatchSize: 4, Block: 100 * time.Millisecond, ClaimIdle: 10 * time.Second, ShutdownTimeout: 5 * time.Second}, h, log, nil)
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.ctx))
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	f.emitUsers("bulk-1", userRange(users))
	var msgs []pipeline.Message
	for p, us := range byPartition(f.keys, userRange(users)) {
		msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliverExpress, p),
			Fields: pipeline.DeliverEntry{Campaign: "urgent-1", Users: us}.Fields()})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		t.Fatal(err)
	}
	f.waitDone("bulk-1", users, 30*time.Second)
	f.waitDone("urgent-1", users, 30*time.Second)

	tests := []struct {
		lane, campaign string
		fake           *fakeprovider.Server
	}{
		{"bulk", "bulk-1", bulkFake},
		{"express", "urgent-1", expressFake},
	}
	for _, tt := range tests {
		got := map[string]int{}
		for _, rc := range tt.fake.Receipts() {
			got[rc.CollapseID]++
		}
		if want := map[string]int{collapseID(tt.campaign): len(devs)}; !maps.Equal(got, want) {
			t.Errorf("the %s lane's provider got %v, want %v (its own campaign's devices, nothing else)", tt.lane, got, want)
		}
	}
}

// byPartition groups sorted users by partition, as dedupe forwards them.
func byPartition(keys pipeline.Keys, users []int64) map[int][]int64 {
	out := map[int][]int64{}
	for _, u := range users {
		out[keys.UserPartition(u)] = append(out[keys.UserPartition(u)], u)
	}
	for _, us := range out {
		slices.Sort(us)
	}
	return out
}
