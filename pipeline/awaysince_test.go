package pipeline

import (
	"testing"
	"time"
)

// RedisAwaySince reads the last keep that could not reach Redis
// (keepClaimed) against the time the handler asks from: a keep failed at
// it or after counts, one before it does not, and a part of a batch
// (processEach) sees the keep of the batch it was split from.
func TestRedisAwaySince(t *testing.T) {
	since := time.Now()
	tests := []struct {
		name   string
		unkept time.Time // the last keep that could not reach Redis; zero: none did
		part   bool      // asked of a part of the batch
		want   bool
	}{
		{name: "no keep failed"},
		{name: "a keep failed before", unkept: since.Add(-time.Millisecond)},
		{name: "a keep failed at it", unkept: since, want: true},
		{name: "a keep failed after", unkept: since.Add(time.Millisecond), want: true},
		{name: "a part, its batch's keep failed after", unkept: since.Add(time.Millisecond), part: true, want: true},
		{name: "a part, its batch's keep failed before", unkept: since.Add(-time.Millisecond), part: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Batch{}
			if !tt.unkept.IsZero() {
				b.unkept.Store(tt.unkept.UnixNano())
			}
			asked := b
			if tt.part {
				asked = &Batch{parent: b}
			}
			if got := asked.RedisAwaySince(since); got != tt.want {
				t.Errorf("RedisAwaySince = %v, want %v", got, tt.want)
			}
		})
	}
}
