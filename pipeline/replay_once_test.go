package pipeline_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A forced replay resends each user (or raw token) of a campaign once,
// however many copies of it the window holds. Deliver's retry rounds, a dlq
// retry and an earlier replay each carry the same users again, and force
// bypasses the marks that suppress such copies: a replay of a campaign whose
// users had failed 3 times before going out sent each of them 4 times.
func TestReplayForceResendsEachUserOnce(t *testing.T) {
	c, _ := opsRedis(t)
	users := func(ids ...int64) []string { return []string{pipeline.FieldUsers, pipeline.EncodeIDs(ids)} }
	tokens := func(ts ...pipeline.RawToken) []string {
		return []string{pipeline.FieldTokens, pipeline.EncodeTokens(ts)}
	}
	ios, android := pipeline.RawToken{ID: 1, Platform: "ios", Token: "aa"}, pipeline.RawToken{ID: 2, Platform: "android", Token: "bb"}
	tests := []struct {
		name    string
		stream  string
		entries [][]string // each: campaign, then fields
		want    [][]int64  // the ids of each re-injected entry, in order
		repeats int64      // ids left out
	}{
		{"deliver's retry rounds and a dlq retry", pipeline.StreamDeliver, [][]string{
			append([]string{"a"}, users(1, 2, 3)...),
			append([]string{"a", pipeline.FieldRounds, "1"}, users(2, 3)...),
			append([]string{"a", pipeline.FieldRounds, "2"}, users(3)...),
			append([]string{"a", pipeline.FieldGroup, "deliver"}, users(2, 3)...),
			append([]string{"a"}, users(3, 4)...),
			append([]string{"b"}, users(1)...), // another campaign's user 1
		}, [][]int64{{1, 2, 3}, {4}, {1}}, 6},
		{"dedupe's copies from an earlier replay", pipeline.StreamDedupe, [][]string{
			append([]string{"a", pipeline.FieldRange, "r1"}, users(5, 6)...),
			append([]string{"a", pipeline.FieldRange, "r1"}, users(5, 6)...),
			append([]string{"a", pipeline.FieldRange, "r2"}, users(6, 7)...),
		}, [][]int64{{5, 6}, {7}}, 3},
		{"a message's raw tokens", pipeline.StreamDeliver, [][]string{
			append([]string{"m"}, tokens(ios, android)...),
			append([]string{"m", pipeline.FieldRounds, "1"}, tokens(android)...),
		}, [][]int64{{1, 2}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := opsKeys()
			key := keys.Stream(tt.stream, 0)
			for i, e := range tt.entries {
				opsAdd(t, c, key, fmt.Sprintf("%d-0", 1000+i), append([]string{pipeline.FieldCampaign, e[0]}, e[1:]...)...)
			}
			res, err := pipeline.Replay(t.Context(), c, keys, pipeline.ReplayOptions{Stream: tt.stream, Force: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Repeats != tt.repeats {
				t.Errorf("left out %d repeats, want %d", res.Repeats, tt.repeats)
			}
			var got [][]int64
			for _, x := range opsRange(t, c, key, fmt.Sprintf("(%d-0", 1000+len(tt.entries)-1)) {
				var ids []int64
				if raw, ok := x.FieldValues[pipeline.FieldTokens]; ok {
					ts, err := pipeline.DecodeTokens(raw)
					if err != nil {
						t.Fatal(err)
					}
					for _, tk := range ts {
						ids = append(ids, tk.ID)
					}
				} else {
					var err error
					if ids, err = pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers]); err != nil {
						t.Fatal(err)
					}
				}
				if x.FieldValues[pipeline.FieldForce] != "1" {
					t.Errorf("re-injected %v without force", ids)
				}
				got = append(got, ids)
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("re-injected %v, want %v", got, tt.want)
			}
		})
	}
}
