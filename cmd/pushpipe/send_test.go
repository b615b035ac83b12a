package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
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
			err := sendCommand(t, "send", "--app", "a", "--redis-addr", r.Addr, "--database-url", url, "--title", "t", "--user", strings.Join(ids, ","))
			if err == nil || err.Error() != tt.err {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// --rate-per-second out of the API's bounds is refused by its flag's name:
// 2,000,000 was stored (the API refuses it), and 3,000,000,000 got
// PostgreSQL's 'unable to encode 3000000000 into binary format for int4'.
func TestSendRateBounds(t *testing.T) {
	tests := []struct {
		give string
		err  string // "" for none
	}{
		{"0", ""},
		{"1000000", ""},
		{"1000001", "--rate-per-second: must be a whole number of sends per second from 1 to 1000000, or 0 for no cap of its own; got 1000001"},
		{"3000000000", "--rate-per-second: must be a whole number of sends per second from 1 to 1000000, or 0 for no cap of its own; got 3000000000"},
		{"-5", "--rate-per-second: must be a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			_, err := kongParse("send", "--app", "a", "--channel", "x", "--title", "t", "--rate-per-second="+tt.give)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// --send-at reads send_at as the API does, lower-case "t" and "z" (RFC
// 3339 5.6) included, and refuses by the flag's name what the API refuses
// ("send_at: at most 90 days ahead" named the API's field).
func TestSendAtFlag(t *testing.T) {
	tests := []struct {
		give string
		want time.Time // zero: refused
	}{
		{"2026-12-06T07:30:00Z", time.Date(2026, 12, 6, 7, 30, 0, 0, time.UTC)},
		{"2026-12-06t07:30:00z", time.Date(2026, 12, 6, 7, 30, 0, 0, time.UTC)},
		{"2026-12-06T09:30:00.5+02:00", time.Date(2026, 12, 6, 7, 30, 0, 5e8, time.UTC)},
		{"2026-12-06 07:30", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			kctx, err := kongParse("send", "--app", "a", "--channel", "x", "--title", "t", "--send-at", tt.give)
			if tt.want.IsZero() {
				if err == nil || !strings.Contains(err.Error(), "--send-at: must be an RFC 3339 time") {
					t.Fatalf("error %v, want --send-at's", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := kctx.Selected().Target.Addr().Interface().(*SendCmd).sendAt; !got.Equal(tt.want) {
				t.Fatalf("--send-at %s read as %v, want %v", tt.give, got, tt.want)
			}
		})
	}
	// Past the API's 90 days: refused with the command line.
	far := time.Now().Add(91 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if _, err := kongParse("send", "--app", "a", "--channel", "x", "--title", "t", "--redis-addr", "127.0.0.1:1", "--send-at", far); err == nil ||
		!strings.Contains(err.Error(), "--send-at: at most 90 days ahead") {
		t.Fatalf("--send-at %s: %v, want it refused by the flag's name", far, err)
	}
}

// A --send-at already past would start a new campaign at once (the API's
// rule for send_at): a mistyped year sent now what was meant for later. It
// is refused, as the console's form refuses it, unless --id names a stored
// campaign (a retry, which the API's rule is for); a time a few seconds
// past is the time taken to type the command.
func TestSendPastSendAt(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	past := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t", SendAt: past}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		err     string // "" for none
		created string // a campaign id that must (not) exist after it, "" for none
	}{
		{"a day past, new", []string{"--id", "c2", "--send-at", past.Format(time.RFC3339)}, "--send-at " + past.Format(time.RFC3339) + " is 24h0m", ""},
		{"a day past, fresh id", []string{"--send-at", past.Format(time.RFC3339)}, "a campaign whose time is past starts at once", ""},
		{"a day past, a retry", []string{"--id", "c1", "--send-at", past.Format(time.RFC3339)}, "", "c1"},
		{"seconds past", []string{"--id", "c3", "--send-at", time.Now().Add(-10 * time.Second).UTC().Format(time.RFC3339)}, "", "c3"},
		{"ahead", []string{"--id", "c4", "--send-at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "", "c4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"send", "--app", "a", "--channel", "x", "--title", "t", "--allow-empty",
				"--redis-addr", r.Addr, "--database-url", url}, tt.args...)...)
			var err error
			stderrOf(t, func() { err = cli.Send.Run(&cli.Globals) })
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if tt.created != "" {
				if _, err := campaign.Load(t.Context(), db, tt.created); err != nil {
					t.Fatalf("%s: %v", tt.created, err)
				}
			}
		})
	}
	reps, _, err := campaign.List(t.Context(), rdb, db, keys, campaign.ListQuery{Limit: campaign.MaxListLimit})
	var ids []string
	for _, r := range reps {
		ids = append(ids, r.ID)
	}
	if err != nil || strings.Join(ids, " ") != "c4 c3 c1" {
		t.Fatalf("campaigns %v (%v), want c4 c3 c1: none created with a past --send-at", ids, err)
	}
}

// sendCommand parses args, as main does, and runs the send they make: the
// error of either, as a user sees one of them.
func sendCommand(t *testing.T, args ...string) error {
	t.Helper()
	cli := &CLI{}
	k, err := kong.New(cli, options()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Parse(args); err != nil {
		return err
	}
	return cli.Send.Run(&cli.Globals)
}

// Neither --title nor --body, or a --data key a provider reserves: the
// flags to give or fix. They were "notification: a title or a body is
// required" and "notification.data: ...", the API's object, not send's
// flags.
func TestSendNamesItsFlags(t *testing.T) {
	r, _ := testRedis(t)
	url, _ := testDatabase(t)
	const noText = "send: --title or --body: give at least one, the notification's text"
	appsFile := filepath.Join(t.TempDir(), "apps.toml")
	if err := os.WriteFile(appsFile, []byte("[apps.b]\nfcm = { project = \"p\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		appKeys string // PUSHPIPE_APP_KEYS
		want    string
	}{
		{"campaign", []string{"--channel", "x"}, noText, ""},
		{"message", []string{"--user", "1", "--data", `{"k":"v"}`}, noText, ""},
		// A key a provider reserves was "notification.data: key ...",
		// the API's field.
		{"campaign, reserved data key", []string{"--channel", "x", "--title", "t", "--data", `{"aps":1}`},
			"", `send: --data: key "aps" is APNs's own dictionary; rename it`},
		{"message, reserved data key", []string{"--user", "1", "--title", "t", "--data", `{"google.x":"1"}`},
			"", `send: --data: key "google.x" is reserved by FCM`},
		// Nobody to receive it: the way out is the flag. It was `send
		// "allow_empty": true to create it anyway (or --allow-empty)`,
		// the API's JSON member first.
		{"campaign, no audience", []string{"--channel", "x", "--title", "t"},
			"", `send: app "a" has no registered devices and channels ["x"] have no subscribers: nobody would receive this campaign; ` +
				"check the names, or give --allow-empty to create it anyway"},
		// An app the API does not know (its apps file, else
		// PUSHPIPE_APP_KEYS) is refused as the API refuses it with a 422,
		// in its words (TestSendRefusesAnUnknownAppAsTheAPIDoes): it was
		// sent, and each device failed "no credentials".
		{"raw token, app not among the app keys", []string{"--token", "android:abc", "--title", "t"}, "b=" + strings.Repeat("k", 32),
			`send: --app "a" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS ("b"): use one of them`},
		{"campaign, app not among the app keys", []string{"--channel", "x", "--title", "t"}, "b=" + strings.Repeat("k", 32) + ",c=" + strings.Repeat("j", 32),
			`send: --app "a" is not known to this API: its apps are those of PUSHPIPE_APP_KEYS ("b", "c")`},
		{"message, app not in the apps file", []string{"--user", "1", "--title", "t", "--apps", appsFile}, "a=" + strings.Repeat("k", 32),
			`send: --app "a" is not known to this API: its apps are those of the apps file ` + appsFile + ` ("b")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PUSHPIPE_APP_KEYS", tt.appKeys)
			err := sendCommand(t, append([]string{"send", "--app", "a", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// The whole notification object from send's flags: stored exactly as the
// API stores the same object, and refused as the API refuses it, naming
// the flag. Before, send had flags for the title, body and data only.
func TestSendFullNotification(t *testing.T) {
	r, _ := testRedis(t)
	url, db := testDatabase(t)
	tests := []struct {
		name string
		args []string
		api  string // the same object as the API takes it; "" for an error
		err  string
	}{
		{"every field", []string{"--title", "T", "--subtitle", "S", "--body", "B", "--badge", "3", "--sound", "ping.caf",
			"--image", "https://img.example/a.png", "--thread-id", "room-7", "--collapse-id", "room-7-msg-1",
			"--data", `{"n":7}`, "--localized", `ko={"title":"안녕"}`, "--localized", `pt-BR={"body":"oi"}`},
			`{"title":"T","subtitle":"S","body":"B","badge":3,"sound":"ping.caf","image":"https://img.example/a.png","thread_id":"room-7",
			"collapse_id":"room-7-msg-1","data":{"n":7},"localized":{"ko":{"title":"안녕"},"pt-BR":{"body":"oi"}}}`, ""},
		{"badge 0 clears", []string{"--title", "T", "--badge", "0"}, `{"title":"T","badge":0}`, ""},
		{"silent with data only", []string{"--silent", "--data", `{"sync":"1"}`}, `{"silent":true,"data":{"sync":"1"}}`, ""},
		{"high priority", []string{"--title", "T", "--sound", "default", "--priority", "high"}, `{"title":"T","sound":"default"}`, ""},
		{"silent with a title", []string{"--silent", "--title", "T"}, "", "send: --title: a silent push shows nothing; remove it or leave out --silent"},
		{"negative badge", []string{"--title", "T", "--badge=-1"}, "", "send: --badge: must be between 0"},
		{"image over http", []string{"--title", "T", "--image", "http://img.example/a.png"}, "", "send: --image: must be an https:// URL"},
		{"thread id too long", []string{"--title", "T", "--thread-id", strings.Repeat("x", 65)}, "", "send: --thread-id: must be at most 64 printable bytes"},
		{"collapse id with a newline", []string{"--title", "T", "--collapse-id", "a\nb"}, "", "send: --collapse-id: must be at most 64 printable bytes"},
		{"localized not JSON", []string{"--title", "T", "--localized", "ko=안녕"}, "", `send: --localized ko: must be a JSON object such as 'ko={"title":"...","body":"..."}'`},
		{"localized bad tag", []string{"--title", "T", "--localized", `k_o={"title":"x"}`}, "", "send: --localized k_o: the key must be a BCP 47 language tag"},
		{"localized without text", []string{"--title", "T", "--localized", `ko={"subtitle":"x"}`}, "", "send: --localized ko: a title or a body is required"},
		{"blank title and body", []string{"--title", " ", "--body", "\t"}, "", "send: --title and --body hold only white space"},
		{"message: image over http", []string{"--user", "1", "--title", "T", "--image", "http://x"}, "", "send: --image: must be an https:// URL"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "full-" + strconv.Itoa(i)
			to := []string{"--channel", "x", "--allow-empty"}
			if slices.Contains(tt.args, "--user") {
				to = nil
			}
			args := append([]string{"send", "--app", "a", "--id", id, "--redis-addr", r.Addr, "--database-url", url}, to...)
			err := sendCommand(t, append(args, tt.args...)...)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			priority := ""
			if i := slices.Index(tt.args, "--priority"); i >= 0 {
				priority = tt.args[i+1]
			}
			want, err := api.ParseNotification([]byte(tt.api), priority, push.PriorityNormal)
			if err != nil {
				t.Fatal(err)
			}
			c, err := campaign.Load(t.Context(), db, id)
			if err != nil {
				t.Fatal(err)
			}
			var got push.Content
			if err := json.Unmarshal(c.Notification, &got); err != nil {
				t.Fatalf("stored notification %s: %v", c.Notification, err)
			}
			// jsonb spells the data its own way: compare their values.
			var gotData, wantData any
			json.Unmarshal(got.Data, &gotData)
			json.Unmarshal(want.Data, &wantData)
			got.Data, want.Data = nil, nil
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotData, wantData) {
				t.Errorf("stored %+v %v\nwant   %+v %v (as the API stores it)", got, gotData, want, wantData)
			}
		})
	}
}

// `send --token PLATFORM:TOKEN`: a direct message to devices outside the
// registry, as POST /v1/messages's "tokens" sends one; the platform is up
// to the first colon (FCM tokens hold colons), repeats count once, and a
// bad token is named by the flag it came in. send had no way to name one.
func TestSendRawTokens(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	ios := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		args    []string
		targets int64 // the message's targets; 0 for an error
		err     string
	}{
		{"both platforms, a repeat", []string{"--token", "ios:" + ios, "--token", "android:fcm-1:APA91b-x", "--token", "ios:" + strings.ToUpper(ios)}, 2, ""},
		{"no platform", []string{"--token", ios}, 0, `--token: give PLATFORM:TOKEN, such as ios:a1b2… or android:fcm-token, got "` + ios + `"`},
		{"unknown platform", []string{"--token", "web:abc"}, 0, `send: --token web:abc: must be "ios" or "android", got "web"`},
		{"not an APNs token", []string{"--token", "ios:xyz"}, 0, "send: --token ios:xyz: an APNs (ios) token is"},
		{"with --user", []string{"--token", "ios:" + ios, "--user", "1"}, 0, "can't be used together"},
		{"with --send-at", []string{"--token", "ios:" + ios, "--send-at", "2030-01-02T15:04:05Z"}, 0, "--send-at: a direct message (--user, --token) is sent at once"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "raw-" + strconv.Itoa(i)
			args := append([]string{"send", "--app", "a", "--id", id, "--title", "T", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)
			cli := &CLI{}
			k, err := kong.New(cli, options()...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err = k.Parse(args); err == nil {
				err = cli.Send.Run(&cli.Globals)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rep, err := campaign.MessageProgress(t.Context(), rdb, db, pipeline.NewKeys("pp", pipeline.DefaultPartitions), id)
			if err != nil || rep.Targets != tt.targets {
				t.Fatalf("message %+v (%v), want %d targets", rep, err, tt.targets)
			}
		})
	}
}

// A send whose store fails (PostgreSQL refuses the row here; as well a
// commit whose answer was lost) says which id to run it again with: run
// again without --id it would be a second record, sent twice. With it, the
// retry creates it, and the next finds it.
func TestSendFailureNamesTheIDToRetryWith(t *testing.T) {
	r, _ := testRedis(t)
	url, db := testDatabase(t)
	if _, err := db.Exec(t.Context(), `
		INSERT INTO devices (app, token, user_id, platform, state, event_at) VALUES ('a', 'fcm-token-1', 1, 2, 0, now());
		INSERT INTO subscriptions (channel, user_id) VALUES ('x', 1)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kind string
		args       []string
	}{
		{"campaign", "campaign", []string{"--channel", "x"}},
		{"message", "message", []string{"--user", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send := func(args ...string) (string, error) {
				cli := parse(t, append(append([]string{"send", "--app", "a", "--title", "t", "--redis-addr", r.Addr, "--database-url", url}, tt.args...), args...)...)
				var err error
				logged := stderrOf(t, func() { err = cli.Send.Run(&cli.Globals) })
				return logged, err
			}
			if _, err := db.Exec(t.Context(), `
				CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'down'; END $$;
				CREATE TRIGGER refuse BEFORE INSERT ON campaigns FOR EACH ROW EXECUTE FUNCTION refuse()`); err != nil {
				t.Fatal(err)
			}
			_, err := send()
			m := regexp.MustCompile(`; run the same command again with --id (\S+): the ` + tt.kind + ` is sent once however often it runs$`).
				FindStringSubmatch(fmt.Sprint(err))
			if m == nil {
				t.Fatalf("with PostgreSQL refusing the row: %v; want the id to run it again with", err)
			}
			if _, err := db.Exec(t.Context(), `DROP TRIGGER refuse ON campaigns; DROP FUNCTION refuse()`); err != nil {
				t.Fatal(err)
			}
			if _, err := send("--id", m[1]); err != nil {
				t.Fatalf("again with --id %s: %v", m[1], err)
			}
			if logged, err := send("--id", m[1]); err != nil || !strings.Contains(logged, "already exists; nothing new is sent") {
				t.Fatalf("once more: %v, logged %q; want it found, nothing new sent", err, logged)
			}
		})
	}
}
