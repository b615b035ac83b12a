package drills

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Campaign lifecycle drills (DESIGN guarantee 7): a schedule survives
// restarts and two schedulers, a cancel stops the provider requests within
// a second, a campaign's own rate holds at the provider.

// call makes an API request with the operator token.
func (r *rig) call(method, path, body string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(method, "http://"+r.apiAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// lifecycle is the part of a campaign's status the drills look at.
type lifecycle struct {
	State     string     `json:"state"`
	Targets   int64      `json:"targets"`
	Sent      int64      `json:"sent"`
	Failed    int64      `json:"failed"`
	StartedAt *time.Time `json:"started_at"`
	// ExpectedFinishMs is when, at its rate so far, a running campaign's
	// last target is done.
	ExpectedFinishMs int64      `json:"expected_finish_ms"`
	FinishedAt       *time.Time `json:"finished_at"`
	Audience         int64      `json:"audience"`
	ExpiresAt        time.Time  `json:"expires_at"`
	FirstSendMs      int64      `json:"first_send_ms"`
}

func (r *rig) lifecycle(id string) lifecycle {
	r.t.Helper()
	code, b := r.call("GET", "/v1/campaigns/"+id, "")
	var l lifecycle
	if err := json.Unmarshal(b, &l); code != 200 || err != nil {
		r.t.Fatalf("GET campaign %s: %d %s", id, code, b)
	}
	return l
}

// campaignBody is a campaign to the drill channel with extra members.
func campaignBody(id, extra string) string {
	return fmt.Sprintf(`{"id":%q,"app":%q,"channels":[%q],"notification":{"title":"Drill","body":"%s"}%s}`,
		id, drillApp, drillChannel, id, extra)
}

func (r *rig) receiptsOf(id string) []receipt {
	var out []receipt
	for _, rc := range r.receipts() {
		if rc.CollapseID == id {
			out = append(out, rc)
		}
	}
	return out
}

// A campaign scheduled a few seconds ahead starts within a second of
// send_at and not before, although split, deliver and Redis (AOF) restart
// in between and a second split process races the first to release it;
// every device gets it once. Canceling it once done is a 409.
func TestDrillScheduledCampaign(t *testing.T) {
	r := newRig(t, rigOptions{Users: 2000, TPS: 5000})
	r.start("split", "split", "--http", r.freeAddr(), "--consumer", "split-2", "--claim-idle", "3s") // a second scheduler
	sendAt := time.Now().Add(6 * time.Second).Truncate(time.Second)
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("later", `,"send_at":"`+sendAt.UTC().Format(time.RFC3339)+`"`)); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	if l := r.lifecycle("later"); l.State != "scheduled" {
		t.Fatalf("state %q before send_at, want scheduled", l.State)
	}
	time.Sleep(1500 * time.Millisecond) // AOF everysec has the schedule
	if err := r.redis.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"deliver", "split"} {
		r.restart(r.stop(name))
	}
	// The release is due at send_at, or as soon as the schedulers are back
	// when the restarts ended after it (a busy machine).
	due := sendAt
	if back := time.Now(); back.After(sendAt) {
		t.Logf("restarts ended %v after send_at (a busy machine): the release is checked from then", back.Sub(sendAt))
		due = back
	}
	l := r.lifecycle("later")
	if time.Now().Before(sendAt) && l.State != "scheduled" {
		t.Fatalf("state %q before send_at after the restarts, want scheduled", l.State)
	}
	r.waitDone("later", 90*time.Second)
	r.settle()
	recs := r.receiptsOf("later")
	perToken := r.checkReached(recs, "later")
	for tok, n := range perToken {
		if n != 1 {
			t.Errorf("token %s sent %d times", tok, n)
		}
	}
	for _, rc := range recs {
		if rc.AtMs < sendAt.UnixMilli() {
			t.Fatalf("a device got it at %d, %d ms before send_at", rc.AtMs, sendAt.UnixMilli()-rc.AtMs)
		}
	}
	l = r.lifecycle("later")
	if l.StartedAt == nil || l.StartedAt.Before(sendAt) || l.StartedAt.After(due.Add(time.Second)) {
		t.Errorf("started at %v, want within 1 s after %v (send_at %v)", l.StartedAt, due, sendAt)
	}
	if code, b := r.call("POST", "/v1/campaigns/later/cancel", ""); code != http.StatusConflict {
		t.Errorf("cancel of a done campaign: %d %s, want 409", code, b)
	}
	t.Logf("send_at %s, started %s, first receipt +%d ms", sendAt.Format("15:04:05.000"),
		l.StartedAt.Format("15:04:05.000"), recs[0].AtMs-sendAt.UnixMilli())
}

// A scheduled campaign canceled before send_at sends nothing, ever.
func TestDrillCancelScheduled(t *testing.T) {
	r := newRig(t, rigOptions{Users: 500, TPS: 5000})
	sendAt := time.Now().Add(2 * time.Second)
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("never", `,"send_at":"`+sendAt.UTC().Format(time.RFC3339Nano)+`"`)); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	for range 2 { // idempotent
		if code, b := r.call("POST", "/v1/campaigns/never/cancel", ""); code != 200 || !strings.Contains(string(b), `"state":"canceled"`) {
			t.Fatalf("cancel: %d %s", code, b)
		}
	}
	time.Sleep(time.Until(sendAt) + 2*time.Second)
	r.settle()
	if recs := r.receiptsOf("never"); len(recs) != 0 {
		t.Fatalf("%d devices got a campaign canceled before its send_at", len(recs))
	}
	if l := r.lifecycle("never"); l.State != "canceled" || l.Sent != 0 || l.StartedAt != nil {
		t.Fatalf("after send_at: %+v, want canceled, nothing sent, never started", l)
	}
	// the pipeline still works: a campaign after it is sent
	r.createCampaign("after")
	r.waitDone("after", 60*time.Second)
}

// Cancel at about 30% of a campaign held to 2000/s: no provider request of
// it starts more than 1 s after the cancel returned, and the final counts
// are what the provider accepted. 10,000 users in `make test`: the cancel
// comes 1.5 s into the sends, with 3.5 s of them still to go, over three
// times the bound a late stop is caught by (20,000 was 10 serial seconds
// more of seeding, sending and putting off entries canceled, proving no
// more); PUSHPIPE_CANCEL_USERS=100000 is the size, run by hand.
func TestDrillCancelMidCampaign(t *testing.T) {
	users := 10_000
	if n, err := strconv.Atoi(os.Getenv("PUSHPIPE_CANCEL_USERS")); err == nil && n > 0 {
		users = n
	}
	r := newRig(t, rigOptions{Users: users, TPS: 2000, Fake: []string{"--tps", "2500"}})
	r.createCampaign("stop-me")
	r.poll(60*time.Second, "30% sent", func() bool {
		s, err := r.summary()
		return err == nil && s.Accepted >= uint64(users*3/10)
	})
	code, b := r.call("POST", "/v1/campaigns/stop-me/cancel", "")
	returned := time.Now()
	if code != 200 || !strings.Contains(string(b), `"state":"canceled"`) {
		t.Fatalf("cancel: %d %s", code, b)
	}
	sum := r.settle()
	recs := r.receiptsOf("stop-me")
	var last int64
	for _, rc := range recs {
		last = max(last, rc.AtMs)
	}
	if late := time.UnixMilli(last).Sub(returned); late > time.Second {
		t.Errorf("a provider request started %v after the cancel returned", late)
	}
	if len(recs) >= users {
		t.Fatalf("all %d devices were sent: the cancel stopped nothing", len(recs))
	}
	l := r.lifecycle("stop-me")
	if l.State != "canceled" || l.Sent != int64(len(recs)) || uint64(l.Sent) != sum.Accepted {
		t.Errorf("final %+v; provider accepted %d (receipts %d)", l, sum.Accepted, len(recs))
	}
	if code, _ := r.call("POST", "/v1/campaigns/stop-me/cancel", ""); code != 200 {
		t.Errorf("cancel again: %d, want 200", code)
	}
	t.Logf("canceled after %d sends; last receipt %+d ms after the cancel returned",
		l.Sent, last-returned.UnixMilli())
}

// A campaign with rate_per_second 500 beside an uncapped one, sent by two
// deliver processes: at the provider it never passes 500 in a second
// (slack for the timing of a busy machine), the cap being the cluster's,
// not each process's, while the other goes at full speed; halfway, the
// capped one's expected finish is about when it finishes.
func TestDrillCampaignRate(t *testing.T) {
	const users, rate = 4000, 500
	r := newRig(t, rigOptions{Users: users, TPS: 5000})
	r.startTwin("deliver")
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("slow", `,"rate_per_second":`+strconv.Itoa(rate))); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	r.createCampaign("fast")
	// Halfway, the report says when the campaign will finish. Before
	// deliver paced a capped campaign's entries and counted users done
	// within a round, its rounds lasted as long as it did: nobody was done
	// until the end, and there was no estimate.
	var half lifecycle
	var halfAt time.Time
	r.poll(60*time.Second, "the slow campaign half sent", func() bool {
		half, halfAt = r.lifecycle("slow"), time.Now()
		return half.Sent >= users/2 || half.State == "done"
	})
	r.waitDone("fast", 60*time.Second)
	r.waitDone("slow", 90*time.Second)
	done := r.lifecycle("slow")
	fast := r.lifecycle("fast")
	// The cap is the slow campaign's own: the other is not held to its
	// pace (alone it takes half a second, the slow one 8 s). Before deliver
	// paced a capped campaign's entries, they held every handler, and both
	// finished together.
	if fast.FinishedAt == nil || done.FinishedAt.Sub(*fast.FinishedAt) < time.Duration(users/rate)*time.Second/4 {
		t.Errorf("the uncapped campaign finished at %v, the capped one at %v: held to the cap's pace", fast.FinishedAt, done.FinishedAt)
	}
	if half.State != "running" || done.FinishedAt == nil {
		t.Fatalf("halfway: %+v; at the end: %+v", half, done)
	}
	// Within what was left, or 3 s: the estimate is the pace so far, and
	// on a busy machine the first half (its start, beside the other
	// campaign) goes slower than the second: CI under -race estimated
	// 6.9 s for a half that took 4.3 s. Without an estimate (before), it
	// is off by the whole epoch.
	left := done.FinishedAt.Sub(halfAt)
	off := time.UnixMilli(half.ExpectedFinishMs).Sub(*done.FinishedAt)
	if off.Abs() > max(3*time.Second, left) {
		t.Errorf("with %d of %d sent, expected to finish at %d (%v off), finished %v later", half.Sent, users,
			half.ExpectedFinishMs, off, left)
	}
	r.settle()
	slow := r.receiptsOf("slow")
	at, most := mostInASecond(slow)
	if most > rate*11/10 {
		t.Errorf("slow campaign: %d sends in one second at the provider, cap %d", most, rate)
	}
	if len(slow) != users {
		t.Errorf("slow campaign reached %d of %d", len(slow), users)
	}
	for _, name := range []string{"deliver", "deliver-2"} {
		if n := r.sentBy(name); n == 0 {
			t.Errorf("%s sent nothing: the cap was not shared by two processes", name)
		}
	}
	span := time.Duration(at[len(at)-1]-at[0]) * time.Millisecond
	if min := time.Duration(users/rate-1) * time.Second; span < min {
		t.Errorf("slow campaign took %v, at %d/s it takes at least %v", span, rate, min)
	}
	t.Logf("slow: %d sends over %v, at most %d in any second; halfway its finish was expected %v off", len(slow), span, most, off)
}

// A capped campaign whose cap cannot reach its audience within its TTL:
// while it runs its status says it would finish after it expires; nothing
// reaches the provider past the expiry, the rest fail as expired, and it
// still ends done, every device sent or failed.
func TestDrillCampaignOutlastsItsTTL(t *testing.T) {
	const users, rate, ttl = 4000, 200, 10 // 20 s of sends in a 10 s life
	r := newRig(t, rigOptions{Users: users, TPS: 5000})
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("late", fmt.Sprintf(`,"rate_per_second":%d,"ttl_seconds":%d`, rate, ttl))); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var warned lifecycle
	r.poll(30*time.Second, "an expected finish, or the expiry", func() bool {
		warned = r.lifecycle("late")
		return warned.ExpectedFinishMs > 0 || !time.Now().Before(warned.ExpiresAt)
	})
	if warned.ExpectedFinishMs <= warned.ExpiresAt.UnixMilli() {
		t.Errorf("before its expiry: %+v, want an expected finish after expires_at", warned)
	}
	done := r.waitDone("late", 60*time.Second)
	r.settle()
	late := 0
	for _, rc := range r.receiptsOf("late") {
		// A send starts before the expiry; the provider gets it a moment
		// later.
		if time.UnixMilli(rc.AtMs).After(warned.ExpiresAt.Add(time.Second)) {
			late++
		}
	}
	sent := int64(len(r.receiptsOf("late")))
	if done.Sent != sent || done.Sent+done.Failed != users || done.Failed == 0 || late > 0 {
		t.Errorf("%+v; %d at the provider, %d of them past the expiry: want every device sent or failed, some failed, none late",
			done, sent, late)
	}
	t.Logf("%d sent within its %d s, %d failed as expired", done.Sent, ttl, done.Failed)
}

// A capped campaign far larger than its cap sends in a few seconds is cut
// only --paced-ahead ahead of its sends. Deliver puts its entries off to
// their slots in the deliver stream's delayed set, which split's backlog
// mark does not count: before split paced itself, the whole campaign (here
// 100 s of sends) sat in Redis within a second of its start, as a 100M-user
// campaign at 500/s would have for two days. A cancel then stops it.
func TestDrillCappedCampaignCutAhead(t *testing.T) {
	const users, rate, ahead = 20000, 200, 8 * time.Second
	r := newRig(t, rigOptions{Users: users, TPS: 5000, Split: []string{"--paced-ahead", ahead.String()}})
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("big", `,"rate_per_second":`+strconv.Itoa(rate))); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	r.poll(30*time.Second, "sends under way", func() bool { return r.lifecycle("big").Sent >= rate })
	var mostAhead, mostHeld, mostBehind int64
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		cut, held := r.cutOf("big"), r.delayedDeliver()
		l := r.lifecycle("big")
		// Split paces by deliver's schedule, which reserves a slot a send
		// at the cap: on a machine too loaded to send 200/s the sends fall
		// behind the schedule, by what the cap would have sent by now
		// beyond what was. That is behind, not ahead.
		behind := max(0, rate*time.Since(time.UnixMilli(l.FirstSendMs)).Milliseconds()/1000-l.Sent)
		mostAhead, mostHeld, mostBehind = max(mostAhead, cut-l.Sent-behind), max(mostHeld, held), max(mostBehind, behind)
	}
	// An allowance is rate×ahead users (1,600, four ranges of 500), cut once
	// the schedule is within ahead/2 of now; the call after a cut comes
	// ahead/2 later, when resolve and dedupe have passed the allowance on
	// to deliver's schedule unless they take longer than that: about two
	// allowances, a third while they are that slow (CI under -race). Uncut,
	// the whole campaign is ahead of its sends.
	if limit := int64(4 * rate * ahead.Seconds()); mostAhead > limit {
		t.Errorf("split cut up to %d users ahead of the sends, want at most %d (%v at %d/s, with slack)", mostAhead, limit, ahead, rate)
	}
	t.Logf("at most %d users cut ahead of the sends, %d entries in deliver's delayed set, sends at most %d behind their cap", mostAhead, mostHeld, mostBehind)
	// Its progress goes by its audience, not by the few targets cut so
	// far: the expected finish is most of its 100 s away, not seconds.
	// Bounded at half the time its unsent users take at the cap: on a
	// loaded machine the sends fall behind their slots and catch up in
	// bursts, and the recent pace read over one was 10% above the cap
	// (82.3 s left where the cap's bound said 82.4); the few targets cut
	// so far would say seconds.
	l := r.lifecycle("big")
	left := time.Until(time.UnixMilli(l.ExpectedFinishMs))
	if l.State != "splitting" || l.Audience != users || left < time.Duration(users-2*l.Sent)*time.Second/(2*rate) {
		t.Errorf("%d of %d users sent: state %s, audience %d, expected finish in %v", l.Sent, users, l.State, l.Audience, left)
	}
	t.Logf("%d sent, expected to finish in %v", l.Sent, left)
	if code, b := r.call("POST", "/v1/campaigns/big/cancel", ""); code != 200 {
		t.Fatalf("cancel: %d %s", code, b)
	}
	r.poll(75*time.Second, "the canceled campaign's entries let go", func() bool { return r.delayedDeliver() == 0 })
}

// cutOf is the users in the ranges split emitted for campaign id (the
// drill's ranges are full but for each segment's last).
func (r *rig) cutOf(id string) int64 {
	r.t.Helper()
	var n int64
	for _, s := range r.keys.Streams(pipeline.StreamRanges) {
		xs, err := r.rdb.Do(r.t.Context(), r.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			r.t.Fatal(err)
		}
		for _, x := range xs {
			if x.FieldValues[pipeline.FieldCampaign] == id {
				lo, _ := strconv.ParseInt(x.FieldValues[pipeline.FieldLo], 10, 64)
				hi, _ := strconv.ParseInt(x.FieldValues[pipeline.FieldHi], 10, 64)
				n += r.subscribersIn(lo, hi)
			}
		}
	}
	return n
}

// subscribersIn is the drill's users (173·(1..Users)) in [lo, hi].
func (r *rig) subscribersIn(lo, hi int64) int64 {
	first := max((lo+172)/173, 1)
	last := min(hi/173, int64(r.opts.Users))
	return max(last-first+1, 0)
}

// delayedDeliver is the entries waiting in deliver's delayed sets.
func (r *rig) delayedDeliver() int64 {
	r.t.Helper()
	var n int64
	for _, s := range r.keys.Streams(pipeline.StreamDeliver) {
		c, err := r.rdb.Do(r.t.Context(), r.rdb.B().Zcard().Key(pipeline.DelayedKey(s)).Build()).AsInt64()
		if err != nil {
			r.t.Fatal(err)
		}
		n += c
	}
	return n
}

// The operator's commands: `pushpipe campaigns list|cancel` over the same
// campaigns as the API, and `pushpipe import subscribers` naming the lines
// it skipped.
func TestDrillCampaignCommands(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 300, TPS: 5000})
	r.createCampaign("first")
	r.waitDone("first", 60*time.Second)
	sendAt := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("second", `,"send_at":"`+sendAt+`"`)); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	table := r.cli("campaigns", "list")
	for _, want := range []string{"second  scheduled", "first   done", "[####################] 100.0%"} {
		if !strings.Contains(table, want) {
			t.Errorf("campaigns list has no %q:\n%s", want, table)
		}
	}
	var page struct {
		Campaigns []struct{ ID, State string }
		Next      string
	}
	if err := json.Unmarshal([]byte(r.cli("campaigns", "list", "--json", "--limit", "1")), &page); err != nil ||
		len(page.Campaigns) != 1 || page.Campaigns[0].ID != "second" || page.Next != "second" {
		t.Fatalf("campaigns list --json --limit 1: %+v %v", page, err)
	}
	if out := r.cli("campaigns", "cancel", "second", "--json"); !strings.Contains(out, `"state":"canceled"`) {
		t.Errorf("campaigns cancel: %s", out)
	}

	file := filepath.Join(r.dir, "ids.txt")
	if err := os.WriteFile(file, []byte("5\n6\nseven\n8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "import", "subscribers", "--channel", "imported", file)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "line 3: ") || !strings.Contains(string(out), "imported 3 subscribers") {
		t.Fatalf("import with a bad line: %v\n%s", err, out)
	}
	var n int
	conn, err := pgx.Connect(t.Context(), r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM subscriptions WHERE channel = 'imported'`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d subscribers imported (%v), want 3", n, err)
	}
}

// deliver is SIGKILLed twice while a capped campaign is sending, with many
// of its entries put off to their slots (pace.go): the campaign completes,
// every device reached once except the sends in flight at each kill, and
// the cap holds through the restarts.
func TestDrillCappedCampaignDeliverKilled(t *testing.T) {
	const users, rate, inFlight = 3000, 600, 32
	r := newRig(t, rigOptions{Users: users, TPS: 5000, Deliver: []string{"--in-flight", strconv.Itoa(inFlight)}})
	if code, b := r.call("POST", "/v1/campaigns", campaignBody("capped", `,"rate_per_second":`+strconv.Itoa(rate))); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, part := range []int{3, 2} { // a third sent, then two thirds
		r.poll(60*time.Second, "the capped campaign's next third sent", func() bool {
			s, err := r.summary()
			return err == nil && s.ByCollapseID["capped"] >= uint64(users/part)
		})
		r.restart(r.kill("deliver"))
	}
	r.waitDone("capped", 120*time.Second)
	r.settle()
	want := make([]int64, 0, len(r.tokens))
	for _, u := range r.tokens {
		want = append(want, u)
	}
	r.checkOnce("capped", want, 2*inFlight)
	at, most := mostInASecond(r.receiptsOf("capped"))
	// Slack for the repeats at a kill and a busy machine's timing.
	if most > rate*11/10+inFlight {
		t.Errorf("%d sends in one second at the provider, cap %d", most, rate)
	}
	t.Logf("%d receipts, at most %d in a second", len(at), most)
}

// sentBy is how many devices process name sent (its deliver metrics).
func (r *rig) sentBy(name string) float64 {
	r.t.Helper()
	resp, err := http.Get("http://" + r.ops[name] + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	var n float64
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "pushpipe_deliver_sends_total{") && strings.Contains(line, `outcome="sent"`) {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]), 64)
			n += v
		}
	}
	return n
}

// mostInASecond returns the receipts' times, sorted, and the most of them
// in any one-second window.
func mostInASecond(rs []receipt) (at []int64, most int) {
	at = make([]int64, len(rs))
	for i, rc := range rs {
		at[i] = rc.AtMs
	}
	slices.Sort(at)
	for i, j := 0, 0; j < len(at); j++ {
		for at[j]-at[i] >= 1000 {
			i++
		}
		most = max(most, j-i+1)
	}
	return at, most
}
