package pipeline_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A forced replay sends its users again, bypassing the marks; a second
// forced replay of the same window, by a second operator at once, a command
// retried, or the run again a replay leaving unfinished entries asks for,
// sent every one of them a second time. Each entry is force-replayed once;
// unforced replays, which send nothing already sent, stay free to re-drive
// a window as often as asked.
func TestReplayForcesEachEntryOnce(t *testing.T) {
	standalone, _ := opsRedis(t)
	const entries = 40 // two partitions of 20, pages of 7
	tests := []struct {
		name       string
		force      bool
		together   bool   // the two replays run at once
		to         string // the window's end, "" open: then the second reads the first's copies
		dry        bool   // the second is a dry run: it counts what it would inject
		again      bool   // the second is forced again (ReplayOptions.Again)
		cluster    bool   // on the 3-master cluster: the marks share the copies' slot
		wantCopies int    // copies of each user in the stream after both
		wantBefore int64  // entries the second left out (both, run together)
	}{
		{"forced, one after the other", true, false, "", false, false, false, 1, 2 * entries},
		{"forced, then a dry run", true, false, "", true, false, false, 1, 2 * entries},
		{"forced, then forced again", true, false, "", false, true, false, 2, 0},
		{"forced, at once", true, true, "1039-0", false, false, false, 1, entries},
		{"forced, at once, on the cluster", true, true, "1039-0", false, false, true, 1, entries},
		{"unforced, one after the other", false, false, "", false, false, false, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, c := opsKeys(), standalone
			if tt.cluster {
				c = client(t, env.Cluster.Addrs...)
			}
			for i := range entries {
				p := i % 2
				opsAdd(t, c, keys.Stream(pipeline.StreamDeliver, p), fmt.Sprintf("%d-0", 1000+i),
					pipeline.FieldCampaign, "a", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{int64(i)}))
			}
			to, err := pipeline.ParseBound(tt.to, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			opts := pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, To: to, Force: tt.force, Partitions: []int{0, 1}, PageSize: 7}
			results := make([]pipeline.ReplayResult, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range results {
				o := opts
				o.DryRun = i == 1 && tt.dry
				o.Again = i == 1 && tt.again
				run := func() { results[i], errs[i] = pipeline.Replay(t.Context(), c, keys, o) }
				if !tt.together {
					run()
					continue
				}
				wg.Go(run)
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			copies := map[int64]int{}
			for p := range 2 {
				for _, x := range opsRange(t, c, keys.Stream(pipeline.StreamDeliver, p), "-") {
					ids, err := pipeline.DecodeIDs(x.FieldValues[pipeline.FieldUsers])
					if err != nil {
						t.Fatal(err)
					}
					for _, id := range ids {
						copies[id]++
					}
				}
			}
			for i := range int64(entries) {
				if copies[i] != 1+tt.wantCopies {
					t.Fatalf("user %d: %d entries, the original and %d copies; want %d copies (results %+v, %+v)",
						i, copies[i], copies[i]-1, tt.wantCopies, results[0], results[1])
				}
			}
			before := results[0].ForcedBefore + results[1].ForcedBefore
			injected := results[0].Injected + results[1].Injected
			if before != tt.wantBefore || injected != int64(entries*tt.wantCopies) {
				t.Errorf("injected %d, left out as forced before %d; want %d, %d", injected, before, entries*tt.wantCopies, tt.wantBefore)
			}
		})
	}
}
