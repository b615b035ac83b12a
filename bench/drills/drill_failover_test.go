package drills

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// (g) A Redis Cluster failover mid-campaign, as the deploy guide's
// "Replicas and failover" has it: three masters with a replica each (AOF
// everysec; cluster-node-timeout 2 s, for a quick drill, where the guide
// says 5 s), every replica in sync before the campaign. Mid-way the master
// of partition 0's slot is SIGKILLed; the drill waits on the cluster, not
// on luck, for its replica to take the slot; the stages carry on by
// themselves, and the operator runs `pushpipe replay --resplit` for the
// campaign that was running, as the guide says. Then: the campaign is done,
// everyone reached and counted once; a device sent twice only if its first
// send lay in the window whose sent marks the failover could lose (from
// just before the kill to the replica's promotion), with the campaign's
// collapse id, and never three times.
//
// The drill runs once, as (g') (TestDrillClusterFailoverLosingWrites):
// the same kill with the replica behind. A run with the replica in sync
// asserted exactly what (g') asserts (the same window, the same counts)
// over a failover that loses nothing, so a bug it could catch (the stages
// not following the promotion, the resplit, a round counted twice) fails
// (g') too; it was a serial minute of the package's run.

// failoverDrill is drill (g). With stallSends > 0 the master is killed
// while its replica is behind: on one machine's loopback a replica never
// falls behind by itself, so the drill freezes it and cuts its link, and
// kills the master once stallSends devices of its partitions were sent
// since, whose sent marks and counts the failover then loses, as an
// asynchronous replica's may.
func failoverDrill(t *testing.T, stallSends int) {
	const (
		id    = "drill-failover"
		batch = time.Second // a deliver batch's sends can start this long before its marks are written
	)
	c := clusterT(t, localserver.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: 2 * time.Second,
		Node: localserver.RedisOptions{AOF: true}})
	r := newClusterRig(t, rigOptions{Users: 20000, TPS: 4000}, c)
	if err := c.WaitReplicasSynced(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.createCampaign(id)
	r.waitThirdSent()

	slot := r.partitionSlot(0)
	dead := pipelinetest.SlotOwner(t, r.rdb, int64(slot))
	var lostParts []int // the partitions the dead master served
	for p := range drillPartition {
		if pipelinetest.SlotOwner(t, r.rdb, int64(r.partitionSlot(p))) == dead {
			lostParts = append(lostParts, p)
		}
	}
	cutAt := time.Now() // from here the dead master's writes may not reach its replica
	stalled, _ := r.summary()
	var replica *localserver.Redis
	if stallSends > 0 {
		var err error
		if replica, err = c.StallReplica(dead); err != nil {
			t.Fatal(err)
		}
		// Kill once the stalled window holds sends (deliver sends in
		// bursts, a fixed pause may hold none): their sent marks are the
		// writes the failover loses.
		stalledRecs := len(r.receipts())
		r.poll(30*time.Second, "sends to the dead master's partitions while its replica is behind", func() bool {
			n := 0
			for _, rc := range r.receipts()[stalledRecs:] {
				if slices.Contains(lostParts, r.keys.UserPartition(r.tokens[rc.Token])) {
					n++
				}
			}
			return n >= stallSends
		})
	}
	before, _ := r.summary()
	if stallSends > 0 {
		// And while sends flow: a send in flight at the kill is marked on
		// the promoted replica, after its round's earlier marks went to the
		// dead master and were lost (a round must not then count its users
		// done). Killed anyway if none comes for a while.
		for range 2000 {
			if s, err := r.summary(); err == nil && s.Accepted > before.Accepted {
				before = s
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := c.Node(dead).Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if replica != nil {
		replica.Thaw()
	}
	owner, err := c.WaitFailover(dead, slot, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	promotedAt := time.Now()

	sum := r.settle()
	p, err := r.progress(id)
	if err != nil {
		t.Fatal(err)
	}
	recs := r.receipts()
	reached := map[string]bool{}
	resumed := time.Time{} // the first send to a partition of the dead master after the kill
	for _, rc := range recs {
		reached[rc.Token] = true
		at := time.UnixMilli(rc.AtMs)
		if at.After(killedAt) && slices.Contains(lostParts, r.keys.UserPartition(r.tokens[rc.Token])) && (resumed.IsZero() || at.Before(resumed)) {
			resumed = at
		}
	}
	report := fmt.Sprintf("master %s of partitions %v killed after %d sends", dead, lostParts, before.Accepted)
	if replica != nil {
		report += fmt.Sprintf(", %d of them after its replica stalled", before.Accepted-stalled.Accepted)
	}
	report += fmt.Sprintf("; %s took slot %d %v after the kill, sends to its partitions resumed %v after it; "+
		"settled: %s, %d sent, %d of %d devices missing, %d duplicates",
		owner, slot, promotedAt.Sub(killedAt).Round(time.Millisecond), resumed.Sub(killedAt).Round(time.Millisecond),
		p.State, p.Sent, len(r.tokens)-len(reached), r.opts.Users, sum.Duplicates)
	if out := r.cli("replay", "--resplit", "--campaign", id); !strings.Contains(out, "appended to campaigns") {
		t.Errorf("resplit output: %s", out)
	}
	sum = r.settle()
	p = r.waitDone(id, 60*time.Second)
	recs = r.receipts()
	report += fmt.Sprintf("; after `replay --resplit`: %s, %d sent, %d duplicates", p.State, p.Sent, sum.Duplicates)
	t.Log(report)
	if p.Sent != int64(r.opts.Users) {
		t.Log(r.countedByPartition(id, recs))
	}

	perToken := r.checkReached(recs, id)
	if p.Sent != int64(r.opts.Users) || p.Failed != 0 {
		t.Errorf("campaign counted %d sent and %d failed, want %d and 0 (one count per device reached)", p.Sent, p.Failed, r.opts.Users)
	}
	from, to := cutAt.Add(-batch), promotedAt.Add(batch)
	first := map[string]int64{}
	for _, rc := range recs {
		at, seen := first[rc.Token]
		if !seen {
			first[rc.Token] = rc.AtMs
			continue
		}
		if t0 := time.UnixMilli(at); t0.Before(from) || t0.After(to) {
			t.Errorf("token %s sent twice, first at %s: outside the window %s..%s whose marks the failover could lose",
				rc.Token, t0.Format("15:04:05.000"), from.Format("15:04:05.000"), to.Format("15:04:05.000"))
		}
		if n := perToken[rc.Token]; n > 2 {
			t.Errorf("token %s sent %d times", rc.Token, n)
		}
	}
}

// countedByPartition says, per partition, how many devices the provider
// accepted and how many the partition's counters hold as sent.
func (r *rig) countedByPartition(id string, recs []receipt) string {
	reached := make([]map[string]bool, drillPartition)
	for p := range reached {
		reached[p] = map[string]bool{}
	}
	for _, rc := range recs {
		reached[r.keys.UserPartition(r.tokens[rc.Token])][rc.Token] = true
	}
	var b strings.Builder
	b.WriteString("per partition, devices reached / counted sent:")
	for p := range drillPartition {
		n, err := r.rdb.Do(context.Background(), r.rdb.B().Hget().Key(r.keys.Stats(p, id)).Field(pipeline.StatSent).Build()).AsInt64()
		fmt.Fprintf(&b, " p%d %d/%d", p, len(reached[p]), n)
		if err != nil {
			fmt.Fprintf(&b, " (%v)", err)
		}
	}
	return b.String()
}
