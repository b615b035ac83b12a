package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// `campaigns list --before ID` of an unknown campaign names the flag and
// where a good id is printed, as the API's "before: no campaign" does.
func TestCampaignsListBeforeUnknown(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, before, err string
	}{
		{"known", "c1", ""},
		{"unknown", "nosuch", `--before nosuch: no such campaign; pass the id a page prints after "more:"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, "campaigns", "list", "--json", "--redis-addr", r.Addr, "--database-url", url, "--before", tt.before)
			err := cli.Campaigns.List.Run(&cli.Globals)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// `campaigns cancel` of a direct message's id says that messages are not
// canceled, as POST /v1/campaigns/{id}/cancel does.
func TestCampaignsCancelMessage(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, _, err := campaign.CreateMessage(t.Context(), rdb, db, keys, campaign.Message{
		Campaign: campaign.Campaign{ID: "m1", App: "a", Title: "t"}, Users: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, err string
	}{
		{"a direct message", "m1", "m1 is a direct message, not a campaign: a message cannot be canceled"},
		// It was `campaign "nosuch": campaign not found`, saying it twice
		// and not where ids are.
		{"nothing", "nosuch", "no campaign nosuch: check the id (pushpipe campaigns list shows them, newest first)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, "campaigns", "cancel", "--redis-addr", r.Addr, "--database-url", url, tt.id)
			if err := cli.Campaigns.Cancel.Run(&cli.Globals); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// The campaigns list's FINISH says when a running campaign would finish
// after it expires.
func TestCampaignsListSaysPastExpiry(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	reps := []campaign.Report{
		{ID: "late", State: campaign.StateRunning, ExpectedFinishMs: now.Add(150 * time.Minute).UnixMilli(), ExpiresAt: now.Add(time.Hour)},
		{ID: "on-time", State: campaign.StateRunning, ExpectedFinishMs: now.Add(10 * time.Minute).UnixMilli(), ExpiresAt: now.Add(time.Hour)},
	}
	var out strings.Builder
	printCampaigns(&out, reps, now, false)
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "~2h30m0s, expires in 1h0m0s") || strings.Contains(lines[2], "expires") || !strings.Contains(lines[2], "~10m0s") {
		t.Errorf("list\n%s\nwant the late one's finish to say it expires first, the other's not", out.String())
	}
}

// A campaign that stalled (deliver down: campaign.Report.StalledSinceMs)
// says since when in FINISH, not a finish that moved on with the clock for
// as long as deliver was down, while status said it was not running.
func TestCampaignsListSaysStalled(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	since := now.Add(-3 * time.Minute)
	tests := []struct {
		name string
		give campaign.Report
		want string
	}{
		{"stalled", campaign.Report{ID: "c", State: campaign.StateRunning, StalledSinceMs: since.UnixMilli()}, "stalled since " + since.Local().Format(time.TimeOnly)},
		// Waiting behind other sends, with the pipeline moving: no finish,
		// and not called stalled.
		{"queued", campaign.Report{ID: "c", State: campaign.StateRunning, QueuedSinceMs: since.UnixMilli()}, "queued since " + since.Local().Format(time.TimeOnly)},
		{"moving", campaign.Report{ID: "c", State: campaign.StateRunning, ExpectedFinishMs: now.Add(10 * time.Minute).UnixMilli()}, "~10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printCampaigns(&out, []campaign.Report{tt.give}, now, false)
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("list\n%s\nwant FINISH %q", out.String(), tt.want)
			}
		})
	}
}

// A scheduled campaign past its send_at has not been released by split: the
// list and status say it is late, not "starts 06:59:26 (in 0s)", which
// stood for as long as split was down. One canceled before its start says
// when it was to start, as the console does, not "0.0%" alone.
func TestScheduledLateSaysSo(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name          string
		sendAt        time.Time
		list, status  string
		notList, notS string
	}{
		{"ahead", now.Add(time.Hour), "starts ", "  starts ", "due", "was due"},
		{"just due", now.Add(-time.Second), "starts ", "  starts ", "due", "was due"},
		{"an hour late", now.Add(-time.Hour), ", not started", "ago) and has not started: split releases scheduled campaigns", "starts", "starts"},
		{"canceled before its start", now.Add(time.Hour), "was to start ", "  canceled before its start, ", "starts", "was due"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.sendAt.Truncate(time.Second)
			var list, status strings.Builder
			state := campaign.StateScheduled
			if strings.HasPrefix(tt.name, "canceled") {
				state = campaign.StateCanceled
			}
			printCampaigns(&list, []campaign.Report{{ID: "s", State: state, SendAt: &at}}, now, false)
			printProgressView(&status, progressView{ID: "s", State: state, SendAt: &at}, false)
			if row := strings.Split(list.String(), "\n")[1]; !strings.Contains(row, tt.list) || strings.Contains(row, tt.notList) {
				t.Errorf("list row %q, want %q and not %q", row, tt.list, tt.notList)
			}
			if !strings.Contains(status.String(), tt.status) || strings.Contains(status.String(), tt.notS) {
				t.Errorf("status\n%s\nwant %q and not %q", status.String(), tt.status, tt.notS)
			}
		})
	}
}

// `campaigns list` names its own flags when they are wrong, and the "more:"
// line it prints is the next page of the same list: it dropped --state and
// --limit, so following it listed every state, 20 at a time. An empty page
// says so instead of printing a header alone.
func TestCampaignsListFlagsAndMore(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	for _, id := range []string{"c1", "c2", "c3"} {
		if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		args []string
		want string // in the output, or in the error when err
		err  bool
	}{
		{"state and limit", []string{"--state", "splitting", "--limit", "1"}, "more: pushpipe campaigns list --state splitting --limit 1 --before c3\n", false},
		{"limit", []string{"--limit", "2"}, "more: pushpipe campaigns list --limit 2 --before c2\n", false},
		{"last page", []string{"--limit", "2", "--before", "c2"}, "c1", false},
		{"empty filter", []string{"--state", "failed"}, "no failed campaigns\n", false},
		{"empty page", []string{"--before", "c1"}, "no campaigns created before c1\n", false},
		{"limit 0", []string{"--limit", "0"}, "--limit: must be a whole number from 1 to 100 (default 20), got 0", true},
		{"limit 1000", []string{"--limit", "1000"}, "--limit: must be a whole number from 1 to 100 (default 20), got 1000", true},
		{"unknown state", []string{"--state", "sleeping"}, `--state: must be one of scheduled, splitting, running, done, canceled, failed, got "sleeping"`, true},
		{"bad before", []string{"--before", "a/b"}, "--before: only letters, digits", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"campaigns", "list", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)
			kctx, err := kongParse(args...)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cli := kctx.Model.Target.Addr().Interface().(*CLI)
			var out strings.Builder
			cli.Campaigns.List.out = &out
			if err := cli.Campaigns.List.Run(&cli.Globals); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) || tt.name == "last page" && strings.Contains(out.String(), "more:") {
				t.Errorf("printed\n%s\nwant %q", out.String(), tt.want)
			}
		})
	}
}

// `campaigns cancel` again succeeds (idempotent, as the API's 200) and says
// that the campaign was already canceled: the second run printed what the
// first did, as if it had stopped something.
func TestCampaignsCancelAgainSaysSo(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		already bool
	}{
		{"first", false},
		{"again", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, "campaigns", "cancel", "--json", "--redis-addr", r.Addr, "--database-url", url, "c1")
			var err error
			said := stderrOf(t, func() { err = cli.Campaigns.Cancel.Run(&cli.Globals) })
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(said, "campaign c1 was already canceled at "); got != tt.already {
				t.Errorf("stderr %q: says already canceled %v, want %v", said, got, tt.already)
			}
		})
	}
}

// `pushpipe status ID` says of a campaign that made no progress for
// DownAfter whether it stalled (look for what is down) or waits behind
// other sends (nothing to look for), and promises no finish either way.
func TestStatusSaysStalledOrQueued(t *testing.T) {
	since := time.Now().Add(-3 * time.Minute)
	tests := []struct {
		name      string
		give      progressView
		want, not string
	}{
		{"stalled", progressView{ID: "c", State: campaign.StateRunning, StalledSinceMs: since.UnixMilli()}, "  stalled: no progress since ", "queued"},
		{"queued", progressView{ID: "c", State: campaign.StateRunning, QueuedSinceMs: since.UnixMilli()},
			"  queued: no progress since " + since.Local().Format(time.DateTime) + " (3m ago) while the pipeline works on other campaigns ahead of it (sending them, or cutting them first)", "stalled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, tt.give, false)
			if !strings.Contains(out.String(), tt.want) || strings.Contains(out.String(), tt.not) || strings.Contains(out.String(), "expected to finish") {
				t.Errorf("status\n%s\nwant %q, neither %q nor a finish", out.String(), tt.want, tt.not)
			}
		})
	}
}

// The campaigns list's header says what it counts: targets are people,
// sent and failed are devices (as status says them). Under TARGETS and
// SENT, 969 sent of 807 targets read as a count gone wrong.
func TestCampaignsListSaysPeopleAndDevices(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	printCampaigns(&out, []campaign.Report{{ID: "c1", State: campaign.StateDone, Counts: campaign.Counts{Targets: 807, Sent: 969}}}, time.Now(), false)
	if !regexp.MustCompile(`\AID +STATE +PROGRESS +PEOPLE +DEVICES SENT +FAILED +RATE +CREATED +FINISH *\nc1 +done +.* 807 +969 +0 `).MatchString(out.String()) {
		t.Errorf("campaigns list:\n%s\nwant PEOPLE over the targets and DEVICES SENT over the sends", out.String())
	}
}
