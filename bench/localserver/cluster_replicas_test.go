package localserver

import (
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// TestClusterReplicas: a cluster with a replica per master starts with
// every replica in sync; a key written through the cluster survives its
// master's SIGKILL on the promoted replica (WaitFailover); and a slot moved
// with MigrateSlot is served, keys and all, by its new master on every node.
func TestClusterReplicas(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := started[*Cluster](t)(StartClusterOf(ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second}))
	t.Logf("cluster of 3 masters and 3 replicas ready in %v", time.Since(start).Round(time.Millisecond))
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(c.Nodes))
	}
	for i, n := range c.Nodes {
		r, err := replication(n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "master", false: "slave"}[i < 3]; r["role"] != want {
			t.Errorf("node %d (%s) is a %s, want the masters first", i, n.Addr, r["role"])
		}
	}
	ctx := t.Context()
	client := redisClient(t, rueidis.ClientOption{InitAddress: c.Addrs})
	const key, moved = "k:{failover}", "k:{migrate}"
	for _, k := range []string{key, moved} {
		if err := client.Do(ctx, client.B().Set().Key(k).Value(k).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReplicasSynced(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	slot, err := client.Do(ctx, client.B().ClusterKeyslot().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	dead, err := SlotOwner(c.Addrs[0], int(slot))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(dead).Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	owner, err := c.WaitFailover(dead, int(slot), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot %d failed over from %s to %s in %v", slot, dead, owner, time.Since(killed).Round(time.Millisecond))
	node := redisClient(t, rueidis.ClientOption{InitAddress: []string{owner}, ForceSingleClient: true})
	if got, err := node.Do(ctx, node.B().Get().Key(key).Build()).ToString(); err != nil || got != key {
		t.Errorf("GET %s on the promoted %s = %q, %v", key, owner, got, err)
	}

	// Asked of a node that runs: the client may still try the dead one.
	reply, err := redisDo(owner, time.Second, "CLUSTER", "KEYSLOT", moved)
	if err != nil {
		t.Fatal(err)
	}
	slot = reply.(int64)
	from, err := SlotOwner(owner, int(slot))
	if err != nil {
		t.Fatal(err)
	}
	to := ""
	for _, m := range c.mastersBut(from) {
		to = m
	}
	if n, err := c.MigrateSlot(int(slot), from, to, 10, 0); err != nil || n != 1 {
		t.Fatalf("migrated %d keys, want 1: %v", n, err)
	}
	if err := c.WaitSlotOwner(int(slot), to, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	node = redisClient(t, rueidis.ClientOption{InitAddress: []string{to}, ForceSingleClient: true})
	if got, err := node.Do(ctx, node.B().Get().Key(moved).Build()).ToString(); err != nil || got != moved {
		t.Errorf("GET %s on %s after the migration = %q, %v", moved, to, got, err)
	}
}
