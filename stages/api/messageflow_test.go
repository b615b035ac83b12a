package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/dedupe"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// flowApp is the one app the message flow's API knows.
const flowApp = "com.example.chat"

// messageFlow is a direct message's whole path in this process: the API,
// dedupe and deliver (their runners, both lanes) on one Redis (standalone
// or cluster) and PostgreSQL, sending through the real APNs and FCM clients
// to a fake provider.
type messageFlow struct {
	*deviceAPI
	fake *fakeprovider.Server
	// start runs dedupe and deliver; newMessageFlow has.
	start func()
}

func newMessageFlow(t *testing.T, redisAddr string) *messageFlow {
	t.Helper()
	f := newIdleMessageFlow(t, redisAddr)
	f.start()
	return f
}

// newIdleMessageFlow is newMessageFlow with dedupe and deliver not running
// until f.start: a test fills their streams first (a backlog, a retry that
// queued a message again before they read it).
func newIdleMessageFlow(t *testing.T, redisAddr string) *messageFlow {
	t.Helper()
	f := &messageFlow{
		deviceAPI: newDeviceAPIConfig(t, redisAddr, Config{Auth: Auth{AdminToken: "op"}, AppsFile: &AppsFile{Path: "apps.toml", Apps: []string{flowApp}}}),
		fake:      fakeprovider.Start(t, fakeprovider.Options{KeepRequests: true}),
	}
	rdb, db, keys := f.rdb, f.db, f.keys
	ios, err := apns.New(apns.Config{KeyFile: fakeprovider.WriteP8(t), KeyID: "KEYID12345", TeamID: "TEAMID1234",
		Topic: flowApp, Host: f.fake.URL(), RootCAs: f.fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ios.Close)
	android, err := fcm.New(t.Context(), fcm.Config{Project: "test-project", Endpoint: f.fake.URL() + "/v1", RootCAs: f.fake.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(android.Close)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	dh, err := deliver.New(deliver.Config{Redis: rdb, DB: db, Keys: keys, Log: log, TPS: 1000, RetryBase: 20 * time.Millisecond,
		Senders: map[push.Platform]push.Sender{push.IOS: ios, push.Android: android}})
	if err != nil {
		t.Fatal(err)
	}
	f.start = func() {
		f.run("dedupe", pipeline.StreamDedupe, dedupe.New(dedupe.Config{Redis: rdb, Keys: keys, Log: log}), log)
		f.run("deliver", pipeline.StreamDeliver, dh, log)
	}
	return f
}

// run serves a stage's stream, both lanes, until the test ends, once it
// joined its groups: a test that takes a Redis down next must not find the
// stage still starting (Run then fails, and a process would exit).
func (f *messageFlow) run(name, stream string, h pipeline.Handler, log zerolog.Logger) {
	f.t.Helper()
	r := pipeline.NewRunner(f.rdb, f.keys, pipeline.Options{Stage: name, Stream: stream, Express: true,
		Concurrency: 2, BatchSize: 20, Block: 100 * time.Millisecond, ClaimIdle: 10 * time.Second, ShutdownTimeout: 5 * time.Second}, h, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
	pipelinetest.Eventually(f.t, 30*time.Second, name+" ready", func() bool {
		select {
		case err := <-done:
			done <- err
			f.t.Fatalf("%s stopped before it was ready: %v", name, err)
		default:
		}
		return r.Ready()
	})
}

// seed writes devices straight into PostgreSQL: (user, platform, token,
// state), state 1 a deleted device.
func (f *messageFlow) seed(rows [][4]any) {
	f.t.Helper()
	for _, r := range rows {
		if _, err := f.db.Exec(context.Background(), `INSERT INTO devices (app, user_id, platform, token, state, event_at)
			VALUES ($1, $2, $3, $4, $5, now())`, flowApp, r[0], r[1], r[2], r[3]); err != nil {
			f.t.Fatal(err)
		}
	}
}

// reached is how many times each token received the message (receipts with
// its collapse id).
func (f *messageFlow) reached(id string) map[string]int {
	out := map[string]int{}
	for _, r := range f.fake.Receipts() {
		if r.CollapseID == id {
			out[r.Token]++
		}
	}
	return out
}

func flowIOS(n int) string     { return fmt.Sprintf("%064x", 0xf10e000+n) }
func flowAndroid(n int) string { return fmt.Sprintf("fcm%d:APA91bflow-%d", n, n) }

// TestMessagesEndToEnd sends direct messages through the API, dedupe and
// deliver, on standalone Redis and a 3-master cluster: each listed user
// once, every active device of each once, with the message's collapse id;
// muted users skipped, unknown ones counted and harmless; raw tokens of
// both platforms once each; the same id again is 200 and sends nothing,
// other content 409; what can never be sent is refused before anything
// is stored.
func TestMessagesEndToEnd(t *testing.T) {
	t.Parallel()
	redis := map[string]func(t *testing.T) string{
		"standalone": func(*testing.T) string { return env.Redis.Addr },
		"cluster":    func(t *testing.T) string { return strings.Join(pipelinetest.ClusterT(t).Addrs, ",") },
	}
	for _, name := range []string{"standalone", "cluster"} {
		t.Run(name, func(t *testing.T) { testMessages(t, redis[name](t)) })
	}
}

func testMessages(t *testing.T, redisAddr string) {
	f := newMessageFlow(t, redisAddr)
	// 2001: one device; 2002: three, both platforms; 2003: none active (a
	// deleted one); 2004: one, muted "chat"; 999999: unknown.
	f.seed([][4]any{
		{2001, 1, flowIOS(1), 0},
		{2002, 1, flowIOS(2), 0}, {2002, 1, flowIOS(3), 0}, {2002, 2, flowAndroid(4), 0},
		{2003, 2, flowAndroid(5), 1},
		{2004, 2, flowAndroid(6), 0},
	})
	if r := f.do("PUT", "/v1/users/2004/preferences", `{"muted_categories":["chat"]}`, "op"); r.status != http.StatusNoContent {
		t.Fatalf("preferences: %d %s", r.status, r.body)
	}
	users := `"users":[2002,2001,999999,2003,2004,2002,2001]`
	// The APNs token repeated in upper case: the same phone (APNs tokens are
	// hex, either case).
	tokens := fmt.Sprintf(`"tokens":[{"platform":"ios","token":%q},{"platform":"android","token":%q},{"platform":"ios","token":%q}]`,
		flowIOS(90), flowAndroid(91), strings.ToUpper(flowIOS(90)))
	msg := func(id, list, text string) string {
		return fmt.Sprintf(`{"id":%q,"app":%q,%s,"category":"chat","notification":{"title":"Ann","body":%q}}`, id, flowApp, list, text)
	}
	many := func(n int, item func(i int) string) string {
		out := make([]string, n)
		for i := range out {
			out[i] = item(i)
		}
		return strings.Join(out, ",")
	}
	note := `"notification":{"body":"x"}`
	tests := []struct {
		name, body string
		status     int
		say        string                 // in the error, when refused
		want       map[string]int         // tokens reached, when accepted: each once
		report     campaign.MessageReport // targets, muted, sent, no devices
	}{
		{name: "users: repeats, 0, 1 and 3 devices, muted, unknown", body: msg("m-users", users, "hi"), status: http.StatusAccepted,
			want:   map[string]int{flowIOS(1): 1, flowIOS(2): 1, flowIOS(3): 1, flowAndroid(4): 1},
			report: campaign.MessageReport{Targets: 4, Muted: 1, Sent: 4, NoDevices: 2}}, // 999999 and 2003 have none
		{name: "raw tokens of both platforms, one repeated in another case", body: msg("m-tokens", tokens, "hi"), status: http.StatusAccepted,
			want:   map[string]int{flowIOS(90): 1, flowAndroid(91): 1},
			report: campaign.MessageReport{Targets: 2, Sent: 2}},
		{name: "same id, same content", body: msg("m-users", users, "hi"), status: http.StatusOK},
		{name: "same id, same tokens", body: msg("m-tokens", tokens, "hi"), status: http.StatusOK},
		{name: "same id, other text", body: msg("m-users", users, "bye"), status: http.StatusConflict, say: "m-users"},
		{name: "same id, other users", body: msg("m-users", `"users":[2001]`, "hi"), status: http.StatusConflict, say: "m-users"},
		{name: "same id, tokens instead of users", body: msg("m-users", tokens, "hi"), status: http.StatusConflict, say: "m-users"},
		{name: "same id, other tokens", body: msg("m-tokens", `"tokens":[{"platform":"ios","token":"`+flowIOS(90)+`"}]`, "hi"), status: http.StatusConflict, say: "m-tokens"},
		{name: "10,001 users", body: msg("m-big", `"users":[`+many(10_001, func(i int) string { return strconv.Itoa(i + 1) })+`]`, "x"),
			status: http.StatusRequestEntityTooLarge, say: "at most 10000 users"},
		{name: "1,001 tokens", body: msg("m-big", `"tokens":[`+many(1001, func(i int) string { return fmt.Sprintf(`{"platform":"ios","token":%q}`, flowIOS(i)) })+`]`, "x"),
			status: http.StatusRequestEntityTooLarge, say: "at most 1000 raw tokens"},
		{name: "empty users", body: `{"app":"` + flowApp + `","users":[],` + note + `}`, status: http.StatusBadRequest, say: "users: at least one"},
		{name: "empty tokens", body: `{"app":"` + flowApp + `","tokens":[],` + note + `}`, status: http.StatusBadRequest, say: "tokens: at least one"},
		{name: "neither users nor tokens", body: `{"app":"` + flowApp + `",` + note + `}`, status: http.StatusBadRequest, say: "users: at least one"},
		{name: "users and tokens", body: msg("m-both", `"users":[1],`+tokens, "x"), status: http.StatusBadRequest, say: "not both"},
		{name: "users and empty tokens", body: msg("m-both", `"users":[1],"tokens":[]`, "x"), status: http.StatusBadRequest, say: "not both"},
		{name: "bad platform", body: msg("m-bad", `"tokens":[{"platform":"ios","token":"`+flowIOS(1)+`"},{"platform":"web","token":"abc"}]`, "x"),
			status: http.StatusBadRequest, say: "tokens[1].platform"},
		{name: "bad ios token", body: msg("m-bad", `"tokens":[{"platform":"ios","token":"xyz"}]`, "x"), status: http.StatusBadRequest, say: "tokens[0].token"},
		{name: "bad android token", body: msg("m-bad", `"tokens":[{"platform":"android","token":"a b"}]`, "x"), status: http.StatusBadRequest, say: "tokens[0].token"},
		{name: "unknown app", body: `{"app":"com.example.other","users":[2001],` + note + `}`, status: http.StatusUnprocessableEntity, say: "com.example.other"},
		{name: "unknown app, raw tokens", body: `{"app":"com.example.other",` + tokens + `,` + note + `}`, status: http.StatusUnprocessableEntity, say: "com.example.other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do("POST", "/v1/messages", tt.body, "op")
			if r.status != tt.status || tt.say != "" && !strings.Contains(r.error(), tt.say) {
				t.Fatalf("got %d %s, want %d naming %q", r.status, r.body, tt.status, tt.say)
			}
			if tt.want == nil {
				return
			}
			var id struct{ ID string }
			json.Unmarshal([]byte(r.body), &id)
			var rep campaign.MessageReport
			pipelinetest.Eventually(t, 30*time.Second, "message "+id.ID+" done", func() bool {
				g := f.do("GET", "/v1/messages/"+id.ID, "", "op")
				return json.Unmarshal([]byte(g.body), &rep) == nil && rep.State == campaign.MessageDone
			})
			if rep.Targets != tt.report.Targets || rep.Muted != tt.report.Muted || rep.Sent != tt.report.Sent ||
				rep.NoDevices != tt.report.NoDevices || rep.Failed != 0 || rep.InvalidTokens != 0 || rep.FirstSendMs == 0 {
				t.Errorf("report %+v, want targets %d, muted %d, sent %d, no devices %d", rep,
					tt.report.Targets, tt.report.Muted, tt.report.Sent, tt.report.NoDevices)
			}
			if got := f.reached(id.ID); !maps.Equal(got, tt.want) {
				t.Errorf("reached %v, want each of %v once", got, slices.Sorted(maps.Keys(tt.want)))
			}
		})
	}
	// A message is not a campaign to cancel: the stages do not watch its
	// flag, so a cancel could not stop it.
	// Nor one to report on: its counters mean something else, and the
	// campaign's reader would record campaign states on its row.
	for _, req := range []struct{ method, path string }{
		{"POST", "/v1/campaigns/m-users/cancel"},
		{"GET", "/v1/campaigns/m-users"},
	} {
		if r := f.do(req.method, req.path, "", "op"); r.status != http.StatusNotFound || !strings.Contains(r.error(), "GET /v1/messages/m-users") {
			t.Errorf("%s %s of a message: %d %s, want 404 pointing to the message", req.method, req.path, r.status, r.body)
		}
	}
	// Nothing more reached anyone once the repeats were answered, and no
	// refused message left an entry behind.
	pipelinetest.Eventually(t, 10*time.Second, "deliver idle", func() bool {
		n, err := pipeline.Outstanding(t.Context(), f.rdb, f.keys.Streams(pipeline.StreamDeliverExpress), "deliver")
		return err == nil && n == 0
	})
	if got := f.fake.Summary().Accepted; got != 6 {
		t.Errorf("provider accepted %d requests, want 6 (4 devices of users, 2 raw tokens)", got)
	}
	var rows int
	if err := f.db.QueryRow(t.Context(), `SELECT count(*) FROM campaigns`).Scan(&rows); err != nil || rows != 2 {
		t.Errorf("%d message rows stored (%v), want 2", rows, err)
	}
}

// A message carries the whole notification object, as a campaign does:
// subtitle, badge, sound, thread and collapse id reach both providers, a
// silent message (no text) is a background push, and a change to any of
// them under the same id is a 409. Data keep their JSON types on APNs and
// are strings on FCM, after the trip through PostgreSQL's jsonb.
func TestMessageFullNotification(t *testing.T) {
	t.Parallel()
	f := newMessageFlow(t, env.Redis.Addr)
	f.seed([][4]any{{3001, 1, flowIOS(301), 0}, {3002, 2, flowAndroid(302), 0}})
	full := `{"id":"m-full","app":"` + flowApp + `","users":[3001,3002],"notification":{"title":"Ann","subtitle":"room 7",
		"body":"hi","badge":3,"sound":"ping.caf","thread_id":"room-7","collapse_id":"room-7-msg-1","data":{"room":"7","unread":7,"deep":{"to":["room",7]}}}}`
	silent := `{"id":"m-silent","app":"` + flowApp + `","users":[3001],"notification":{"silent":true,"data":{"sync":"1"}}}`
	for _, tt := range []struct {
		name, body string
		status     int
	}{
		{"full", full, http.StatusAccepted},
		{"silent", silent, http.StatusAccepted},
		{"full again", full, http.StatusOK},
		{"other badge", strings.Replace(full, `"badge":3`, `"badge":4`, 1), http.StatusConflict},
		{"other collapse id", strings.Replace(full, `room-7-msg-1`, `room-7-msg-2`, 1), http.StatusConflict},
		{"silent with a title", strings.Replace(silent, `"silent":true`, `"silent":true,"title":"x"`, 1), http.StatusBadRequest},
	} {
		if r := f.do("POST", "/v1/messages", tt.body, "op"); r.status != tt.status {
			t.Fatalf("%s: got %d %s, want %d", tt.name, r.status, r.body, tt.status)
		}
	}
	for _, id := range []string{"m-full", "m-silent"} {
		pipelinetest.Eventually(t, 30*time.Second, "message "+id+" done", func() bool {
			var rep campaign.MessageReport
			g := f.do("GET", "/v1/messages/"+id, "", "op")
			return json.Unmarshal([]byte(g.body), &rep) == nil && rep.State == campaign.MessageDone && rep.Sent > 0
		})
	}
	receipts, err := f.fake.FullReceipts()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fakeprovider.Receipt{} // by provider and collapse id
	for _, r := range receipts {
		got[r.Provider+" "+r.CollapseID] = r
	}
	if len(receipts) != 3 {
		t.Fatalf("%d receipts, want 3 (the full message's two devices, the silent one's device): %v", len(receipts), slices.Collect(maps.Keys(got)))
	}
	ios, ok := got["apns room-7-msg-1"]
	if !ok || ios.Token != flowIOS(301) {
		t.Fatalf("no APNs receipt of the full message with its collapse id: %v", slices.Collect(maps.Keys(got)))
	}
	for _, want := range []string{`"subtitle":"room 7"`, `"badge":3`, `"sound":"ping.caf"`, `"thread-id":"room-7"`, `"room":"7"`, `"unread":7`, `"deep":{"to":["room",7]}`} {
		if !strings.Contains(ios.Body, want) {
			t.Errorf("APNs payload %s lacks %s", ios.Body, want)
		}
	}
	if p := ios.Headers["Apns-Priority"]; len(p) != 1 || p[0] != "10" {
		t.Errorf("APNs priority %v, want 10 (a message is high priority by default)", p)
	}
	android, ok := got["fcm room-7-msg-1"]
	if !ok || android.Token != flowAndroid(302) {
		t.Fatalf("no FCM receipt of the full message with its collapse id: %v", slices.Collect(maps.Keys(got)))
	}
	for _, want := range []string{`"tag":"room-7-msg-1"`, `"sound":"ping.caf"`, `"notification_count":3`,
		`"room":"7"`, `"unread":"7"`, `"deep":"{\"to\":[\"room\",7]}"`} {
		if !strings.Contains(android.Body, want) {
			t.Errorf("FCM request %s lacks %s", android.Body, want)
		}
	}
	bg, ok := got["apns "+push.CollapseID("m-silent")]
	if !ok {
		t.Fatalf("no APNs receipt of the silent message: %v", slices.Collect(maps.Keys(got)))
	}
	if !strings.Contains(bg.Body, `"content-available":1`) || strings.Contains(bg.Body, `"alert"`) || bg.Headers["Apns-Push-Type"][0] != "background" {
		t.Errorf("silent message sent as %v %s, want a background push without an alert", bg.Headers["Apns-Push-Type"], bg.Body)
	}
}

// A direct message's marks cost bytes per device, not a bitmap chunk padded
// up to each device's bit: a chat message reaches a few users scattered over
// the registry, and at hundreds of messages a second the padding (kilobytes
// per device, kept for the message's TTL) filled Redis within minutes.
func TestMessageMarksStaySmall(t *testing.T) {
	t.Parallel()
	f := newMessageFlow(t, env.Redis.Addr)
	const n = 40
	users := make([]string, n)
	for i := range n {
		u, id := 3000+i*250_001, 1_000_000+i*70_001 // spread out: every id in its own 8 KB bitmap chunk
		users[i] = strconv.Itoa(u)
		if _, err := f.db.Exec(t.Context(), `INSERT INTO devices (app, user_id, platform, token, state, event_at, id)
			OVERRIDING SYSTEM VALUE VALUES ($1, $2, 1, $3, 0, now(), $4)`, flowApp, u, flowIOS(500+i), id); err != nil {
			t.Fatal(err)
		}
	}
	body := fmt.Sprintf(`{"id":"m-spread","app":%q,"users":[%s],"notification":{"body":"hi"}}`, flowApp, strings.Join(users, ","))
	if r := f.do("POST", "/v1/messages", body, "op"); r.status != http.StatusAccepted {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	pipelinetest.Eventually(t, 30*time.Second, "message sent to every device", func() bool { return len(f.reached("m-spread")) == n })
	pipelinetest.Eventually(t, 10*time.Second, "deliver idle", func() bool {
		n, err := pipeline.Outstanding(t.Context(), f.rdb, f.keys.Streams(pipeline.StreamDeliverExpress), "deliver")
		return err == nil && n == 0
	})
	var keys int
	var bytes, marks int64
	for _, node := range f.rdb.Nodes() {
		for cursor := uint64(0); ; {
			e, err := node.Do(t.Context(), node.B().Scan().Cursor(cursor).Match("*m-spread*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range e.Elements {
				size, err := node.Do(t.Context(), node.B().MemoryUsage().Key(k).Build()).AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				keys, bytes = keys+1, bytes+size
				if strings.Contains(k, ":sent:") || strings.Contains(k, ":done:") {
					marks += size
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	t.Logf("message of %d users: %d keys, %d bytes (marks %d)", n, keys, bytes, marks)
	if marks == 0 || bytes > 400*n {
		t.Errorf("%d keys of %d bytes (marks %d) for %d devices: want marks, and at most %d bytes in all", keys, bytes, marks, n, 400*n)
	}
}
