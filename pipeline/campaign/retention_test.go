package campaign

import (
	"strings"
	"testing"
	"time"
)

// The purge of direct messages past their retention walks the messages'
// own index by creation time, however many messages the table holds: the
// API runs it every minute, and a chat app's table holds a week of them.
func TestPurgeMessagesReadsTheIndex(t *testing.T) {
	_, db, _ := world(t)
	ctx := t.Context()
	// 100k messages of the last week and 50 campaigns, then statistics.
	if _, err := db.Exec(ctx, `
		INSERT INTO campaigns (id, app, channels, kind, users, ttl_seconds, created_at)
		SELECT 'm' || i, 'chat', '{}', 'message', ARRAY[i, i + 1], 3600, now() - (i % 604800) * interval '1 second'
		FROM generate_series(1, 100000) AS i;
		INSERT INTO campaigns (id, app, channels, created_at)
		SELECT 'c' || i, 'chat', '{x}', now() - i * interval '1 day' FROM generate_series(1, 50) AS i;
		ANALYZE campaigns`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `EXPLAIN (COSTS OFF) `+purgeMessagesSQL, time.Now().Add(-MinKeepMessages), 5000)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "campaigns_messages_created") {
		t.Fatalf("want the purge to read the campaigns_messages_created index, got:\n%s", p)
	}
	// All of last week's messages are within a week and a day of now: none goes.
	n, err := PurgeMessages(ctx, db, time.Now().Add(-MinKeepMessages-24*time.Hour), 5000)
	if err != nil || n != 0 {
		t.Fatalf("purged %d (%v), want 0", n, err)
	}
}

// A message's own hash is kept a day past its expiry, with its counters
// (dedupe's), not a campaign's week: the purge of its row may then follow
// as soon (MinKeepMessages), and a new message under the id finds nothing.
func TestMessageStateKeptADay(t *testing.T) {
	rdb, db, keys := world(t)
	m, _, err := CreateMessage(t.Context(), rdb, db, keys, Message{Campaign: Campaign{ID: "chat-1", App: "a", Title: "hi", TTL: time.Hour}, Users: []int64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := rdb.Do(t.Context(), rdb.B().Pttl().Key(keys.Campaign(m.ID)).Build()).AsInt64()
	want := time.Hour + KeepMessageCounters
	if ttl := time.Duration(ms) * time.Millisecond; err != nil || ttl > want || ttl < want-time.Minute {
		t.Errorf("the message's hash expires in %v (%v), want about %v", ttl, err, want)
	}
}
