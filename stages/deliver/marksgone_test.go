package deliver

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestFailoverDuringHeldSendsRedoesTheRound: a round writes nothing while
// its partition's master fails over, yet the failover loses its earlier
// marks. Its sends all start; half are answered while the master's replica
// is behind (their marks and counts reach the master alone); the master is
// killed and its replica promoted while the other half are still at the
// provider; they are answered after, and marked on the new master. The
// round's own writes never found Redis unreachable, only its batch's keep
// did. Before the keep was asked (pipeline.Batch.RedisAwaySince) the round
// counted every user done on the new master, the campaign ended done with
// 3 of its 6 devices counted sent, and nothing sent to the 3 again. Now the
// round is redone: the 3 whose marks were lost get a second request, and
// every device is counted sent once.
func TestFailoverDuringHeldSendsRedoesTheRound(t *testing.T) {
	t.Parallel()
	c, err := localserver.StartClusterOf(localserver.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	f := newFixtureOn(t, strings.Join(c.Addrs, ","))

	const id, users = "cfailover", 6 // users 1..6: one device each, all in partition 0
	devices := f.seedDevices(users+2, false)[:users]
	early := map[string]bool{} // answered before the kill, their marks lost
	for _, d := range devices[:users/2] {
		early[d.token] = true
	}
	earlyGate, lateGate := make(chan struct{}), make(chan struct{})
	var (
		mu       sync.Mutex
		requests = map[string]int{}
	)
	fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(token string) (int, string) {
		mu.Lock()
		requests[token]++
		mu.Unlock()
		switch {
		case early[token]:
			<-earlyGate
		case slices.ContainsFunc(devices, func(d testDevice) bool { return d.token == token }):
			<-lateGate
		}
		return 0, ""
	}})
	openEarly, openLate := sync.OnceFunc(func() { close(earlyGate) }), sync.OnceFunc(func() { close(lateGate) })
	asked := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, d := range devices {
			n += min(requests[d.token], 1)
		}
		return n
	}
	partStats := func() map[string]string {
		m, err := f.rdb.Do(f.ctx, f.rdb.B().Hgetall().Key(f.keys.Stats(0, id)).Build()).AsStrMap()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// The sender's first request goes alone (push.Warmup): made to user 8
	// (in partition 0 too), so that the round's all go at once.
	s := f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSenderConns(t, fake, 1)}, InFlight: 8}, "d1", 30*time.Second)
	// Cleanups run last first: a test that fails with sends held lets them
	// go before the stage stops (it waits for them) and the fake closes.
	t.Cleanup(func() { openEarly(); openLate() })
	f.createCampaign("cwarm", `{}`)
	f.emitUsers("cwarm", []int64{users + 2})
	f.waitDone("cwarm", 1, 20*time.Second)
	f.createCampaign(id, `{}`)
	f.emitUsers(id, userRange(users))
	pipelinetest.Eventually(t, 20*time.Second, "every device's send at the provider", func() bool { return asked() == users })
	// The read of the batch is on the replica: the promoted replica holds
	// it pending for d1, as the old master did.
	if err := c.WaitReplicasSynced(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	slot, err := f.rdb.Do(f.ctx, f.rdb.B().ClusterKeyslot().Key(f.keys.Stream(pipeline.StreamDeliver, 0)).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	master := pipelinetest.SlotOwner(t, f.rdb, slot)
	replica, err := c.StallReplica(master)
	if err != nil {
		t.Fatal(err)
	}
	openEarly()
	// Marked and counted done (doneearly.go) on the master alone: nothing
	// of the round is left to write until the late sends are answered.
	pipelinetest.Eventually(t, 20*time.Second, "the early devices marked and their users counted done", func() bool {
		m := partStats()
		return m[pipeline.StatSent] == "3" && m[pipeline.StatUsersDone] == "3"
	})
	if err := c.Node(master).Kill(); err != nil {
		t.Fatal(err)
	}
	replica.Thaw()
	owner, err := c.WaitFailover(master, int(slot), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Once the stage's client reaches the new master, the late marks are
	// written without an error: only the keep saw the outage.
	pipelinetest.Eventually(t, 20*time.Second, "the client at the promoted "+owner, func() bool {
		return f.rdb.Do(f.ctx, f.rdb.B().Hgetall().Key(f.keys.Stats(0, id)).Build()).Error() == nil
	})
	if m := partStats(); m[pipeline.StatSent] != "" {
		t.Fatalf("the promoted replica counts %s sent: the failover lost no marks, nothing is tested", m[pipeline.StatSent])
	}
	openLate()

	got := f.waitDone(id, users, 30*time.Second)
	t.Logf("writes that found Redis unreachable: %d; stats: %v", s.h.outages.mark(0), got)
	if got[pipeline.StatSent] != users {
		t.Errorf("campaign done with %d devices counted sent, want %d: users counted done whose marks the failover lost", got[pipeline.StatSent], users)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range devices {
		want := 1
		if early[d.token] {
			want = 2 // marked on the master the failover lost
		}
		if n := requests[d.token]; n != want {
			t.Errorf("device %s (user %d) got %d requests, want %d", d.token, d.user, n, want)
		}
	}
}
