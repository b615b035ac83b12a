package deliver

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// TestAPNs403FailsTheCampaign: an answer every device would get (bad
// provider token) fails the campaign with the reason after at most the
// requests already in flight; the rest is counted failed without being
// sent, and no token is invalidated.
func TestAPNs403FailsTheCampaign(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(string) (int, string) {
		return 403, "InvalidProviderToken"
	}})
	const users, inFlight = 2000, 16
	devices := f.seedDevices(users, false)
	f.createCampaign("c403", `{}`)
	f.emitUsers("c403", userRange(users))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)}, InFlight: inFlight},
		"d1", 30*time.Second)
	s := f.waitDone("c403", users, 30*time.Second)

	reason, err := f.rdb.Do(f.ctx, f.rdb.B().Hget().Key(f.keys.Campaign("c403")).Field(pipeline.CampaignFailed).Build()).ToString()
	if err != nil || reason != "apns 403 InvalidProviderToken" {
		t.Errorf("campaign failure reason %q (%v)", reason, err)
	}
	if s[pipeline.StatFailed] != int64(len(devices)) || s[pipeline.StatSent] != 0 || s[pipeline.StatInvalid] != 0 {
		t.Errorf("counters %v, want %d failed", s, len(devices))
	}
	if n := len(f.invalidations()); n != 0 {
		t.Errorf("%d tokens invalidated because of an auth error", n)
	}
	// Each of the 4 handlers may start one request between its check of
	// the flag and a slot freeing up.
	if got := fake.Summary().Requests; got > inFlight+4 {
		t.Errorf("provider got %d requests after the first 403; in flight was %d", got, inFlight)
	}
}

// TestFCMPayloadErrorFailsTheCampaign: FCM refusing the payload
// (INVALID_ARGUMENT with a BadRequest violation, here a reserved data key)
// fails the campaign and deletes no token, while a dead token of the same
// provider is still invalidated.
func TestFCMPayloadErrorFailsTheCampaign(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	const users = 400
	f.seedDevices(users, true)
	f.createCampaign("cpay", `{"from":"reserved by FCM"}`)
	f.emitUsers("cpay", userRange(users))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{
		push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake),
	}, InFlight: 8}, "d1", 30*time.Second)
	s := f.waitDone("cpay", users, 30*time.Second)

	reason, _ := f.rdb.Do(f.ctx, f.rdb.B().Hget().Key(f.keys.Campaign("cpay")).Field(pipeline.CampaignFailed).Build()).ToString()
	if !strings.HasPrefix(reason, "fcm 400") {
		t.Errorf("campaign failure reason %q, want an FCM 400", reason)
	}
	if n := len(f.invalidations()); n != 0 {
		t.Errorf("%d tokens invalidated because of a payload error", n)
	}
	if s[pipeline.StatFailed] == 0 || s[pipeline.StatInvalid] != 0 {
		t.Errorf("counters %v", s)
	}
	t.Logf("reason %q, counters %v", reason, s)
}

// TestRetryBudgetEndsInTheDLQ: a provider that keeps failing makes every
// user go through MaxAttempts rounds and then to the DLQ, with its devices
// counted failed and the users terminal; once the provider is back,
// `pushpipe dlq retry` (pipeline.DLQ.Retry) re-injects them and each device
// gets exactly one notification. User ids are large so that the binary id
// batch must survive the dead letter.
func TestRetryBudgetEndsInTheDLQ(t *testing.T) {
	f := newFixture(t)
	var failing atomic.Bool
	failing.Store(true)
	fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(string) (int, string) {
		if failing.Load() {
			return 503, "ServiceUnavailable"
		}
		return 0, ""
	}})
	const users, attempts = 60, 3
	var ids []int64
	var devices []testDevice
	for i := int64(0); i < users; i++ {
		u := 1_000_003 + i*977
		ids = append(ids, u)
		devices = append(devices, testDevice{u, push.IOS, iosToken(u, 0)})
	}
	f.insertDevices(devices)
	f.createCampaign("cdlq", `{}`)
	f.emitUsers("cdlq", ids)
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
		MaxAttempts: attempts, RetryBase: 10 * time.Millisecond}, "d1", 30*time.Second)
	s := f.waitDone("cdlq", users, 30*time.Second)

	if s[pipeline.StatFailed] != int64(len(devices)) || s[pipeline.StatSent] != 0 {
		t.Errorf("counters %v, want %d failed", s, len(devices))
	}
	if got, want := fake.Summary().Requests, uint64(len(devices)*attempts); got != want {
		t.Errorf("provider got %d requests, want %d (%d devices × %d attempts)", got, want, len(devices), attempts)
	}
	// The users are counted done before the runner commits their batch's
	// dead letters (with its ack): wait for the last commit.
	var dead []int64
	pipelinetest.Eventually(t, 10*time.Second, "every user dead-lettered", func() bool {
		dead = dead[:0]
		for _, d := range f.dlq() {
			if d[pipeline.DLQDeliveries] != strconv.Itoa(attempts) || !strings.Contains(d[pipeline.DLQError], "after 3 attempts") {
				t.Errorf("dead letter %v", d)
			}
			fields, err := pipeline.DecodeDLQFields(d[pipeline.DLQFields])
			if err != nil || fields[pipeline.FieldCampaign] != "cdlq" {
				t.Fatalf("dead letter fields %q: %v", d[pipeline.DLQFields], err)
			}
			us, err := pipeline.DecodeIDs(fields[pipeline.FieldUsers])
			if err != nil {
				t.Fatalf("dead letter users: %v", err)
			}
			dead = append(dead, us...)
		}
		return len(dead) >= len(ids)
	})
	slices.Sort(dead)
	if !slices.Equal(dead, ids) {
		t.Errorf("dead-lettered users %v, want %v", dead, ids)
	}
	if n := f.retriesLeft(); n != 0 {
		t.Errorf("%d retries left", n)
	}

	failing.Store(false)
	res, err := pipeline.NewDLQ(f.rdb, f.keys).Retry(f.ctx, pipeline.DLQFilter{Campaign: "cdlq"})
	if err != nil || len(res.Failed) != 0 || len(res.Done) == 0 {
		t.Fatalf("dlq retry: %+v, %v", res, err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "the re-injected users sent", func() bool {
		return f.stats("cdlq")[pipeline.StatSent] == int64(len(devices))
	})
	accepted := map[string]int{}
	for _, r := range fake.Receipts() {
		accepted[r.Token]++
	}
	for _, d := range devices {
		if accepted[d.token] != 1 {
			t.Errorf("device %s accepted %d times after the DLQ retry", d.token, accepted[d.token])
		}
	}
	// The devices moved from failed to sent, and the users were counted
	// done once: when their budget ran out, not again when they succeeded.
	pipelinetest.Eventually(t, 10*time.Second, "the DLQ retry acked", func() bool { return f.pendingEntries() == 0 })
	// Each device has its failure and then its send as two events with
	// two ids: a receiver deduping by id keeps both.
	outcomes := map[string][]string{} // token → outcomes in order
	byID := map[string]string{}       // id → token
	for _, ev := range f.results() {
		outcomes[ev.Token] = append(outcomes[ev.Token], ev.Outcome)
		if tok, dup := byID[ev.ID]; dup {
			t.Errorf("event id %s of tokens %s and %s", ev.ID, tok, ev.Token)
		}
		byID[ev.ID] = ev.Token
	}
	for _, d := range devices {
		if got := outcomes[d.token]; !slices.Equal(got, []string{pipeline.OutcomeFailed, pipeline.OutcomeSent}) {
			t.Errorf("device %s: result events %v, want failed then sent", d.token, got)
		}
	}
	s = f.stats("cdlq")
	if s[pipeline.StatFailed] != 0 || s[pipeline.StatSent] != int64(len(devices)) || s[pipeline.StatUsersDone] != users {
		t.Errorf("counters after the DLQ retry %v, want 0 failed, %d sent, %d users done", s, len(devices), users)
	}

	// A replay with force resends to every device, and counts nothing again.
	before := fake.Summary().Requests
	f.emitForced("cdlq", ids)
	pipelinetest.Eventually(t, 30*time.Second, "the forced replay sent and acked", func() bool {
		return fake.Summary().Requests >= before+uint64(len(devices)) && f.pendingEntries() == 0
	})
	s = f.stats("cdlq")
	if s[pipeline.StatFailed] != 0 || s[pipeline.StatSent] != int64(len(devices)) || s[pipeline.StatUsersDone] != users {
		t.Errorf("counters after a forced replay %v, want 0 failed, %d sent, %d users done", s, len(devices), users)
	}
}

// emitForced writes deliver entries for users with FieldForce=1, as
// `pushpipe replay --force` does.
func (f *fixture) emitForced(campaign string, users []int64) {
	f.t.Helper()
	byPart := map[int][]int64{}
	for _, u := range users {
		byPart[f.keys.UserPartition(u)] = append(byPart[f.keys.UserPartition(u)], u)
	}
	var msgs []pipeline.Message
	for p, us := range byPart {
		slices.Sort(us)
		msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliver, p), Fields: []string{
			pipeline.FieldCampaign, campaign, pipeline.FieldUsers, pipeline.EncodeIDs(us), pipeline.FieldForce, "1"}})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		f.t.Fatal(err)
	}
}

// TestOutageIsRiddenOut: the provider answers 503 to everything for a while
// (PUSHPIPE_TEST_OUTAGE, default 5s; the scenario is 30s); deliver
// keeps reading, schedules retries that honour Retry-After, and afterwards
// everyone gets exactly one notification.
func TestOutageIsRiddenOut(t *testing.T) {
	t.Parallel() // mostly waiting (outage, rate limit, lease)
	outage := 5 * time.Second
	if v := os.Getenv("PUSHPIPE_TEST_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PUSHPIPE_TEST_OUTAGE: %v", err)
		}
		outage = d
	}
	f := newFixture(t)
	const users = 600 // 685 devices, every one refused through the outage
	devices := f.seedDevices(users, true)
	f.createCampaign("cout", `{}`)
	// Before the fake: its outage starts when it does, so no send it
	// accepts is earlier than start+outage. (Taken after it, start was a
	// few hundred µs late, and a send accepted at the outage's very end
	// was once "during" it.)
	start := time.Now()
	fake := fakeprovider.Start(t, fakeprovider.Options{Outage: outage, TPS: 1000})
	f.emitUsers("cout", userRange(users))
	f.startStage(Config{
		Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)},
		// One fake serves both providers here, so each gets half its TPS.
		TPS: 500, RetryBase: 200 * time.Millisecond,
	}, "d1", 30*time.Second)
	s := f.waitDone("cout", users, outage+60*time.Second)

	checkExactlyOnce(t, f, "cout", devices, fake)
	// first_ms is whole milliseconds: the bound too.
	if first := time.UnixMilli(s[pipeline.StatFirstMs]); first.Before(start.Add(outage).Truncate(time.Millisecond)) {
		t.Errorf("first accepted send at %v, during the outage (%v from %v)", first, outage, start)
	}
	if sum := fake.Summary(); sum.Errors == 0 {
		t.Error("the outage refused nothing")
	} else {
		t.Logf("outage %v: %d refused, %d accepted", outage, sum.Errors, sum.Accepted)
	}
}

// TestSlowBatchIsKeptClaimed: a batch that takes longer than the claim
// idle time (a low rate limit) stays with its consumer instead of being
// taken over and sent a second time by the other one.
func TestSlowBatchIsKeptClaimed(t *testing.T) {
	t.Parallel() // mostly waiting (outage, rate limit, lease)
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	const users = 300 // one entry: ids 1..1023 share a partition
	devices := f.seedDevices(users, false)
	f.createCampaign("cslow", `{}`)
	f.emitUsers("cslow", userRange(users))
	sender := apnsSender(t, fake)
	for _, name := range []string{"d1", "d2"} {
		f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: sender}, TPS: 60}, name, time.Second)
	}
	// 5 s at the rate cap; the bound only ends a hang. At 30 s a loaded
	// box (load ~20, -race) ran out of it still sending (265 of 300 sent,
	// the last 250 ms before), as 10 a second.
	f.waitDone("cslow", users, 90*time.Second)
	checkExactlyOnce(t, f, "cslow", devices, fake)
}

// TestRetryEntriesAreDelivered: a retry is a deliver entry with its rounds,
// waiting in the stream's delayed set (a process that emitted it may be gone
// since): it is released when due and delivered once, and its rounds count
// toward the budget (one attempt left here: the user is dead-lettered after
// one failing send).
func TestRetryEntriesAreDelivered(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	const users = 20
	devices := f.seedDevices(users, false)
	f.createCampaign("cretry", `{}`)
	byPartition := map[int][]int64{}
	for u := int64(1); u <= users; u++ {
		p := f.keys.UserPartition(u)
		byPartition[p] = append(byPartition[p], u)
	}
	for p, us := range byPartition {
		e := pipeline.DeliverEntry{Campaign: "cretry", Users: us, Rounds: 2}
		m := pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliver, p), Fields: e.Fields()}
		if err := pipeline.EmitAt(f.ctx, f.rdb, time.Now().Add(300*time.Millisecond), m); err != nil {
			t.Fatal(err)
		}
	}
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)}, MaxAttempts: 3}, "d1", 30*time.Second)
	f.waitDone("cretry", users, 30*time.Second)
	checkExactlyOnce(t, f, "cretry", devices, fake)
	if n := f.retriesLeft(); n != 0 {
		t.Errorf("%d retries left", n)
	}
}

// TestMalformedEntriesAreDeadLettered: a malformed entry goes to the DLQ
// with its reason and does not hold up the good entry next to it (they are
// read in one batch). A campaign id no stage writes (not valid UTF-8) is
// malformed too: looked up in PostgreSQL it is an error for the whole
// batch, which then went to the DLQ entire after MaxDeliveries claims,
// good entries included.
func TestMalformedEntriesAreDeadLettered(t *testing.T) {
	f := newFixture(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	devices := f.seedDevices(10, false)
	f.createCampaign("cok", `{}`)
	// A notification the API would never store (it writes what it parsed):
	// a hand-edited row cannot be rendered, which no retry changes.
	f.createAppCampaign("cbad", testApp, `{"title":"Hi","badge":"many"}`)
	stream := f.keys.Stream(pipeline.StreamDeliver, 0)
	tests := []struct {
		name string
		give []string
		want string // in the dead letter's reason
		// bad input: the entry's own fields, marked so that `dlq retry`
		// says it will be back (a campaign row may yet come or be fixed)
		bad bool
	}{
		{"users not an id batch", []string{pipeline.FieldCampaign, "cok", pipeline.FieldUsers, "\xff\xff"}, "deliver entry users", true},
		{"unknown campaign", []string{pipeline.FieldCampaign, "nope", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{1})}, "campaign not found", false},
		{"campaign id not UTF-8", []string{pipeline.FieldCampaign, "c\xff", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{1})}, "only letters", true},
		{"notification cannot be rendered", []string{pipeline.FieldCampaign, "cbad", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{2})},
			`campaign "cbad": stored notification cannot be rendered`, false},
	}
	var msgs []pipeline.Message
	for _, tt := range tests {
		msgs = append(msgs, pipeline.Message{Stream: stream, Fields: tt.give})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		t.Fatal(err)
	}
	f.emitUsers("cok", userRange(10))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)}}, "d1", 30*time.Second)
	f.waitDone("cok", 10, 20*time.Second)
	checkExactlyOnce(t, f, "cok", devices, fake)
	dead := f.dlq()
	if len(dead) != len(tests) {
		t.Fatalf("%d dead letters, want %d: %v", len(dead), len(tests), dead)
	}
	// A batch's dead letters are not written in stream order: find each by
	// the fields it keeps.
	for _, tt := range tests {
		found := false
		for _, d := range dead {
			fields, err := pipeline.DecodeDLQFields(d[pipeline.DLQFields])
			if err != nil || fields[pipeline.FieldCampaign] != tt.give[1] || fields[pipeline.FieldUsers] != tt.give[3] {
				continue
			}
			found = true
			if d[pipeline.DLQStream] != stream || !strings.Contains(d[pipeline.DLQError], tt.want) || d[pipeline.DLQDeliveries] != "1" ||
				(d[pipeline.DLQBadInput] == "1") != tt.bad {
				t.Errorf("%s: dead letter %v", tt.name, d)
			}
		}
		if !found {
			t.Errorf("%s: no dead letter keeps its fields: %v", tt.name, dead)
		}
	}
}

// TestBusyDeviceDoesNotSlowTheApp: APNs answers 429 TooManyRequests for one
// device that gets too many notifications in a row (a chat room's member).
// That device waits and is sent on a later attempt; the app's cap is not
// lowered for it, so every other device goes out as if nothing happened.
func TestBusyDeviceDoesNotSlowTheApp(t *testing.T) {
	f := newFixture(t)
	const users, refusals = 300, 3
	devices := f.seedDevices(users, false)
	busy := devices[0].token
	var answered atomic.Int64
	fake := fakeprovider.Start(t, fakeprovider.Options{ForceStatus: func(token string) (int, string) {
		if token == busy && answered.Add(1) <= refusals {
			return 429, "TooManyRequests"
		}
		return 0, ""
	}})
	f.createCampaign("cbusy", `{}`)
	f.emitUsers("cbusy", userRange(users))
	f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake)},
		TPS: 2000, InFlight: 16, RetryBase: 20 * time.Millisecond}, "d1", 30*time.Second)
	s := f.waitDone("cbusy", users, 60*time.Second)

	if s[pipeline.StatSent] != int64(len(devices)) || s[pipeline.StatFailed] != 0 {
		t.Errorf("counters %v, want all %d sent", s, len(devices))
	}
	if n := answered.Load(); n != refusals+1 {
		t.Errorf("the busy device was tried %d times, want %d refusals and a send", n, refusals)
	}
	if d := fake.Summary().Duplicates; d != 0 {
		t.Errorf("%d duplicates", d)
	}
	// A lowered cap records the cap it was lowered from (ceil) and a pause.
	m, err := f.rdb.Do(f.ctx, f.rdb.B().Hgetall().Key(f.keys.RateLimit("apns", testApp)).Build()).AsStrMap()
	if err != nil {
		t.Fatal(err)
	}
	if m["ceil"] != "" || m["pause"] != "" {
		t.Errorf("the app's cap was lowered for one busy device: %v", m)
	}
}
