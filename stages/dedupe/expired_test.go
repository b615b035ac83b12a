package dedupe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestEntriesAfterMarksExpiredAreDeadLettered: a campaign's marks go an
// hour after it expired and its last entry; entries of it read after that
// (a replay within the streams' retention, a dead letter retried) cannot
// be told from repeats, so they go to the DLQ with the reason instead of
// reaching everyone again. Before the marks are gone, and in a partition
// that never forwarded anyone, an expired campaign is deduped as any other.
// The old code forwarded every user a second time.
func TestEntriesAfterMarksExpiredAreDeadLettered(t *testing.T) {
	servers(t, func(t *testing.T, c rueidis.Client) {
		ctx := context.Background()
		keys := newKeys()
		id := "late"
		registerAt(t, c, keys, id, time.Now().Add(-2*time.Hour))
		runStage(t, c, keys, "d1")
		ids := randomIDs(3000, 1, 40000)
		for range 2 { // the second pass is all repeats, marks still there
			emitEntries(t, c, keys, id, ids, nil, 500)
			drained(t, c, keys)
		}
		// The marks expire as Redis expires them, an hour after the last
		// write; the counters stay (a week).
		for p := range keys.Partitions {
			if err := c.Do(ctx, c.B().Del().Key(keys.Seen(p, id), keys.Muted(p, id)).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		emitEntries(t, c, keys, id, ids, nil, 500)
		drained(t, c, keys)
		got, _ := delivered(t, c, keys, id)
		for _, u := range ids {
			if got[u] != 1 {
				t.Fatalf("user %d forwarded %d times", u, got[u])
			}
		}
		xs, err := c.Do(ctx, c.B().Xrange().Key(keys.DLQ()).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		if len(xs) == 0 {
			t.Fatal("no dead letters for the entries read after the marks expired")
		}
		for _, x := range xs {
			if r := x.FieldValues[pipeline.DLQError]; !strings.Contains(r, "marks") {
				t.Errorf("dead letter reason %q", r)
			}
		}
	})
}
