package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `status --json --watch` prints JSON only: a refresh that failed is a
// line with an error key, and the end of the watch (Ctrl-C, SIGTERM) ends
// it quietly, whenever it comes.
func TestStatusWatchJSON(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("pp", 4)
	// The DLQ key of another type: every refresh fails (WRONGTYPE).
	if err := rdb.Do(t.Context(), rdb.B().Set().Key(keys.DLQ()).Value("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cancel   bool   // the watch is over before its first refresh
		wantLine string // in the first line; "" for no output at all
	}{
		{"refreshes failing", false, "WRONGTYPE"},
		{"stopped during a refresh", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, "status", "--json", "--watch", "--interval", "100ms")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			var out lockedBuffer
			done := make(chan error, 1)
			go func() { done <- cli.Status.refresh(ctx, rdb, keys, campaignSource{rdb: rdb, keys: keys}, &out, false) }()
			if !tt.cancel {
				pipelinetest.Eventually(t, 10*time.Second, "three refreshes", func() bool { return strings.Count(out.String(), "\n") >= 3 })
				cancel()
			}
			if err := <-done; err != nil {
				t.Fatalf("the watch ended with %v", err)
			}
			got := out.String()
			if tt.wantLine == "" && got != "" {
				t.Fatalf("printed %q, want nothing", got)
			}
			var lines []string
			if got != "" {
				lines = strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			}
			for i, line := range lines {
				var v struct {
					At    time.Time `json:"at"`
					Error string    `json:"error"`
				}
				if err := json.Unmarshal([]byte(line), &v); err != nil || v.At.IsZero() {
					t.Fatalf("line %d is not a JSON object with at: %q (%v)", i+1, line, err)
				}
				if i == 0 && !strings.Contains(v.Error, tt.wantLine) {
					t.Errorf("first line's error %q does not say %q", v.Error, tt.wantLine)
				}
				if strings.Contains(line, "context canceled") {
					t.Errorf("line %d reports the end of the watch as a failure: %q", i+1, line)
				}
			}
		})
	}
}

// `status ID` without a database refuses an id Redis does not know,
// rather than show it as a campaign that reached nobody.
func TestStatusUnknownIDWithoutDatabase(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("pp", 4)
	// What creating a campaign or message publishes first (its expiry).
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := rdb.Do(t.Context(), rdb.B().Hset().Key(keys.Campaign("c1")).FieldValue().FieldValue(campaign.HashExpiresMs, exp).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id  string
		err string // "" for a report
	}{
		{"c1", ""},
		{"c2", "campaign c2: Redis holds no campaign or direct message of this id"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cli := parse(t, "status", tt.id)
			rep, err := cli.Status.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys})
			if tt.err == "" {
				if err != nil || rep.Campaign == nil || rep.Campaign.ID != tt.id {
					t.Fatalf("status %s: %v, %+v", tt.id, err, rep.Campaign)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "PUSHPIPE_DATABASE_URL") {
				t.Errorf("status %s: %v, want an error with %q naming PUSHPIPE_DATABASE_URL", tt.id, err, tt.err)
			}
		})
	}
}

// `status ID` of a scheduled campaign says when it starts, as `campaigns
// list` does, and of one canceled before its start when it was to; a
// started one does not.
func TestStatusScheduledSaysWhen(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, c := range []campaign.Campaign{
		{ID: "later", App: "a", Channels: []string{"x"}, Title: "t", SendAt: at},
		{ID: "now", App: "a", Channels: []string{"x"}, Title: "t"},
		{ID: "off", App: "a", Channels: []string{"x"}, Title: "t", SendAt: at},
	} {
		if _, _, err := campaign.Create(t.Context(), rdb, db, keys, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := campaign.Cancel(t.Context(), rdb, db, keys, "off"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, want string // want "": no start line
	}{
		{"later", "starts " + at.Local().Format(time.DateTime) + " (in "},
		{"now", ""},
		{"off", "canceled before its start, " + at.Local().Format(time.DateTime) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, out := progressOf(t, campaignSource{rdb: rdb, keys: keys, db: db}, rdb, keys, "--redis-addr", r.Addr, "--database-url", url, tt.id)
			if got := strings.Contains(out, "starts "); tt.want == "" && got || tt.want != "" && !strings.Contains(out, tt.want) {
				t.Errorf("status %s printed\n%s\nwant %q", tt.id, out, tt.want)
			}
		})
	}
}

// `status ID` of an id PostgreSQL does not know says so once, with where to
// look, not `campaign x: campaign "x": campaign not found`.
func TestStatusUnknownID(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	tests := []struct {
		id, want string
	}{
		{"nosuch", "no campaign or direct message nosuch: check the id (pushpipe campaigns list shows the campaigns, pushpipe messages list the direct messages)"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cli := parse(t, "status", "--redis-addr", r.Addr, "--database-url", url, tt.id)
			_, err := cli.Status.collect(t.Context(), rdb, keys, campaignSource{rdb: rdb, keys: keys, db: db})
			if err == nil || err.Error() != tt.want {
				t.Errorf("status %s: %v, want %q", tt.id, err, tt.want)
			}
		})
	}
}

// `status ID` with PostgreSQL down shows the streams and the campaign's
// counters and state from Redis, and says the record is missing: it failed
// with "PostgreSQL ... does not answer" and showed nothing, during the
// outage when an operator needs it, and then showed the state "unknown",
// where the API showed it from Redis.
func TestStatusWithPostgresDown(t *testing.T) {
	r, rdb := testRedis(t)
	keys := pipeline.NewKeys("pp", 4)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := rdb.Do(t.Context(), rdb.B().Hset().Key(keys.Campaign("c1")).FieldValue().FieldValue(campaign.HashExpiresMs, exp).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Do(t.Context(), rdb.B().Hset().Key(keys.Campaign("m1")).FieldValue().FieldValue(campaign.HashExpiresMs, exp).
		FieldValue(campaign.HashMessageUsers, "2").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	down := "postgres://postgres@" + pipelinetest.FreeAddr(t) + "/pushpipe?sslmode=disable&connect_timeout=1" // nothing listens
	tests := []struct {
		id          string
		note, state string // the progress's note and state; "" for an error
		err         string
	}{
		{"c1", campaign.RecordUnavailable, campaign.StateSplitting, ""},
		{"m1", campaign.RecordUnavailable, campaign.MessageSending, ""},
		{"c2", "", "", "Redis holds no campaign or direct message of this id, and PostgreSQL, which keeps older ones, is unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cli := parse(t, "status", "--redis-addr", r.Addr, "--database-url", down, tt.id)
			src := cli.Status.source(&cli.Globals, rdb, keys)
			rep, err := cli.Status.collect(t.Context(), rdb, keys, src)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("status %s: %v, want %q", tt.id, err, tt.err)
				}
				return
			}
			if err != nil || rep.Campaign == nil || len(rep.Streams) == 0 {
				t.Fatalf("status %s with PostgreSQL down: %v, %+v", tt.id, err, rep)
			}
			if rep.Campaign.Note != tt.note || rep.Campaign.State != tt.state {
				t.Errorf("note %q, state %q: want %q and state %s", rep.Campaign.Note, rep.Campaign.State, tt.note, tt.state)
			}
		})
	}
}

// A message to raw tokens counts tokens, not people: its bar read "2 / 2
// people" for two tokens of nobody known.
func TestStatusRawTokensMessageCountsTokens(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	for _, m := range []campaign.Message{
		{Campaign: campaign.Campaign{ID: "users", App: "a", Title: "t"}, Users: []int64{1, 2}},
		{Campaign: campaign.Campaign{ID: "tokens", App: "a", Title: "t"}, Tokens: []campaign.Token{
			{Platform: "ios", Token: strings.Repeat("ab", 32)}, {Platform: "ios", Token: strings.Repeat("cd", 32)}}},
	} {
		if _, _, err := campaign.CreateMessage(t.Context(), rdb, db, keys, m); err != nil {
			t.Fatal(err)
		}
	}
	// Mutes are a user's: a message to raw tokens has none to show.
	tests := []struct {
		id, want, not, muted string
	}{
		{"users", " people\n", " tokens\n", "  muted 0"},
		{"tokens", " tokens\n", " people\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			v, out := progressOf(t, campaignSource{rdb: rdb, keys: keys, db: db}, rdb, keys, "--redis-addr", r.Addr, "--database-url", url, tt.id)
			line := progressLine(v, false)
			if !strings.Contains(out, tt.want) || strings.Contains(out, tt.not) || !strings.Contains(line+"\n", strings.TrimSuffix(tt.want, "\n")+" done  ") {
				t.Errorf("status %s printed\n%s\nand %q; want %q", tt.id, out, line, tt.want)
			}
			if shown := strings.Contains(out, " muted "); shown != (tt.muted != "") || !strings.Contains(out, tt.muted) {
				t.Errorf("status %s printed\n%s\nwant muted shown: %v", tt.id, out, tt.muted != "")
			}
		})
	}
}

// Without PostgreSQL, a direct message's counters are still shown as a
// message's: it read "campaign m1" with a campaign's duplicates.
func TestStatusWithoutDatabaseKnowsAMessage(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("pp", 4)
	// What creating a campaign or message publishes first.
	exp := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	for _, cmd := range []rueidis.Completed{
		rdb.B().Hset().Key(keys.Campaign("c1")).FieldValue().FieldValue(campaign.HashExpiresMs, exp).Build(),
		rdb.B().Hset().Key(keys.Campaign("m1")).FieldValue().FieldValue(campaign.HashExpiresMs, exp).FieldValue(campaign.HashMessageUsers, "3").Build(),
	} {
		if err := rdb.Do(t.Context(), cmd).Error(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		id, want, not string
	}{
		{"c1", "campaign c1  unknown\n", "message"},
		{"m1", "message m1  unknown\n", "duplicates suppressed"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, out := progressOf(t, campaignSource{rdb: rdb, keys: keys}, rdb, keys, tt.id)
			if !strings.Contains(out, tt.want) || strings.Contains(out, tt.not) {
				t.Errorf("status %s printed\n%s\nwant %q, not %q", tt.id, out, tt.want, tt.not)
			}
		})
	}
}

// progressOf is what `status ARGS` (ending with an id) prints of that
// campaign or message, read through src.
func progressOf(t *testing.T, src campaignSource, rdb rueidis.Client, keys pipeline.Keys, args ...string) (progressView, string) {
	t.Helper()
	cli := parse(t, append([]string{"status"}, args...)...)
	rep, err := cli.Status.collect(t.Context(), rdb, keys, src)
	if err != nil || rep.Campaign == nil {
		t.Fatalf("status %v: %v", args, err)
	}
	var out strings.Builder
	printProgressView(&out, *rep.Campaign, false)
	return *rep.Campaign, out.String()
}

// `status ID` of a capped campaign says its cap, and of a running one when
// it should finish, as `campaigns list` does: without them a capped
// campaign's pace read as a slow pipeline.
func TestStatusSaysTheCapAndFinish(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "capped", App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: 100}); err != nil {
		t.Fatal(err)
	}
	if _, out := progressOf(t, campaignSource{rdb: rdb, keys: keys, db: db}, rdb, keys, "--redis-addr", r.Addr, "--database-url", url, "capped"); !strings.Contains(out, "  capped at 100 sends/s\n") {
		t.Errorf("status of a capped campaign printed\n%s\nwant its cap", out)
	}
	now := time.Now()
	sending := campaign.Counts{Targets: 1000, Sent: 500, FirstSendMs: now.Add(-5 * time.Second).UnixMilli(), LastSendMs: now.UnixMilli()}
	tests := []struct {
		name      string
		give      progressView
		want, not string
	}{
		{"capped, sending", progressView{ID: "c", State: campaign.StateRunning, Counts: sending, RatePerSecond: 100,
			ExpectedFinishMs: now.Add(5 * time.Second).UnixMilli()}, "100 sends/s (cap 100)\n  expected to finish ", "capped at"},
		{"uncapped, sending", progressView{ID: "c", State: campaign.StateRunning, Counts: sending,
			ExpectedFinishMs: now.Add(5 * time.Second).UnixMilli()}, "  expected to finish ", "cap"},
		{"done", progressView{ID: "c", State: campaign.StateDone, Counts: sending, RatePerSecond: 100}, "(cap 100)", "expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printProgressView(&out, tt.give, false)
			if !strings.Contains(out.String(), tt.want) || strings.Contains(out.String(), tt.not) {
				t.Errorf("printed\n%s\nwant %q, not %q", out.String(), tt.want, tt.not)
			}
		})
	}
}

// `status ID` (and `send --wait`'s summary) says why devices failed, as
// the console's "Failures by reason" does: "failed 873" alone did not say
// that they expired under a cap too low for the TTL.
func TestStatusSaysWhyDevicesFailed(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	// What deliver counts, in two partitions: the devices, and why.
	failures := map[string]map[string]int64{
		"expired": {"fcm expired": 522, "apns expired": 351},
		"many":    {"a": 7, "b": 6, "c": 5, "d": 4, "e": 3, "f": 2, "g": 1},
		"none":    {},
	}
	for id, reasons := range failures {
		if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
			t.Fatal(err)
		}
		p := 0
		for reason, n := range reasons {
			p = (p + 5) % keys.Partitions
			for _, cmd := range []rueidis.Completed{
				rdb.B().Hincrby().Key(keys.Stats(p, id)).Field(pipeline.StatFailed).Increment(n).Build(),
				rdb.B().Hincrby().Key(keys.Reasons(p, id)).Field(reason).Increment(n).Build(),
			} {
				if err := rdb.Do(t.Context(), cmd).Error(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	tests := []struct {
		id, want string
	}{
		{"expired", "  why: fcm expired 522, apns expired 351\n"},
		{"many", "  why: a 7, b 6, c 5, d 4, e 3, 2 more in the console\n"},
		{"none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, out := progressOf(t, campaignSource{rdb: rdb, keys: keys, db: db}, rdb, keys, "--redis-addr", r.Addr, "--database-url", url, tt.id)
			if got := lineWith(out, "  why: "); got != tt.want {
				t.Errorf("status %s printed\n%s\nwant the line %q", tt.id, out, tt.want)
			}
		})
	}
}

// lineWith is out's first line that starts with prefix, with its line
// break; "" when none does.
func lineWith(out, prefix string) string {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
