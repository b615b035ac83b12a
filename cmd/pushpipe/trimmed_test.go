package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A --from older than what results keeps (asked for three days, kept for
// one) is said, by results tail and by replay, with the time the stream is
// kept from: both began at the oldest entry kept and said nothing of the
// rest. A --from within what is kept says nothing.
func TestReadingPastTheTrimIsSaid(t *testing.T) {
	r, rdb := testRedis(t)
	keys := pipeline.NewKeys("trimmed", 3) // partition 2 never written
	ev := pipeline.ResultEvent{ID: pipeline.ResultID("c1", "", 1, pipeline.OutcomeSent), Campaign: "c1", App: "a", UserID: 1,
		Platform: "ios", Token: "ab", Outcome: pipeline.OutcomeSent, AtMs: 1}
	for p, ids := range [][]string{{"1000-0", "2000-0", "3000-0"}, {"1500-0", "4000-0"}} {
		for _, id := range ids {
			cmd := rdb.B().Xadd().Key(keys.Stream(pipeline.StreamResults, p)).Id(id).FieldValue()
			fields := pipeline.ResultFields(ev)
			for i := 0; i < len(fields); i += 2 {
				cmd = cmd.FieldValue(fields[i], fields[i+1])
			}
			if err := rdb.Do(t.Context(), cmd.Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Partition 0 trimmed below 2500 (1000 and 2000 gone), partition 1
	// below 1200 (nothing of it).
	for p, minID := range []string{"2500", "1200"} {
		if err := rdb.Do(t.Context(), rdb.B().Xtrim().Key(keys.Stream(pipeline.StreamResults, p)).Minid().Threshold(minID).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	const said = " on, older ones trimmed past the stages' --retention"
	tests := []struct {
		from string
		want string // "" for nothing said
	}{
		{"1500", "from 1970-01-01T00:00:03Z"},
		{"0", "from 1970-01-01T00:00:03Z"},
		{"3000", ""}, // partition 0's first kept
	}
	for _, tt := range tests {
		t.Run("tail --from "+tt.from, func(t *testing.T) {
			cli := parse(t, "results", "tail", "--from", tt.from)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out, logs lockedBuffer
			done := make(chan error, 1)
			go func() { done <- cli.Results.Tail.tail(ctx, rdb, keys, &out, &logs, zerolog.New(&logs)) }()
			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(out.String(), "\n") < 2 { // 3000 and 4000 at least
				if time.Now().After(deadline) {
					t.Fatalf("printed %q", out.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got := logs.String()
			if tt.want == "" && strings.Contains(got, said) || tt.want != "" && (!strings.Contains(got, said) || !strings.Contains(got, tt.want)) {
				t.Errorf("logged %q, want %q", got, tt.want)
			}
		})
		t.Run("replay --from "+tt.from, func(t *testing.T) {
			cli := parse(t, "replay", "--redis-addr", r.Addr, "--stream", "results", "--from", tt.from, "--dry-run")
			from, err := pipeline.ParseBound(tt.from, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := cli.Replay.replay(t.Context(), rdb, keys, from, pipeline.Bound{}, &out); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if tt.want == "" && strings.Contains(got, said) || tt.want != "" && (!strings.Contains(got, "results keeps its entries "+tt.want+said) || !strings.Contains(got, "are not in this replay")) {
				t.Errorf("printed %q, want %q", got, tt.want)
			}
		})
	}
}
