package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `send --wait` follows a campaign to its end: a scheduled one shows as
// such, one canceled while it is followed ends the following with an
// error naming it (exit status 1), and Ctrl-C ends only the following.
// (A campaign followed until done: the README's send --wait, run by
// bench/readme against pushpipe dev.)
func TestFollow(t *testing.T) {
	_, rdb := testRedis(t)
	_, db := testDatabase(t)
	keys := pipeline.NewKeys("follow", 4)
	src := campaignSource{rdb: rdb, keys: keys, db: db}
	tests := []struct {
		name    string
		end     func(ctx context.Context, cancel context.CancelFunc, id string) error // ends the following
		wantErr string                                                                // "" for nil
		wantOut string
	}{
		{"canceled", func(ctx context.Context, _ context.CancelFunc, id string) error {
			_, err := campaign.Cancel(ctx, rdb, db, keys, id)
			return err
		}, " was canceled", "  canceled\n"},
		{"ctrl-c", func(_ context.Context, stop context.CancelFunc, _ string) error {
			stop()
			return nil
		}, "", "it goes on: pushpipe status "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c-" + tt.name, App: "a", Channels: []string{"x"},
				Title: "t", TTL: time.Hour, SendAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			out := &lockedBuffer{}
			done := make(chan error, 1)
			go func() { done <- follow(ctx, src, c.ID, out, false, 10*time.Millisecond, bySend) }()
			pipelinetest.Eventually(t, 10*time.Second, "the scheduled state shown", func() bool {
				return strings.Contains(out.String(), "campaign "+c.ID+"  scheduled")
			})
			if err := tt.end(t.Context(), stop, c.ID); err != nil {
				t.Fatal(err)
			}
			var err2 error
			select {
			case err2 = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("follow did not end:\n%s", out)
			}
			if tt.wantErr == "" && err2 != nil || tt.wantErr != "" && (err2 == nil || !strings.Contains(err2.Error(), c.ID+tt.wantErr)) {
				t.Errorf("follow: %v, want %q", err2, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("follow wrote:\n%s\nwant %q in it", out, tt.wantOut)
			}
		})
	}
}

// `send --wait` says which stage a campaign waits on when one has no
// running process: with split killed it showed "splitting 0%" for as long
// as one watched, with nothing to say why.
func TestFollowSaysWhichStageIsDown(t *testing.T) {
	_, rdb := testRedis(t)
	_, db := testDatabase(t)
	tests := []struct {
		name    string
		running []string
		want    string // "" for no waiting note
	}{
		{"nothing runs", nil, "(waiting: split not running, resolve not running, dedupe not running, deliver not running; pushpipe status says more)"},
		{"split stopped", []string{"resolve", "dedupe", "deliver"}, "(waiting: split not running; pushpipe status says more)"},
		{"all run", []string{"split", "resolve", "dedupe", "deliver"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := pipeline.NewKeys("w"+strings.ReplaceAll(tt.name, " ", ""), 4)
			for _, st := range tt.running {
				runIdle(t, rdb, keys, st)
			}
			c, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "w", App: "a", Channels: []string{"x"}, Title: "t", TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(t.Context())
			out := &lockedBuffer{}
			done := make(chan error, 1)
			go func() {
				done <- follow(ctx, campaignSource{rdb: rdb, keys: keys, db: db}, c.ID, out, false, 10*time.Millisecond, bySend)
			}()
			pipelinetest.Eventually(t, 10*time.Second, "a progress line", func() bool { return strings.Contains(out.String(), "campaign w ") })
			stop()
			<-done
			got := strings.SplitN(out.String(), "\n", 2)[0]
			if tt.want == "" && strings.Contains(got, "waiting") || !strings.Contains(got, tt.want) {
				t.Errorf("first line %q, want %q", got, tt.want)
			}
		})
	}
}

// Off a terminal, a stage down is said when that changes, not each second
// its "last seen" age grows: a message waiting on a stopped deliver wrote a
// line a second into the CI log.
func TestFollowSaysAStageDownOnce(t *testing.T) {
	_, rdb := testRedis(t)
	_, db := testDatabase(t)
	tests := []struct {
		name    string
		stopped string // run, then stopped cleanly: "last seen" ages
		lines   int    // progress lines written while following
	}{
		{"deliver stopped", "deliver", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := pipeline.NewKeys("once"+tt.stopped, 4)
			for _, st := range []string{"dedupe", "deliver"} {
				if stop := runIdle(t, rdb, keys, st); st == tt.stopped {
					stop()
				}
			}
			m, _, err := campaign.CreateMessage(t.Context(), rdb, db, keys, campaign.Message{
				Campaign: campaign.Campaign{ID: "m", App: "a", Title: "t"}, Users: []int64{1}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithTimeout(t.Context(), 2500*time.Millisecond) // the age passes two seconds
			defer stop()
			out := &lockedBuffer{}
			if err := follow(ctx, campaignSource{rdb: rdb, keys: keys, db: db}, m.ID, out, false, 10*time.Millisecond, bySend); err != nil {
				t.Fatal(err)
			}
			lines := strings.Count(out.String(), "message m ")
			if lines != tt.lines || !strings.Contains(out.String(), tt.stopped+" not running, last seen ") {
				t.Errorf("%d progress lines, want %d naming %s:\n%s", lines, tt.lines, tt.stopped, out.String())
			}
		})
	}
}

// A campaign still being cut whose audience split counted: its bar and its
// people go by the audience ("~" before it), not by the few targets of the
// ranges cut so far, which read as nearly done for hours.
func TestProgressCountsAgainstTheAudience(t *testing.T) {
	tests := []struct {
		name string
		give progressView
		want string
	}{
		{"audience counted", progressView{ID: "c", State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 150}, Done: 100, Audience: 1000},
			"10.0%  100 / ~1,000 people"},
		{"muted and repeats reached", progressView{ID: "c", State: campaign.StateSplitting,
			Counts: campaign.Counts{Targets: 150, Muted: 30, DuplicatesSuppressed: 70}, Done: 100, Audience: 1000},
			"20.0%  200 / ~1,000 people"},
		{"no audience", progressView{ID: "c", State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 150}, Done: 100},
			"66.7%  100 / 150 people"},
		{"running: the targets", progressView{ID: "c", State: campaign.StateRunning, Counts: campaign.Counts{Targets: 150}, Done: 100, Audience: 1000},
			"66.7%  100 / 150 people"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, tt.give, false)
			if line := progressLine(tt.give, false); !strings.Contains(line, tt.want) || !strings.Contains(out.String(), tt.want) {
				t.Errorf("progress line %q and view\n%s\nwant %q in both", line, out.String(), tt.want)
			}
		})
	}
}

// People done with no device to send to are said, when there are any: a
// message to 49 people that sent 12 did not say why. Duplicates suppressed
// are a campaign's alone: a message's list is made each user once before
// dedupe, and its 0 read as if a user listed twice got it twice.
func TestProgressSaysWhoHadNoDevice(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		noDevices int64
		want      string
	}{
		{"none", "message", 0, "  muted 0\n"},
		{"some", "message", 1234, "  muted 0  no devices 1,234\n"},
		{"a campaign's", "", 1234, "  muted 0  duplicates suppressed 0  no devices 1,234\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, progressView{ID: "m", Kind: tt.kind, State: campaign.MessageDone,
				Counts: campaign.Counts{Targets: 1246, Sent: 12, NoDevices: tt.noDevices}, Done: 1246}, false)
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("view\n%s\nwant %q", out.String(), tt.want)
			}
		})
	}
}

// A send rate is shown over a second of sends or more: a chat message's 3
// devices sent within 2ms read "1,500 sends/s".
func TestProgressRateOverASecondOnly(t *testing.T) {
	const first = int64(1_764_900_000_000)
	tests := []struct {
		name      string
		sent      int64
		span      int64 // ms
		want, not string
	}{
		{"a message's few sends", 3, 2, "(2ms)\n", "sends/s"},
		{"a campaign's", 30_000, 1500, "(1.5s)  20,000 sends/s\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, progressView{ID: "x", State: campaign.StateRunning,
				Counts: campaign.Counts{Targets: tt.sent, Sent: tt.sent, FirstSendMs: first, LastSendMs: first + tt.span}}, false)
			if !strings.Contains(out.String(), tt.want) || tt.not != "" && strings.Contains(out.String(), tt.not) {
				t.Errorf("view\n%s\nwant %q and not %q", out.String(), tt.want, tt.not)
			}
		})
	}
}

// A campaign that, at its rate, would still be sending when it expires says
// so, with what to do: past its expiry the rest fail as expired.
func TestProgressSaysItOutlastsItsExpiry(t *testing.T) {
	expires := time.Date(2026, 12, 5, 3, 0, 0, 0, time.Local)
	tests := []struct {
		name string
		give *pastExpiry
		want string
	}{
		{"within its TTL", nil, ""},
		{"past it", &pastExpiry{ExpiresAt: expires, FinishAt: expires.Add(150 * time.Minute)},
			"EXPIRES 2026-12-05 03:00:00, before it is done at this rate (2026-12-05 05:30:00)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, progressView{ID: "c", State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 10}, PastExpiry: tt.give}, false)
			if got := out.String(); tt.want == "" && strings.Contains(got, "EXPIRES") || !strings.Contains(got, tt.want) {
				t.Errorf("view\n%s\nwant %q", got, tt.want)
			}
		})
	}
}

// runIdle runs stage st with a handler that does nothing, until the test
// ends or stop; it returns once the stage is ready.
func runIdle(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, st string) (stop func()) {
	t.Helper()
	def, _ := pipeline.StageNamed(st)
	opts := def.Options()
	opts.Block = 100 * time.Millisecond
	r := pipeline.NewRunner(rdb, keys, opts, pipeline.HandlerFunc(func(context.Context, *pipeline.Batch) error { return nil }), zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	stop = func() { cancel(); <-done } // again at the end: done stays closed
	t.Cleanup(stop)
	pipelinetest.Eventually(t, 10*time.Second, st+" ready", r.Ready)
	return stop
}

// Following a scheduled campaign (send --send-at --wait) says when it
// starts, or that it is late: "scheduled ... 0 / 0 people" alone stood
// until it started.
func TestFollowSaysWhenScheduledStarts(t *testing.T) {
	now := time.Now()
	ahead, behind := now.Add(time.Hour), now.Add(-time.Hour)
	tests := []struct {
		name      string
		sendAt    *time.Time
		tty       bool
		want, not string
	}{
		{"ahead, log", &ahead, false, "  starts " + ahead.Local().Format(time.DateTime), "(in "},
		{"ahead, terminal", &ahead, true, "  starts " + ahead.Local().Format(time.DateTime) + " (in ", "due"},
		{"late", &behind, false, "  due " + behind.Local().Format(time.DateTime) + ", not started", "starts"},
		{"no send_at", nil, false, "0 devices sent", "starts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := progressLine(progressView{ID: "s", State: campaign.StateScheduled, SendAt: tt.sendAt}, tt.tty)
			if !strings.Contains(line, tt.want) || strings.Contains(line, tt.not) {
				t.Errorf("line %q, want %q, not %q", line, tt.want, tt.not)
			}
		})
	}
}

// A liveness read that fails keeps the note read before it: the end of a
// --wait cut the read short, and "no stage down" printed one more line, as
// if deliver ran again.
func TestWaitingNoteSurvivesAFailedRead(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("note", 4)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	const last = "  (waiting: deliver not running, last seen 2s ago; pushpipe status says more)"
	if got := waitingOn(ctx, campaignSource{rdb: rdb, keys: keys}, progressView{ID: "m", Kind: "message"}, last); got != last {
		t.Errorf("after a failed read the note is %q, want the last one %q", got, last)
	}
}

// `send --wait`'s exit status, for a script: 0 when done (devices failing
// beside sends are normal, everyone muted, nobody to send to), 1 when
// failed or canceled, 3 when done having sent nothing while devices
// failed, 4 when done having sent nothing because people had no device.
// It exited 0 when every device failed, and when the only user listed had
// no device (`send --user 999999999 --wait`: "no devices 1"); the
// latter's message says how a device is registered.
func TestWaitExitStatus(t *testing.T) {
	tests := []struct {
		name string
		give progressView
		want int
		says string // in the error
	}{
		{"done, all sent", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 2, Sent: 2}}, 0, ""},
		{"done, some failed", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 3, Sent: 2, Failed: 1}}, 0, ""},
		{"done, everyone muted", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 2, Muted: 2}}, 0, ""},
		{"done, every device failed", progressView{ID: "m", Kind: "message", State: campaign.StateDone, Counts: campaign.Counts{Targets: 1, Failed: 1}}, exitNothingSent, "failed"},
		{"done, every token invalid", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 2, InvalidTokens: 2}}, exitNothingSent, "failed"},
		{"done, the user unknown", progressView{ID: "m", Kind: "message", State: campaign.StateDone, Counts: campaign.Counts{Targets: 1, NoDevices: 1}},
			exitNoDevices, "message m is done but sent nothing: 1 person has no device of its app"},
		{"done, muted or without a device", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 3, Muted: 1, NoDevices: 2}},
			exitNoDevices, "POST /v1/devices"},
		{"done, some without a device", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 3, Sent: 1, NoDevices: 2}}, 0, ""},
		{"done, failed and without a device", progressView{ID: "c", State: campaign.StateDone, Counts: campaign.Counts{Targets: 3, Failed: 1, NoDevices: 2}},
			exitNothingSent, "1 device failed"},
		{"done, an empty audience (--allow-empty)", progressView{ID: "c", State: campaign.StateDone}, 0, ""},
		{"failed", progressView{ID: "c", State: campaign.StateFailed}, 1, "was"},
		{"canceled", progressView{ID: "c", State: campaign.StateCanceled, Counts: campaign.Counts{Sent: 5}}, 1, "was"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ended(tt.give, bySend)
			if got := exitCode(err); got != tt.want || err != nil && !strings.Contains(err.Error(), tt.says) {
				t.Errorf("exit status %d (%v), want %d saying %q", got, err, tt.want, tt.says)
			}
		})
	}
}

// Who reached nobody for want of a device is told to check what the
// command that follows took: send's --app, or, under `status ID --wait`,
// the app the campaign or message was sent to. status said "Check --app",
// a flag it does not take.
func TestNoDeviceAdviceFitsTheCommand(t *testing.T) {
	nobody := progressView{ID: "m", Kind: "message", State: campaign.StateDone, Counts: campaign.Counts{Targets: 1, NoDevices: 1}}
	tests := []struct {
		name    string
		by      follower
		says    string
		saysNot string
	}{
		{"send --wait", bySend, "Check --app and the ids (pushpipe users show ID lists a user's devices); ", ""},
		{"status --wait", byStatus, "Check the app it was sent to (pushpipe messages list shows a message's) and the user ids " +
			"(pushpipe users show ID lists a user's devices and their apps); ", "--app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ended(nobody, tt.by)
			if exitCode(err) != exitNoDevices || !strings.Contains(err.Error(), tt.says) || tt.saysNot != "" && strings.Contains(err.Error(), tt.saysNot) {
				t.Errorf("%v (exit %d); want exit %d saying %q, not %q", err, exitCode(err), exitNoDevices, tt.says, tt.saysNot)
			}
		})
	}
}

// While split still cuts a campaign its targets grow: the progress says the
// figure is those found so far, or the audience counted at the start, and
// `campaigns list` the same of its PEOPLE. "100 / 150 people" read as the
// whole audience, then became "180 / 400".
func TestProgressSaysTargetsGrowWhileSplitting(t *testing.T) {
	tests := []struct {
		name            string
		give            progressView
		line, view, not string
	}{
		{"splitting", progressView{ID: "c", State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 150}, Done: 100},
			"100 / 150 people done so far", "\n  splitting: 150 targets found so far; the count grows until split has cut every range\n", ""},
		{"splitting, audience counted", progressView{ID: "c", State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 150}, Done: 100, Audience: 1000},
			"100 / ~1,000 people ", "\n  splitting: ~1,000 is the audience counted at the start; 150 targets found so far\n", "so far;"},
		{"running", progressView{ID: "c", State: campaign.StateRunning, Counts: campaign.Counts{Targets: 150}, Done: 100},
			"100 / 150 people ", "100 / 150 people\n", "splitting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, tt.give, false)
			line, view := progressLine(tt.give, false), out.String()
			if !strings.Contains(line, tt.line) || !strings.Contains(view, tt.view) || tt.not != "" && strings.Contains(view, tt.not) {
				t.Errorf("line %q, view\n%s\nwant %q in the line, %q in the view, not %q", line, view, tt.line, tt.view, tt.not)
			}
		})
	}
	var list strings.Builder
	printCampaigns(&list, []campaign.Report{
		{ID: "cut", State: campaign.StateSplitting, Counts: campaign.Counts{Targets: 150}, Audience: 1000},
		{ID: "sent", State: campaign.StateRunning, Counts: campaign.Counts{Targets: 150}},
	}, time.Now(), false)
	if !regexp.MustCompile(`(?m)^cut +splitting .* 150 so far +0 `).MatchString(list.String()) || !regexp.MustCompile(`(?m)^sent +running .* 150 +0 `).MatchString(list.String()) {
		t.Errorf("campaigns list:\n%s\nwant the splitting campaign's targets so far", list.String())
	}
}
