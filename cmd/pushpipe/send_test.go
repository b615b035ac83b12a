package main

import (
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// stderrOf runs fn with os.Stderr, where the CLI logs, read into a string.
func stderrOf(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = saved }()
	out := make(chan string)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	fn()
	w.Close()
	return <-out
}

// `send --id` again: the same content sends nothing new and says so under
// the record's id field; other content says what the API's 409 says, of a
// message as of a campaign, not "campaign id already used for a different
// campaign".
func TestSendSameID(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.CreateMessage(t.Context(), rdb, db, keys, campaign.Message{
		Campaign: campaign.Campaign{ID: "m1", App: "a", Title: "t"}, Users: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		err  string // in the error; "" for none
		log  string // in what it logged
	}{
		{"message, same content", []string{"--user", "1", "--id", "m1", "--title", "t"}, "", `"message_id":"m1"`},
		{"campaign, same content", []string{"--channel", "x", "--id", "c1", "--title", "t"}, "", `"campaign":"c1"`},
		{"message, other content", []string{"--user", "1", "--id", "m1", "--title", "other"},
			`message id "m1" is already used for different content: if this is a retry of that message, it is already accepted and is not sent again; give another --id only for a different message`, ""},
		{"campaign, other content", []string{"--channel", "x", "--id", "c1", "--title", "other"},
			`campaign id "c1" is already used for different content: if this is a retry of that campaign`, ""},
		{"a campaign's id for a message", []string{"--user", "1", "--id", "c1", "--title", "t"},
			"a campaign has this id: campaigns and direct messages share one id space; use another id", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"send", "--app", "a", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)...)
			var err error
			logged := stderrOf(t, func() { err = cli.Send.Run(&cli.Globals) })
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if strings.Count(logged, `"message":`) > 1 || !strings.Contains(logged, tt.log) {
				t.Fatalf("logged %q, want one \"message\" key and %s", logged, tt.log)
			}
		})
	}
}

// More users than a message takes: the CLI's flag and what to do, as the
// API's 413 says "split it", not "users: ...: too many users".
func TestSendTooManyUsers(t *testing.T) {
	r, _ := testRedis(t)
	url, _ := testDatabase(t)
	tests := []struct {
		name  string
		users int
		err   string
	}{
		{"one over", campaign.MaxMessageUsers + 1, "send: --user: a message lists at most 10000 users, got 10001; send the others in another message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := make([]string, tt.users)
			for i := range ids {
				ids[i] = strconv.Itoa(i + 1)
			}
			cli := parse(t, "send", "--app", "a", "--redis-addr", r.Addr, "--database-url", url, "--title", "t", "--user", strings.Join(ids, ","))
			if err := cli.Send.Run(&cli.Globals); err == nil || err.Error() != tt.err {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// Neither --title nor --body, or a --data key a provider reserves: the
// flags to give or fix. They were "notification: a title or a body is
// required" and "notification.data: ...", the API's object, not send's
// flags.
func TestSendNamesItsFlags(t *testing.T) {
	r, _ := testRedis(t)
	url, _ := testDatabase(t)
	const noText = "send: --title or --body: give at least one, the notification's text"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"campaign", []string{"--channel", "x"}, noText},
		{"message", []string{"--user", "1", "--data", `{"k":"v"}`}, noText},
		// A key a provider reserves was "notification.data: key ...",
		// the API's field.
		{"campaign, reserved data key", []string{"--channel", "x", "--title", "t", "--data", `{"aps":1}`},
			`send: --data: key "aps" is APNs's own dictionary; rename it`},
		{"message, reserved data key", []string{"--user", "1", "--title", "t", "--data", `{"google.x":"1"}`},
			`send: --data: key "google.x" is reserved by FCM`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"send", "--app", "a", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)...)
			err := cli.Send.Run(&cli.Globals)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
