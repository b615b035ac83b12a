package pipeline

import (
	"hash/fnv"
	"testing"
)

// HashPartition is 32-bit FNV-1a (hash/fnv), whose values existing streams
// were partitioned by, and HashPartition2 agrees with it.
func TestHashPartitionIsFNV1a(t *testing.T) {
	k := NewKeys("pp", 16)
	for _, pair := range [][2]string{{"app", "token"}, {"", ""}, {"demo", "a1b2c3"}, {"x/y", "/z"}} {
		key := pair[0] + "/" + pair[1]
		h := fnv.New32a()
		h.Write([]byte(key))
		want := int(h.Sum32() % 16)
		if got := k.HashPartition(key); got != want {
			t.Errorf("HashPartition(%q) = %d, want %d", key, got, want)
		}
		if got := k.HashPartition2(pair[0], pair[1]); got != want {
			t.Errorf("HashPartition2(%q, %q) = %d, want %d", pair[0], pair[1], got, want)
		}
	}
}
