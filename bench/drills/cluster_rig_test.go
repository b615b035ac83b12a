package drills

import (
	"context"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/bench/localserver"
	"github.com/pushpipe/pushpipe/pipeline"
)

// newClusterRig is newRig on a Redis Cluster the drill started (and breaks):
// every process gets every node's address, as PUSHPIPE_REDIS_ADDR lists a
// cluster's, and follows the cluster's slot map from there. The cluster
// nodes have no password nor TLS (localserver's clusters have neither), so
// opts.Security is ignored.
func newClusterRig(t *testing.T, opts rigOptions, c *localserver.Cluster) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), opts: opts, ops: map[string]string{}, token: "drill-admin-token-0123456789abcdef"}
	r.pg = env.Postgres
	r.dbURL, r.migrated = migratedDatabase(t), true
	r.keys = pipeline.NewKeys("pp", drillPartition)
	addr := strings.Join(c.Addrs, ",")
	var err error
	if r.rdb, err = pipeline.NewRedisConfig(pipeline.RedisConfig{Addr: addr}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.rdb.Close)
	r.launch("PUSHPIPE_REDIS_ADDR=" + addr)
	return r
}

// clusterT starts a cluster for one drill and closes it at its end.
func clusterT(t *testing.T, o localserver.ClusterOptions) *localserver.Cluster {
	t.Helper()
	c, err := localserver.StartClusterOf(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// partitionSlot is the cluster slot of partition p's keys (its {pN} tag).
func (r *rig) partitionSlot(p int) int {
	r.t.Helper()
	slot, err := r.rdb.Do(context.Background(), r.rdb.B().ClusterKeyslot().Key(r.keys.Stream(pipeline.StreamDeliver, p)).Build()).AsInt64()
	if err != nil {
		r.t.Fatal(err)
	}
	return int(slot)
}
