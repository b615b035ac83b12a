package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/users"
)

// `pushpipe users show` prints what GET /v1/users/{id} gives (--json: the
// same document), and `pushpipe users delete` erases the user and says
// what it removed and what it queued for ingest.
func TestUsersShowAndDelete(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	_, err := db.Exec(t.Context(), `
		INSERT INTO devices (app, token, user_id, platform, locale, state, event_at) VALUES
			('news', 'tok-a', 42, 2, 'ko', 0, now()), ('chat', 'tok-b', 42, 1, '', 2, now())`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(t.Context(), `INSERT INTO subscriptions (channel, user_id) VALUES ('sport', 42), ('news', 42)`); err != nil {
		t.Fatal(err)
	}
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	run := func(args ...string) (string, error) {
		cli := parse(t, append(append([]string{"users"}, args...), "--redis-addr", r.Addr, "--database-url", url)...)
		var out bytes.Buffer
		var err error
		switch args[0] {
		case "show":
			err = cli.Users.Show.run(&cli.Globals, &out)
		case "delete":
			err = cli.Users.Delete.run(&cli.Globals, &out)
		}
		return out.String(), err
	}
	tests := []struct {
		name string
		args []string
		want []string // regexps
	}{
		{"show", []string{"show", "42"}, []string{`(?m)^user 42$`, `(?m)^APP\s+PLATFORM\s+STATE`,
			`(?m)^chat\s+ios\s+invalidated\s+-\s.*tok-b\s*$`, `(?m)^news\s+android\s+active\s+ko\s.*tok-a\s*$`,
			`(?m)^channels: news, sport$`, `(?m)^muted categories: none$`, `(?m)^erased: never$`,
			`(?m)^what became of each notification sent to them: pushpipe results tail --user 42 --campaign ID --no-follow \(or --from 0 for all\)$`}},
		{"never seen", []string{"show", "7"}, []string{`(?m)^devices: none$`, `(?m)^channels: none$`}},
		{"delete", []string{"delete", "42"}, []string{`(?m)^user 42 erased at `, `(?m)^devices: 2 deletions queued for ingest`,
			`(?m)^channels: unsubscribed from 2: news, sport$`, `(?m)^mutes: 0 removed$`}},
		{"delete again", []string{"delete", "42"}, []string{`(?m)^channels: unsubscribed from 0: none$`}},
		{"show after", []string{"show", "42"}, []string{`(?m)^channels: none$`, `(?m)^erased: \d{4}-`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !regexp.MustCompile(w).MatchString(out) {
					t.Errorf("output lacks %s:\n%s", w, out)
				}
			}
		})
	}
	// the delete events are in the ingest stream of the default keys
	n := 0
	for _, s := range keys.Streams(pipeline.StreamIngest) {
		l, err := rdb.Do(t.Context(), rdb.B().Xlen().Key(s).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		n += int(l)
	}
	if n != 4 {
		t.Errorf("ingest streams hold %d entries, want 4 (2 rows, erased twice)", n)
	}
	out, err := run("show", "42", "--json")
	var v users.View
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.UserID != 42 || len(v.Devices) != 2 || v.ErasedAt == nil {
		t.Fatalf("--json: %v %s", err, out)
	}
}
