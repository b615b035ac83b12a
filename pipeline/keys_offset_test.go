package pipeline

import "testing"

// UserOffset packs a partition's user ids densely: the users of one
// partition get distinct offsets 0, 1, 2... in id order.
func TestUserOffsetIsDensePerPartition(t *testing.T) {
	k := Keys{Prefix: "pp", Partitions: 16}
	next := make([]int64, k.Partitions)
	for u := int64(0); u < 200_000; u++ {
		p := k.UserPartition(u)
		if got := k.UserOffset(u); got != next[p] {
			t.Fatalf("user %d (partition %d): offset %d, want %d", u, p, got, next[p])
		}
		next[p]++
	}
}
