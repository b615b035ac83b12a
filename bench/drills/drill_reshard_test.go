package drills

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// (h) Resharding mid-campaign, as an operator scales a cluster: partition
// 0's slot (its {p0} tag's) moves from its master to another by the
// standard steps (SETSLOT IMPORTING and MIGRATING, MIGRATE of its keys one
// at a time with a pause between, so the stages work on a migrating slot
// for a while: ASK for a key already moved, TRYAGAIN for a script whose keys
// are on both nodes, a blocked XREADGROUP woken by its stream moving away;
// then SETSLOT NODE everywhere: MOVED). Nothing died and no write was
// lost, so nothing may be lost or repeated: the campaign finishes, counted,
// every device once. Nothing in it is timed: it runs alongside the other
// parallel drills (parallelDrill).
func TestDrillClusterReshard(t *testing.T) {
	parallelDrill(t)
	const id = "drill-reshard"
	c := clusterT(t, localserver.ClusterOptions{Masters: 3})
	r := newClusterRig(t, rigOptions{Users: 20000, TPS: 4000}, c)
	r.createCampaign(id)
	r.waitThirdSent()

	slot := r.partitionSlot(0)
	from := pipelinetest.SlotOwner(t, r.rdb, int64(slot))
	to := c.Addrs[0]
	if to == from {
		to = c.Addrs[1]
	}
	before, _ := r.summary()
	started := time.Now()
	keys, err := c.MigrateSlot(slot, from, to, 1, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSlotOwner(slot, to, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	moved := time.Since(started)
	during, _ := r.summary()
	p, sum := r.doneEachOnce(id)
	if p.Sent != int64(r.opts.Users) || p.Failed != 0 {
		t.Errorf("campaign counted %d sent and %d failed, want %d and 0", p.Sent, p.Failed, r.opts.Users)
	}
	// What the stages met on the migrating slot, from their logs.
	met := map[string]int{}
	for _, p := range r.procs {
		b, _ := os.ReadFile(p.log)
		for _, what := range []string{"TRYAGAIN", "ASK", "MOVED", "UNBLOCKED"} {
			met[what] += strings.Count(string(b), what)
		}
	}
	t.Logf("slot %d (%d keys) moved from %s to %s in %v, while %d of %d devices were sent; logged %v; done: %+v; provider %+v",
		slot, keys, from, to, moved.Round(time.Millisecond), during.Accepted-before.Accepted, r.opts.Users, met, p, sum)
}
