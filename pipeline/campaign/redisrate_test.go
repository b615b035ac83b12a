package campaign

import (
	"errors"
	"testing"
)

// TestRedisProgressRate: the report from Redis alone (PostgreSQL down)
// has the rate the campaign's hash holds, the one deliver paces by: set at
// its creation, changed by SetRate, none when Redis lost the field. It
// read 0 whatever the cap, so an operator who lowered a campaign's rate
// just before an outage could not see that it held.
func TestRedisProgressRate(t *testing.T) {
	tests := []struct {
		name    string
		created int
		set     int // SetRate's; -1: none
		lost    bool
		want    int
	}{
		{"as created", 40, -1, false, 40},
		{"changed", 40, 25, false, 25},
		{"cap removed", 40, 0, false, 0},
		{"no cap", 0, -1, false, 0},
		{"Redis lost the field", 40, -1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a database copy and keys of its own, as TestSetRate's rows
			rdb, db, keys := world(t)
			ctx := t.Context()
			if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c", App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: tt.created}); err != nil {
				t.Fatal(err)
			}
			if tt.set >= 0 {
				if _, err := SetRate(ctx, rdb, db, keys, "c", tt.set); err != nil {
					t.Fatal(err)
				}
			}
			if tt.lost {
				do(t, rdb, rdb.B().Hdel().Key(keys.Campaign("c")).Field(HashRatePerSecond).Build())
			}
			rep, err := RedisProgress(ctx, rdb, keys, "c", errors.New("PostgreSQL down"))
			if !errors.Is(err, ErrPartial) {
				t.Fatalf("RedisProgress: %v, want ErrPartial", err)
			}
			if rep.RatePerSecond != tt.want {
				t.Errorf("rate_per_second from Redis alone: %d, want %d", rep.RatePerSecond, tt.want)
			}
		})
	}
}
