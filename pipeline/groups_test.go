package pipeline_test

import (
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// A group that has read its stream's last entry has no lag, whatever
// Redis's entries-read says: after restarts Redis 7.0 counted groups short of
// entries-added, and split's backpressure, status and `make dev` waited on
// work that did not exist. XGROUP SETID ... ENTRIESREAD sets the count as
// Redis had it wrong. A real lag stays.
func TestStaleLagIsDropped(t *testing.T) {
	c, _ := opsRedis(t)
	ctx := t.Context()
	tests := []struct {
		name        string
		read        int64 // entries the group reads of 3
		entriesRead int64 // what Redis is made to count (-1: left as it is)
		lag         int64
	}{
		{"read every entry, miscounted", 3, 1, 0},
		{"read every entry", 3, -1, 0},
		{"one entry unread, miscounted", 2, 1, 2},
		{"nothing read", 0, -1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "lag:" + tt.name
			if err := pipeline.CreateGroup(ctx, c, key, "g"); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := pipeline.Emit(ctx, c, pipeline.Message{Stream: key, Fields: []string{"x", "1"}}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.read > 0 {
				res, err := c.Do(ctx, c.B().Xreadgroup().Group("g", "c").Count(tt.read).Streams().Key(key).Id(">").Build()).AsXRead()
				if err != nil {
					t.Fatal(err)
				}
				es := res[key]
				if tt.entriesRead >= 0 {
					if err := c.Do(ctx, c.B().XgroupSetid().Key(key).Group("g").Id(es[len(es)-1].ID).Entriesread(tt.entriesRead).Build()).Error(); err != nil {
						t.Fatal(err)
					}
				}
			}
			groups, err := pipeline.StreamGroups(ctx, c, []string{key})
			if err != nil {
				t.Fatal(err)
			}
			if len(groups[0]) != 1 || groups[0][0].Lag != tt.lag {
				t.Errorf("groups %+v, want lag %d", groups[0], tt.lag)
			}
		})
	}
}
