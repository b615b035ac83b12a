package campaign

import "testing"

// TestReasonsSumPartitions: a campaign's failure reasons are summed over
// its partitions' hashes; none is an empty map.
func TestReasonsSumPartitions(t *testing.T) {
	rdb, _, keys := world(t)
	ctx := t.Context()
	if got, err := Reasons(ctx, rdb, keys, "c1"); err != nil || len(got) != 0 {
		t.Fatalf("no failures: %v, %v", got, err)
	}
	do(t, rdb,
		rdb.B().Hincrby().Key(keys.Reasons(0, "c1")).Field("Unregistered").Increment(3).Build(),
		rdb.B().Hincrby().Key(keys.Reasons(2, "c1")).Field("Unregistered").Increment(2).Build(),
		rdb.B().Hincrby().Key(keys.Reasons(3, "c1")).Field("BadDeviceToken").Increment(1).Build(),
		rdb.B().Hincrby().Key(keys.Reasons(3, "c2")).Field("other campaign").Increment(1).Build(),
	)
	got, err := Reasons(ctx, rdb, keys, "c1")
	if err != nil || len(got) != 2 || got["Unregistered"] != 5 || got["BadDeviceToken"] != 1 {
		t.Errorf("reasons %v, %v", got, err)
	}
}
