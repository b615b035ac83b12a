package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// lockedBuffer is written by the tail's goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `pushpipe results tail` finds a direct message's events by its id as well
// as a campaign's, filters by outcome, starts where --from says (an entry
// id inclusive, as replay reads it) and names an entry it passes over.
func TestResultsTail(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("tail", 4)
	ev := func(campaign, message string, dev int64, outcome string) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID(campaign, message, dev, outcome), Campaign: campaign, Message: message,
			App: "a", UserID: dev, Platform: "ios", Token: "ab", Outcome: outcome, AtMs: 1}
	}
	stream := func(p int) string { return keys.Stream(pipeline.StreamResults, p) }
	ids, err := pipeline.Emit(t.Context(),
		rdb,
		pipeline.Message{Stream: stream(0), Fields: pipeline.ResultFields(ev("c1", "", 1, pipeline.OutcomeSent), ev("c1", "", 2, pipeline.OutcomeFailed))},
		pipeline.Message{Stream: stream(0), Fields: pipeline.ResultFields(ev("c1", "", 3, pipeline.OutcomeSent))},
		pipeline.Message{Stream: stream(1), Fields: pipeline.ResultFields(ev("", "m1", 4, pipeline.OutcomeSent), ev("", "m1", 5, pipeline.OutcomeInvalid))},
	)
	if err != nil {
		t.Fatal(err)
	}
	// Last in the last partition, and a later millisecond than every other
	// entry (so after any --from below): once it is named, every entry
	// before it was read.
	time.Sleep(5 * time.Millisecond)
	last, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: stream(3), Fields: []string{"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, last...)
	tests := []struct {
		name string
		args []string
		want []string // event ids, in the order printed
	}{
		{"everything", []string{"--from", "0"}, []string{"c:c1:1", "c:c1:2:failed", "c:c1:3", "m:m1:4", "m:m1:5"}},
		{"a message by its id", []string{"--from", "0", "--campaign", "m1"}, []string{"m:m1:4", "m:m1:5"}},
		{"a campaign", []string{"--from", "0", "--campaign", "c1"}, []string{"c:c1:1", "c:c1:2:failed", "c:c1:3"}},
		{"bad news only", []string{"--from", "0", "--outcome", "failed,invalid"}, []string{"c:c1:2:failed", "m:m1:5"}},
		{"from an entry id, inclusive", []string{"--from", ids[1], "--campaign", "c1"}, []string{"c:c1:3"}},
		{"from a duration ago", []string{"--from", "1h"}, []string{"c:c1:1", "c:c1:2:failed", "c:c1:3", "m:m1:4", "m:m1:5"}},
		{"some users", []string{"--from", "0", "--user", "2,4"}, []string{"c:c1:2:failed", "m:m1:4"}},
		{"a user of a campaign", []string{"--from", "0", "--user", "4", "--user", "3", "--campaign", "c1"}, []string{"c:c1:3"}},
		{"not following", []string{"--from", "0", "--no-follow", "--user", "5"}, []string{"m:m1:5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"results", "tail"}, tt.args...)...)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out, logs lockedBuffer
			done := make(chan error, 1)
			go func() { done <- cli.Results.Tail.tail(ctx, rdb, keys, &out, &logs, zerolog.New(&logs)) }()
			if !cli.Results.Tail.Follow {
				// It ends by itself, having read every entry, the last
				// malformed one too, and says how many events it read.
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("--no-follow did not end; logs %q, out %q", logs.String(), out.String())
				}
				if !strings.Contains(logs.String(), stream(3)+" "+ids[3]) || !strings.Contains(logs.String(), "\n1 printed of 5 events read, every one results held from ") {
					t.Errorf("logs %q: want the malformed entry named and 5 events read, 1 printed", logs.String())
				}
			} else {
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(logs.String(), stream(3)+" "+ids[3]) {
					if time.Now().After(deadline) {
						t.Fatalf("the malformed entry was never named; logs %q, out %q", logs.String(), out.String())
					}
					time.Sleep(10 * time.Millisecond)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, e := range printedEvents(t, out.String()) {
				got = append(got, e.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("printed %v, want %v", got, tt.want)
			}
		})
	}
	// A --from it cannot read is refused before anything is read.
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Parse([]string{"results", "tail", "--from", "yesterday"}); err == nil || !strings.Contains(err.Error(), `--from: "yesterday" is neither`) {
		t.Errorf("--from yesterday: %v", err)
	}
	// Not following from now would search nothing and say nothing.
	if _, err := k.Parse([]string{"results", "tail", "--no-follow"}); err == nil || !strings.Contains(err.Error(), "--no-follow reads what results holds from --from on: give --from (0 for the oldest event kept, or e.g. 2h), or --campaign ID") {
		t.Errorf("--no-follow without --from: %v", err)
	}
}

// By default `results tail` prints new events only, "new" by Redis's clock
// (entry ids are Redis's time, not this machine's): an entry whose id is an
// hour ahead of our clock, as on a Redis whose clock is, was written before
// the tail started and is not printed; an entry written after it is.
func TestResultsTailStartsAtRedisNow(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("tailnow", 2)
	stream := keys.Stream(pipeline.StreamResults, 0)
	ev := func(campaign string) pipeline.ResultEvent {
		return pipeline.ResultEvent{ID: pipeline.ResultID(campaign, "", 1, pipeline.OutcomeSent), Campaign: campaign, App: "a", UserID: 1,
			Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: 1}
	}
	ahead := time.Now().Add(time.Hour).UnixMilli()
	if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 1), Fields: pipeline.ResultFields(ev("before"))}); err != nil {
		t.Fatal(err)
	}
	xadd := rdb.B().Arbitrary("XADD").Keys(stream).Args(fmt.Sprintf("%d-0", ahead)).Args(pipeline.ResultFields(ev("ahead"))...)
	if err := rdb.Do(t.Context(), xadd.Build()).Error(); err != nil {
		t.Fatal(err)
	}
	cli := parse(t, "results", "tail")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, logs lockedBuffer
	done := make(chan error, 1)
	go func() { done <- cli.Results.Tail.tail(ctx, rdb, keys, &out, &logs, zerolog.New(&logs)) }()
	// Malformed markers until the tail names one: it has taken its start.
	marker := func() string {
		t.Helper()
		id, err := rdb.Do(t.Context(), rdb.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("x", "y").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	pipelinetest.Eventually(t, 10*time.Second, "the tail to read", func() bool {
		marker()
		return strings.Contains(logs.String(), stream)
	})
	if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: stream, Fields: pipeline.ResultFields(ev("after"))}); err != nil {
		t.Fatal(err)
	}
	end := marker()
	pipelinetest.Eventually(t, 10*time.Second, "the last marker named", func() bool { return strings.Contains(logs.String(), end) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range printedEvents(t, out.String()) {
		got = append(got, e.Campaign)
	}
	if !slices.Equal(got, []string{"after"}) {
		t.Errorf("printed the events of %v, want only the one written after the tail started", got)
	}
}

// `results tail --campaign` of an id Redis does not know (a typo, an
// expired campaign) says so on stderr and goes on waiting; it printed
// nothing, for ever, like a quiet campaign. A known id is not warned about.
func TestResultsTailNamesAnUnknownCampaign(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("tailunknown", 2)
	if err := rdb.Do(t.Context(), rdb.B().Hset().Key(keys.Campaign("known")).FieldValue().
		FieldValue(campaign.HashExpiresMs, "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		warn bool
	}{
		{"nosuch", true},
		{"known", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cli := parse(t, "results", "tail", "--campaign", tt.id)
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			var out, logs lockedBuffer
			if err := cli.Results.Tail.tail(ctx, rdb, keys, &out, &logs, zerolog.New(&logs)); err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(logs.String(), "no campaign or direct message of this id"); warned != tt.warn || out.String() != "" {
				t.Errorf("logs %q, out %q: want a warning %v", logs.String(), out.String(), tt.warn)
			}
		})
	}
}

// `pushpipe results retire GROUP` removes a retired receiver's group from
// every partition of results (README's XGROUP DESTROY on each, by hand),
// and names the groups when given one that is not there.
func TestResultsRetire(t *testing.T) {
	r, rdb := testRedis(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	for _, s := range keys.Streams(pipeline.StreamResults) {
		for _, g := range []string{"webhook", "analytics"} {
			if err := pipeline.CreateGroup(t.Context(), rdb, s, g); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Two entries of three events each, neither read by analytics: what it
	// leaves is counted in entries, not called events.
	for range 2 {
		evs := []pipeline.ResultEvent{
			{ID: "c:c1:1", Campaign: "c1", App: "a", UserID: 1, Platform: "ios", Token: "t1", Outcome: pipeline.OutcomeSent, AtMs: 1},
			{ID: "c:c1:2", Campaign: "c1", App: "a", UserID: 2, Platform: "ios", Token: "t2", Outcome: pipeline.OutcomeSent, AtMs: 1},
			{ID: "c:c1:3", Campaign: "c1", App: "a", UserID: 3, Platform: "ios", Token: "t3", Outcome: pipeline.OutcomeSent, AtMs: 1},
		}
		if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(evs...)}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	retire := func(group string) error {
		cli := parse(t, "results", "retire", group, "--redis-addr", r.Addr)
		return cli.Results.Retire.retire(t.Context(), rdb, keys, &out)
	}
	if err := retire("analytics"); err != nil {
		t.Fatalf("retire analytics: %v", err)
	}
	if want := "with 2 entries it had not read or acknowledged (each a batch of events); results are trimmed without it from now on. " +
		"Its dead letters stay in the DLQ, for nobody to retry: pushpipe dlq drop --all --group analytics drops them\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("retire printed %q, want %q", out.String(), want)
	}
	groups, err := pipeline.StreamGroups(t.Context(), rdb, keys.Streams(pipeline.StreamResults))
	if err != nil {
		t.Fatal(err)
	}
	for i, gs := range groups {
		if len(gs) != 1 || gs[0].Name != "webhook" {
			t.Fatalf("partition %d's groups: %+v, want webhook alone", i, gs)
		}
	}
	if err := retire("analytcs"); err == nil || !strings.Contains(err.Error(), "its groups: webhook") {
		t.Errorf("retire a mistyped group: %v, want an error naming the groups", err)
	}
}

// TestResultsTailFromCreation: `results tail --campaign ID --user N
// --no-follow` without --from reads from the campaign's creation, which
// PostgreSQL keeps: support need not know when it went out, and nothing
// older is read. Without PostgreSQL it says to give --from.
func TestResultsTailFromCreation(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("created", 4)
	url, db := testDatabase(t)
	ev := func(dev, user int64) []string {
		return pipeline.ResultFields(pipeline.ResultEvent{ID: pipeline.ResultID("c2", "", dev, pipeline.OutcomeSent), Campaign: "c2",
			App: "a", UserID: user, Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: 1})
	}
	// An entry a minute before the campaign was created: of another
	// campaign of that id long gone, or a clock far off. Not read.
	old := rdb.B().Xadd().Key(keys.Stream(pipeline.StreamResults, 1)).Id(fmt.Sprintf("%d-0", time.Now().Add(-time.Minute).UnixMilli())).FieldValue()
	for f := ev(70, 7); len(f) >= 2; f = f[2:] {
		old = old.FieldValue(f[0], f[1])
	}
	if err := rdb.Do(t.Context(), old.Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c2", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Emit(t.Context(), rdb,
		pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 2), Fields: ev(71, 7)},
		pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 3), Fields: ev(80, 8)},
	); err != nil {
		t.Fatal(err)
	}
	tail := func(g *Globals, args ...string) ([]string, string, error) {
		cmd := parse(t, append([]string{"results", "tail", "--no-follow"}, args...)...).Results.Tail
		if err := cmd.startAtCreation(g); err != nil {
			return nil, "", err
		}
		var out, logs lockedBuffer
		if err := cmd.tail(t.Context(), rdb, keys, &out, &logs, zerolog.New(&logs)); err != nil {
			return nil, "", err
		}
		var got []string
		for _, e := range printedEvents(t, out.String()) {
			got = append(got, e.ID)
		}
		return got, logs.String(), nil
	}
	got, logs, err := tail(&Globals{DatabaseURL: url}, "--campaign", "c2", "--user", "7")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"c:c2:71"}) || !strings.Contains(logs, "1 printed of 2 events read") {
		t.Errorf("printed %v, logs %q: want c:c2:71 alone, of the 2 events since the creation", got, logs)
	}
	// --from still says where to start.
	if got, _, err := tail(&Globals{DatabaseURL: url}, "--campaign", "c2", "--user", "7", "--from", "0"); err != nil || !slices.Equal(got, []string{"c:c2:70", "c:c2:71"}) {
		t.Errorf("--from 0: %v, %v; want both events", got, err)
	}
	for _, tt := range []struct {
		name, id string
		g        *Globals
		want     string
	}{
		{"no PostgreSQL", "c2", &Globals{}, "--no-follow without --from starts at the creation of c2, which PostgreSQL keeps: no database: set PUSHPIPE_DATABASE_URL"},
		{"no such campaign", "c3", &Globals{DatabaseURL: url}, "no campaign or direct message c3 in PostgreSQL: check the id"},
	} {
		if _, _, err := tail(tt.g, "--campaign", tt.id); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// `results tail --no-follow --from 0` says it read from the oldest event
// kept, not "from 1970-01-01T00:00:00.000Z"; and for an id Redis does not
// know, --no-follow does not say it waits for the events: it reads what
// results holds and exits.
func TestTailNoFollowSaysWhatItRead(t *testing.T) {
	_, rdb := testRedis(t)
	keys := pipeline.NewKeys("nofollow", 2)
	ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", 1, pipeline.OutcomeSent), Campaign: "c1", App: "a", UserID: 1,
		Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: 1}
	cmd := rdb.B().Xadd().Key(keys.Stream(pipeline.StreamResults, 0)).Id("*").FieldValue()
	fields := pipeline.ResultFields(ev)
	for i := 0; i < len(fields); i += 2 {
		cmd = cmd.FieldValue(fields[i], fields[i+1])
	}
	if err := rdb.Do(t.Context(), cmd.Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give     []string
		wantNote string
		wantLog  string // "" for no log line
	}{
		{[]string{"--from", "0"}, "1 printed of 1 event read, every one results held from the oldest kept up to the start of this command\n", ""},
		{[]string{"--from", "0", "--campaign", "nosuch"}, "0 printed of 1 event read, every one results held from the oldest kept up to the start of this command\n",
			"no campaign or direct message of this id in Redis (not sent yet, expired, or another --prefix); reading what results holds of it"},
		{[]string{"--from", "0-1"}, "1 printed of 1 event read, every one results held from 0-1 up to the start of this command\n", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			cli := parse(t, append([]string{"results", "tail", "--no-follow"}, tt.give...)...)
			var out, note, logs bytes.Buffer
			if err := cli.Results.Tail.tail(t.Context(), rdb, keys, &out, &note, zerolog.New(&logs)); err != nil {
				t.Fatal(err)
			}
			if note.String() != tt.wantNote || !strings.Contains(logs.String(), tt.wantLog) || tt.wantLog == "" && logs.Len() > 0 ||
				strings.Contains(logs.String(), "waiting") {
				t.Errorf("said %q and logged %q; want %q and %q", note.String(), logs.String(), tt.wantNote, tt.wantLog)
			}
		})
	}
}
