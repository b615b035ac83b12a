package main

import (
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// `send --id X` run again is answered from X's record, as the API answers
// it (campaign.Admit): "already exists" for the same content, whatever the
// checks of a new campaign or message would say now that its one-off
// channel emptied, its app left PUSHPIPE_APP_KEYS or a newer release
// refuses its data. Before, send ran them first and told a retry to change
// what was already accepted. A new id is still checked.
func TestSendRetryIsAnsweredFromTheRecord(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, err := db.Exec(t.Context(), `
		INSERT INTO devices (app, token, user_id, platform, event_at) VALUES ('a', 'tok', 1, 1, now());
		INSERT INTO subscriptions (channel, user_id) VALUES ('once', 1)`); err != nil {
		t.Fatal(err)
	}
	base := []string{"send", "--app", "a", "--title", "t", "--redis-addr", r.Addr, "--database-url", url}
	t.Setenv("PUSHPIPE_APP_KEYS", "a="+strings.Repeat("k", 32))
	for _, args := range [][]string{{"--channel", "once", "--id", "c1"}, {"--user", "1", "--id", "m1"}} {
		if err := sendCommand(t, append(base, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	// An older release stored a data key that this one refuses.
	old := parse(t, append(base, "--channel", "once", "--id", "old", "--data", `{"aps":1}`)...)
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, old.Send.camp); err != nil {
		t.Fatal(err)
	}
	// Sent: the people left the channel and their devices died, and the
	// app left the API's keys.
	if _, err := db.Exec(t.Context(), `DELETE FROM subscriptions; UPDATE devices SET state = 1`); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PUSHPIPE_APP_KEYS", "b="+strings.Repeat("k", 32))
	tests := []struct {
		name string
		give []string
		err  string // its start; "" for none
		log  string // in what it logged
	}{
		{"campaign retried", []string{"--channel", "once", "--id", "c1"}, "", "campaign already exists"},
		{"message retried", []string{"--user", "1", "--id", "m1"}, "", "message already exists"},
		{"campaign of data refused since, retried", []string{"--channel", "once", "--id", "old", "--data", `{"aps":1}`}, "", "campaign already exists"},
		{"campaign retried with other content", []string{"--channel", "once", "--id", "c1", "--body", "b"},
			`send: campaign id "c1" is already used for different content`, ""},
		{"a new campaign", []string{"--channel", "once", "--id", "c2"}, `send: --app "a" is not known to this API`, ""},
		{"a new message", []string{"--user", "1", "--id", "m2"}, `send: --app "a" is not known to this API`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			logged := stderrOf(t, func() { err = sendCommand(t, append(base, tt.give...)...) })
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if !strings.Contains(logged, tt.log) {
				t.Fatalf("logged %q, want %q", logged, tt.log)
			}
		})
	}
	// Only the new ids were refused: nothing was stored for them.
	for _, id := range []string{"c2", "m2"} {
		if _, err := campaign.Load(t.Context(), db, id); err == nil {
			t.Errorf("%s was stored", id)
		}
	}
}
