package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// `replay --resplit --dry-run` checks the campaign and appends nothing; the
// same without --dry-run appends it once, or, for a campaign still
// scheduled, queues its start again for its send_at (appends nothing).
func TestResplitDryRun(t *testing.T) {
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	url := pipelinetest.MigratedDatabaseT(t, env.Postgres)
	rdb, err := pipeline.NewRedis(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	pool, err := (&Globals{DatabaseURL: url}).DB(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	for _, c := range []campaign.Campaign{
		{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"},
		{ID: "s1", App: "a", Channels: []string{"x"}, Title: "t", SendAt: time.Now().Add(time.Hour)},
	} {
		if _, _, err := campaign.Create(t.Context(), rdb, pool, keys, c); err != nil {
			t.Fatal(err)
		}
	}
	campaigns := func() int64 {
		var n int64
		for _, k := range keys.Streams(pipeline.StreamCampaigns) {
			l, err := rdb.Do(t.Context(), rdb.B().Xlen().Key(k).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			n += l
		}
		return n
	}
	tests := []struct {
		name     string
		args     []string
		appended int64
		err      string
	}{
		{"dry run", []string{"--campaign", "c1", "--dry-run"}, 0, ""},
		{"dry run, unknown campaign", []string{"--campaign", "nope", "--dry-run"}, 0, "no campaign nope: check the id (pushpipe campaigns list shows them"},
		{"unknown campaign", []string{"--campaign", "nope"}, 0, "no campaign nope: check the id (pushpipe campaigns list shows them"},
		{"for real", []string{"--campaign", "c1"}, 1, ""},
		{"dry run, scheduled", []string{"--campaign", "s1", "--dry-run"}, 0, ""},
		{"scheduled: again for its send_at", []string{"--campaign", "s1"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"replay", "--resplit", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)...)
			before := campaigns()
			err := cli.Replay.Run(&cli.Globals)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if got := campaigns() - before; got != tt.appended {
				t.Errorf("appended %d entries to campaigns, want %d", got, tt.appended)
			}
		})
	}
}

// A replay refused before it read anything prints only its error; one that
// ran prints its counts. "re-injected 0 of 0 entries of dlq" above the
// error read as a replay that ran and found nothing. A --campaign that
// matched none of the entries read says so under the counts.
func TestReplayRefusedPrintsNoCounts(t *testing.T) {
	r, rdb := testRedis(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if err := rdb.Do(t.Context(), rdb.B().Xadd().Key(keys.Stream(pipeline.StreamDeliver, 0)).Id("*").
		FieldValue().FieldValue(pipeline.FieldCampaign, "c1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		out, err string
	}{
		{"not a stage's input", []string{"--stream", "dlq", "--from", "0", "--dry-run"}, "", `cannot replay stream "dlq"`},
		{"force on ingest", []string{"--stream", "ingest", "--from", "0", "--force"}, "", "--force applies to dedupe and deliver only"},
		{"partition out of range", []string{"--stream", "deliver", "--from", "0", "--partition", "99"}, "", "partition 99 out of range"},
		{"empty window", []string{"--stream", "deliver", "--from", "1m", "--to", "10m", "--json"}, "", "empty window"},
		{"dry run", []string{"--stream", "deliver", "--from", "0", "--dry-run"}, "would re-inject 1 of 1 entries of deliver", ""},
		{"its campaign", []string{"--stream", "deliver", "--from", "0", "--campaign", "c1", "--dry-run"}, "would re-inject 1 of 1 entries of deliver", ""},
		// A mistyped id said only "would re-inject 0 of 1", which reads
		// as a campaign with nothing lost.
		{"no such campaign", []string{"--stream", "deliver", "--from", "0", "--campaign", "c9", "--dry-run"},
			"none of them is of campaign or direct message c9: check the id", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What needs no Redis is refused with the command line
			// (exit 2), where nothing is printed either.
			cli := &CLI{}
			k, err := kong.New(cli, options()...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Parse(append([]string{"replay", "--redis-addr", r.Addr}, tt.args...)); err != nil {
				if tt.err == "" || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			c := &cli.Replay
			from, err := pipeline.ParseBound(c.From, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			to, err := pipeline.ParseBound(c.To, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = c.replay(t.Context(), rdb, keys, from, to, &out)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if tt.out == "" && out.Len() > 0 || !strings.Contains(out.String(), tt.out) {
				t.Errorf("printed %q, want %q", out.String(), tt.out)
			}
		})
	}
}

// A replay says how many entries of the window it left to their stage
// (pending in its group or unread: a copy would race them), in the text and
// the JSON; a --campaign whose entries were all left is not "none of them
// is of campaign". Partition 0 of deliver holds three entries of c1; deliver's
// group read two and acked one.
func TestReplaySaysWhatItLeftToTheStage(t *testing.T) {
	r, rdb := testRedis(t)
	ctx := t.Context()
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	stream := keys.Stream(pipeline.StreamDeliver, 0)
	for _, id := range []string{"1000-0", "1001-0", "1002-0"} {
		if err := rdb.Do(ctx, rdb.B().Xadd().Key(stream).Id(id).FieldValue().FieldValue(pipeline.FieldCampaign, "c1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipeline.CreateGroup(ctx, rdb, stream, "deliver"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []rueidis.Completed{
		rdb.B().Xreadgroup().Group("deliver", "w").Count(2).Streams().Key(stream).Id(">").Build(),
		rdb.B().Xack().Key(stream).Group("deliver").Id("1000-0").Build(),
	} {
		if err := rdb.Do(ctx, cmd).Error(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"text", []string{"--dry-run"},
			"would re-inject 1 of 3 entries of deliver [the start .. open] into deliver (idempotent: only what never went out will be sent); 2 still pending or unread: their stage delivers them\n"},
		{"json", []string{"--dry-run", "--json"}, `"unfinished_by_partition":{"0":2},"unfinished_left_to_stage":2`},
		{"forced", []string{"--dry-run", "--force"},
			"; 2 still pending or unread: their stage delivers them, unforced (run this again once they are done to force them too)\n"},
		{"campaign all left", []string{"--dry-run", "--from", "1001-0", "--campaign", "c1"},
			"would re-inject 0 of 2 entries of deliver [1001-0 .. open] into deliver (idempotent: only what never went out will be sent); 2 still pending or unread: their stage delivers them\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"replay", "--redis-addr", r.Addr, "--stream", "deliver"}, tt.args...)
			if !slices.Contains(tt.args, "--from") {
				args = append(args, "--from", "0")
			}
			cli := parse(t, args...)
			c := &cli.Replay
			from, err := pipeline.ParseBound(c.From, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := c.replay(ctx, rdb, keys, from, pipeline.Bound{}, &out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) || strings.Contains(out.String(), "none of them") {
				t.Errorf("printed %q, want %q", out.String(), tt.want)
			}
		})
	}
}
