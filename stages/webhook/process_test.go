package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// seedCampaign gives users 1..n one iOS device each in a fresh database,
// creates a running campaign and writes its deliver entries as dedupe
// would; it returns the database URL.
func (f *fixture) seedCampaign(campaign string, n int) string {
	f.t.Helper()
	url := pipelinetest.MigratedDatabaseT(f.t, env.Postgres)
	db, err := pgxpool.New(f.ctx, url)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{"app1", "tok" + strconv.Itoa(i+1), int64(i + 1), int16(devices.IOS), "en", int16(0), time.Now().Add(-time.Hour)}
	}
	if _, err := db.CopyFrom(f.ctx, pgx.Identifier{"devices"},
		[]string{"app", "token", "user_id", "platform", "locale", "state", "event_at"}, pgx.CopyFromRows(rows)); err != nil {
		f.t.Fatal(err)
	}
	if _, err := db.Exec(f.ctx, `INSERT INTO campaigns (id, app, channels, category, title, body, data, ttl_seconds, state)
		VALUES ($1, 'app1', '{news}', 'promo', 'Hello', 'World', '{}', 3600, 'running')`, campaign); err != nil {
		f.t.Fatal(err)
	}
	byPart := map[int][]int64{}
	for u := int64(1); u <= int64(n); u++ {
		p := f.keys.UserPartition(u)
		byPart[p] = append(byPart[p], u)
	}
	var msgs []pipeline.Message
	for p, us := range byPart {
		for i := 0; i < len(us); i += 500 {
			msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliver, p),
				Fields: []string{pipeline.FieldCampaign, campaign, pipeline.FieldUsers, pipeline.EncodeIDs(us[i:min(i+500, len(us))])}})
		}
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		f.t.Fatal(err)
	}
	return url
}

// Every event of a campaign delivered by a real deliver process reaches a
// receiver process that answers 500 to 20% of POSTs and 429 + Retry-After
// to 5%, is SIGKILLed and restarted twice, while the webhook process is
// SIGKILLed and restarted once: each event arrives with a valid signature,
// and an event that arrives twice is the same event (same id, same
// content). WEBHOOK_N sets the campaign's size (default 20,000; the issue's
// figure is 100,000).
func TestEveryEventArrivesThroughChaos(t *testing.T) {
	n := 20_000
	if v := os.Getenv("WEBHOOK_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	f := newFixture(t)
	dbURL := f.seedCampaign("c1", n)
	secrets := f.writeSecrets("old-secret-0123456789", "new-secret-0123456789") // the receiver has rotated to the new one
	rcv := f.startReceiver("new-secret-0123456789", "-fail", "0.2", "-throttle", "0.05")
	start := time.Now()
	f.startStage("deliver", f.stageArgs("deliver", "--database-url", dbURL, "--sink", "null", "--tps", "0")...)
	hookArgs := f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--claim-idle", "2s",
		"--max-deliveries", "1000", "--attempts", "3", "--retry-base", "50ms", "--retry-max", "2s", "--batch", "200")
	hook := f.startStage("webhook", hookArgs...)

	got := func() int { return len(accepted(rcv.posts())) }
	pipelinetest.Eventually(t, 3*time.Minute, "a fifth of the events", func() bool { return got() >= n/5 })
	rcv.p.kill()
	time.Sleep(time.Second)
	rcv.restart()
	pipelinetest.Eventually(t, 3*time.Minute, "half of the events", func() bool { return got() >= n/2 })
	hook.kill()
	f.startStage("webhook", hookArgs...) // the restart: killed by the cleanup
	pipelinetest.Eventually(t, 3*time.Minute, "70% of the events", func() bool { return got() >= n*7/10 })
	rcv.p.kill()
	time.Sleep(time.Second)
	rcv.restart()
	pipelinetest.Eventually(t, 5*time.Minute, "every event", func() bool { return got() >= n })
	took := time.Since(start)

	posts := rcv.posts()
	byID := map[string]pipeline.ResultEvent{}
	var statuses = map[int]int{}
	dups := 0
	for _, p := range posts {
		statuses[p.Status]++
		if !p.Valid {
			t.Errorf("a POST of %d events had no valid signature", p.N)
		}
		if p.Status/100 != 2 {
			continue
		}
		for _, e := range p.Events {
			if old, ok := byID[e.ID]; ok {
				dups++
				if old != e {
					t.Errorf("event %s arrived twice with different content:\n%+v\n%+v", e.ID, old, e)
				}
			}
			byID[e.ID] = e
		}
	}
	users := map[int64]bool{}
	for _, e := range byID {
		if e.Campaign != "c1" || e.Outcome != pipeline.OutcomeSent || e.App != "app1" || e.Token != "tok"+strconv.FormatInt(e.UserID, 10) {
			t.Errorf("unexpected event %+v", e)
		}
		users[e.UserID] = true
	}
	if len(byID) != n || len(users) != n {
		t.Errorf("%d distinct events for %d users, want %d", len(byID), len(users), n)
	}
	if statuses[500] == 0 || statuses[429] == 0 {
		t.Errorf("the receiver answered %v: the test did not exercise failures", statuses)
	}
	t.Logf("%d events in %v through %d POSTs (by status %v), %d events accepted twice", n, took.Round(time.Millisecond), len(posts), statuses, dups)
}

// --rate 2000: no one-second window at the receiver holds more than 2000
// events, counted over every POST whatever its answer. The cap holds on
// Redis's clock, with RateCapSlack (200ms) left for POSTs taken together
// to arrive apart; a machine at load 30 can hold a process back longer, so
// the test allows a quarter more (at load 15 the busiest second is 2000).
func TestRateCap(t *testing.T) {
	const n, rate, batch = 8000, 2000, 100
	f := newFixture(t)
	f.emitEvents("c1", n, pipeline.OutcomeSent)
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret, "-fail", "0.1")
	// Two processes share the cap.
	for _, name := range []string{"webhook-a", "webhook-b"} {
		f.startStage(name, f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets,
			"--rate", strconv.Itoa(rate), "--batch", strconv.Itoa(batch), "--retry-base", "20ms")...)
	}
	pipelinetest.Eventually(t, 2*time.Minute, "every event", func() bool { return len(accepted(rcv.posts())) >= n })
	posts := rcv.posts()
	worst, total := 0, 0
	for i, p := range posts {
		total += p.N
		in := 0
		for _, q := range posts[i:] { // the window [p.Ms, p.Ms+1000)
			if q.Ms >= p.Ms && q.Ms < p.Ms+1000 {
				in += q.N
			}
		}
		worst = max(worst, in)
	}
	if worst > rate*5/4 {
		t.Errorf("a one-second window at the receiver held %d events, cap %d", worst, rate)
	}
	span := time.Duration(posts[len(posts)-1].Ms-posts[0].Ms) * time.Millisecond
	if min := time.Duration(total/rate-1) * time.Second; span < min {
		t.Errorf("%d events arrived within %v: faster than %d/s allows (%v)", total, span, rate, min)
	}
	t.Logf("%d events POSTed (%d accepted) in %v, busiest second %d", total, n, span, worst)
}

// A receiver down past the retry budget: the batches go to the DLQ with the
// receiver's answer (and the URL without its path), a malformed entry with
// what is wrong with it; once the receiver is back, `pushpipe dlq retry`
// delivers them, two of them run at once included.
func TestDeadLettersAndRetry(t *testing.T) {
	t.Parallel() // mostly waiting (--claim-idle, redeliveries), on keys and processes of its own
	const n = 40
	f := newFixture(t)
	evs := f.emitEvents("c1", n, pipeline.OutcomeSent, pipeline.OutcomeFailed)
	bad := f.keys.Stream(pipeline.StreamResults, 0)
	if err := f.rdb.Do(f.ctx, f.rdb.B().Xadd().Key(bad).Id("*").FieldValue().FieldValue(pipeline.FieldEvents, `[{"id":"x"}]`).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret, "-down")
	f.startStage("webhook", f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--claim-idle", "1s",
		"--max-deliveries", "2", "--attempts", "2", "--retry-base", "10ms", "--retry-max", "50ms")...)
	q := pipeline.NewDLQ(f.rdb, f.keys)
	var letters []pipeline.DeadLetter
	pipelinetest.Eventually(t, 2*time.Minute, "every entry in the DLQ", func() bool {
		var err error
		letters, err = q.List(f.ctx, pipeline.DLQFilter{Stream: pipeline.StreamResults})
		return err == nil && len(letters) >= n+1
	})
	malformed := 0
	for _, d := range letters {
		switch {
		case strings.Contains(d.Error, "results entry"):
			malformed++
			if !d.BadInput {
				t.Errorf("dead letter %s: %q not marked bad input (dlq retry would not say it comes back)", d.OrigID, d.Error)
			}
		case d.BadInput:
			t.Errorf("dead letter %s: %q marked bad input", d.OrigID, d.Error)
		case !strings.Contains(d.Error, "503") || !strings.HasSuffix(d.Error, "; the receiver said: down for maintenance"):
			t.Errorf("dead letter %s: reason %q does not give the receiver's answer", d.OrigID, d.Error)
		case strings.Contains(d.Error, "/hook") || !strings.Contains(d.Error, webhook.SafeURL(rcv.url())):
			// A hook's path may be its secret (Slack's token).
			t.Errorf("dead letter %s: reason %q shows the URL's path, or not the URL as logs show it", d.OrigID, d.Error)
		}
	}
	if malformed != 1 {
		t.Errorf("%d dead letters name a malformed entry, want 1", malformed)
	}
	if got := len(accepted(rcv.posts())); got != 0 {
		t.Fatalf("%d events accepted by a receiver that is down", got)
	}

	rcv.p.kill()
	rcv.restart("-down=false")
	// Two operators retry at once, while the stage runs: every event
	// arrives, and one that arrives twice is the same event (at-least-once,
	// the receiver dedupes by id).
	bin, _ := binaries(t)
	outs, errs := make([][]byte, 2), make([]error, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			outs[i], errs[i] = exec.Command(bin, f.stageArgs("dlq", "retry", "--all", "--stream", pipeline.StreamResults)...).CombinedOutput()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("dlq retry %d: %v\n%s", i, err, outs[i])
		}
	}
	pipelinetest.Eventually(t, time.Minute, "every retried event", func() bool { return len(accepted(rcv.posts())) >= n })
	got := accepted(rcv.posts())
	for _, e := range evs {
		if got[e.ID] != e {
			t.Errorf("event %s: got %+v, want %+v", e.ID, got[e.ID], e)
		}
	}
	time.Sleep(2 * time.Second) // what a second retry re-injected is POSTed too
	times := map[string]int{}
	for _, p := range rcv.posts() {
		if p.Status/100 == 2 {
			for _, e := range p.Events {
				if times[e.ID]++; got[e.ID] != e {
					t.Errorf("event %s accepted as %+v, want %+v", e.ID, e, got[e.ID])
				}
			}
		}
	}
	twice := 0
	for _, c := range times {
		if c > 1 {
			twice++
		}
	}
	t.Logf("two concurrent retries: %d of %d events accepted more than once\n%s\n%s", twice, n, outs[0], outs[1])
}

// --filter outcome=failed,invalid: only bad news is POSTed; the rest is
// acked unsent.
func TestFilter(t *testing.T) {
	const n = 60
	f := newFixture(t)
	f.emitEvents("c1", n, pipeline.OutcomeSent, pipeline.OutcomeFailed, pipeline.OutcomeInvalid)
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret)
	f.startStage("webhook", f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--filter", "outcome=failed,invalid")...)
	pipelinetest.Eventually(t, time.Minute, "the group to read and ack everything", func() bool {
		st, err := pipeline.Status(f.ctx, f.rdb, f.keys, pipeline.StreamResults)
		if err != nil || len(st) == 0 {
			return false
		}
		for _, p := range st[0].Partitions {
			for _, g := range p.Groups {
				if g.Lag != 0 || g.Pending != 0 {
					return false
				}
			}
		}
		return len(accepted(rcv.posts())) > 0
	})
	got := accepted(rcv.posts())
	for _, e := range got {
		if e.Outcome == pipeline.OutcomeSent {
			t.Errorf("event %s with outcome sent was POSTed", e.ID)
		}
	}
	if len(got) != n*2/3 {
		t.Errorf("%d events POSTed, want %d (failed and invalid)", len(got), n*2/3)
	}
}

// Each receiver has its own group, and every group gets every event: a
// second receiver started beside the first (its own --group, from the
// oldest event kept) gets all of them too, while two processes of one
// group share them (each event to one of the two, every event once at
// least).
func TestEveryReceiverGetsEveryEvent(t *testing.T) {
	const n = 200
	f := newFixture(t)
	want := f.emitEvents("c1", n, pipeline.OutcomeSent, pipeline.OutcomeFailed)
	secrets := f.writeSecrets(testSecret)
	first, second := f.startReceiver(testSecret), f.startReceiver(testSecret)
	f.startStage("webhook-a", f.stageArgs("webhook", "--url", first.url(), "--secret-file", secrets, "--batch", "7")...)
	f.startStage("webhook-b", f.stageArgs("webhook", "--url", first.url(), "--secret-file", secrets, "--batch", "7")...)
	f.startStage("analytics", f.stageArgs("webhook", "--url", second.url(), "--secret-file", secrets, "--group", "analytics")...)
	for _, rcv := range []*receiverProc{first, second} {
		pipelinetest.Eventually(t, time.Minute, "every event at "+rcv.addr, func() bool {
			return len(accepted(rcv.posts())) == len(want)
		})
	}
	for _, rcv := range []*receiverProc{first, second} {
		got := accepted(rcv.posts())
		for _, e := range want {
			if _, ok := got[e.ID]; !ok {
				t.Errorf("receiver %s never got event %s", rcv.addr, e.ID)
			}
		}
	}
	st, err := pipeline.Status(f.ctx, f.rdb, f.keys, pipeline.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, g := range st[0].Groups {
		groups = append(groups, fmt.Sprintf("%s:%d", g.Name, g.Consumers))
	}
	slices.Sort(groups)
	if want := []string{"analytics:1", "webhook:2"}; !slices.Equal(groups, want) {
		t.Errorf("groups on results %v, want %v (group:consumers)", groups, want)
	}
}

// The process refuses to start, saying why, with a URL that is not http(s),
// without its secret file or with a flag value the stage cannot run with,
// and never prints the URL's password. Every refusal comes before Redis is
// tried, not after the 30 s a stage waits for Redis: the Redis address is
// a listener of the test's that answers nothing, and no connection may
// reach it (a time bound on a -race binary's start proves nothing on a
// loaded machine; a dial is the decision itself).
func TestRefusesToStart(t *testing.T) {
	f := newFixture(t)
	secrets := f.writeSecrets(testSecret)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not http", []string{"--url", "ftp://user:hunter2@example.com/", "--secret-file", secrets}, "http:// or https:// with a host, e.g. https://hooks.example.com/pushpipe (check --url or PUSHPIPE_WEBHOOK_URL"},
		{"no secret file", []string{"--url", "https://user:hunter2@example.com/hook", "--secret-file", f.dir + "/missing"}, "--secret-file: open " + f.dir + "/missing: no such file or directory: give a file"},
		{"empty secret file", []string{"--url", "https://user:hunter2@example.com/hook", "--secret-file", f.writeSecrets("")}, "no secret"},
		{"bad filter", []string{"--url", "https://example.com/hook", "--secret-file", secrets, "--filter", "failed"}, "outcome="},
		{"unknown outcome", []string{"--url", "https://example.com/hook", "--secret-file", secrets, "--filter", "outcome=failure"}, `outcome "failure"`},
		{"negative rate", []string{"--url", "https://example.com/hook", "--secret-file", secrets, "--rate=-5"}, "--rate must not be negative"},
		{"no attempts", []string{"--url", "https://example.com/hook", "--secret-file", secrets, "--attempts", "0"}, "--attempts must be at least 1"},
		{"no timeout", []string{"--url", "https://example.com/hook", "--secret-file", secrets, "--timeout", "0s"}, "--timeout must be a positive duration"},
		{"bad group", []string{"--url", "https://example.com/hook", "--secret-file", secrets, "--group", "my hook"}, `--group must be a word`},
	}
	bin, _ := binaries(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			redis, dials := silentListener(t)
			args := append(f.stageArgs(append([]string{"webhook"}, tt.args...)...), "--redis-addr", redis)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if n := dials(); n > 0 {
				t.Errorf("Redis was dialed %d times before the refusal", n)
			}
			if err == nil {
				t.Fatalf("started; output:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q does not say %q", out, tt.want)
			}
			if strings.Contains(string(out), "hunter2") {
				t.Errorf("output %q shows the URL's password", out)
			}
		})
	}
}

// A redirect is not a delivery: Go's client would follow a 302 with a GET
// and no body, and its 200 would ack events the receiver never got. The
// stage answers a 3xx as any other non-2xx (retry, redelivery), and the
// events arrive once the URL answers 2xx itself.
func TestRedirectIsNotDelivery(t *testing.T) {
	t.Parallel() // mostly waiting (--claim-idle), on keys, a process and a receiver of its own
	const n = 20
	f := newFixture(t)
	f.emitEvents("c1", n, pipeline.OutcomeSent)
	var (
		redirect          atomic.Bool
		redirected, moved atomic.Int64
		events            atomic.Int64
	)
	redirect.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		if redirect.Load() {
			redirected.Add(1)
			http.Redirect(w, r, "/moved", http.StatusFound)
			return
		}
		var body struct{ Events []pipeline.ResultEvent }
		if json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		events.Add(int64(len(body.Events)))
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { moved.Add(1) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.startStage("webhook", f.stageArgs("webhook", "--url", srv.URL+"/hook", "--secret-file", f.writeSecrets(testSecret),
		"--attempts", "2", "--retry-base", "10ms", "--claim-idle", "1s")...)
	pipelinetest.Eventually(t, time.Minute, "two deliveries answered 302", func() bool { return redirected.Load() >= 4 || moved.Load() > 0 })
	if moved.Load() != 0 {
		t.Errorf("the stage followed the redirect %d times", moved.Load())
	}
	if events.Load() != 0 {
		t.Fatalf("%d events delivered while the URL redirected", events.Load())
	}
	redirect.Store(false)
	pipelinetest.Eventually(t, time.Minute, "every event delivered once the URL answers 200", func() bool { return events.Load() >= n })
}

// A receiver's Retry-After quiets the whole process, not only the request
// it answered: POSTs of the stage's other handlers already in flight
// arrive, but none starts until the time is up, and then every event
// arrives.
func TestRetryAfterQuietsTheProcess(t *testing.T) {
	// --rate spreads the POSTs over 6 s, so the pause falls among them.
	const n, pause = 3000, 3
	f := newFixture(t)
	f.emitEvents("c1", n, pipeline.OutcomeSent)
	secrets := f.writeSecrets(testSecret)
	rcv := f.startReceiver(testSecret, "-pause-at", "10", "-pause", strconv.Itoa(pause))
	f.startStage("webhook", f.stageArgs("webhook", "--url", rcv.url(), "--secret-file", secrets, "--batch", "10", "--rate", "500")...)
	pipelinetest.Eventually(t, time.Minute, "every event", func() bool { return len(accepted(rcv.posts())) >= n })
	posts := rcv.posts()
	at := -1
	for i, p := range posts {
		if p.Status == http.StatusTooManyRequests {
			at = i
			break
		}
	}
	if at < 0 {
		t.Fatal("the receiver answered no POST 429")
	}
	// Half a second for what was sent as the 429 was answered (handlers
	// that had started their POST); the rest of the pause stays quiet.
	from, until := posts[at].Ms+500, posts[at].Ms+pause*1000-100
	var during []int64
	for _, p := range posts[at+1:] {
		if p.Ms >= from && p.Ms < until {
			during = append(during, p.Ms-posts[at].Ms)
		}
	}
	if len(during) > 0 {
		t.Errorf("%d POSTs arrived during the %d s Retry-After (ms after the 429: %v)", len(during), pause, during)
	}
}

// silentListener listens on loopback and answers nothing (the kernel
// completes a dial's handshake; nobody reads: a Redis that hangs). It
// returns the address and dials, which counts the connections made so far:
// it takes what waits in the backlog, a dial's connection there even once
// its dialer exited.
func silentListener(t *testing.T) (addr string, dials func() int) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := 0
	return ln.Addr().String(), func() int {
		for {
			if err := ln.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			c, err := ln.Accept()
			if err != nil {
				return n
			}
			c.Close()
			n++
		}
	}
}
