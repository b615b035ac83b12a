package pipelinetest

import (
	"strconv"
	"testing"

	"github.com/redis/rueidis"
)

// SlotOwner returns the address of the master serving a slot (CLUSTER
// SLOTS): a test that kills the node holding a key finds it here.
func SlotOwner(t testing.TB, c rueidis.Client, slot int64) string {
	t.Helper()
	ranges, err := c.Do(t.Context(), c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		f, _ := r.ToArray()
		lo, _ := f[0].AsInt64()
		hi, _ := f[1].AsInt64()
		if slot >= lo && slot <= hi {
			node, _ := f[2].ToArray()
			host, _ := node[0].ToString()
			port, _ := node[1].AsInt64()
			return host + ":" + strconv.FormatInt(port, 10)
		}
	}
	t.Fatalf("slot %d has no owner", slot)
	return ""
}
