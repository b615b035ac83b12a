package bench

import (
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A campaign is quiet once its own stages have no work left, whatever the
// groups of stages off its path hold: a webhook group left behind by an
// earlier `pushpipe webhook` (nothing reads it under `make dev`) lags for
// ever, and the demo campaign must still finish.
func TestQuietCountsTheCampaignStagesOnly(t *testing.T) {
	r := pipelinetest.RedisT(t, pipelinetest.RedisOptions{})
	rdb, err := pipeline.NewRedis(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	s := &sampler{rdb: rdb, keys: keys, campaign: "c1", pids: func() map[string]int { return nil }}
	tests := []struct {
		name          string
		stream, group string
		quiet         bool
	}{
		{"a webhook group nobody reads", pipeline.StreamResults, "webhook", true},
		{"an ingest group behind", pipeline.StreamIngest, "ingest", true},
		{"deliver behind", pipeline.StreamDeliver, "deliver", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := keys.Stream(tt.stream, 0)
			if err := pipeline.CreateGroup(t.Context(), rdb, key, tt.group); err != nil {
				t.Fatal(err)
			}
			if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: key, Fields: []string{"x", "1"}}); err != nil {
				t.Fatal(err)
			}
			smp, err := s.sample(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := smp.Quiet(); got != tt.quiet {
				t.Errorf("quiet = %v with %s's group %s lagging, want %v", got, tt.stream, tt.group, tt.quiet)
			}
		})
	}
}
