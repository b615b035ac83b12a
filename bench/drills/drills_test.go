package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/pushpipe/pushpipe/pipeline"
)

// (a) Redis is SIGKILLed mid-campaign and restarted from its AOF
// (appendfsync everysec). The stages reconnect by themselves; the campaign
// completes; every device is reached; a device is sent twice only if its
// first send fell in the last unsynced moments before the kill (its sent mark
// was lost with the AOF tail), and every duplicate carries the campaign's
// collapse id, so the phone shows one notification.
func TestDrillRedisKilledMidCampaign(t *testing.T) {
	r := newRig(t, rigOptions{Users: 4000, TPS: 800})
	r.createCampaign("drill-a")
	r.waitThirdSent()
	killedAt := time.Now()
	if err := r.redis.Kill(); err != nil {
		t.Fatal(err)
	}
	before, _ := r.summary()
	time.Sleep(time.Second) // the outage: stages see refused connections and back off
	if err := r.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	p := r.waitDone("drill-a", 120*time.Second)
	sum := r.settle()
	recs := r.receipts()
	perToken := r.checkReached(recs, "drill-a")

	// A duplicate's first acceptance must lie in the window whose sent marks
	// Redis could lose: everysec fsyncs once a second and may fall up to
	// another second behind under load (allow a third), and requests in
	// flight when Redis died are accepted by the provider just after the
	// kill, with no Redis to record them in.
	const window, inFlight = 3 * time.Second, 500 * time.Millisecond
	first := map[string]int64{}
	dups := 0
	for _, rc := range recs {
		if _, seen := first[rc.Token]; !seen {
			first[rc.Token] = rc.AtMs
			continue
		}
		dups++
		if at := time.UnixMilli(first[rc.Token]); at.Before(killedAt.Add(-window)) || at.After(killedAt.Add(inFlight)) {
			t.Errorf("token %s sent twice, first at %s: not within %v before to %v after the kill at %s",
				rc.Token, at.Format("15:04:05.000"), window, inFlight, killedAt.Format("15:04:05.000"))
		}
	}
	if uint64(dups) != sum.Duplicates {
		t.Errorf("counted %d duplicates in receipts, provider says %d", dups, sum.Duplicates)
	}
	maxPer := 0
	for _, n := range perToken {
		maxPer = max(maxPer, n)
	}
	if maxPer > 2 {
		t.Errorf("a device was sent %d times", maxPer)
	}
	t.Logf("redis killed after %d accepted; campaign done: %+v; provider: %d accepted, %d unique, %d duplicates (all collapse id drill-a)",
		before.Accepted, p, sum.Accepted, sum.Unique, sum.Duplicates)
}

// (a') Redis stops answering mid-campaign for longer than the clients'
// write timeout (SIGSTOP: its connections stay open and nothing comes back,
// as a primary whose host hangs or whose network drops every packet, where
// (a)'s refuses at once), then goes on with every write it had. Nothing
// crashed, so nothing may be lost or repeated: the calls in the air time
// out, the stages redial a server that accepts and says nothing, the
// batches in hand wait for Redis and commit once it answers, and no entry
// is read again behind the back of the worker that holds it.
func TestDrillRedisFrozenMidCampaign(t *testing.T) {
	parallelDrill(t)
	// The processes' write timeout is 3 s, not the default 10 s: the
	// freeze outlasts it as much, in 7 s less of CI.
	const timeout, frozen = 3 * time.Second, 5 * time.Second
	r := newRig(t, rigOptions{Users: 4000, TPS: 800, RedisWriteTimeout: timeout})
	r.createCampaign("drill-f")
	r.waitThirdSent()
	if err := r.redis.Freeze(); err != nil {
		t.Fatal(err)
	}
	frozenAt, _ := r.summary()
	time.Sleep(frozen) // past the processes' write timeout
	r.redis.Thaw()
	p, sum := r.doneEachOnce("drill-f")
	t.Logf("redis frozen for %v (write timeout %v) after %d accepted; done: %+v; provider %+v", frozen, timeout, frozenAt.Accepted, p, sum)
}

// (b) PostgreSQL is stopped mid-campaign and started again. Resolve and
// deliver cannot read; they back off and resume; nothing is lost, nothing is
// sent twice (Redis kept every mark).
func TestDrillPostgresRestartedMidCampaign(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 4000, TPS: 800, OwnPostgres: true})
	r.createCampaign("drill-b")
	r.waitThirdSent()
	if err := r.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt, _ := r.summary()
	time.Sleep(3 * time.Second)
	if err := r.pg.Start(); err != nil {
		t.Fatal(err)
	}
	p, sum := r.doneEachOnce("drill-b")
	t.Logf("postgres down for 3 s after %d accepted; done: %+v; provider %+v", stoppedAt.Accepted, p, sum)
}

// (c) The provider answers 503 to everything for longer than deliver's retry
// budget: the users go to the DLQ with the reason. After the outage,
// `pushpipe dlq retry --all` re-injects them and the campaign reaches
// everyone, nobody twice.
func TestDrillProviderOutageThenDLQRetry(t *testing.T) {
	parallelDrill(t)
	// The outage lasts until the drill ends it (POST /_outage?for=0), not
	// for a fixed time: on a loaded machine a timed outage ended before the
	// retry budget was spent.
	r := newRig(t, rigOptions{Users: 2000, TPS: 2000,
		Fake:    []string{"--outage", "1h"},
		Deliver: []string{"--max-attempts", "2", "--retry-base", "100ms", "--retry-max", "200ms"}})
	r.createCampaign("drill-c")
	q := pipeline.NewDLQ(r.rdb, r.keys)
	r.poll(60*time.Second, "every deliver entry settled into the DLQ", func() bool {
		n, err := q.Len(context.Background())
		return err == nil && n > 0 && r.pipelineIdle()
	})
	letters, err := q.List(context.Background(), pipeline.DLQFilter{Campaign: "drill-c"})
	if err != nil {
		t.Fatal(err)
	}
	users := 0
	for _, d := range letters {
		if d.Name != pipeline.StreamDeliver || d.Error == "" {
			t.Errorf("dead letter %s: from %q, reason %q", d.ID, d.Name, d.Error)
		}
		if d.Malformed != "" {
			t.Fatalf("dead letter %s cannot be retried: %s", d.ID, d.Malformed)
		}
		ids, err := pipeline.DecodeIDs(d.Fields[pipeline.FieldUsers])
		if err != nil {
			t.Fatalf("dead letter %s: users: %v", d.ID, err)
		}
		users += len(ids)
	}
	if sum, err := r.summary(); err != nil || sum.Accepted != 0 {
		t.Fatalf("provider accepted %d during its outage (err %v)", sum.Accepted, err)
	}
	if users != r.opts.Users {
		t.Fatalf("DLQ holds %d users in %d letters, want all %d", users, len(letters), r.opts.Users)
	}
	listed := r.cli("dlq", "list", "--campaign", "drill-c", "--limit", "0")
	if !strings.Contains(listed, fmt.Sprintf("%d shown", len(letters))) {
		t.Errorf("dlq list output:\n%s", listed)
	}

	resp, err := r.https.Post("https://"+r.fake+"/_outage?for=0s", "text/plain", nil) // the provider is back
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ending the outage: %s", resp.Status)
	}
	out := r.cli("dlq", "retry", "--all", "--campaign", "drill-c")
	if !strings.Contains(out, fmt.Sprintf("retried %d dead letters", len(letters))) {
		t.Errorf("dlq retry output: %s", out)
	}
	r.poll(60*time.Second, "everyone reached after the retry", func() bool {
		s, err := r.summary()
		return err == nil && s.Unique >= uint64(r.opts.Users)
	})
	sum := r.eachOnce("drill-c")
	if n, err := q.Len(context.Background()); err != nil || n != 0 {
		t.Errorf("%d dead letters left after the retry (err %v)", n, err)
	}
	p, err := r.progress("drill-c")
	t.Logf("%d letters (%d users) retried; progress %+v (%v); provider %+v", len(letters), users, p, err, sum)
}

// (d) Replaying a delivered window sends nothing new; --force resends
// exactly that window, once. Also: `pushpipe status` and every process's
// /metrics (promtool's lint) on the same running pipeline.
func TestDrillReplayWindow(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 3000, TPS: 5000})
	r.createCampaign("drill-d")
	r.waitDone("drill-d", 90*time.Second)
	sum := r.settle()
	r.checkReached(r.receipts(), "drill-d")
	if sum.Duplicates != 0 {
		t.Fatalf("%d duplicates before any replay", sum.Duplicates)
	}

	// The original deliver entries, in id order across partitions.
	type entry struct {
		id    string
		users []int64
	}
	var entries []entry
	for _, key := range r.keys.Streams(pipeline.StreamDeliver) {
		xs, err := r.rdb.Do(context.Background(), r.rdb.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers])
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, entry{x.ID, ids})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmpID(a.id, b.id) })
	if len(entries) < 4 {
		t.Fatalf("only %d deliver entries; the window needs more", len(entries))
	}

	// Without --force: everything replayed, nothing sent.
	out := r.cli("replay", "--stream", "deliver", "--from", "0", "--campaign", "drill-d")
	if !strings.Contains(out, fmt.Sprintf("re-injected %d of %d", len(entries), len(entries))) {
		t.Errorf("replay output: %s", out)
	}
	if after := r.settle(); after.Accepted != sum.Accepted {
		t.Fatalf("an idempotent replay sent %d notifications", after.Accepted-sum.Accepted)
	}

	// With --force: exactly the window [from, to], inclusive.
	from, to := entries[len(entries)/4].id, entries[len(entries)/2].id
	want := map[int64]bool{}
	for _, e := range entries {
		if cmpID(e.id, from) >= 0 && cmpID(e.id, to) <= 0 {
			for _, u := range e.users {
				want[u] = true
			}
		}
	}
	before := len(r.receipts())
	r.cli("replay", "--stream", "deliver", "--from", from, "--to", to, "--force")
	r.poll(60*time.Second, "the forced window sent", func() bool {
		s, err := r.summary()
		return err == nil && s.Accepted >= sum.Accepted+uint64(len(want))
	})
	r.settle()
	resent := map[int64]int{}
	for _, rc := range r.receipts()[before:] {
		resent[r.tokens[rc.Token]]++
		if rc.CollapseID != "drill-d" {
			t.Errorf("forced resend without the collapse id: %+v", rc)
		}
	}
	for u := range want {
		if resent[u] != 1 {
			t.Errorf("user %d in the window resent %d times, want 1", u, resent[u])
		}
	}
	for u, n := range resent {
		if !want[u] {
			t.Errorf("user %d outside the window resent %d times", u, n)
		}
	}
	t.Logf("window %s..%s: %d users resent with --force; idempotent replay of %d entries sent nothing", from, to, len(resent), len(entries))

	t.Run("status", func(t *testing.T) {
		var rep struct {
			Streams []pipeline.StreamStatus `json:"streams"`
			DLQ     int64                   `json:"dlq"`
		}
		if err := json.Unmarshal([]byte(r.cli("status", "--json")), &rep); err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Streams {
			for _, g := range s.Groups {
				// A consumer appears on a partition once it was delivered an
				// entry there: at most the one process of each stage.
				if g.Lag != 0 || g.Pending != 0 || g.Consumers > 1 {
					t.Errorf("%s/%s: lag %d pending %d consumers %d; want 0, 0, ≤ 1", s.Name, g.Name, g.Lag, g.Pending, g.Consumers)
				}
			}
		}
		text := r.cli("status", "drill-d")
		t.Log("\n" + text)
		if !strings.Contains(text, "campaign drill-d  done") || !strings.Contains(text, "100.0%") {
			t.Errorf("status drill-d:\n%s", text)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		promtool, _ := exec.LookPath("promtool")
		for name, addr := range r.ops {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			// promtool check metrics = this lint (client_golang's promlint)
			// after its own parse; the real binary runs too when installed.
			problems, err := promlint.New(bytes.NewReader(body)).Lint()
			if err != nil || len(problems) > 0 {
				t.Errorf("%s /metrics: %v %v", name, err, problems)
			}
			if promtool != "" {
				cmd := exec.Command(promtool, "check", "metrics")
				cmd.Stdin = bytes.NewReader(body)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s: promtool check metrics: %v\n%s", name, err, out)
				}
			}
		}
		if promtool == "" {
			t.Log("promtool not installed: checked with promlint only")
		}
	})
}

func cmpID(a, b string) int {
	var am, as, bm, bs uint64
	fmt.Sscanf(a, "%d-%d", &am, &as)
	fmt.Sscanf(b, "%d-%d", &bm, &bs)
	switch {
	case am != bm:
		return cmpU(am, bm)
	default:
		return cmpU(as, bs)
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// (e) Redis lost a campaign's entry (a failover to a replica that had not
// received it yet): the campaign row is in PostgreSQL, but nothing in Redis
// knows it and it would stay "splitting" forever. `pushpipe replay --resplit`
// re-drives it from its source: everyone reached, nobody twice.
func TestDrillResplitALostCampaign(t *testing.T) {
	parallelDrill(t)
	r := newRig(t, rigOptions{Users: 2000, TPS: 5000})
	split := r.stop("split") // so the entry cannot be read before it is "lost"
	r.createCampaign("drill-e")
	ctx := context.Background()
	lost := 0
	for _, key := range r.keys.Streams(pipeline.StreamCampaigns) {
		xs, err := r.rdb.Do(ctx, r.rdb.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRange()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if err := r.rdb.Do(ctx, r.rdb.B().Xdel().Key(key).Id(x.ID).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			lost++
		}
	}
	if lost != 1 {
		t.Fatalf("deleted %d campaign entries, want 1", lost)
	}
	r.restart(split)
	r.settle()
	if p, err := r.progress("drill-e"); err != nil || p.State != "splitting" {
		t.Fatalf("lost campaign: %+v, %v; want it stuck splitting", p, err)
	}
	if out := r.cli("replay", "--resplit", "--campaign", "drill-e"); !strings.Contains(out, "appended to campaigns") {
		t.Errorf("resplit output: %s", out)
	}
	r.waitDone("drill-e", 60*time.Second)
	r.eachOnce("drill-e")
	cmd := exec.Command(bin, "replay", "--resplit", "--campaign", "no-such-campaign")
	cmd.Env = r.env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no campaign no-such-campaign: check the id") {
		t.Errorf("resplit of an unknown campaign: %v\n%s", err, out)
	}
}

// (f) Redis lost everything mid-campaign (restarted without persistence):
// streams, groups, marks and counters are gone. The stages recreate their
// groups by themselves, and `pushpipe replay --resplit` re-runs the campaign
// from PostgreSQL: nobody is lost; a device is sent twice only if its first
// send started before deliver found its batch lost (the runner checks a
// batch in progress is still its own every 250ms, Options.KeepEvery: see
// pipeline.Batch.Lost), with the campaign's collapse id, so the phone shows
// one notification. Without that check the pre-loss batch went on sending
// for seconds while the resplit's batch, which had read the (empty) sent
// marks, sent the same devices.
func TestDrillResplitAfterRedisLostEverything(t *testing.T) {
	r := newRig(t, rigOptions{Users: 3000, TPS: 600})
	r.createCampaign("drill-f")
	r.waitThirdSent()
	before, _ := r.summary()
	if err := r.rdb.Do(context.Background(), r.rdb.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	lostAt := time.Now()
	r.cli("replay", "--resplit", "--campaign", "drill-f")
	r.waitDone("drill-f", 90*time.Second)
	sum := r.settle()
	recs := r.receipts()
	r.checkReached(recs, "drill-f")
	// The loss is found within one keep interval (250ms) plus a keep call;
	// a busy machine gets the rest of the second.
	noticed := lostAt.Add(time.Second)
	first := map[string]int64{}
	for _, rc := range recs {
		if at, seen := first[rc.Token]; seen && time.UnixMilli(at).After(noticed) {
			t.Errorf("token %s sent twice, first at %s, after the loss at %s", rc.Token,
				time.UnixMilli(at).Format("15:04:05.000"), lostAt.Format("15:04:05.000"))
		} else if !seen {
			first[rc.Token] = rc.AtMs
		}
	}
	// Sent before the loss, plus what the rate cap lets through until the
	// loss is noticed.
	if allow := before.Accepted + uint64(r.opts.TPS); sum.Duplicates > allow {
		t.Errorf("%d duplicates, but only %d devices had been sent when Redis lost its data (allowed %d)",
			sum.Duplicates, before.Accepted, allow)
	}
	t.Logf("redis flushed after %d sends; provider %d accepted, %d unique, %d duplicates (every one first sent before the loss was noticed)",
		before.Accepted, sum.Accepted, sum.Unique, sum.Duplicates)
}
