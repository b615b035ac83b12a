package pipeline

import "testing"

// DESIGN's layout ("Keys: partitions and hash tags"): a user's partition is
// (user_id / bucket) mod P, and a partition's keys share its tag {pN}, the
// campaign's keys {c<id>}. These are the names data already in Redis has:
// a process that computed another partition, or another key, for the same
// user or campaign than the processes beside it in a rolling upgrade lost
// its dedupe marks (duplicates) and its entries. The self-consistency tests
// (UserOffset's, the cluster run) pass under any layout.
func TestKeysAreDesigns(t *testing.T) {
	k := NewKeys("pp", 16)
	parts := []struct {
		user int64
		want int
	}{
		{0, 0}, {1023, 0}, {1024, 1}, {7*1024 + 5, 7}, {15*1024 + 1023, 15}, {16 * 1024, 0}, {(16*9 + 7) * 1024, 7},
	}
	for _, tt := range parts {
		if got := k.UserPartition(tt.user); got != tt.want {
			t.Errorf("user %d: partition %d, want (%d / 1024) mod 16 = %d", tt.user, got, tt.user, tt.want)
		}
	}
	keys := []struct{ got, want string }{
		{k.Stream(StreamDedupe, 7), "pp:{p7}:dedupe"},
		{k.Stream(StreamDeliver, 7), "pp:{p7}:deliver"},
		{k.Seen(7, "c42"), "pp:{p7}:seen:c42"},
		{k.SentChunk(7, "c42", 0), "pp:{p7}:sent:c42:0"},
		{k.Stream(StreamIngest, 0), "pp:{p0}:ingest"},
		{k.Stream(StreamCampaigns, 1), "pp:{p1}:campaigns"},
		{k.Stream(StreamRanges, 2), "pp:{p2}:ranges"},
		{k.Stream(StreamResults, 15), "pp:{p15}:results"},
		{k.DLQ(), "pp:{dlq}:dlq"},
		{k.Campaign("42"), "pp:{c42}:campaign"},
		{k.Canceled("42"), "pp:{c42}:canceled"},
		{k.WebhookPause("analytics"), "pp:{meta}:webhook-pause:analytics"},
	}
	for _, tt := range keys {
		if tt.got != tt.want {
			t.Errorf("key %q, want %q", tt.got, tt.want)
		}
	}
}
